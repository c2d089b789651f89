"""``/api/rest/contacts`` and ``/api/rest/groups`` — "Databases" of ``messaging-api.txt``
(its contact routes, then "Groups": list, show, create, update, delete).

Why: contact imports write into these databases, and a test must be able to prove
what an importer did to them — every row landed, and no contact was created twice
through timeouts, dropped connections and retries (``sandbox.faults`` applies here as
to the sending channels). So the sandbox validates as the doc says, answers with the
doc's bodies and keeps the contacts, compactly enough for a million of them (under
500 bytes each, 470 MB for a million measured: one JSON record in a list,
``sandbox.state.pack``, and 64-bit hash indexes, ``sandbox.state.HashIndex``, by
email, phone, landline and externalId; about 13 µs to create one).

Routes (Basic auth; counted under ``channels`` as ``contacts`` and ``groups``)::

    GET    /api/rest/contacts        200 {"data": [...], "meta": {"pagination": ...}}
    POST   /api/rest/contacts        201 {"data": {..., "links": {"self": ...}}}
    GET    /api/rest/contacts/<ID>   200 {"data": {...}}
    PUT    /api/rest/contacts/<ID>   200 {"data": {..., "links": {"self": ...}}}
    DELETE /api/rest/contacts/<ID>   204, no body
    GET    /api/rest/groups          200 {"data": [{"id", "name"}], "meta": ...}
    POST   /api/rest/groups          201 {"data": {"id", "name"}}
    GET    /api/rest/groups/<ID>     200 {"data": {"id", "name"}}
    PUT    /api/rest/groups/<ID>     200 {"data": {"id", "name"}}
    DELETE /api/rest/groups/<ID>     204, no body

A contact is the doc's ``id, email, phone, countryIso, landline, name, surname,
createdAt, updatedAt`` (times as ``2018-03-13T14:32:25+00:00``), ``links.self`` in the
answers to POST and PUT as in the doc's, and ``customFields`` / ``groups`` as
``{"data": [...]}`` when ``include`` asks for them.

Refusals are the doc's body, ``{"error": {"code": 422, "description": "The email field
is required."}}``: one description, the first problem found in the order of the
parameters table, worded as the doc's (Laravel's) — "The <field> field is required.",
"The <field> must be a string." — with the field named as Laravel shows it
(``countryIso`` → "country iso", ``customFields.0.value`` → "custom fields.0.value").
A POST or PUT body that is not a JSON object → 400 / 125 as on every route; an <ID>
that is not one → 404 ``{"error": {"code": 404, "description": "Resource not
found"}}``, what the sandbox answers for anything unknown. Strings are trimmed and an
empty one is taken as not given (Laravel's default middleware); keys the doc does not
list are ignored.

Contacts, in the order of the parameters table:

=================  ==================================================================
``email``          required when neither ``phone`` nor ``landline`` is given (one of
                   the three at least: "The email field is required."); a string, a
                   valid address (``jobs.email``), at most 255 characters; kept with
                   its domain lower-cased
``phone``          a string, a number as the sending channels read one (``+`` and
                   spaces dropped, 7 to 15 digits, no leading 0: "The phone format is
                   invalid."); kept as digits
``landline``       the same, except that a national number may start with 0 (6 to 15
                   digits)
``countryIso``     required when a phone or landline is given; two letters naming an
                   ISO 3166-1 country ("The selected country iso is invalid.");
                   kept upper-cased
``groupsIds``      required (not empty) unless ``groupsNames`` is; ids of groups that
                   exist ("The selected groups ids is invalid (no group 7).")
``groupsNames``    required unless ``groupsIds`` is; names of groups that exist,
                   compared case-insensitively. The doc does not say that a missing
                   name is created, so it is not: "The selected groups names is
                   invalid (no group named "X")." — an importer creates its group
                   first (POST /api/rest/groups). Both given: the contact joins all
``name``           a string of at most 255 characters; ``surname`` too
``customFields``   an array of ``{key, type, value}``: ``key`` required, at most 255
                   characters, once per contact ("… has a duplicate value."); ``type``
                   string (the default), date or decimal; ``value`` optional: a
                   string, for a date an ISO 8601 one, for a decimal a number (JSON
                   number or numeric string)
``externalId``     not among the doc's parameters but among the list's filters: an
                   optional string of at most 255 characters, kept for the filter
                   (and not shown, as the doc's bodies do not show it)
=================  ==================================================================

Duplicates (the doc is silent; a contacts database keeps one contact per address): a
contact whose email (compared lower-cased) or phone (digits) another contact has →
422 "The email has already been taken." / "The phone has already been taken.", in the
field's turn, counted in ``duplicate_refused``. A group whose name another group has
(case-insensitively) → 422 "The name has already been taken.". The
``allow_duplicates`` fault lets both through (``groupsNames`` then picks the oldest
group of a name).

PUT takes the same parameters under the same rules (the doc lists them again), so it
names a contact's identity and groups again. A field it gives replaces the contact's
(null or "" clears it), one it leaves out stays as it was; its groups are added to the
contact's ("groups to which the contact will be added"); its custom fields are set by
key, the others kept.

GET /api/rest/contacts filters: ``email`` (case-insensitive), ``phone`` and
``landline`` (digits; ``+`` and spaces dropped), ``countryIso`` (case-insensitive),
``externalId`` (exact); all those given must match. ``include``: ``customFields``,
``groups``, comma separated, other values ignored (also on GET <ID>). Both lists take
``limit``: 1 to 1000 (more → 1000; not an integer → "The limit must be an integer.",
below 1 → "The limit must be at least 1."), default 100; and ``page``, from 1 (not a
positive integer → 1; past the last page → no data). ``meta.pagination`` is the doc's
(Fractal's): ``total``, ``count``, ``per_page``, ``current_page``, ``total_pages`` (at
least 1), ``links`` with ``previous`` and ``next`` where there are such pages (``{}``
when neither), each the request's URL with that ``page``. Lists are ordered by id. A
deleted group disappears from its contacts' ``groups``. Ids start at 1 and are never
reused in one process, even across ``POST /_sandbox/reset``.

Stats (``/_sandbox/stats`` → ``contacts``): ``created`` (201s to POST /contacts),
``stored`` (contacts now), ``created_twice`` (creations of a contact whose lower-cased
email or phone digits another contact has or had since the reset — deleted or updated
since included: what proves that nothing was created twice, whatever let it through),
``duplicate_refused`` (422s "… has already been taken" to contacts),
``duplicates_allowed`` (contact creations and updates that ``allow_duplicates`` let
through), ``groups`` (groups now), ``groups_created_twice`` (group creations with a name
another group has or had).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

import orjson
import phonenumbers

from jobs.email import normalize_email
from jobs.fields import is_int, normalize_phone
from sandbox.common import is_blank
from sandbox.errors import NOT_FOUND, VALIDATION, ApiError, HttpError
from sandbox.state import HashIndex, pack

CONTACTS: Final = "contacts"  # stats and faults names
GROUPS: Final = "groups"
CONTACTS_PATH: Final = "/api/rest/contacts"
GROUPS_PATH: Final = "/api/rest/groups"

MAX_TEXT: Final = 255
DEFAULT_LIMIT: Final = 100  # "limit … Default value: 100. Maximum: 1000."
MAX_LIMIT: Final = 1000
INCLUDES: Final = frozenset({"customFields", "groups"})
FIELD_TYPES: Final = ("string", "date", "decimal")  # customFields[]type, first the default
# ISO 3166-1 alpha-2: the regions phonenumbers knows (less AC and TA, reserved codes of
# islands that are not countries), plus the countries without a numbering plan.
COUNTRIES: Final = (frozenset(phonenumbers.SUPPORTED_REGIONS) - {"AC", "TA"}) | {
    "AQ",
    "BV",
    "GS",
    "HM",
    "PN",
    "TF",
    "UM",
}
_LANDLINE: Final = re.compile(r"[0-9]{6,15}")
_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_CAMEL: Final = re.compile(r"(?<=[a-z0-9])([A-Z])")

# A contact as kept: one orjson array with these positions; times in epoch seconds,
# custom fields as [key, type, value] lists, groups as ids.
EMAIL, PHONE, COUNTRY, LANDLINE, NAME, SURNAME, EXTERNAL, CREATED, UPDATED, CUSTOM, IDS = range(11)
# The text parameters in the order of the doc's table, with their positions.
TEXT_FIELDS: Final = (
    ("email", EMAIL),
    ("phone", PHONE),
    ("landline", LANDLINE),
    ("countryIso", COUNTRY),
    ("name", NAME),
    ("surname", SURNAME),
    ("externalId", EXTERNAL),
)


def label(field: str) -> str:
    """A parameter as Laravel names it in a message: ``countryIso`` → "country iso"."""
    return _CAMEL.sub(r" \1", field).lower()


def invalid(description: str) -> ApiError:
    """The doc's refusal: 422 ``{"error": {"code": 422, "description": ...}}``."""
    return ApiError(VALIDATION, description=description)


