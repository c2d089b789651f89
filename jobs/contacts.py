"""The contact import: a sending of kind ``contacts`` whose recipients are a CSV's data rows.

It travels the path of every sending (producer → Redis → worker → provider →
a record per row), so status, results, cancel, the sweeper and the reports work
for it unchanged. Two targets:

* ``messaging`` (messaging-api.txt → Databases): the group is found by name or
  created (``/api/rest/groups``) once per import, then each row is one
  ``POST /api/rest/contacts`` with ``groupsIds`` — calls are never merged, run
  concurrently within the account's rate limit, and go through the same error
  policy: a 422 rejects that row with the provider's description.
* ``mail`` (mail-api-4-contacts.txt → Upload CSV): the valid rows are rewritten
  in the mail API's columns as CSV files of at most
  ``BULKSEND_IMPORT_UPLOAD_MAX_BYTES`` each, one ``POST contacts/upload-csv`` per
  file, with ``contact_type_id``; each upload is a call like any other, so an
  accepted upload is recorded and never sent again.

A chunk's entries carry each row's number, cells (as they were in the file,
for the report) and contact (in the target's field names).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any, ClassVar, Literal, Protocol, Self

from pydantic import Field, field_validator, model_validator

from jobs.base import InvalidJob, SendJob, build
from jobs.channels import Channel, register
from jobs.chunks import Entry
from jobs.contact_rows import MAIL_FIELDS, ImportOptions
from jobs.planning import Call, Plan
from jobs.templating import TextRules

__all__ = ["ContactImport", "neutralise_cell"]

GROUPS = "/api/rest/groups"
CONTACTS = "/api/rest/contacts"
UPLOAD = "contacts/upload-csv"
DEFAULT_UPLOAD_BYTES = 2 * 1024 * 1024

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


class ContactImport(SendJob):
    """What to import and where; the rows come from the file given to ``submit_import``."""

    kind: ClassVar[str] = "contacts"

    group: str = Field(min_length=1, description="group name (messaging) or contact_type_id (mail)")
    target: Literal["messaging", "mail"] = "messaging"
    country: str | None = Field(None, description="ISO 3166 alpha-2 region for national numbers")
    mapping: dict[str, str] = Field(default_factory=dict, description="COLUMN → FIELD overrides")
    encoding: str | None = None
    delimiter: str | None = None
    filename: str = "contacts.csv"
    header: list[str] = Field(default_factory=list, description="the file's header, for reports")
    upload_max_bytes: int = Field(DEFAULT_UPLOAD_BYTES, ge=1024)

    @field_validator("group")
    @classmethod
    def _group_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("country")
    @classmethod
    def _iso2(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 2 or not value.isalpha()):
            raise ValueError(f"{value!r} is not a two-letter ISO country code")
        return value.upper() if value else value

    @model_validator(mode="after")
    def _mail_group_is_a_contact_type(self) -> Self:
        if self.target == "mail" and not (self.group.isdigit() and int(self.group) >= 1):
            raise ValueError(
                "group: with --target mail it is the mail API's numeric contact_type_id "
                "(that API has no groups by name)"
            )
        return self

    @classmethod
    def from_options(
        cls,
        group: str | None,
        *,
        target: str | None = None,
        country: str | None = None,
        maps: Iterable[str] = (),
        encoding: str | None = None,
        delimiter: str | None = None,
    ) -> ContactImport:
        """The import that ``bulksend import``'s flags or the HTTP API's form fields
        describe: ``maps`` as ``COLUMN=FIELD`` pairs, ``tab`` for a tab delimiter.
        InvalidJob names what is wrong."""
        mapping: dict[str, str] = {}
        for pair in maps:
            column, sep, field = pair.partition("=")
            if not sep or not column.strip() or not field.strip():
                raise InvalidJob(f"map: {pair!r} is not COLUMN=FIELD")
            mapping[column.strip()] = field.strip()
        data = {
            "group": group,
            "target": target,
            "country": country,
            "mapping": mapping,
            "encoding": encoding,
            "delimiter": {"tab": "\t", "\\t": "\t"}.get(delimiter or "", delimiter),
        }
        return build(cls, {k: v for k, v in data.items() if v is not None})

    def options(self) -> ImportOptions:
        return ImportOptions(
            target=self.target,
            country=self.country,
            mapping=tuple(self.mapping.items()),
            encoding=self.encoding,
            delimiter=self.delimiter,
        )

    def recipients(self) -> list[str]:
        raise TypeError("an import's recipients are its file's rows: use Producer.submit_import")


# --- how rows become calls -------------------------------------------------------


def plan_contacts(
    channel: Channel, payload: dict[str, Any], entries: list[Entry], rules: TextRules
) -> Plan:
    if payload.get("target") == "mail":
        return _plan_uploads(channel, payload, entries), []
    base = {"groupsIds": [payload["groupId"]]}
    return [Call(channel.kind, base, [entry]) for entry in entries], []


def _plan_uploads(channel: Channel, payload: dict[str, Any], entries: list[Entry]) -> list[Call]:
    """Uploads of at most ``upload_max_bytes`` of CSV each (the header counted in each)."""
    limit = int(payload.get("uploadMaxBytes") or DEFAULT_UPLOAD_BYTES)
    body = {"contact_type_id": payload["group"]}
    calls: list[Call] = []
    size = 0
    for entry in entries:
        row = len(_csv_lines([entry])) + 1
        if not calls or size + row > limit:
            calls.append(Call(channel.kind, body, endpoint=UPLOAD, api="mail"))
            size = len(_csv_lines([]))
        calls[-1].entries.append(entry)
        size += row
    return calls


def _csv_lines(entries: list[Entry]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if not entries:
        writer.writerow(MAIL_FIELDS)
    for entry in entries:
        contact = entry.extras["contact"]
        writer.writerow([contact.get(field) or "" for field in MAIL_FIELDS])
    return buffer.getvalue().encode()


def shape_contact(body: dict[str, Any], entries: list[Entry]) -> dict[str, Any]:
    """One contact a call (messaging), or one CSV upload of many rows (mail)."""
    if "contact_type_id" in body:
        content = _csv_lines([]) + _csv_lines(entries)
        first = entries[0].extras.get("row", 0)
        return {**body, "file": (f"contacts-{first}.csv", content)}
    [entry] = entries
    return {**body, **entry.extras["contact"]}


def contact_results(body: Any) -> list[dict[str, Any]] | None:
    """messaging-api.txt → POST /api/rest/contacts → "Response (HTTP 201)": ``data.id``."""
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict) and data.get("id") is not None:
        return [{"accepted": True, "id": str(data["id"])}]
    return None


# --- the group, found or created once per import ------------------------------------


class Api(Protocol):
    """What preparing an import needs of the messaging API: JSON in, JSON out."""

    async def get_json(self, path: str, params: dict[str, Any]) -> Any: ...

    async def post_json(self, path: str, body: dict[str, Any]) -> Any: ...


async def find_or_create_group(api: Api, payload: dict[str, Any]) -> dict[str, Any]:
    """messaging-api.txt → Databases → Groups: list them (paginated) to find the name,
    else create it; the import's calls then carry its id."""
    if payload.get("target") == "mail":
        return payload
    name = payload["group"]
    page = 1
    while True:
        listing = await api.get_json(GROUPS, {"limit": 1000, "page": page})
        for group in listing.get("data") or []:
            if group.get("name") == name:
                return {**payload, "groupId": group["id"]}
        pagination = (listing.get("meta") or {}).get("pagination") or {}
        if page >= int(pagination.get("total_pages") or 1):
            break
        page += 1
    created = await api.post_json(GROUPS, {"name": name})
    return {**payload, "groupId": created["data"]["id"]}


CHANNEL = register(
    Channel(
        ContactImport,
        CONTACTS,
        "contact CSV import (POST /api/rest/contacts, or the mail API's upload-csv)",
        normalize=lambda raw: raw,
        shape=shape_contact,
        planner=plan_contacts,
        batch=False,
        results_of=contact_results,
        prepare=find_or_create_group,
        recipients_file=False,
        sendable=False,
    )
)
