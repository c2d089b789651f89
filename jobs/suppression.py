"""Suppression: addresses that must never be sent to again, one list per blacklist type.

The lists are the provider's blacklist types (messaging-api.txt → "Blacklist":
``sms``, ``voice``, ``mailing``); a sending's kind names its list
(``list_for_kind``) and a contact import has none. Each list is a Redis hash
(``keys.suppression``): field the normalized address, value JSON
``{"reason", "at", "source", "sending"}``. An address keeps the entry it was
first added with (HSETNX): a later add neither moves its date nor replaces its
reason.

Normalization is deliberately dumb, and a Lua script elsewhere reproduces it
byte for byte: ``mailing`` → the address stripped and lower-cased, ``sms`` and
``voice`` → its digits only. So ``+34 666-555-444`` and ``34666555444`` are one
entry, but a national ``666555444`` is another.

With the blacklist sync on (``BULKSEND_BLACKLIST_SYNC``, ``worker.blacklist``),
what we add by hand, by import or from an event is also noted in
``keys.suppression_push`` for the next push to the provider, and what we remove
that the provider may hold in ``keys.suppression_drop`` (a pull does not bring
it back meanwhile). The producer looks up a chunk's worth of recipients in one
script call (``get_many``).
"""

from __future__ import annotations

import csv
import re
import string
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal, TypedDict

from jobs import codec, keys
from jobs.errors import InvalidJob
from jobs.events import LIST_OF_KIND
from jobs.results import now_iso

__all__ = [
    "DEFAULT_REASON",
    "LISTS",
    "SOURCES",
    "Entry",
    "Listed",
    "add",
    "add_many",
    "check_list",
    "count",
    "describe",
    "get",
    "get_many",
    "import_file",
    "import_lines",
    "list_for_kind",
    "listed",
    "normalize",
    "page",
    "problem",
    "remove",
]

LISTS: Final = ("sms", "voice", "mailing")
Source = Literal["manual", "import", "event", "provider"]
SOURCES: Final[tuple[Source, ...]] = ("manual", "import", "event", "provider")
DEFAULT_REASON: Final = "added by hand"
MAX_REASON: Final = 500  # characters of a reason kept
MIN_PHONE_DIGITS: Final = 6
BATCH: Final = 500  # addresses one Lua call adds (an import, a provider page)
HEADER_NAMES: Final = ("address", "phone", "email", "recipient")  # a CSV's address column

# Each sending kind's list; a kind not here (``contacts``) is never suppressed.
_KIND_LISTS: Final = LIST_OF_KIND  # one table: the events' Lua puts addresses on them too
# ASCII on purpose: the Lua twin (jobs.events) sees bytes, where %s, %D and string.lower
# know only ASCII; Python's own would also strip, keep or lower-case other scripts.
_NOT_DIGIT: Final = re.compile(r"\D", re.ASCII)
_SPACE: Final = " \t\n\v\f\r"
_LOWER: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_NOT_IN_EMAIL: Final = frozenset(',;<>()"')  # a list's separators, a display name's quotes
_PHONE_CHARS: Final = re.compile(r"[\d\s+\-().]+", re.ASCII)


class Entry(TypedDict):
    """One address's entry, as stored (JSON) in ``bs:suppress:{list}``."""

    reason: str
    at: str  # ISO 8601, when it was added (the provider's createdAt for a pulled one)
    source: str  # a Source
    sending: str | None  # the sending it came from, when it did


class Listed(TypedDict):
    """An entry as listings show it (the HTTP API, ``bulksend suppress list --json``)."""

    channel: str
    address: str
    reason: str
    at: str
    source: str
    sending: str | None


def list_for_kind(kind: str) -> str | None:
    """The list a sending of ``kind`` is screened against; None: never suppressed."""
    return _KIND_LISTS.get(kind)


def check_list(name: str | None, field: str = "channel") -> str:
    """``name`` if it is a list; otherwise ``InvalidJob`` naming ``field``."""
    if name not in LISTS:
        hint = " (email sendings use mailing; landing and whatsapp use sms)"
        given = "missing" if name is None else f"{name!r} is not one of {', '.join(LISTS)}"
        raise InvalidJob(f"{field}: {given}{hint}", field=field)
    return name


def normalize(list_name: str, address: str) -> str:
    """The address as the list keys it: ``mailing`` stripped and lower-cased, phones their
    digits only — ``address.strip().lower()`` and ``re.sub(r"\\D", "", address)``, in ASCII
    (the Lua twin in ``jobs.events`` gives the same bytes for every input)."""
    if list_name == "mailing":
        return address.strip(_SPACE).translate(_LOWER)
    return _NOT_DIGIT.sub("", address)