def _required(field: str) -> ApiError:
    return invalid(f"The {label(field)} field is required.")


def _not_found() -> HttpError:
    return HttpError(*NOT_FOUND)


def _time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _digits(raw: str) -> str:
    """A phone filter as kept: ``+`` and spaces dropped."""
    return raw.strip().replace(" ", "").removeprefix("+")


@dataclass(frozen=True, slots=True)
class Call:
    """One request to these routes, as ``sandbox.app`` reads it."""

    method: str
    item: str | None  # the <ID> of …/<ID>, as given; None on the collection
    query: Sequence[tuple[str, str]]
    body: dict[str, Any] | None  # the JSON object of a POST or PUT
    host: str  # scheme://host:port, for links ("{{DASHBOARD_HOST}}")

    def param(self, name: str) -> str | None:
        return next((value for key, value in self.query if key == name), None)


def text(body: dict[str, Any], field: str, name: str | None = None) -> str | None:
    """An optional string parameter, trimmed; None when absent, null or empty."""
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"The {label(name or field)} must be a string.")
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_TEXT:
        shown = label(name or field)
        raise invalid(f"The {shown} must not be greater than {MAX_TEXT} characters.")
    return value


def _country(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) != 2:
        raise invalid("The country iso must be 2 characters.")
    if value.upper() not in COUNTRIES:
        raise invalid("The selected country iso is invalid.")
    return value.upper()


