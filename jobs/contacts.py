"""The contact CSV import: ``POST contacts/upload-csv`` ("Upload CSV" in mail-api-4-contacts.txt).

The mail API takes two form fields, both required: ``contact_type_id`` (an
integer from the contact type endpoint) and ``file`` ("only csv extension
allow"). The doc says nothing about the columns, the encoding or a size limit,
so those are left to the provider; this model checks what the doc does say and
that the file is there and not empty.
"""

from __future__ import annotations

import base64
import binascii
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jobs.base import InvalidJob, describe

# Characters that make a spreadsheet read a cell as a formula: = + - @ (OWASP
# "CSV Injection"), plus tab and carriage return, which some spreadsheets strip
# before looking at the first character.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: str) -> str:
    """The cell made safe to open in a spreadsheet: a leading ``'`` before a formula start.

    Reports we write back contain text that came from outside (names, addresses,
    provider error descriptions). A cell such as ``=HYPERLINK(...)`` or
    ``@SUM(...)`` would run as a formula in Excel or LibreOffice when the report
    is opened (CSV formula injection); the quote makes it plain text.
    """
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def _csv_name(name: str) -> str:
    if "/" in name or "\\" in name or not name.strip():
        raise ValueError(f"file: {name!r} must be a file name, not a path")
    if not name.lower().endswith(".csv"):
        raise ValueError(f"file: {name!r} must have the .csv extension (only csv is allowed)")
    return name


class ContactImport(BaseModel):
    """One CSV upload of contacts into a contact type (list).

    The file is given either as ``path`` (read when the import runs, so it must
    be reachable from the worker) or as ``content``, base64-encoded like email
    attachments so that the job survives the JSON round trip through Redis.
    ``filename`` is the name the file is uploaded under; it defaults to the
    base name of ``path``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[str] = "contacts-import"
    endpoint: ClassVar[str] = "contacts/upload-csv"

    contact_type_id: Annotated[int, Field(ge=1)]
    path: Path | None = None
    content: str | None = None
    filename: str | None = None

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Relative to the producer's directory, not to wherever the worker runs.
        return None if value is None else value.expanduser().resolve()

    @field_validator("content")
    @classmethod
    def _base64_not_empty(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not valid base64 (no line breaks or other characters)") from None
        if not data:
            raise ValueError("the CSV file is empty")
        return value

    @model_validator(mode="after")
    def _one_file(self) -> Self:
        if (self.path is None) == (self.content is None):
            raise ValueError("file: give exactly one of path or content (the file is required)")
        if self.path is not None:
            _csv_name(self.filename or self.path.name)
            if not self.path.is_file():
                raise ValueError(f"path: {str(self.path)!r} is not a readable file")
            if self.path.stat().st_size == 0:
                raise ValueError(f"path: {str(self.path)!r} is empty")
        else:
            if self.filename is None:
                raise ValueError("filename: required with content (the upload needs a name)")
            _csv_name(self.filename)
        return self

    @property
    def upload_name(self) -> str:
        """The name the file is uploaded under."""
        if self.filename is not None:
            return self.filename
        assert self.path is not None  # guaranteed by _one_file
        return self.path.name

    def read(self) -> bytes:
        """The CSV file's bytes, from ``content`` or from ``path``."""
        if self.content is not None:
            return base64.b64decode(self.content)
        assert self.path is not None  # guaranteed by _one_file
        return self.path.read_bytes()

    def form_fields(self) -> dict[str, str]:
        """The non-file form fields of the upload request."""
        return {"contact_type_id": str(self.contact_type_id)}

    @classmethod
    def from_bytes(cls, filename: str, data: bytes, contact_type_id: int) -> ContactImport:
        return cls.model_validate(
            {
                "contact_type_id": contact_type_id,
                "filename": filename,
                "content": base64.b64encode(data).decode("ascii"),
            }
        )

    @classmethod
    def from_path(cls, path: str | PathLike[str], contact_type_id: int) -> ContactImport:
        return cls.model_validate({"contact_type_id": contact_type_id, "path": Path(path)})


def build_import(data: dict[str, Any]) -> ContactImport:
    """Like ``jobs.base.build`` for the import, which is not a SendJob."""
    try:
        return ContactImport.model_validate(data)
    except ValidationError as exc:
        raise InvalidJob(f"invalid {ContactImport.kind} job: {describe(exc)}") from None
