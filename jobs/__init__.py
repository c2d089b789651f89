"""Send jobs: what they are, how they are validated, and how producers enqueue them.

This is the public surface; the modules behind it are free to change::

    from jobs import Producer, Sms

    producer = await Producer.connect()
    sending_id = await producer.submit(Sms(to=["34666555444"], sender="SHOP", message="Hi"))
"""

from jobs.base import SendJob
from jobs.channels import Channel, register
from jobs.email import Attachment, Email
from jobs.errors import (
    BulksendError,
    ConfigurationError,
    IdempotencyConflict,
    InvalidJob,
    RedisFull,
    SendingNotFound,
    UnknownChannel,
    UnsafeRedis,
)
from jobs.landing import Landing
from jobs.producer import Producer, SyncProducer
from jobs.results import Status
from jobs.settings import Settings
from jobs.sms import Sms
from jobs.voice import Voice, VoiceAudio
from jobs.whatsapp import WhatsApp, WhatsAppMessage

__all__ = [
    "Attachment",
    "BulksendError",
    "Channel",
    "ConfigurationError",
    "Email",
    "IdempotencyConflict",
    "InvalidJob",
    "Landing",
    "Producer",
    "RedisFull",
    "SendJob",
    "SendingNotFound",
    "Settings",
    "Sms",
    "Status",
    "SyncProducer",
    "UnknownChannel",
    "UnsafeRedis",
    "Voice",
    "VoiceAudio",
    "WhatsApp",
    "WhatsAppMessage",
    "register",
]