def _custom_value(kind: str, value: object, field: str) -> object:
    """One custom field's value checked against its type (None: not given)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    shown = label(field)
    if kind == "decimal":
        if is_int(value) or (isinstance(value, float) and not isinstance(value, bool)):
            return value
        if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
            return value.strip()
        raise invalid(f"The {shown} must be a number.")
    if not isinstance(value, str):
        raise invalid(f"The {shown} must be a string.")
    value = value.strip()
    if kind == "date":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise invalid(f"The {shown} must be a date in ISO 8601 format.") from None
    return value


def custom_fields(value: object) -> list[list[Any]] | None:
    """``customFields`` as [key, type, value] lists (None: not given)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid("The custom fields must be an array.")
    found: list[list[Any]] = []
    keys: set[str] = set()
    for i, item in enumerate(value):
        at = f"customFields.{i}"
        if not isinstance(item, dict):
            raise invalid(f"The {label(at)} must be an object.")
        key = text(item, "key", f"{at}.key")
        if key is None:
            raise _required(f"{at}.key")
        if key in keys:
            raise invalid(f"The {label(at)}.key field has a duplicate value.")
        keys.add(key)
        kind = item.get("type")
        if kind is None or (isinstance(kind, str) and not kind.strip()):
            kind = FIELD_TYPES[0]
        if not isinstance(kind, str) or kind.strip() not in FIELD_TYPES:
            raise invalid(f"The selected {label(at)}.type is invalid.")
        kind = kind.strip()
        found.append([key, kind, _custom_value(kind, item.get("value"), f"{at}.value")])
    return found


def _list(body: dict[str, Any], field: str) -> list[Any]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"The {label(field)} must be an array.")
    return value


@dataclass(slots=True)
class Draft:
    """A checked POST or PUT body."""

    texts: dict[int, str | None]  # position → value, for each text key the body has
    custom: list[list[Any]] | None
    groups: list[int]
    allowed_duplicate: bool  # taken email or phone let through by ``allow_duplicates``


