"""The email send job: ``POST /api/rest/mailing`` ("Send Email message" in messaging-api.txt).

Addresses are checked here with a deliberately simple rule (see ``normalize_email``)
so that a typo is refused before anything is queued; the provider still decides
whether a sender is verified (115, 117).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from jobs.base import SendJob, check_api_date, one_content_source
from jobs.settings import get_settings
from jobs.sms import SubValue

MIB = 1024 * 1024
# Our limits, not the provider's (the doc gives none): a base64 JSON body of
# ~27 MiB is already more than one provider call should carry, and every
# attachment is billed ("Attached files have an additional cost").
MAX_ATTACHMENT_BYTES = 10 * MIB  # defaults of BULKSEND_MAX_ATTACHMENT_MB …
MAX_MESSAGE_ATTACHMENT_BYTES = 20 * MIB  # … and BULKSEND_MAX_MESSAGE_ATTACHMENTS_MB


def _file_limit() -> int:
    return int(get_settings().max_attachment_mb * MIB)


def _message_limit() -> int:
    return int(get_settings().max_message_attachments_mb * MIB)


DEFAULT_CONTENT_TYPE = "application/octet-stream"

# A practical subset of RFC 5321/5322, not the whole grammar: a dot-atom local
# part (no quoted strings, no comments) of at most 64 characters, "@", and a DNS
# host name of at least two labels whose last label is alphabetic (or punycode).
# IP literals, quoted local parts and non-ASCII addresses are refused: bulk mail
# to them is nearly always a data error, and IDN domains can be sent as punycode.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+(?:[A-Za-z]{{2,63}}|xn--[A-Za-z0-9-]{{1,59}})")
_MAX_ADDRESS = 254  # RFC 5321 forward-path limit minus the angle brackets
_MAX_LOCAL = 64
# "type/subtype" with optional parameters; no line breaks (they would be headers).
_CONTENT_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(?:\s*;[^\r\n]*)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalize_email(raw: str) -> str | None:
    """The address as it is sent (domain lower-cased), or None when it is not one.

    Surrounding spaces are dropped because producers paste addresses with them.
    Only the domain is lower-cased: the local part is case-sensitive per RFC 5321,
    and rewriting it could address a different mailbox.
    """
    candidate = raw.strip()
    if len(candidate) > _MAX_ADDRESS or candidate.count("@") != 1:
        return None
    local, domain = candidate.split("@")
    if len(local) > _MAX_LOCAL or not _LOCAL.fullmatch(local) or not _DOMAIN.fullmatch(domain):
        return None
    return f"{local}@{domain.lower()}"


def _size(n: int) -> str:
    return f"{n / MIB:.1f} MiB ({n} bytes)"


def _too_big(name: str, n: int) -> str:
    return f"{name!r} is {_size(n)}; at most {get_settings().max_attachment_mb:g} MiB per file"


class Attachment(BaseModel):
    """One entry of ``attachments``: ``name``, base64 ``content``, ``contentType``.

    The content is kept base64-encoded, as the provider takes it, so a job
    survives the JSON round trip through Redis unchanged.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    name: str
    content: str
    content_type: str

    @model_validator(mode="before")
    @classmethod
    def _guess_content_type(cls, data: Any) -> Any:
        """Fill a missing ``contentType`` from the file name, as a mail client would."""
        if not isinstance(data, dict):
            return data
        if data.get("contentType") is None and data.get("content_type") is None:
            name = data.get("name")
            guessed = mimetypes.guess_type(name)[0] if isinstance(name, str) else None
            data = {k: v for k, v in data.items() if k not in ("contentType", "content_type")}
            data["contentType"] = guessed or DEFAULT_CONTENT_TYPE
        return data

    @field_validator("name")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        # The name ends up in a Content-Disposition header and on the recipient's
        # disk: a path or a line break there is an attack, not a file name.
        if not value.strip():
            raise ValueError("file name must not be empty")
        if "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError(f"{value!r} must be a file name, not a path")
        if _CONTROL.search(value):
            raise ValueError(f"{value!r} contains control characters")
        if len(value) > 255:
            raise ValueError("file name is longer than 255 characters")
        return value

    @field_validator("content")
    @classmethod
    def _base64_within_limit(cls, value: str, info: ValidationInfo) -> str:
        name = info.data.get("name", "attachment")
        try:
            size = len(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise ValueError(
                f"{name!r}: content is not valid base64 (no line breaks or other characters)"
            ) from None
        if size > _file_limit():
            raise ValueError(_too_big(name, size))
        return value

    @field_validator("content_type")
    @classmethod
    def _mime_type(cls, value: str) -> str:
        if not _CONTENT_TYPE.fullmatch(value):
            raise ValueError(f"{value!r} is not a MIME type like 'text/plain'")
        return value

    @property
    def size(self) -> int:
        """Decoded size in bytes (what counts against the limits)."""
        return len(base64.b64decode(self.content))

    @classmethod
    def from_bytes(cls, name: str, data: bytes, content_type: str | None = None) -> Attachment:
        """An attachment from raw bytes; ValueError (ValidationError) when it breaks a rule."""
        return cls.model_validate(
            {
                "name": name,
                "content": base64.b64encode(data).decode("ascii"),
                "contentType": content_type,
            }
        )

    @classmethod
    def from_path(cls, path: str | PathLike[str], content_type: str | None = None) -> Attachment:
        """An attachment from a file, named by its base name.

        The size is checked before reading so that a huge file is refused
        without being loaded into memory.
        """
        file = Path(path)
        size = file.stat().st_size
        if size > _file_limit():
            raise ValueError(_too_big(file.name, size))
        return cls.from_bytes(file.name, file.read_bytes(), content_type)


def _address(value: str, reason: str = "is not a valid email address") -> str:
    normalized = normalize_email(value)
    if normalized is None:
        raise ValueError(f"{value!r} {reason}")
    return normalized


class Email(SendJob):
    kind: ClassVar[str] = "email"
    endpoint: ClassVar[str] = "/api/rest/mailing"
    per_recipient: ClassVar[tuple[str, ...]] = ("sub",)

    to: list[str] = Field(min_length=1)
    cc: list[str] | None = None
    bcc: list[str] | None = None
    from_email: str
    from_name: str | None = None
    reply_to: str
    subject: str
    body: str | None = None
    template_id: Annotated[int, Field(ge=1)] | None = None
    template_v2_id: Annotated[int, Field(ge=1)] | None = None
    sub: list[dict[str, SubValue]] | None = None
    attachments: list[Attachment] | None = None
    track_opens: bool | None = None
    track_clicks: bool | None = None
    schedule_date: str | None = None
    certified: bool | None = None

    @field_validator("from_email")
    @classmethod
    def _sender_address(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("sender address missing (provider code 106)")
        return _address(value)

    @field_validator("reply_to")
    @classmethod
    def _reply_to_address(cls, value: str) -> str:
        return _address(value, "is not a valid email address (provider code 116)")

    @field_validator("cc", "bcc")
    @classmethod
    def _copy_addresses(cls, value: list[str] | None) -> list[str] | None:
        # Unlike ``to``, a bad copy address is not one lost recipient among many:
        # it is a mistake in the one message every recipient gets.
        return None if value is None else [_address(address) for address in value]

    @field_validator("subject")
    @classmethod
    def _subject_present(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is blank (provider code 114)")
        if "\r" in value or "\n" in value:
            raise ValueError("must be one line (provider code 114)")
        return value

    @field_validator("from_name")
    @classmethod
    def _name_one_line(cls, value: str | None) -> str | None:
        if value is not None and ("\r" in value or "\n" in value):
            raise ValueError("must be one line")
        return value

    _dates = field_validator("schedule_date")(check_api_date)

    @model_validator(mode="after")
    def _content_source(self) -> Self:
        one_content_source(("body", self.body), self.template_id, self.template_v2_id)
        return self

    @model_validator(mode="after")
    def _attachments_total(self) -> Self:
        total = sum(attachment.size for attachment in self.attachments or [])
        if total > _message_limit():
            names = ", ".join(repr(attachment.name) for attachment in self.attachments or [])
            raise ValueError(
                f"attachments: {names} together are {_size(total)}; "
                f"at most {get_settings().max_message_attachments_mb:g} MiB per message"
            )
        return self

    @model_validator(mode="after")
    def _recipients(self) -> Self:
        n = len(self.to)
        if self.sub is not None and len(self.sub) != n:
            raise ValueError(f"sub: has {len(self.sub)} objects for {n} recipients; needs one each")
        # Some bad addresses are expected in a bulk list: they are recorded as
        # rejected (102) per recipient later. None good means the list is wrong.
        if not any(normalize_email(address) for address in self.to):
            raise ValueError("to: no valid recipients (provider code 102)")
        return self
