"""Every error bulksend raises on purpose, as one family (httpx's ``_exceptions.py`` is the model).

    BulksendError
     ├── InvalidJob            bad input, refused whole before anything is queued:
     │    │                    .field, .reason, and .code (the provider's) when there is one
     │    └── UnknownChannel   a kind no channel is registered for
     ├── SendingNotFound       no sending with that id (a KeyError too)
     ├── IdempotencyConflict   the key was used before for a different sending
     ├── RedisFull             Redis is out of memory: a sending refused whole, nothing queued
     └── ConfigurationError    settings that cannot work (no Redis URL, …)
          └── UnsafeRedis      a Redis that evicts keys (maxmemory-policy): it would lose work

Callers map them in one place each: the CLI to a message and an exit code
(``bulksend.cli.EXIT_CODES``), the HTTP API to a status code.
"""

from __future__ import annotations

import re

__all__ = [
    "BulksendError",
    "ConfigurationError",
    "IdempotencyConflict",
    "InvalidJob",
    "RedisFull",
    "SendingNotFound",
    "UnknownChannel",
    "UnsafeRedis",
]

_CODE = re.compile(r"\((?:provider )?code (\d+)\)")
_PREFIX = re.compile(r"^invalid [\w-]+ (?:sending|job): ")


class BulksendError(Exception):
    """Base of every error bulksend raises on purpose."""


class InvalidJob(BulksendError, ValueError):
    """A sending refused whole, before anything is queued. The text names the field.

    ``field`` and ``reason`` come from the message (``"…: field: reason"``)
    unless given; ``code`` is the provider's code the message cites, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        reason: str | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        detail = _PREFIX.sub("", message)
        parsed_field, sep, parsed_reason = detail.partition(": ")
        if not sep or " " in parsed_field.strip():
            parsed_field, parsed_reason = "", detail
        self.field = field if field is not None else parsed_field
        self.reason = reason if reason is not None else parsed_reason
        found = _CODE.search(message)
        self.code = code if code is not None else (int(found.group(1)) if found else None)


class UnknownChannel(InvalidJob):
    """No channel is registered for that kind."""


class SendingNotFound(BulksendError, KeyError):
    """No sending with that id (also a ``KeyError``, which callers caught before)."""

    def __init__(self, sending_id: str) -> None:
        super().__init__(f"no sending {sending_id!r}")
        self.sending_id = sending_id

    def __str__(self) -> str:
        return str(self.args[0])


class IdempotencyConflict(BulksendError, ValueError):
    """The idempotency key was used before for a different sending."""


class ConfigurationError(BulksendError, ValueError):
    """Settings that cannot work; the message names the setting."""


class UnsafeRedis(ConfigurationError):
    """A Redis whose ``maxmemory-policy`` evicts keys (``jobs.redis_safety``): workers and
    ``serve`` refuse to start on it, as on any setting that cannot work."""


class RedisFull(BulksendError):
    """Redis is out of memory (``maxmemory`` under ``noeviction``): the write was refused.

    From a submit, the message says what became of the sending: nothing of it
    queued (the usual case), or, when the sending was there before or some of its
    chunks were already queued, that it was left for a submit with the same
    idempotency key to finish. ``used`` and ``maxmemory`` are bytes, when Redis
    said."""

    def __init__(
        self, message: str, *, used: int | None = None, maxmemory: int | None = None
    ) -> None:
        super().__init__(message)
        self.used = used
        self.maxmemory = maxmemory
