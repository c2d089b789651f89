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
from jobs.channels import Channel, register
from jobs.fields import recipients_problem, refuse, sub_problem
from jobs.settings import MIB, Settings
from jobs.sms import SubValue

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


def _too_big(name: str, n: int, limit_mib: float) -> str:
    return f"{name!r} is {_size(n)}; at most {limit_mib:g} MiB per file"


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
    def _base64(cls, value: str, info: ValidationInfo) -> str:
        # Sizes are limited by settings: ``Email.check_settings``.
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            name = info.data.get("name", "attachment")
            raise ValueError(
                f"{name!r}: content is not valid base64 (no line breaks or other characters)"
            ) from None
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
    def from_path(
        cls,
        path: str | PathLike[str],
        content_type: str | None = None,
        *,
        max_bytes: int | None = None,
    ) -> Attachment:
        """An attachment from a file, named by its base name.

        A file larger than ``max_bytes`` (``Settings.max_attachment_bytes`` of the
        caller's settings) is refused before it is read, so that a huge file is
        never loaded into memory.
        """
        file = Path(path)
        size = file.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise ValueError(_too_big(file.name, size, max_bytes / MIB))
        return cls.from_bytes(file.name, file.read_bytes(), content_type)


def _address(value: str, reason: str = "is not a valid email address") -> str:
    normalized = normalize_email(value)
    if normalized is None:
        raise ValueError(f"{value!r} {reason}")
    return normalized


class Email(SendJob):
    kind: ClassVar[str] = "email"
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
    def _recipients(self) -> Self:
        if self.sub is not None and (reason := sub_problem(self.sub, len(self.to))):
            raise ValueError(f"sub: {reason}")
        # Some bad addresses are expected in a bulk list: they are recorded as
        # rejected (102) per recipient later. None good means the list is wrong.
        refuse(recipients_problem(normalize_email(address) for address in self.to), "to")
        return self

    def check_settings(self, settings: Settings) -> None:
        """Refuse attachments over the limits of ``settings`` (ValueError naming the field).

        The limits are ours, not the provider's, and settings: they are checked
        with the settings of whoever submits, not when the model is built.
        """
        files = self.attachments or []
        sizes = [attachment.size for attachment in files]
        for i, (attachment, size) in enumerate(zip(files, sizes, strict=True)):
            if size > settings.max_attachment_bytes:
                too_big = _too_big(attachment.name, size, settings.max_attachment_mb)
                raise ValueError(f"attachments.{i}.content: {too_big} (BULKSEND_MAX_ATTACHMENT_MB)")
        if sum(sizes) > settings.max_message_attachments_bytes:
            names = ", ".join(repr(attachment.name) for attachment in files)
            raise ValueError(
                f"attachments: {names} together are {_size(sum(sizes))}; "
                f"at most {settings.max_message_attachments_mb:g} MiB per message"
            )


CHANNEL = register(
    Channel(
        Email,
        "/api/rest/mailing",
        "email with attachments (POST /api/rest/mailing)",
        normalize=normalize_email,
        attachments=True,
        contact_field="email",
    )
)
