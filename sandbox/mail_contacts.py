"""The mail marketing API's contacts — ``mail-api-4-contacts.txt``: "Upload CSV"
(``POST contacts/upload-csv``) and "Contact List" (``GET contacts/list``).

Why: contact imports into the mail API go up as one CSV file per upload, and a test
must be able to prove that every upload landed once — none lost, none resent after a
timeout — so the sandbox serves this API too, under ``/mail/api/``: with
``BULKSEND_MAIL_API_URL=http://127.0.0.1:PORT/mail/api/`` the pipeline's mail client
talks to it as to the real ``https://mail.allstechnology.com/api/``.

Routes (counted under ``channels`` as ``mail-contacts``; ``sandbox.faults`` applies)::

    POST /mail/api/contacts/upload-csv   200 {"status": "success",
                                              "message": "Imported Successfully"}
    GET  /mail/api/contacts/list         200 {"status": "success",
                                              "message": {"contacts": [...]}}
    *    /mail/api/<anything else>       404 {"status": "failed", "errors": "Not Found"}
                                         (405 with ``Allow`` for a wrong method)

Failures are the doc's ``{"status": "failed", "errors": ...}``: an object of field →
list of messages for input, a string otherwise. The doc gives no HTTP statuses; the
sandbox answers:

- 401 when ``PublicKey`` or ``SecretKey`` is missing (or blank), with the doc's body
  naming each missing one (``"PublicKey": ["The public key field is required."]``),
  and 401 ``"errors": "Invalid public key or secret key."`` when they are not the
  settings' ``mail_public_key`` / ``mail_secret_key``: every authentication failure
  has one status, so a client can tell it from a refused upload. Checked before
  faults, as Basic auth is on the messaging routes;
- 422 for a refused upload, with every field's errors, as in the doc's example:
  ``contact_type_id`` required ("The contact type id field is required."), an
  integer ("… must be an integer."), from 1 ("The selected contact type id is
  invalid."); ``file`` required ("The file field is required."), a file part ("The
  file must be a file."), named ``*.csv`` ("only csv extension allow": "The file must
  be a file of type: csv."), not empty ("The file must not be empty.");
- 200 for a success.

The doc names no contact type endpoint here, so any contact_type_id from 1 is a
contact type (created on first use, named "Contact type <id>").

The file (the doc says nothing of its content): UTF-8 (a byte-order mark is fine)
comma-separated CSV, quotes as RFC 4180, a header row, then one contact a row. The
columns are those of the Contact List's contacts: first_name, last_name, email,
alt_email, country, state, city, address_line1, address_line2,
state_province_region, postal_code (header names compared case-insensitively, in any
order, any of them may be left out but ``email``). Any other column is kept as a
custom field of each contact, as Contact List shows them: ``custom_field`` →
``{"<key>": {"field_name": "<header>", "field_value": "<cell>"}}``, the key being the
header in snake case; a column without a name is ignored. Rows are numbered as a
spreadsheet shows them (the header is row 1); blank rows are skipped; a row with
fewer cells than the header has the others empty. ``email`` is required and must be
an address, ``alt_email`` too when given, and no cell may be longer than 255
characters. One bad row refuses the whole upload — nothing is stored, the answer is
422 with ``"errors": {"file": ["Row 3: The email field is required.", ...]}`` (the
first 20 problems) — so an upload either landed whole or not at all, and one that
needs fixing is sent again whole. The same goes for a file that is not UTF-8 or not
CSV, has no header, no ``email`` column, or a column twice.

A contact is one email (compared case-insensitively) in one contact type: a row whose
email is already in its contact type replaces that contact's fields (it keeps its id
and ``created_at``) instead of adding another. Contact List shows every contact,
newest first as in the doc's example, each with the doc's keys: ``id``, ``user_id``
(the doc's 6790), ``contact_type_id``, the columns above (``""`` when not given),
``custom_field`` (null when none), ``deleted_at`` (null), ``created_at`` and
``updated_at`` (``2023-11-26T05:25:00.000000Z``), ``fullname`` and ``contact_type``.

Stats (``/_sandbox/stats`` → ``mail``): ``uploads`` (successful ones), ``rows`` (rows
they stored), ``rows_twice`` (rows whose email was already uploaded into the same
contact type since the reset, by an earlier upload or earlier in the same file: what
proves that no upload was resent), ``contacts`` (contacts now).
"""

from __future__ import annotations

import csv
import hmac
import io
import itertools
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from jobs.email import normalize_email
from sandbox.errors import ApiError
from sandbox.state import HashIndex, pack

NAME: Final = "mail-contacts"  # stats and faults name
PREFIX: Final = "/mail/api"  # the base URL's path: BULKSEND_MAIL_API_URL=http://host:port/mail/api/
UPLOAD_PATH: Final = f"{PREFIX}/contacts/upload-csv"
LIST_PATH: Final = f"{PREFIX}/contacts/list"