def paging(call: Call, *, refuse_over: bool = False) -> tuple[int, int]:
    """(limit, page) of a list request; a limit over ``MAX_LIMIT`` is capped (contacts),
    or refused with 422 (``refuse_over``: the blacklist)."""
    raw = call.param("limit")
    limit = DEFAULT_LIMIT
    if raw is not None and raw.strip():
        try:
            limit = int(raw)
        except ValueError:
            raise invalid("The limit must be an integer.") from None
        if limit < 1:
            raise invalid("The limit must be at least 1.")
        if refuse_over and limit > MAX_LIMIT:
            raise invalid(f"The limit must not be greater than {MAX_LIMIT}.")
    try:
        page = int(call.param("page") or "1")
    except ValueError:
        page = 1
    return min(limit, MAX_LIMIT), max(page, 1)


def pagination(
    call: Call, path: str, total: int, count: int, limit: int, page: int, *, previous: bool = True
) -> Any:
    """The doc's ``meta`` (Fractal's paginator): links are the request's URL per page
    (``previous`` off: only ``next``, as the blacklist's section shows it)."""
    pages = max(-(-total // limit), 1)
    kept = [(key, value) for key, value in call.query if key != "page"]

    def url(number: int) -> str:
        return f"{call.host}{path}?{urlencode([*kept, ('page', str(number))])}"

    links: dict[str, str] = {}
    if previous and page > 1:
        links["previous"] = url(page - 1)
    if page < pages:
        links["next"] = url(page + 1)
    return {
        "pagination": {
            "total": total,
            "count": count,
            "per_page": limit,
            "current_page": page,
            "total_pages": pages,
            "links": links,
        }
    }


def includes(call: Call) -> frozenset[str]:
    raw = call.param("include") or ""
    return frozenset(part.strip() for part in raw.split(",")) & INCLUDES


class ContactBook:
    """The contacts and groups of one sandbox (a ``sandbox.state.Store``)."""

    def __init__(self) -> None:
        self._next_id = 1
        self._next_group = 1
        # Set by sandbox.app: whether the ``allow_duplicates`` fault applies to a channel.
        self.allow_duplicates: Callable[[str], bool] = lambda channel: False
        self.reset()

    def reset(self) -> None:
        self._base = self._next_id  # the id of _rows[0]
        self._rows: list[bytes | None] = []  # None: deleted
        self._live = 0
        # position → (its index, how a value is folded for it)
        self._indexes: dict[int, tuple[HashIndex, Callable[[str], str]]] = {
            EMAIL: (HashIndex(), str.lower),
            PHONE: (HashIndex(), str),
            LANDLINE: (HashIndex(), str),
            EXTERNAL: (HashIndex(), str),
        }
        self._retired: set[int] = set()  # hashes of identities contacts had and no longer do
        self.groups: dict[int, str] = {}
        self._group_names = HashIndex()  # case-folded
        self._retired_groups: set[int] = set()
        self.created = self.created_twice = self.duplicate_refused = 0
        self.duplicates_allowed = self.groups_created_twice = 0

    def stats_json(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "stored": self._live,
            "created_twice": self.created_twice,
            "duplicate_refused": self.duplicate_refused,
            "duplicates_allowed": self.duplicates_allowed,
            "groups": len(self.groups),
            "groups_created_twice": self.groups_created_twice,
        }

    # --- storage ---------------------------------------------------------------

    def _row(self, id_: int) -> list[Any] | None:
        i = id_ - self._base
        raw = self._rows[i] if 0 <= i < len(self._rows) else None
        return None if raw is None else list(orjson.loads(raw))

    def _live_rows(self) -> Iterator[tuple[int, bytes]]:
        for i, raw in enumerate(self._rows):
            if raw is not None:
                yield self._base + i, raw

    def _index(self, id_: int, row: list[Any], add: bool) -> None:
        for position, (index, fold) in self._indexes.items():
            if row[position] is not None:
                (index.add if add else index.remove)(fold(row[position]), id_)

    @staticmethod
    def _identities(row: list[Any]) -> list[int]:
        """Hashes of what makes a contact the same person: its email and its phone."""
        found = []
        if row[EMAIL] is not None:
            found.append(hash(("email", row[EMAIL].lower())))
        if row[PHONE] is not None:
            found.append(hash(("phone", row[PHONE])))
        return found

    def _holder(self, position: int, value: str, own: int | None) -> int | None:
        """Another contact than ``own`` whose field at ``position`` is ``value`` (folded)."""
        index, fold = self._indexes[position]
        for id_ in index.ids(fold(value)):
            row = self._row(id_)
            if id_ != own and row is not None and fold(row[position]) == fold(value):
                return id_
        return None

    # --- contacts --------------------------------------------------------------

    def _draft(self, body: dict[str, Any], own: int | None) -> Draft:
        """``body`` checked in the order of the doc's table; ``own``: the id a PUT updates."""
        allowed = False

        def taken(field: str, position: int, value: str) -> None:
            nonlocal allowed
            if self._holder(position, value, own) is None:
                return
            if self.allow_duplicates(CONTACTS):
                allowed = True
                return
            self.duplicate_refused += 1
            raise invalid(f"The {label(field)} has already been taken.")

        if all(is_blank(body.get(field)) for field in ("email", "phone", "landline")):
            raise _required("email")
        email = text(body, "email")
        if email is not None:
            email = normalize_email(email)
            if email is None:
                raise invalid("The email must be a valid email address.")
            taken("email", EMAIL, email)
        phone = text(body, "phone")
        if phone is not None:
            phone = normalize_phone(phone)
            if phone is None:
                raise invalid("The phone format is invalid.")
            taken("phone", PHONE, phone)
        landline = text(body, "landline")
        if landline is not None:
            landline = _digits(landline)
            if not _LANDLINE.fullmatch(landline):
                raise invalid("The landline format is invalid.")
        country = text(body, "countryIso")
        if (phone is not None or landline is not None) and country is None:
            raise _required("countryIso")
        country = _country(country)
        groups = self._groups_of(body)
        values = {
            "email": email,
            "phone": phone,
            "landline": landline,
            "countryIso": country,
            "name": text(body, "name"),
            "surname": text(body, "surname"),
        }
        custom = custom_fields(body.get("customFields"))
        values["externalId"] = text(body, "externalId")
        texts = {position: values[field] for field, position in TEXT_FIELDS if field in body}
        return Draft(texts, custom, groups, allowed)

    def _groups_of(self, body: dict[str, Any]) -> list[int]:
        """The ids that ``groupsIds`` and ``groupsNames`` name, in order, once each."""
        ids, names = _list(body, "groupsIds"), _list(body, "groupsNames")
        if not ids and not names:
            raise _required("groupsIds")
        found: dict[int, None] = {}
        for raw in ids:
            number = raw if is_int(raw) else None
            if isinstance(raw, str) and raw.strip().isdigit():
                number = int(raw)
            if number is None or number not in self.groups:
                raise invalid(f"The selected groups ids is invalid (no group {raw!r}).")
            found[number] = None
        for raw in names:
            if not isinstance(raw, str) or not raw.strip():
                raise invalid("The groups names must be an array of names.")
            group = self._group_named(raw.strip())
            if group is None:
                name = raw.strip()
                raise invalid(f'The selected groups names is invalid (no group named "{name}").')
            found[group] = None
        return list(found)

    def create(self, body: dict[str, Any], host: str) -> dict[str, Any]:
        draft = self._draft(body, None)
        row: list[Any] = [None] * 11
        for position, value in draft.texts.items():
            row[position] = value
        now = int(time.time())
        row[CREATED] = row[UPDATED] = now
        row[CUSTOM] = draft.custom or None
        row[IDS] = draft.groups
        id_ = self._next_id
        self._next_id += 1
        twice = any(key in self._retired for key in self._identities(row)) or any(
            self._holder(position, row[position], None) is not None
            for position in (EMAIL, PHONE)
            if row[position] is not None
        )
        self.created_twice += twice
        self.duplicates_allowed += draft.allowed_duplicate
        self.created += 1
        self._rows.append(pack(row))
        self._live += 1
        self._index(id_, row, add=True)
        return {"data": self.contact_json(id_, row, frozenset(), host)}

    def update(self, id_: int, body: dict[str, Any], host: str) -> dict[str, Any]:
        row = self._row(id_)
        if row is None:
            raise _not_found()
        draft = self._draft(body, id_)
        self.duplicates_allowed += draft.allowed_duplicate
        before = self._identities(row)
        self._index(id_, row, add=False)
        for position, value in draft.texts.items():
            row[position] = value
        if draft.custom:
            by_key = {field[0]: field for field in row[CUSTOM] or []}
            by_key.update((field[0], field) for field in draft.custom)
            row[CUSTOM] = list(by_key.values())
        row[IDS] = list(dict.fromkeys([*row[IDS], *draft.groups]))
        row[UPDATED] = int(time.time())
        self._retired.update(set(before) - set(self._identities(row)))
        self._index(id_, row, add=True)
        self._rows[id_ - self._base] = pack(row)
        return {"data": self.contact_json(id_, row, frozenset(), host)}

    def delete(self, id_: int) -> None:
        row = self._row(id_)
        if row is None:
            raise _not_found()
        self._index(id_, row, add=False)
        self._retired.update(self._identities(row))
        self._rows[id_ - self._base] = None
        self._live -= 1

    def show(self, id_: int, call: Call) -> dict[str, Any]:
        row = self._row(id_)
        if row is None:
            raise _not_found()
        return {"data": self.contact_json(id_, row, includes(call))}

    def list_contacts(self, call: Call) -> dict[str, Any]:
        limit, page = paging(call)
        wanted: list[tuple[int, str, Callable[[str], str]]] = []
        for field, position, fold in (
            ("email", EMAIL, str.lower),
            ("phone", PHONE, _digits),
            ("landline", LANDLINE, _digits),
            ("externalId", EXTERNAL, str.strip),
            ("countryIso", COUNTRY, str.upper),
        ):
            value = call.param(field)
            if value is not None and value.strip():
                wanted.append((position, fold(value.strip()), fold))
        start = (page - 1) * limit
        rows: list[tuple[int, list[Any]]] = []
        if not wanted:
            total = self._live
            rows = [(id_, orjson.loads(raw)) for id_, raw in self._page(start, limit)]
        else:
            total = 0
            for id_, row in self._candidates(wanted[0]):
                if all(
                    row[position] is not None and fold(row[position]) == value
                    for position, value, fold in wanted
                ):
                    if start <= total < start + limit:
                        rows.append((id_, row))
                    total += 1
        shown = includes(call)
        return {
            "data": [self.contact_json(id_, row, shown) for id_, row in rows],
            "meta": pagination(call, CONTACTS_PATH, total, len(rows), limit, page),
        }

    def _page(self, start: int, limit: int) -> Iterator[tuple[int, bytes]]:
        if self._live == len(self._rows):  # nothing deleted: straight to the page
            for i, raw in enumerate(self._rows[start : start + limit], start):
                assert raw is not None
                yield self._base + i, raw
            return
        yield from itertools.islice(self._live_rows(), start, start + limit)

    def _candidates(
        self, first: tuple[int, str, Callable[[str], str]]
    ) -> Iterator[tuple[int, list[Any]]]:
        """Rows that may match ``first``: from its index, else (countryIso) all those
        whose JSON holds the value as kept (upper-cased), the others not decoded."""
        position, value, _ = first
        if position not in self._indexes:
            needle = orjson.dumps(value)
            for id_, raw in self._live_rows():
                if needle in raw:
                    yield id_, orjson.loads(raw)
            return
        for id_ in sorted(set(self._indexes[position][0].ids(value))):
            row = self._row(id_)
            if row is not None:
                yield id_, row

    def contact_json(
        self, id_: int, row: list[Any], shown: frozenset[str], host: str | None = None
    ) -> dict[str, Any]:
        """The doc's contact; with ``links.self`` when ``host`` is given (POST, PUT)."""
        body: dict[str, Any] = {
            "id": id_,
            "email": row[EMAIL],
            "phone": row[PHONE],
            "countryIso": row[COUNTRY],
            "landline": row[LANDLINE],
            "name": row[NAME],
            "surname": row[SURNAME],
            "createdAt": _time(row[CREATED]),
            "updatedAt": _time(row[UPDATED]),
        }
        if "customFields" in shown:
            fields = row[CUSTOM] or []
            body["customFields"] = {
                "data": [{"key": key, "type": kind, "value": value} for key, kind, value in fields]
            }
        if "groups" in shown:
            body["groups"] = {
                "data": [
                    {"id": group, "name": self.groups[group]}
                    for group in row[IDS]
                    if group in self.groups
                ]
            }
        if host is not None:
            body["links"] = {"self": f"{host}{CONTACTS_PATH}/{id_}"}
        return body

    # --- groups ----------------------------------------------------------------

    def _group_named(self, name: str) -> int | None:
        """The oldest group called ``name`` (case-insensitively)."""
        folded = name.casefold()
        return next(
            (
                group
                for group in self._group_names.ids(folded)
                if self.groups.get(group, "").casefold() == folded
            ),
            None,
        )

    def _group_name(self, body: dict[str, Any], own: int | None) -> str:
        name = text(body, "name")
        if name is None:
            raise _required("name")
        holder = self._group_named(name)
        if holder is not None and holder != own and not self.allow_duplicates(GROUPS):
            raise invalid("The name has already been taken.")
        return name

    def group(self, group: int) -> dict[str, Any]:
        if group not in self.groups:
            raise _not_found()
        return {"data": {"id": group, "name": self.groups[group]}}

    def create_group(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._group_name(body, None)
        folded = name.casefold()
        twice = hash(folded) in self._retired_groups or self._group_named(name) is not None
        self.groups_created_twice += twice
        group = self._next_group
        self._next_group += 1
        self.groups[group] = name
        self._group_names.add(folded, group)
        return self.group(group)

    def update_group(self, group: int, body: dict[str, Any]) -> dict[str, Any]:
        if group not in self.groups:
            raise _not_found()
        name = self._group_name(body, group)
        old = self.groups[group].casefold()
        self._group_names.remove(old, group)
        if old != name.casefold():
            self._retired_groups.add(hash(old))
        self.groups[group] = name
        self._group_names.add(name.casefold(), group)
        return self.group(group)

    def delete_group(self, group: int) -> None:
        if group not in self.groups:
            raise _not_found()
        old = self.groups.pop(group).casefold()
        self._group_names.remove(old, group)
        self._retired_groups.add(hash(old))

    def list_groups(self, call: Call) -> dict[str, Any]:
        limit, page = paging(call)
        start = (page - 1) * limit
        page_ids = list(itertools.islice(self.groups, start, start + limit))
        return {
            "data": [{"id": group, "name": self.groups[group]} for group in page_ids],
            "meta": pagination(call, GROUPS_PATH, len(self.groups), len(page_ids), limit, page),
        }


def _item_id(item: str) -> int:
    """The <ID> of a route; 404 when it is not a positive integer."""
    if not item.isdigit() or not item.isascii():
        raise _not_found()
    return int(item)


def handle_contacts(call: Call, book: ContactBook) -> tuple[int, dict[str, Any] | None]:
    """One request to ``/api/rest/contacts[/<ID>]``: (status, JSON body or None)."""
    if call.item is None:
        if call.method == "POST":
            assert call.body is not None
            return 201, book.create(call.body, call.host)
        return 200, book.list_contacts(call)
    id_ = _item_id(call.item)
    if call.method == "PUT":
        assert call.body is not None
        return 200, book.update(id_, call.body, call.host)
    if call.method == "DELETE":
        book.delete(id_)
        return 204, None
    return 200, book.show(id_, call)


def handle_groups(call: Call, book: ContactBook) -> tuple[int, dict[str, Any] | None]:
    """One request to ``/api/rest/groups[/<ID>]``: (status, JSON body or None)."""
    if call.item is None:
        if call.method == "POST":
            assert call.body is not None
            return 201, book.create_group(call.body)
        return 200, book.list_groups(call)
    group = _item_id(call.item)
    if call.method == "PUT":
        assert call.body is not None
        return 200, book.update_group(group, call.body)
    if call.method == "DELETE":
        book.delete_group(group)
        return 204, None
    return 200, book.group(group)
