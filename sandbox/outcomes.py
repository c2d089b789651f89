"""What becomes of an accepted message after the 202: the sandbox's decision, made once
per message and shared by its delivery notifications and its events.

Sources: ``messaging-api.txt`` → "Delivery notifications" (the ``%s`` statuses of a
DLR) and "Event Notifications" (the ``event`` values, ``extra``, ``smtpResponse``).

A decision is drawn from ``random.Random(f"{seed}:{message id}")``, always the same
draws in the same order whatever the channel, so one seed and one message id give
one decision (``sandbox.notifications`` draws how the notifications travel —
duplicates, order — from another generator, so those rates never change a
decision). What is drawn, with ``Rates`` (shares from 0 to 1):

==========================  ============================================================
SMS, landing, voice         ``delivered``; ``undelivered`` for ``undelivered``,
(text2speech)               ``expired`` for ``expired``, ``rejected`` for ``rejected``
                            (one draw split into those shares)
email (mailing)             ``undelivered`` with the fact ``hard_bounced`` for
                            ``email_bounce`` (no "delivered" event), else
                            ``delivered``, with ``soft_bounced`` before it for
                            ``email_soft_bounce``; of the delivered, ``opened`` for
                            ``email_open``; of the opened, ``clicked`` for
                            ``email_click``; ``unsubscribed`` for
                            ``email_unsubscribe``; ``complaint`` for
                            ``email_complaint``
landing                     of the delivered, ``unsubscribed_landing`` for
                            ``landing_unsubscribe``
==========================  ============================================================

A multipart SMS gets one DLR per part: all ``DELIVRD`` when delivered, all
``EXPIRED`` / ``REJECTD`` when expired / rejected, and when undelivered one part
(drawn) ``UNDELIV`` and the others ``DELIVRD``. ``hard_bounced``, ``complaint``,
``unsubscribed`` and ``unsubscribed_landing`` put the recipient on the blacklist of
its type ("Blacklist": sms for SMS and landing, mailing for email, voice for
text2speech); hard bounces and complaints as definitive.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Any, Final

# Stats channel (sandbox.state) → the ``channel`` of "Event Notifications" (sms,
# mailing, landing, text2speech). WhatsApp is none of them: it gets no events.
EVENT_CHANNELS: Final[dict[str, str]] = {
    "sms": "sms",
    "email": "mailing",
    "landing": "landing",
    "voice": "text2speech",
    "voice-audio": "text2speech",
}

# Event channel → the "Blacklist" type its unsubscribes and bounces land on.
BLACKLIST_TYPES: Final[dict[str, str]] = {
    "sms": "sms",
    "landing": "sms",
    "mailing": "mailing",
    "text2speech": "voice",
}

# Channels whose requests take a ``notificationUrl`` ("Delivery notifications").
DLR_CHANNELS: Final = frozenset({"sms", "landing"})

# Decided delivery → its event and its final DLR status (``%s``).
DELIVERY_EVENTS: Final[dict[str, str]] = {
    "delivered": "delivered",
    "undelivered": "undelivered",
    "expired": "expired",
    "rejected": "rejected",
}
DLR_STATUSES: Final[dict[str, str]] = {
    "delivered": "DELIVRD",
    "undelivered": "UNDELIV",
    "expired": "EXPIRED",
    "rejected": "REJECTD",
}
DLR_INTERMEDIATE: Final = "ACCEPTD"

# Facts that put the recipient on the blacklist, and whether as definitive.
BLACKLISTING: Final[dict[str, bool]] = {
    "hard_bounced": True,
    "complaint": True,
    "unsubscribed": False,
    "unsubscribed_landing": False,
}

# The order facts happen in: before the delivery event, then after it.
FACTS_BEFORE: Final = ("soft_bounced",)
FACTS_AFTER: Final = ("opened", "clicked", "unsubscribed", "complaint", "unsubscribed_landing")

# ``smtpResponse`` of the email events that have one ("Event Notifications").
SMTP_RESPONSES: Final[dict[str, str]] = {
    "delivered": "250 2.0.0 Ok: queued",
    "soft_bounced": "452 4.2.2 <{to}>: Mailbox full",
    "hard_bounced": "550 5.1.1 <{to}>: Recipient address rejected: User unknown",
}
CLICKED_URL: Final = "https://example.com/offer?utm_source=sandbox"  # ``extra.url`` of "clicked"

MNCS: Final = ("01", "03", "04", "07")  # ``%m``: the operators a number may be with
COST_PER_PART: Final = "0.05"  # ``%c``, per part (one DLR per part)


@dataclass(frozen=True, slots=True)
class Rates:
    """Shares of messages, each from 0 to 1 (see the module's table)."""

    undelivered: float = 0.1
    expired: float = 0.0
    rejected: float = 0.0
    email_bounce: float = 0.05
    email_soft_bounce: float = 0.05
    email_open: float = 0.5
    email_click: float = 0.2
    email_unsubscribe: float = 0.05
    email_complaint: float = 0.0
    landing_unsubscribe: float = 0.05


@dataclass(frozen=True, slots=True)
class Decision:
    """One message's fate."""

    channel: str  # event channel: sms, mailing, landing, text2speech
    to: str
    sending: int
    delivery: str  # delivered, undelivered, expired, rejected
    facts: tuple[str, ...]  # in the order they happen
    failed_part: int  # 1-based part that is UNDELIV in an undelivered SMS (else 0)
    mnc: str

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "to": self.to,
            "sending": self.sending,
            "delivery": self.delivery,
            "facts": list(self.facts),
        }

    def events(self) -> list[str]:
        """The ``event`` values to notify, in order: "sent", facts before, the delivery
        ("hard_bounced" stands for it in an email), facts after."""
        before = [fact for fact in self.facts if fact in FACTS_BEFORE]
        after = [fact for fact in self.facts if fact in FACTS_AFTER]
        final = "hard_bounced" if "hard_bounced" in self.facts else DELIVERY_EVENTS[self.delivery]
        return ["sent", *before, final, *after]

    def dlr_statuses(self, part: int) -> tuple[str, str]:
        """(intermediate, final) ``%s`` of one part (1-based)."""
        final = DLR_STATUSES[self.delivery]
        if self.delivery == "undelivered" and part != self.failed_part:
            final = DLR_STATUSES["delivered"]
        return DLR_INTERMEDIATE, final

    def blacklisted(self) -> bool | None:
        """Whether the facts put the recipient on the blacklist as definitive (None:
        they do not put it there)."""
        found = [BLACKLISTING[fact] for fact in self.facts if fact in BLACKLISTING]
        return any(found) if found else None