def problem(list_name: str, address: str) -> str | None:
    """Why ``address`` cannot go on ``list_name``, or None."""
    if not address.strip():
        return "empty"
    if list_name == "mailing":
        found = normalize(list_name, address)
        if found.count("@") != 1:
            return "not an email address: it needs exactly one @"
        local, domain = found.split("@")
        if not local:
            return "not an email address: nothing before the @"
        if "." not in domain.strip("."):
            return "not an email address: its domain has no dot"
        if any(c.isspace() or c in _NOT_IN_EMAIL for c in found):
            return 'not an email address: it holds a space or one of , ; < > ( ) "'
        return None
    if not _PHONE_CHARS.fullmatch(address.strip()):
        return "not a phone number: only digits, spaces, + - ( ) and . are allowed"
    if len(normalize(list_name, address)) < MIN_PHONE_DIGITS:
        return f"not a phone number: fewer than {MIN_PHONE_DIGITS} digits"
    return None


def describe(entry: Entry) -> str:
    """A suppressed recipient's ``description``."""
    return f"suppressed: {entry['reason']} (since {entry['at']})"


def _entry(reason: str, source: str, sending: str | None, at: str | None = None) -> Entry:
    text = " ".join(reason.split())[:MAX_REASON] or DEFAULT_REASON
    return Entry(reason=text, at=at or now_iso(), source=source, sending=sending)


def _decode(raw: bytes | str) -> Entry:
    found = codec.loads(raw)
    return Entry(
        reason=str(found.get("reason", "")),
        at=str(found.get("at", "")),
        source=str(found.get("source", "")),
        sending=found.get("sending"),
    )


# KEYS: the list, its push set, its drop set. ARGV: mode, then (address, entry) pairs.
# mode 'push': added ones are noted for the provider (and no longer dropped there);
# 'keep': only added; 'provider': only added, and not while a removal of ours is on
# its way to the provider (a pull must not undo it). Returns how many were added.
_LUA_ADD: Final = """
local mode, added = ARGV[1], 0
for i = 2, #ARGV, 2 do
  local skip = mode == 'provider' and redis.call('SISMEMBER', KEYS[3], ARGV[i]) == 1
  if not skip and redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i+1]) == 1 then
    added = added + 1
    if mode == 'push' then
      redis.call('SADD', KEYS[2], ARGV[i])
      redis.call('SREM', KEYS[3], ARGV[i])
    end
  end
end
return added
"""

# KEYS: the list, its push set, its drop set. ARGV: address, '1' to tell the provider.
# An address whose addition was not pushed yet is simply forgotten; one the provider
# may hold is noted for removal there. Returns 1 if it was on the list.
_LUA_REMOVE: Final = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local unpushed = redis.call('SREM', KEYS[2], ARGV[1]) == 1
if ARGV[2] == '1' and not unpushed then redis.call('SADD', KEYS[3], ARGV[1]) end
return 1
"""


def _list_keys(list_name: str) -> list[str]:
    return [
        keys.suppression(list_name),
        keys.suppression_push(list_name),
        keys.suppression_drop(list_name),
    ]


async def add_many(
    redis: Any,
    list_name: str,
    found: Sequence[tuple[str, Entry]],
    *,
    mode: Literal["push", "keep", "provider"] = "keep",
) -> int:
    """Add (normalized address, entry) pairs, a batch per Lua call; returns how many were
    new. For importers (``import_lines``, the provider pull): no validation here."""
    script = redis.register_script(_LUA_ADD)
    added = 0
    for start in range(0, len(found), BATCH):
        argv: list[Any] = [mode]
        for address, entry in found[start : start + BATCH]:
            argv += [address, codec.dumps(entry)]
        added += int(await script(keys=_list_keys(list_name), args=argv))
    return added


async def add(
    redis: Any,
    list_name: str,
    address: str,
    reason: str,
    source: Source = "manual",
    sending: str | None = None,
    *,
    push: bool = False,
) -> bool:
    """Suppress ``address``; False when it was already (its first entry stays).

    ``push``: note it for the provider's blacklist (``BULKSEND_BLACKLIST_SYNC`` on; never
    for ``source="provider"``). ``InvalidJob`` naming ``channel`` or ``address`` when
    either is not one."""
    check_list(list_name)
    why = problem(list_name, address)
    if why is not None:
        raise InvalidJob(f"address: {why}", field="address")
    mode: Literal["push", "keep"] = "push" if push and source != "provider" else "keep"
    entry = _entry(reason, source, sending)
    return await add_many(redis, list_name, [(normalize(list_name, address), entry)], mode=mode) > 0


async def remove(redis: Any, list_name: str, address: str, *, push: bool = False) -> bool:
    """Take ``address`` off the list; False when it was not on it. ``push``: also remove it
    from the provider's blacklist at the next sync."""
    check_list(list_name)
    script = redis.register_script(_LUA_REMOVE)
    args = [normalize(list_name, address), "1" if push else "0"]
    return int(await script(keys=_list_keys(list_name), args=args)) == 1


async def get(redis: Any, list_name: str, address: str) -> Entry | None:
    """The entry of one address, or None."""
    return (await get_many(redis, list_name, [address])).get(normalize(list_name, address))


# KEYS: the list. ARGV: a JSON array of addresses. Returns (address, entry) pairs of
# those on the list.
_LUA_GET_MANY: Final = """
local found = {}
for _, address in ipairs(cjson.decode(ARGV[1])) do
  local entry = redis.call('HGET', KEYS[1], address)
  if entry then found[#found + 1] = address; found[#found + 1] = entry end
end
return found
"""