USER_ID: Final = 6790  # the doc's examples' account
MAX_CELL: Final = 255
MAX_ROW_ERRORS: Final = 20
# The columns of a contact, in Contact List's order; email is required. The sandbox
# keeps its own reading of the doc (not the importer's list): it is the check.
COLUMNS: Final = (
    "first_name",
    "last_name",
    "email",
    "alt_email",
    "country",
    "state",
    "city",
    "address_line1",
    "address_line2",
    "state_province_region",
    "postal_code",
)
_SNAKE: Final = re.compile(r"[^0-9a-z]+")

# A contact as kept: one orjson array [id, contact type, created, updated, *COLUMNS,
# custom_field]; times in epoch seconds.
ID, TYPE, CREATED, UPDATED = range(4)
FIRST_COLUMN: Final = 4
CUSTOM: Final = FIRST_COLUMN + len(COLUMNS)
EMAIL: Final = FIRST_COLUMN + COLUMNS.index("email")
_EMAIL_CELL: Final = COLUMNS.index("email")


class MailFailure(Exception):
    """A refusal: answered ``status`` with ``{"status": "failed", "errors": errors}``."""

    def __init__(self, status: int, errors: dict[str, list[str]] | str) -> None:
        super().__init__(f"{status} {errors}")
        self.status = status
        self.errors = errors

    @property
    def body(self) -> dict[str, Any]:
        return {"status": "failed", "errors": self.errors}


def refusal(error: ApiError) -> tuple[int, Any]:
    """A documented error injected by ``sandbox.faults``, in this API's shape."""
    return error.status, {"status": "failed", "errors": error.detail["description"]}


def authenticate(public: str | None, secret: str | None, expected: tuple[str, str]) -> None:
    """``PublicKey`` / ``SecretKey`` against the settings' keys; ``MailFailure`` 401."""
    missing: dict[str, list[str]] = {}
    if not public or not public.strip():
        missing["PublicKey"] = ["The public key field is required."]
    if not secret or not secret.strip():
        missing["SecretKey"] = ["The secret key field is required."]
    if missing:
        raise MailFailure(401, missing)
    assert public is not None and secret is not None
    good = hmac.compare_digest(public.strip().encode(), expected[0].encode())
    good &= hmac.compare_digest(secret.strip().encode(), expected[1].encode())
    if not good:
        raise MailFailure(401, "Invalid public key or secret key.")


def _time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _key(header: str) -> str:
    """A custom column's key: its header in snake case ("Join date" → "join_date")."""
    return _SNAKE.sub("_", header.lower()).strip("_") or "field"


@dataclass(frozen=True, slots=True)
class Upload:
    """A checked upload: its contact type and its rows, each its email and its packed
    [*COLUMNS' cells, custom_field] (compact already: a file may have a million rows)."""

    contact_type_id: int
    rows: list[tuple[str, bytes]]


def _contact_type(raw: object) -> tuple[int | None, list[str]]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, ["The contact type id field is required."]
    text = raw.strip() if isinstance(raw, str) else ""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None, ["The contact type id must be an integer."]
    if int(text) < 1:
        return None, ["The selected contact type id is invalid."]
    return int(text), []


def _file(raw: tuple[str, bytes] | str | None) -> tuple[bytes | None, list[str]]:
    if raw is None or raw == "":
        return None, ["The file field is required."]
    if isinstance(raw, str):
        return None, ["The file must be a file."]
    name, content = raw
    if not name.lower().endswith(".csv"):
        return None, ["The file must be a file of type: csv."]
    if not content:
        return None, ["The file must not be empty."]
    return content, []


def check_upload(contact_type_id: object, file: tuple[str, bytes] | str | None) -> Upload:
    """The form fields checked and the file read; ``MailFailure`` 422 on any problem.

    Pure (no state), so that ``sandbox.app`` can run it off the event loop."""
    type_id, type_errors = _contact_type(contact_type_id)
    content, file_errors = _file(file)
    errors = {"contact_type_id": type_errors, "file": file_errors}
    if type_errors or file_errors:
        raise MailFailure(422, {field: found for field, found in errors.items() if found})
    assert type_id is not None and content is not None
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MailFailure(422, {"file": ["The file must be UTF-8 encoded."]}) from None
    try:
        return Upload(type_id, _rows(text))
    except csv.Error as exc:
        raise MailFailure(422, {"file": [f"The file is not a valid CSV file: {exc}."]}) from None