def decide(
    seed: int, message_id: str, channel: str, to: str, sending: int, parts: int, rates: Rates
) -> Decision:
    """The decision for one message of stats channel ``channel`` (see the module)."""
    rng = random.Random(f"{seed}:{message_id}")
    # Every draw is made, always in this order, so that a decision depends on the
    # seed, the id and the rates alone.
    outcome, failed_part, mnc = rng.random(), rng.randrange(max(parts, 1)) + 1, rng.choice(MNCS)
    soft, opened, clicked, unsubscribed, complaint, landing = (rng.random() for _ in range(6))
    event_channel = EVENT_CHANNELS[channel]
    facts: list[str] = []
    if event_channel == "mailing":
        if outcome < rates.email_bounce:
            return Decision(event_channel, to, sending, "undelivered", ("hard_bounced",), 0, mnc)
        delivery = "delivered"
        if soft < rates.email_soft_bounce:
            facts.append("soft_bounced")
        if opened < rates.email_open:
            facts.append("opened")
            if clicked < rates.email_click:
                facts.append("clicked")
        if unsubscribed < rates.email_unsubscribe:
            facts.append("unsubscribed")
        if complaint < rates.email_complaint:
            facts.append("complaint")
        return Decision(event_channel, to, sending, delivery, tuple(facts), 0, mnc)
    delivery = "delivered"
    for name, share in (
        ("undelivered", rates.undelivered),
        ("expired", rates.expired),
        ("rejected", rates.rejected),
    ):
        if outcome < share:
            delivery = name
            break
        outcome -= share
    if (
        event_channel == "landing"
        and delivery == "delivered"
        and landing < rates.landing_unsubscribe
    ):
        facts.append("unsubscribed_landing")
    failed = failed_part if delivery == "undelivered" else 0
    return Decision(event_channel, to, sending, delivery, tuple(facts), failed, mnc)


def contact_id(channel: str, to: str) -> int:
    """``contactId``: one stable positive integer per recipient of a channel (the sandbox
    keeps no contact for an API send; a real account has one per number or address)."""
    return zlib.crc32(f"{channel}:{to}".encode()) % 10**9 + 1