async def get_many(redis: Any, list_name: str, addresses: Iterable[str]) -> dict[str, Entry]:
    """The entries of those of ``addresses`` that are on the list, by normalized address:
    one script call for all of them, the addresses in one argument. (An HMGET of a
    thousand fields cost the client more than everything else a submit does.) An empty
    list, the usual case, is found with an ``EXISTS`` before a single address is
    normalized: that screening cost a sixth of a submit."""
    if not await redis.exists(keys.suppression(list_name)):
        return {}
    wanted = [a for a in dict.fromkeys(normalize(list_name, a) for a in addresses) if a]
    if not wanted:
        return {}
    script = redis.register_script(_LUA_GET_MANY)
    found = await script(keys=[keys.suppression(list_name)], args=[codec.dumps(wanted)])
    pairs = iter(found)
    return {address.decode(): _decode(raw) for address, raw in zip(pairs, pairs, strict=True)}


def listed(list_name: str, address: str, entry: Entry) -> Listed:
    """An entry with its list and address, as listings show it."""
    return Listed(channel=list_name, address=address, **entry)


async def page(
    redis: Any, list_name: str, cursor: int = 0, count: int = 100
) -> tuple[list[Listed], int]:
    """One HSCAN step from ``cursor`` (0: the start): about ``count`` entries, in no
    particular order, and the cursor to go on from (0: the end)."""
    next_cursor, found = await redis.hscan(keys.suppression(list_name), cursor, count=count)
    entries = [listed(list_name, address.decode(), _decode(raw)) for address, raw in found.items()]
    return entries, int(next_cursor)


async def count(redis: Any, list_name: str) -> int:
    """How many addresses are on the list."""
    return int(await redis.hlen(keys.suppression(list_name)))


def _address_column(header: list[str]) -> int | None:
    names = [cell.strip().lower() for cell in header]
    for name in HEADER_NAMES:
        if name in names:
            return names.index(name)
    return None


def _delimiter(first_line: str) -> str | None:
    for candidate in (",", ";", "\t"):
        if candidate in first_line:
            return candidate
    return None


def _rows(lines: Iterable[str]) -> Iterator[tuple[int, str | None]]:
    """(line number, address or None for an empty line) of a one-per-line file or a CSV
    (its ``address``/``phone``/``email`` column, else its first)."""
    it = iter(lines)
    first = next(it, None)
    if first is None:
        return
    first = first.removeprefix("\ufeff")
    delimiter = _delimiter(first)
    if delimiter is None:  # one address a line
        yield 1, first.strip() or None
        for number, line in enumerate(it, start=2):
            yield number, line.strip() or None
        return
    reader = csv.reader(_chain(first, it), delimiter=delimiter)
    column = 0
    for row in reader:
        if reader.line_num == 1:
            found = _address_column(row)
            if found is not None:
                column = found
                continue
        cell = row[column].strip() if len(row) > column else ""
        yield reader.line_num, cell or None


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


async def import_lines(
    redis: Any,
    list_name: str,
    lines: Iterable[str],
    reason: str,
    *,
    push: bool = False,
    sending: str | None = None,
) -> tuple[int, list[tuple[int, str]]]:
    """Add the addresses of ``lines`` (one a line, or a CSV: see ``import_file``), source
    ``import``; returns (how many were new, the refused lines as (line number, reason))."""
    check_list(list_name)
    refused: list[tuple[int, str]] = []
    batch: list[tuple[str, Entry]] = []
    added = 0
    mode: Literal["push", "keep"] = "push" if push else "keep"
    for number, address in _rows(lines):
        if address is None:
            refused.append((number, "empty line"))
            continue
        why = problem(list_name, address)
        if why is not None:
            refused.append((number, why))
            continue
        batch.append((normalize(list_name, address), _entry(reason, "import", sending)))
        if len(batch) == BATCH:
            added += await add_many(redis, list_name, batch, mode=mode)
            batch = []
    if batch:
        added += await add_many(redis, list_name, batch, mode=mode)
    return added, refused


async def import_file(
    redis: Any, list_name: str, path: str | Path, reason: str, *, push: bool = False
) -> tuple[int, list[tuple[int, str]]]:
    """Add every address of the file at ``path``: one a line, or a CSV (``,`` ``;`` or tab)
    whose ``address``, ``phone``, ``email`` or ``recipient`` column holds them (its first
    column without such a header). Empty and invalid lines are refused with a reason and
    the rest added. Returns (how many were new, [(line number, reason)]).

    ``InvalidJob`` naming ``file`` when it cannot be read as UTF-8 text."""
    check_list(list_name)
    try:
        with Path(path).open(encoding="utf-8", newline="") as handle:
            return await import_lines(redis, list_name, handle, reason, push=push)
    except OSError as exc:
        raise InvalidJob(f"file: cannot read {path}: {exc.strerror}", field="file") from None
    except UnicodeDecodeError:
        raise InvalidJob(f"file: {path} is not UTF-8 text", field="file") from None