def _rows(text: str) -> list[tuple[str, bytes]]:
    records = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = next(records, None)
    if header is None or not any(cell.strip() for cell in header):
        raise MailFailure(422, {"file": ["The file has no header row."]})
    names = [cell.strip() for cell in header]
    seen: set[str] = set()
    for name in names:
        # A custom column's key is what must be unique: "Join date" and "join-date" clash.
        key = name.lower() if name.lower() in COLUMNS else _key(name)
        if name and key in seen:
            raise MailFailure(422, {"file": [f'The file has the column "{name}" twice.']})
        seen.add(key)
    if "email" not in seen:
        raise MailFailure(422, {"file": ["The file must have an email column."]})
    # The column of each of COLUMNS (None: not in the file), then the custom ones.
    where = {name.lower(): i for i, name in enumerate(names) if name}
    known = [where.get(column) for column in COLUMNS]
    custom = [
        (i, name, _key(name))
        for i, name in enumerate(names)
        if name and name.lower() not in COLUMNS
    ]
    rows: list[tuple[str, bytes]] = []
    errors: list[str] = []
    for number, record in enumerate(records, 2):
        if not any(cell.strip() for cell in record):
            continue
        problem = _problem(record, len(names), known)
        if problem is not None:
            errors.append(f"Row {number}: {problem}")
            continue
        cells = [_cell(record, i) for i in known]
        email = cells[_EMAIL_CELL] = normalize_email(cells[_EMAIL_CELL]) or ""
        extra = {
            key: {"field_name": name, "field_value": _cell(record, i)} for i, name, key in custom
        }
        rows.append((email, pack([*cells, extra or None])))
    if errors:
        more = len(errors) - MAX_ROW_ERRORS
        shown = errors[:MAX_ROW_ERRORS] + ([f"… and {more} more."] if more > 0 else [])
        raise MailFailure(422, {"file": shown})
    return rows


def _cell(record: list[str], at: int | None) -> str:
    """A row's cell in column ``at``, trimmed ("" when the row or the file has none)."""
    return record[at].strip() if at is not None and at < len(record) else ""


def _problem(record: list[str], width: int, known: list[int | None]) -> str | None:
    """What is wrong with one data row, or None."""
    if len(record) > width and any(cell.strip() for cell in record[width:]):
        return f"{len(record)} cells where the header has {width}."
    for cell in record:
        if len(cell.strip()) > MAX_CELL:
            return f"A cell is longer than {MAX_CELL} characters."
    for column in ("email", "alt_email"):
        value = _cell(record, known[COLUMNS.index(column)])
        shown = column.replace("_", " ")
        if not value:
            if column == "email":
                return "The email field is required."
        elif normalize_email(value) is None:
            return f"The {shown} must be a valid email address."
    return None


class MailBook:
    """The mail API's contacts of one sandbox (a ``sandbox.state.Store``)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)  # never reused in one process, even across reset
        self.reset()

    def reset(self) -> None:
        self._rows: list[bytes] = []  # in id order
        self._where = HashIndex()  # "<type> <email, lower-cased>" → position in _rows
        self.types: dict[int, int] = {}  # contact type → created (epoch seconds)
        self.uploads = self.rows = self.rows_twice = 0

    def stats_json(self) -> dict[str, Any]:
        return {
            "uploads": self.uploads,
            "rows": self.rows,
            "rows_twice": self.rows_twice,
            "contacts": len(self._rows),
        }

    def _position(self, type_id: int, email: str) -> int | None:
        """Where the contact of ``email`` in ``type_id`` is kept, if it is."""
        folded = email.lower()
        for at in self._where.ids(f"{type_id} {folded}"):
            row = orjson.loads(self._rows[at])
            if row[TYPE] == type_id and row[EMAIL].lower() == folded:
                return at
        return None

    def store(self, upload: Upload) -> dict[str, Any]:
        """Keep a checked upload's rows; the doc's success answer."""
        now = int(time.time())
        type_id = upload.contact_type_id
        self.types.setdefault(type_id, now)
        for email, packed in upload.rows:
            fields = orjson.loads(packed)
            at = self._position(type_id, email)
            if at is None:
                self._where.add(f"{type_id} {email.lower()}", len(self._rows))
                self._rows.append(pack([next(self._ids), type_id, now, now, *fields]))
            else:
                self.rows_twice += 1
                kept = orjson.loads(self._rows[at])
                self._rows[at] = pack([kept[ID], type_id, kept[CREATED], now, *fields])
        self.uploads += 1
        self.rows += len(upload.rows)
        return {"status": "success", "message": "Imported Successfully"}

    def list_json(self) -> dict[str, Any]:
        """Contact List: every contact, newest first."""
        contacts = [self._contact(orjson.loads(raw)) for raw in reversed(self._rows)]
        return {"status": "success", "message": {"contacts": contacts}}

    def _contact(self, row: list[Any]) -> dict[str, Any]:
        cells = dict(zip(COLUMNS, row[FIRST_COLUMN:CUSTOM], strict=True))
        type_id = row[TYPE]
        created = _time(self.types[type_id])
        return {
            "id": row[ID],
            "user_id": USER_ID,
            "contact_type_id": type_id,
            **cells,
            "custom_field": row[CUSTOM],
            "deleted_at": None,
            "created_at": _time(row[CREATED]),
            "updated_at": _time(row[UPDATED]),
            "fullname": f"{cells['first_name']} {cells['last_name']}".strip(),
            "contact_type": {
                "id": type_id,
                "user_id": USER_ID,
                "name": f"Contact type {type_id}",
                "deleted_at": None,
                "created_at": created,
                "updated_at": created,
            },
        }
