"""Per-sending and per-recipient results in Redis.

The one rule that makes "nothing lost, nothing sent twice" checkable: every
recipient has exactly one record, its status moves only forward out of the
pending states (``queued``, ``sending``) into one final state, and the counters
move with it in the same atomic step (a Lua script), so counts always add up to
the total and a re-run job can never overwrite or double-count a final result.

Two records are implicit, to spare a write per recipient and per call. A queued
recipient that nothing has moved yet has no stored record: its chunk entry is
its record (``add_chunk``, ``chunks.Entry.record``), and a move from it expects
none. A recipient on the wire is in its call's flight (``keys.flights``), its
stored record unchanged. Every reader (``load``) shows both as they are.

Every move is a compare-and-set. A run claims ``queued → sending`` only if the
record is still exactly what it loaded (or still absent), in no other flight,
and stamps the flight with its run token and the moment its call must be over
(``until``); the call's outcome is written only by the run holding that token.
So two runs of one chunk (a re-run after a crash, a resubmission, a requeue)
never both send one recipient, and no run overwrites another run's in-flight
outcome. The one exception is deliberate: a
late, certain answer of the run that owns an ``unknown`` record replaces it.

The same step keeps what a dashboard reads without walking the records: the
sending's breakdown (codes, parts by encoding), its first call, and its campaign
name in a search index. A search through the records themselves is a bounded
scan (``scan``), never an index: one more copy of a million recipients would cost
more memory than an occasional, resumable search costs time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal, Required, cast

from redis.asyncio import Redis
from typing_extensions import TypedDict  # pydantic documents Record (the HTTP API) on 3.11

from jobs import chunks, codec, events, keys
from jobs.errors import IdempotencyConflict


class Status(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"


PENDING = (Status.QUEUED.value, Status.SENDING.value)
FINAL = tuple(s.value for s in Status if s.value not in PENDING)
STATUSES = PENDING + FINAL

# The final statuses an operator may send again on purpose (``Producer.requeue``).
Requeueable = Literal["unknown", "failed"]
REQUEUEABLE: Final[tuple[Requeueable, ...]] = ("unknown", "failed")

SCAN_STEP: Final = 1000  # records one search step reads (``ResultStore.scan``)
SCAN_BUDGET: Final = 20_000  # records one search call examines at most


class Record(TypedDict, total=False):
    """One recipient's record, as stored (MessagePack: ``codec.pack``) in its results
    hash (``keys.results``)."""

    to: Required[str]  # the address as it was handed in
    status: Required[str]  # a Status value
    attempts: int  # provider calls that carried it
    queued_at: str  # when it was (re)queued: BULKSEND_MAX_AGE counts from here
    requeued_at: str
    updated_at: str
    ambiguous: int  # calls whose outcome was unknown
    run: str  # the run token that claimed it (sending), or whose call it was (unknown)
    until: float  # epoch seconds by which that run's call is over
    code: int | None  # the provider's code, or ours (-1 unknown, -2 internal)
    description: str | None
    id: str  # the provider's message id
    parts: int
    encoding: str
    scheduled_at: str
    last_error: dict[str, Any]
    row: int  # an import's: the row a spreadsheet shows
    # After accepted, from the provider's notifications (jobs.events):
    delivery: str  # sent, then one of delivered, undelivered, rejected, expired
    delivered_at: str  # when it reached that final delivery state
    dparts: dict[str, str]  # a multipart SMS: each part's state
    facts: dict[str, str]  # opened, clicked, bounced, unsubscribed, complaint → first date
    events: list[list[Any]]  # [event, date, part, extra], each recorded once


# What a recipient's new record carries over from the one it replaces; ``to`` too,
# written last (``successor``).
CARRIED = ("row", "queued_at", "attempts", "ambiguous")

# How a move says what it expects to find (the CAS condition), see _LUA_MOVE.
EXPECT_QUEUED = "q"
EXPECT_PENDING = ""


def expect_exact(raw: bytes, status: str = "") -> bytes:
    """The record must still be exactly ``raw`` (whose status is ``status``, if known)."""
    return b"=" + status.encode() + b" " + raw


def expect_run(token: str, call: str) -> bytes:
    """The recipient must be in run ``token``'s flight ``call``, or recorded ``unknown``
    with that run (its call's late, certain answer)."""
    return f"@{token} {call}".encode()


def expect_over(call: str) -> bytes:
    """The recipient must still be in flight ``call``, whose run died during the call."""
    return f"!{call}".encode()


@dataclass(frozen=True, slots=True)
class Flight:
    """One call's recipients on the wire (``keys.flights``): the run that owns them, the
    epoch by which its call is over, and when it claimed them."""

    call: str
    run: str
    until: float
    at: str


def on_the_wire(record: Record, flight: Flight) -> Record:
    """What a recipient in ``flight`` is: its queued record, ``sending`` in that call."""
    attempts = int(record.get("attempts", 0)) + 1
    return cast(
        Record,
        {**record, "status": "sending", "attempts": attempts, "run": flight.run,
         "until": flight.until, "updated_at": flight.at},
    )  # fmt: skip


def tally_of(record: Record) -> tuple[str, int, str]:
    """What a final record adds to its sending's breakdown (``_LUA_TALLY``): the field,
    the SMS parts (-1: none), and the message id to link (``''``: none). A record that
    is not final adds nothing; nor does one the script is told nothing about."""
    status = record["status"]
    if status == "accepted":
        parts, encoding, mid = record.get("parts"), record.get("encoding"), record.get("id")
        link = mid if isinstance(mid, str) else ""
        if type(parts) is int and isinstance(encoding, str):
            return f"accepted:{encoding}", parts, link
        return "", -1, link
    if status in ("cancelled", "suppressed") or status in PENDING:
        return "", -1, ""
    code = record.get("code")
    if type(code) is int or isinstance(code, str):
        return f"code:{code}", -1, ""
    if isinstance(code, float):
        return f"code:{code:.14g}", -1, ""  # as Lua 5.1's tostring
    return "code:none", -1, ""


def entry_records(entries: Iterable[chunks.Entry]) -> dict[int, Record]:
    """The records of recipients nothing has moved yet, by index: their entries' (no
    record is stored for them until they move, ``ResultStore.add_chunk``)."""
    return cast(dict[int, Record], {e.index: e.record() for e in entries})


def successor(old: Record, status: str, **fields: Any) -> Record:
    """The record that replaces ``old``: what is carried over, the new status and fields.

    The address comes last: Redis's Lua (5.1) interns every string a script makes,
    hashing a long one from its last byte on, a byte in every few, so records that
    differ only where it does not look collide in its string table. A call's records
    differ mostly in their addresses; last, their final digits are always hashed
    (unpacking one: 0.55 → 0.34 µs with the sandbox's ids, ``bench/lua_strings.py``)."""
    return successor_with(old, status, fields)


def successor_with(
    old: Record, status: str, fields: Mapping[str, Any], now: str | None = None
) -> Record:
    """``successor`` with its fields as a mapping, and ``now`` (``now_iso``) if the caller
    has it: a run builds a thousand records a call, and handing them on as keywords,
    twice, was a third of the cost."""
    kept: Mapping[str, Any] = old
    new: dict[str, Any]
    if len(kept) == 3 and "attempts" in kept:  # to, status, attempts: a claimed recipient
        new = {"attempts": kept["attempts"]}
    else:
        new = {k: kept[k] for k in CARRIED if k in kept}
        new.setdefault("attempts", 0)
    new["status"] = status
    new["updated_at"] = now or now_iso()
    new.update(fields)
    new["to"] = kept["to"]
    return cast(Record, new)


def accepted_successor(
    old: Record, now: str, encoding: str | None, mid: Any, parts: Any, scheduled_at: Any
) -> Record:
    """``successor_with(old, "accepted", fields, now)``, ``fields`` being what of these is
    not None (encoding, id, parts, scheduled_at): a 202 makes a thousand, and for a
    recipient its run claimed (to, status, attempts) with the usual reply (an SMS's id
    and parts) one literal builds it in half the time. The same record, key for key:
    its bytes are what later moves compare."""
    usual = mid is not None and parts is not None and scheduled_at is None
    if usual and encoding is not None and len(old) == 3 and "attempts" in old:
        quick: Record = {
            "attempts": old["attempts"], "status": "accepted", "updated_at": now,
            "encoding": encoding, "id": mid, "parts": parts, "to": old["to"],
        }  # fmt: skip
        return quick
    fields = {"encoding": encoding, "id": mid, "parts": parts, "scheduled_at": scheduled_at}
    given = {k: v for k, v in fields.items() if v is not None}
    return successor_with(old, "accepted", given, now)


AcceptedPacker = Callable[[Record, Any, Any, Any], bytes]


def accepted_packer(now: str, encoding: str | None) -> AcceptedPacker:
    """``codec.pack(accepted_successor(old, now, encoding, mid, parts, scheduled_at))``,
    byte for byte, for a call's answers: the usual record (``accepted_successor``'s
    literal) is the same seven keys in the same order, and only its id and address
    differ in a call, so it is packed from pieces packed once (per attempts and parts)
    around those two: 0.52 → 0.13 µs a recipient, without a dict for each."""
    pack = codec.packer()
    heads: dict[tuple[type, Any], bytes] = {}  # by attempts: up to the id's key
    tails: dict[tuple[type, Any], bytes] = {}  # by parts: from the parts to the address key
    usual = encoding is not None
    for_id = pack("id")

    def packed(old: Record, mid: Any, parts: Any, scheduled_at: Any) -> bytes:
        if not (usual and mid is not None and parts is not None and scheduled_at is None):
            return pack(accepted_successor(old, now, encoding, mid, parts, scheduled_at))
        if len(old) != 3 or "attempts" not in old:
            return pack(accepted_successor(old, now, encoding, mid, parts, scheduled_at))
        attempts = old["attempts"]
        head = heads.get((type(attempts), attempts))
        if head is None:
            head = heads[(type(attempts), attempts)] = b"".join(
                (b"\x87", pack("attempts"), pack(attempts), pack("status"), pack("accepted"),
                 pack("updated_at"), pack(now), pack("encoding"), pack(encoding), for_id)
            )  # fmt: skip
        tail = tails.get((type(parts), parts))
        if tail is None:
            tail = tails[(type(parts), parts)] = pack("parts") + pack(parts) + pack("to")
        return b"".join((head, pack(mid), tail, pack(old["to"])))

    return packed


# The fields of ``bs:sending:{id}`` a status shows (``kind`` is always there).
_SHOWN = ("kind", "state", "total", "chunks", "created_at", "finished_at")
_EXTRAS = ("cancelled_at", "interrupted", "first_call_at", "campaign")  # shown only when set
_DELIVERY = (
    *(f"d:{s}" for s in events.DELIVERY_STATES),
    *(f"f:{f}" for f in sorted(set(events.FACT_COUNTERS.values()))),
)  # what events moved (jobs.events)
STATUS_FIELDS = (*_SHOWN, *_EXTRAS, *(f"n:{s}" for s in STATUSES), *_DELIVERY)

# A sending's place in ``bs:sendings``: (creation epoch, id), what listings page by.
Position = tuple[float, str]


def _status(sending_id: str, row: Sequence[bytes | None]) -> dict[str, Any] | None:
    """The status object from the ``STATUS_FIELDS`` of a sending's hash."""
    meta = {k: v.decode() for k, v in zip(STATUS_FIELDS, row, strict=True) if v is not None}
    if "kind" not in meta:
        return None
    status: dict[str, Any] = {
        "id": sending_id,
        "kind": meta["kind"],
        "state": meta.get("state"),
        "final": meta.get("state") == "done",
        "counts": {
            "total": int(meta.get("total", 0)),
            **{s: int(meta.get(f"n:{s}", 0)) for s in STATUSES},
        },
        "chunks": int(meta["chunks"]) if "chunks" in meta else None,
        "created_at": meta.get("created_at"),
        "finished_at": meta.get("finished_at"),
    }
    status.update((extra, meta[extra]) for extra in _EXTRAS if extra in meta)
    status["delivery"] = events.delivery_counts(meta, status["counts"]["accepted"])
    return status


_NOW: list[Any] = [0, ""]  # (epoch ms, its ISO text): records are stamped per recipient


def now_iso() -> str:
    """Now, to the millisecond, in ISO 8601 (UTC). Made once per millisecond: a call's
    every recipient is stamped with it, and formatting a date was a tenth of a worker's
    time."""
    ms = time.time_ns() // 1_000_000
    if ms != _NOW[0]:
        _NOW[0], _NOW[1] = (
            ms,
            datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds"),
        )
    return str(_NOW[1])


def digest(payload: Any) -> str:
    return digest_bytes(codec.dumps(payload))


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def campaign_of(spec: Mapping[str, Any]) -> str | None:
    """The campaign a sending's spec names (the provider's ``campaignName``), if any."""
    payload = spec.get("payload")
    name = payload.get("campaignName") if isinstance(payload, Mapping) else None
    return name if isinstance(name, str) and name.strip() else None


@dataclass(frozen=True, slots=True)
class Breakdown:
    """What a sending's recipients ended with, from ``keys.breakdown``, for a dashboard
    that must not read a million records to draw it. Arrivals are counted: a recipient
    answered late, or requeued and ended again, counts in each status it reached."""

    codes: dict[str, int]  # code (``none``: without one) → recipients rejected, failed,
    #                        unknown or expired with it
    parts: dict[str, int]  # encoding → SMS parts of the accepted recipients
    accepted_by_encoding: dict[str, int]  # encoding → accepted SMS recipients


_FINAL_LUA = "{" + ", ".join(f"{s}=1" for s in FINAL) + "}"

# The cluster-wide recipients by (kind, status) behind ``/metrics`` (``keys.METRICS``,
# KEYS[5]) move in the same call as the sending's own counters: a final status counts
# every recipient that reached it (a counter), a pending one the recipients in it now.
_RCPT, _SEP = keys.metrics_field(keys.METRICS_RECIPIENTS, ""), keys.metrics_field("", "")
_LUA_COUNT = (
    keys.LUA_RESULTS_KEY
    + f"""
local RESULTS_BUCKET, BUCKET_KEYS = {keys.RESULTS_BUCKET}, {{}}
local PER_CALL = 1000  -- fields (and values) per HSET or HMGET: Lua's unpack takes ~8,000
local function group(t, key)  -- t[key], a list, made on first use: arguments by results hash
  local g = t[key]
  if not g then
    g = {{}}
    t[key] = g
  end
  return g
end
local function RKEY(idx)  -- the results hash of recipient idx (results_key, made once)
  local bucket = math.floor(tonumber(idx) / {keys.RESULTS_BUCKET})
  local key = BUCKET_KEYS[bucket]
  if not key then
    key = results_key(KEYS[2], idx)
    BUCKET_KEYS[bucket] = key
  end
  return key
end
local function RBUCKETS(cmd, ...)  -- cmd on each results hash of the sending
  local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
  for idx = 0, total - 1, {keys.RESULTS_BUCKET} do  -- as keys.all_results
    redis.call(cmd, RKEY(idx), ...)
  end
end
local KIND = nil
local function count(status, n)
  KIND = KIND or redis.call('HGET', KEYS[1], 'kind') or '?'
  redis.call('HINCRBY', KEYS[5], '{_RCPT}' .. KIND .. '{_SEP}' .. status, n)
end
"""
)

# The sending's breakdown (``keys.breakdown``, KEYS[6]) moves in the same call too,
# counting arrivals as the metrics do: a final status with a code (rejected, failed,
# unknown, expired) adds to ``code:<code>`` (``none`` without one), an accepted SMS to
# ``parts:<encoding>`` and ``accepted:<encoding>``. The field is named by whoever
# wrote the record (``tally_of`` for ``ResultStore.record``), so no record is decoded
# to count it; ``tally_rec`` decodes one only where Lua built it itself.
# Written once per call (``write_tally``); a key made after the sending was given its
# lifetime (a late answer) takes the sending's.
_LUA_TALLY = f"""
local FINAL = {_FINAL_LUA}
local TALLY = {{}}
local function tally_n(field, parts, n)  -- n recipients alike; parts < 0: none to add
  if field == '' then return end
  TALLY[field] = (TALLY[field] or 0) + n
  if parts >= 0 then
    local pfield = 'parts:' .. string.sub(field, 10)  -- 'accepted:<encoding>'
    TALLY[pfield] = (TALLY[pfield] or 0) + parts * n
  end
end
local function tally(field, parts) tally_n(field, parts, 1) end
local function tally_rec(status, rec)
  if not FINAL[status] or status == 'cancelled' or status == 'suppressed' then return end
  local r = cmsgpack.unpack(rec)
  if status == 'accepted' then
    local parts, enc = r['parts'], r['encoding']
    if type(parts) == 'number' and type(enc) == 'string' then tally('accepted:' .. enc, parts) end
  elseif type(r['code']) == 'number' or type(r['code']) == 'string' then
    tally('code:' .. tostring(r['code']), -1)
  else
    tally('code:none', -1)  -- absent, or cjson.null
  end
end
local function write_tally()
  if next(TALLY) == nil then return end
  for field, n in pairs(TALLY) do redis.call('HINCRBY', KEYS[6], field, n) end
  TALLY = {{}}
  local ttl = redis.call('TTL', KEYS[1])
  if ttl > 0 then redis.call('EXPIRE', KEYS[6], ttl) end
end
"""

# Shared Lua prelude: KEYS[1] the sending, KEYS[2] its results' key prefix (RKEY
# names the hash of one recipient: ``keys.results``), KEYS[3] the active set,
# KEYS[5] the metrics, KEYS[6] the breakdown, KEYS[7] the chunks noted settled,
# KEYS[8] the flights and KEYS[9] their bitmap (``keys.flights``, ``keys.flying``).
# ``move`` writes one recipient's new record if the CAS condition holds. Counter
# changes are summed in DELTA (and arrivals in a final status in REACHED) and
# written once per call, with ``first_call_at`` the first time a call goes on the
# wire (``_LUA_CLAIM``) or its answer lands. A recipient recorded accepted with a
# message id is linked to it (``ev_link``: the id's recipient, and the events that
# came before it, applied now — ``jobs.events``) while something receives
# notifications (``keys.HOOKS``): without a receiver a link is memory for nothing.
# expect: '=' .. status .. ' ' .. raw  the record is exactly raw, not final and not
#             in a flight; status is raw's, or '' for a move that did not read it
#         '@' .. run .. ' ' .. call  the recipient is in that run's flight ``call``,
#             or, the flight gone, recorded unknown with that run (a late answer)
#         '!' .. call  the recipient is in flight ``call``, which is over: its run
#             died during the call (``unknown``, or ``queued`` to resend it)
#         'q'         the record is queued and not in a flight
#         ''          the record is pending and not in a flight
# A recipient in a flight is still its ``queued`` record plus the flight's entry,
# which nothing but the flight's own moves may change: so the bulk of all moves,
# a run's answers, neither read nor decode the record they replace.
_LUA_LINKS = f"""
local LINKING = nil
local function LINKS()  -- a receiver of notifications runs (keys.HOOKS): link the ids
  if LINKING == nil then LINKING = redis.call('EXISTS', '{keys.HOOKS}') == 1 end
  return LINKING
end
"""
_LUA_FLIGHTS = """
-- A flight's recipients are runs of adjacent indices, {{first, last}, ...}: a claim
-- takes a chunk's recipients, so usually one run, read and cleared whole.
local function runs_of(indices)  -- sorted indices → their runs
  local runs = {}
  for _, idx in ipairs(indices) do
    local last = runs[#runs]
    if last and last[2] == idx - 1 then last[2] = idx else runs[#runs + 1] = {idx, idx} end
  end
  return runs
end
-- call → {run, until, at, runs, n = recipients, set = a set of them where the runs are
-- many} or false; LANDED: call → {n = recipients moved, set = those moved one by one,
-- lists = whole groups landed} (``land``).
local FLIGHTS, LANDED = {}, {}
local function FLIGHT(call)
  if FLIGHTS[call] == nil then
    local raw = redis.call('HGET', KEYS[8], call)
    local f = raw and cmsgpack.unpack(raw) or false
    if f then
      if type(f[4][1]) == 'number' then  -- a list of indices, as before runs
        table.sort(f[4])
        f[4] = runs_of(f[4])
      end
      f.n = 0
      for _, r in ipairs(f[4]) do f.n = f.n + r[2] - r[1] + 1 end
      if #f[4] > 8 then  -- scattered: a set rather than a look through the runs
        f.set = {}
        for _, r in ipairs(f[4]) do
          for idx = r[1], r[2] do f.set[idx] = true end
        end
      end
    end
    FLIGHTS[call] = f
  end
  return FLIGHTS[call]
end
local function ON(f, idx)  -- idx is one of flight f's recipients
  if f.set then return f.set[idx] == true end
  for _, r in ipairs(f[4]) do
    if idx >= r[1] and idx <= r[2] then return true end
  end
  return false
end
local function MOVED(call)
  local m = LANDED[call]
  if not m then
    m = {n = 0, set = {}, lists = {}}
    LANDED[call] = m
  end
  return m
end
-- The bitmap is read and written a run of adjacent bytes at a time (GETRANGE,
-- SETRANGE): a BITFIELD would take three Lua values per recipient, each one converted
-- and allocated, which cost a claim more than its records.
local function byte_runs(positions, gap)  -- sorted byte positions → {first, last} runs
  table.sort(positions)
  local runs, i = {}, 1
  while i <= #positions do
    local j = i
    while j < #positions and positions[j + 1] - positions[j] <= gap
          and positions[j + 1] - positions[i] < 4000 do
      j = j + 1
    end
    runs[#runs + 1] = {positions[i], positions[j]}
    i = j + 1
  end
  return runs
end
local function read_bits(indices)  -- {[byte position] = value} of the bytes they are in
  local want, positions = {}, {}
  for _, idx in ipairs(indices) do
    local p = math.floor(idx / 8)
    if not want[p] then
      want[p] = true
      positions[#positions + 1] = p
    end
  end
  local bytes = {}
  for _, run in ipairs(byte_runs(positions, 16)) do  -- a few bytes more beats a call more
    local raw = redis.call('GETRANGE', KEYS[9], run[1], run[2])
    for p = run[1], run[2] do bytes[p] = string.byte(raw, p - run[1] + 1) or 0 end
  end
  return bytes
end
local function is_set(bytes, idx)
  return bit.band(bytes[math.floor(idx / 8)], bit.rshift(0x80, idx % 8)) ~= 0
end
local function set_bit(bytes, idx, on)
  local p, mask = math.floor(idx / 8), bit.rshift(0x80, idx % 8)
  bytes[p] = on and bit.bor(bytes[p], mask) or bit.band(bytes[p], bit.bnot(mask))
end
local function write_bits(bytes)
  local positions = {}
  for p in pairs(bytes) do positions[#positions + 1] = p end
  for _, run in ipairs(byte_runs(positions, 1)) do
    local chars = {}
    for p = run[1], run[2] do chars[#chars + 1] = string.char(bytes[p]) end
    redis.call('SETRANGE', KEYS[9], run[1], table.concat(chars))
  end
end
-- Bits first .. last all set (on) or all cleared: whole bytes written as they are, the
-- two at the ends masked; a clear never makes the bitmap longer.
local function paint(first, last, on)
  local p0, p1 = math.floor(first / 8), math.floor(last / 8)
  local raw = redis.call('GETRANGE', KEYS[9], p0, p1)
  local n = on and p1 - p0 + 1 or #raw
  if n == 0 then return end
  local full = on and '\\255' or '\\0'
  local function edge(j, s, e)  -- byte j of raw, its bits s .. e (0: the highest) painted
    local mask, b = bit.band(bit.rshift(0xFF, s), bit.lshift(0xFF, 7 - e)), string.byte(raw, j) or 0
    return string.char(on and bit.bor(b, mask) or bit.band(b, bit.bnot(mask)))
  end
  local out
  if n == 1 then
    out = edge(1, first % 8, p0 == p1 and last % 8 or 7)
  else
    local tail = p0 + n - 1 == p1 and edge(n, 0, last % 8) or full
    out = edge(1, first % 8, 7) .. string.rep(full, n - 2) .. tail
  end
  redis.call('SETRANGE', KEYS[9], p0, out)
end
local function FLYING(idx)
  return redis.call('GETBIT', KEYS[9], idx) == 1
end
local function land()  -- the moved recipients of each flight leave it; an empty one goes
  if next(LANDED) == nil then return end
  for call, moved in pairs(LANDED) do
    local f = FLIGHTS[call]
    if moved.n == f.n then  -- all of it (each moved once: ``ResultStore.record``)
      for _, r in ipairs(f[4]) do paint(r[1], r[2], false) end
      redis.call('HDEL', KEYS[8], call)
    else
      local set, left, gone = moved.set, {}, {}
      for _, list in ipairs(moved.lists) do
        for _, idx in ipairs(list) do set[idx] = true end
      end
      for _, r in ipairs(f[4]) do
        for idx = r[1], r[2] do
          if set[idx] then gone[#gone + 1] = idx else left[#left + 1] = idx end
        end
      end
      local bytes = read_bits(gone)
      for _, idx in ipairs(gone) do set_bit(bytes, idx, false) end
      write_bits(bytes)
      if #left == 0 then
        redis.call('HDEL', KEYS[8], call)
      else
        redis.call('HSET', KEYS[8], call, cmsgpack.pack({f[1], f[2], f[3], runs_of(left)}))
      end
    end
    FLIGHTS[call] = nil
  end
  LANDED = {}
  if redis.call('EXISTS', KEYS[8]) == 0 then redis.call('DEL', KEYS[9]) end
end
"""
_LUA_MOVE = (
    _LUA_COUNT
    + _LUA_TALLY
    + events.LUA_FUNCTIONS
    + _LUA_LINKS
    + _LUA_FLIGHTS
    + """
local DELTA, REACHED, CALLED = {}, {}, false
local CANCELLED = redis.call('HEXISTS', KEYS[1], 'cancelled_at') == 1
local function move(idx, new, rec, expect, tfield, tparts, mid)
  if new == 'sending' then return 0 end  -- only a claim puts one on the wire
  local kind = string.sub(expect, 1, 1)
  local old, call = nil, nil
  local at = tonumber(idx)  -- idx is the hash field, a string: at, its number
  if kind == '@' or kind == '!' then
    local run = nil
    if kind == '@' then
      local sp = string.find(expect, ' ', 2, true)
      run, call = string.sub(expect, 2, sp - 1), string.sub(expect, sp + 1)
    else
      call = string.sub(expect, 2)
    end
    local f = FLIGHT(call)
    if f and ON(f, at) and (run == nil or f[1] == run) then
      old = 'sending'
    elseif run == nil then
      return 0
    else  -- a late answer: only over ``unknown`` with that run's token
      call = nil
      local cur = redis.call('HGET', RKEY(idx), idx)
      if not cur then return 0 end
      local r = cmsgpack.unpack(cur)
      if r['run'] ~= run or r['status'] ~= 'unknown' then return 0 end
      if not FINAL[new] or new == 'unknown' then return 0 end
      old = 'unknown'
    end
  else
    local cur = redis.call('HGET', RKEY(idx), idx)
    if not cur then  -- untouched (no record until it moves): as queued, if so expected
      if kind ~= '=' and kind ~= 'q' then return 0 end
      cur, old = '', 'queued'
    end
    if kind == '=' then
      local sp = string.find(expect, ' ', 2, true)
      local said, was = string.sub(expect, 2, sp - 1), string.sub(expect, sp + 1)
      if cur ~= was then return 0 end
      if said ~= '' and old == nil then old = said end  -- the writer knew what it replaced
    end
    if old == nil then old = cmsgpack.unpack(cur)['status'] end
    if FINAL[old] or (kind == 'q' and old ~= 'queued') then return 0 end
    if FLYING(at) then return 0 end  -- a flight's recipient: only its own moves
  end
  if CANCELLED and new == 'queued' then
    local n = cmsgpack.unpack(rec)
    n['status'] = 'cancelled'
    n['description'] = 'sending cancelled'
    new, rec, tfield = 'cancelled', cmsgpack.pack(n), ''
  end
  redis.call('HSET', RKEY(idx), idx, rec)
  if call ~= nil then
    local m = MOVED(call)
    if not m.set[at] then
      m.set[at] = true
      m.n = m.n + 1
    end
  end
  if old ~= new then
    DELTA[old] = (DELTA[old] or 0) - 1
    DELTA[new] = (DELTA[new] or 0) + 1
    if FINAL[new] then
      REACHED[new] = (REACHED[new] or 0) + 1
      if tfield == nil then tally_rec(new, rec) else tally(tfield, tparts) end
      if new == 'accepted' and LINKS() then
        if mid == nil then mid = cmsgpack.unpack(rec)['id'] end
        if type(mid) == 'string' and mid ~= '' then
          ev_link(redis.call('HGET', KEYS[1], 'id'), idx, mid, tonumber(ARGV[2]))
        end
      end
    end
  end
  if kind == '@' and FINAL[new] then CALLED = true end
  return 1
end
local function flush(now)
  land()
  for status, n in pairs(DELTA) do
    if n ~= 0 then
      redis.call('HINCRBY', KEYS[1], 'n:' .. status, n)
      if not FINAL[status] then count(status, n) end
    end
  end
  for status, n in pairs(REACHED) do count(status, n) end
  DELTA, REACHED = {}, {}
  write_tally()
  if CALLED then
    redis.call('HSETNX', KEYS[1], 'first_call_at', now)
    CALLED = false
  end
end
local function settle(now, ttl)
  local state = redis.call('HGET', KEYS[1], 'state')
  if state == 'enqueuing' or state == 'done' then return state end
  local pending = tonumber(redis.call('HGET', KEYS[1], 'n:queued') or '0')
                + tonumber(redis.call('HGET', KEYS[1], 'n:sending') or '0')
  if pending == 0 then
    redis.call('HSET', KEYS[1], 'state', 'done', 'finished_at', now)
    redis.call('SREM', KEYS[3], redis.call('HGET', KEYS[1], 'id'))
    redis.call('EXPIRE', KEYS[1], ttl)
    RBUCKETS('EXPIRE', ttl)
    redis.call('EXPIRE', KEYS[4], ttl)
    redis.call('EXPIRE', KEYS[6], ttl)
    redis.call('DEL', KEYS[8], KEYS[9])  -- empty by now: no recipient is sending
    return 'done'
  end
  return state
end
"""
)

# The bulk of all moves are a run's answers for its own flight, and they are alike: one
# call, one new status, one tally field. ``landing`` moves such a group with one HSET
# per results hash instead of one per recipient (each call from Lua is also a command
# fed to the AOF); a recipient no longer in the flight (a late answer) takes ``move``.
_LUA_LANDING = """
local function hset_all(fields)  -- results key → {idx, rec, idx, rec, ...}
  for key, args in pairs(fields) do
    for s = 1, #args, PER_CALL do
      redis.call('HSET', key, unpack(args, s, math.min(s + PER_CALL - 1, #args)))
    end
  end
end
-- g: {run, call, status, tally field, parts, indices, records, message ids}; without the
-- ids (a worker that sets no notification URL) a link reads each from its record
local function landing(g, refused)
  local run, call, new, tfield, tparts, idxs, recs, mids = unpack(g)
  local f, fields = FLIGHT(call), {}
  local landed = nil  -- positions of those landed, once one is not: until then, all
  local mine, expect = f and f[1] == run, '@' .. run .. ' ' .. call
  local lo, hi = -1, -2  -- the flight's one run, if it is one: a look without a call
  if mine and not f.set and #f[4] == 1 then lo, hi = f[4][1][1], f[4][1][2] end
  -- The results hash of the one before, while the next is in the same bucket (they
  -- come in order): its arguments and their count, without a call or a length each.
  local from, to, args, n_args = 0, -1, nil, 0
  for i, idx in ipairs(idxs) do
    if mine and ((idx >= lo and idx <= hi) or (hi < lo and ON(f, idx))) then
      if idx < from or idx > to then
        from = idx - idx % RESULTS_BUCKET
        to = from + RESULTS_BUCKET - 1
        args = group(fields, RKEY(idx))
        n_args = #args
      end
      args[n_args + 1] = idx
      args[n_args + 2] = recs[i]
      n_args = n_args + 2
      if landed then landed[#landed + 1] = i end
    else
      if not landed then
        landed = {}
        for j = 1, i - 1 do landed[j] = j end
      end
      if move(tostring(idx), new, recs[i], expect, tfield, tparts, mids[i]) ~= 1 then
        refused[#refused + 1] = idx
      end
    end
  end
  local n = landed and #landed or #idxs
  if n == 0 then return end
  hset_all(fields)
  local m, list = MOVED(call), idxs
  if landed then
    list = {}
    for _, i in ipairs(landed) do list[#list + 1] = idxs[i] end
  end
  m.lists[#m.lists + 1] = list
  m.n = m.n + n
  DELTA['sending'] = (DELTA['sending'] or 0) - n
  DELTA[new] = (DELTA[new] or 0) + n
  REACHED[new] = (REACHED[new] or 0) + n
  tally_n(tfield, tparts, n)
  if new == 'accepted' and LINKS() then
    local sid = redis.call('HGET', KEYS[1], 'id')
    for k = 1, n do
      local i = landed and landed[k] or k
      local mid = mids[i]
      if mid == nil then mid = cmsgpack.unpack(recs[i])['id'] end  -- none given: the record's
      if type(mid) == 'string' and mid ~= '' then
        ev_link(sid, idxs[i], mid, tonumber(ARGV[2]))
      end
    end
  end
  CALLED = true
end
"""

# ARGV: now, ttl, then a MessagePack array of [index, status, record, expect, tally
# field, parts, message id] (``ResultStore.record``), then one of landings (above).
# Returns the indices it did not move (their condition did not hold): usually none,
# where a list of those moved would be a thousand integers for each side to handle.
_LUA_RECORD = (
    _LUA_MOVE
    + _LUA_LANDING
    + """
local refused = {}
for _, u in ipairs(cmsgpack.unpack(ARGV[3])) do
  if move(u[1], u[2], u[3], u[4], u[5], u[6], u[7]) ~= 1 then
    refused[#refused + 1] = tonumber(u[1])
  end
end
for _, g in ipairs(cmsgpack.unpack(ARGV[4])) do landing(g, refused) end
flush(ARGV[1])
settle(ARGV[1], ARGV[2])
return refused
"""
)

# A run puts recipients on the wire: those still exactly as it loaded them (queued) and
# in no flight join a new flight, without a write to their records; the run that owns
# it is the only one that may move them now (``move``). None once the sending is
# cancelled. ARGV: now, call, run, until (epoch), then a MessagePack array of [index,
# record as loaded], then one of the runs ([first, last], ``_runs``) of those loaded
# untouched (no record). Returns the runs claimed, as the flight keeps them.
_LUA_CLAIM = (
    _LUA_MOVE
    + """
local items, runs, claimed = cmsgpack.unpack(ARGV[5]), cmsgpack.unpack(ARGV[6]), {}
if CANCELLED or (#items == 0 and #runs == 0) then return claimed end
local B = RESULTS_BUCKET
local function taken(first, last)  -- a recipient of this run has a record, or is flying
  for b = math.floor(first / B), math.floor(last / B) do
    if redis.call('EXISTS', RKEY(b * B)) == 1 then return true end
  end
  local bits = redis.call('GETRANGE', KEYS[9], math.floor(first / 8), math.floor(last / 8))
  return string.find(bits, '[^%z]') ~= nil  -- a byte not zero (its bits may be others')
end
local function fly(n)  -- n recipients joined the flight (runs): write it, count them
  redis.call('HSET', KEYS[8], ARGV[2], cmsgpack.pack({ARGV[3], tonumber(ARGV[4]), ARGV[1], runs}))
  DELTA['queued'], DELTA['sending'] = -n, n
  CALLED = true
  flush(ARGV[1])
end
-- Usually a chunk nothing has moved yet: one run, all of it claimed without a look at
-- each recipient (nothing of it in a results hash, no bit of it set).
local whole = #items == 0
for _, run in ipairs(runs) do whole = whole and not taken(run[1], run[2]) end
if whole then
  local n = 0
  for _, run in ipairs(runs) do
    paint(run[1], run[2], true)
    n = n + run[2] - run[1] + 1
  end
  fly(n)
  return runs
end
local candidates = {}
for _, item in ipairs(items) do candidates[#candidates + 1] = tonumber(item[1]) end
for _, run in ipairs(runs) do
  for idx = run[1], run[2] do candidates[#candidates + 1] = idx end
end
local flying = read_bits(candidates)
local wanted = {}  -- results key → the fields to read: one HMGET each, not an HGET each
for i, item in ipairs(items) do
  if not is_set(flying, candidates[i]) then
    local fields = group(wanted, RKEY(item[1]))
    fields[#fields + 1] = item[1]
  end
end
-- Untouched recipients have no record: none of them in a results hash that does not
-- exist (a chunk nothing has moved yet: nothing to read per recipient), the others read.
for _, run in ipairs(runs) do
  for b = math.floor(run[1] / B), math.floor(run[2] / B) do
    local key = RKEY(b * B)
    if redis.call('EXISTS', key) == 1 then
      local fields = group(wanted, key)
      for idx = math.max(run[1], b * B), math.min(run[2], b * B + B - 1) do
        fields[#fields + 1] = tostring(idx)
      end
    end
  end
end
local stored = {}  -- idx (a string) → its record, or false: untouched
for key, fields in pairs(wanted) do
  for s = 1, #fields, PER_CALL do
    local e = math.min(s + PER_CALL - 1, #fields)
    local values = redis.call('HMGET', key, unpack(fields, s, e))
    for j = s, e do stored[fields[j]] = values[j - s + 1] end
  end
end
for i, idx in ipairs(candidates) do
  local unmoved
  if i <= #items then
    local raw = stored[items[i][1]]
    unmoved = raw ~= nil and (raw or '') == items[i][2]  -- '': untouched
  else  -- of a run: untouched when loaded; still, unless read now and found
    unmoved = not is_set(flying, idx) and not stored[tostring(idx)]
  end
  if unmoved then
    claimed[#claimed + 1] = idx
    set_bit(flying, idx, true)
  end
end
if #claimed == 0 then return claimed end
write_bits(flying)
table.sort(claimed)
runs = runs_of(claimed)
fly(#claimed)
return runs
"""
)

# Initial records; a record that already exists (a resubmission) is left alone.
# ``add`` writes them; ``added_all`` moves the counters and the breakdown once.
_LUA_ADDING = (
    _LUA_COUNT
    + _LUA_TALLY
    + """
local added, counts = 0, {}
local cancelled = redis.call('HEXISTS', KEYS[1], 'cancelled_at') == 1
local function added_one(status, rec)
  counts[status] = (counts[status] or 0) + 1
  added = added + 1
  tally_rec(status, rec)
end
local function add(items)
  for _, item in ipairs(items) do
    local idx, status, rec = item[1], item[2], item[3]
    if cancelled and status == 'queued' then
      local r = cmsgpack.unpack(rec)
      r['status'] = 'cancelled'
      status, rec = 'cancelled', cmsgpack.pack(r)
    end
    if redis.call('HSETNX', RKEY(idx), idx, rec) == 1 then added_one(status, rec) end
  end
end
local function added_all(now)
  write_tally()
  for status, n in pairs(counts) do
    redis.call('HINCRBY', KEYS[1], 'n:' .. status, n)
    count(status, n)
  end
  if added > 0 then redis.call('HINCRBY', KEYS[1], 'total', added) end
  redis.call('HSET', KEYS[1], 'touched_at', now)
end
"""
)

# ARGV: now, then a MessagePack array of [index, status, record] (``_batch``).
_LUA_ADD = (
    _LUA_ADDING
    + """
add(cmsgpack.unpack(ARGV[2]))
added_all(ARGV[1])
return added
"""
)

# A chunk and its recipients, once (a resubmission writes the same chunk again and
# changes nothing): its queued recipients are untouched, counted without a record each
# (``Entry.record`` is theirs until something moves them), the others get theirs.
# A cancelled sending takes none: its queued recipients must be recorded cancelled.
# ARGV: now, chunk name, its entries (``chunks.encode``), queued recipients, then a
# MessagePack array of [index, status, record] of the others. 1 added, 0 there
# already, -1 cancelled.
_LUA_ADD_CHUNK = (
    _LUA_ADDING
    + """
if cancelled then return -1 end
if redis.call('HSETNX', KEYS[4], ARGV[2], ARGV[3]) == 0 then return 0 end
local queued = tonumber(ARGV[4])
if queued > 0 then
  counts['queued'], added = queued, queued
end
add(cmsgpack.unpack(ARGV[5]))
added_all(ARGV[1])
return 1
"""
)

# The stored records of some recipients, given as runs of adjacent indices ([first,
# last], MessagePack): each results hash they fall in read whole (HGETALL), so a chunk
# nothing has moved yet, whose hashes do not exist, costs a call per hash and nothing
# per recipient. Only the records that exist come back, as [index, record, ...], then
# the bytes ARGV[2] to ARGV[3] of the flying bitmap (``ResultStore.load_flying``: which
# of them are in a flight, in the same round trip). KEYS[1]: the results' prefix,
# KEYS[2]: the bitmap.
_LUA_LOAD = (
    keys.LUA_RESULTS_KEY
    + f"""
local B = {keys.RESULTS_BUCKET}
local runs, found, seen, want = cmsgpack.unpack(ARGV[1]), {{}}, {{}}, nil
if #runs > 8 then  -- scattered indices: a set of them rather than a look through the runs
  want = {{}}
  for _, run in ipairs(runs) do
    for idx = run[1], run[2] do want[idx] = true end
  end
end
local function wanted(idx)
  if want then return want[idx] == true end
  for _, run in ipairs(runs) do
    if idx >= run[1] and idx <= run[2] then return true end
  end
  return false
end
for _, run in ipairs(runs) do
  for b = math.floor(run[1] / B), math.floor(run[2] / B) do
    if not seen[b] then
      seen[b] = true
      local all = redis.call('HGETALL', results_key(KEYS[1], b * B))
      for j = 1, #all, 2 do
        local idx = tonumber(all[j])
        if wanted(idx) then
          found[#found + 1] = idx
          found[#found + 1] = all[j + 1]
        end
      end
    end
  end
end
found[#found + 1] = redis.call('GETRANGE', KEYS[2], ARGV[2], ARGV[3])
return found
"""
)


def _indices(runs: Iterable[Any]) -> set[int]:
    """The indices of runs ([first, last] each); a flight written before runs lists its
    indices one by one."""
    found: set[int] = set()
    for run in runs:
        if isinstance(run, int):
            found.add(run)
        else:
            found.update(range(int(run[0]), int(run[1]) + 1))
    return found


def _runs(indices: Iterable[int]) -> list[list[int]]:
    """Sorted runs of adjacent indices, [first, last] each: a chunk is one."""
    ordered = sorted(set(indices))
    if ordered and ordered[-1] - ordered[0] == len(ordered) - 1:
        return [[ordered[0], ordered[-1]]]  # one run, the usual case: no look at each
    runs: list[list[int]] = []
    for i in ordered:
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return runs


# ARGV: now, ttl, chunks.
_LUA_OPEN = (
    _LUA_MOVE
    + """
redis.call('HSET', KEYS[1], 'chunks', ARGV[3])
if redis.call('HGET', KEYS[1], 'state') == 'enqueuing' then
  redis.call('HSET', KEYS[1], 'state', 'running')
end
return settle(ARGV[1], ARGV[2])
"""
)

# Claim the id, all fields at once: a crash can no longer leave an id without
# its digest (which made every retry of that key a conflict). KEYS[4] is the
# campaign index, ARGV[4] the sending's member there ('' without a campaign).
# ARGV: id, digest, score, member, then field/value pairs. 1 created, 0 same, -1 conflict.
_LUA_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'digest') == ARGV[2] then return 0 end
  return -1
end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'digest', ARGV[2], unpack(fields))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[4], 0, ARGV[4]) end
return 1
"""

# Deliberately move ``unknown`` or ``failed`` recipients back to ``queued`` (requeue
# on purpose). ARGV: the status they must be in, then (index, record) pairs.
_LUA_REOPEN = (
    _LUA_COUNT
    + """
local want, moved = ARGV[1], 0
for i = 2, #ARGV, 2 do
  local cur = redis.call('HGET', RKEY(ARGV[i]), ARGV[i])
  if cur and cmsgpack.unpack(cur)['status'] == want then
    redis.call('HSET', RKEY(ARGV[i]), ARGV[i], ARGV[i+1])
    redis.call('HINCRBY', KEYS[1], 'n:' .. want, -1)
    redis.call('HINCRBY', KEYS[1], 'n:queued', 1)
    moved = moved + 1
  end
end
if moved > 0 then
  count('queued', moved)  -- the final status counts arrivals: it stays
  redis.call('HSET', KEYS[1], 'state', 'running')
  redis.call('HDEL', KEYS[1], 'finished_at')
  redis.call('SADD', KEYS[3], redis.call('HGET', KEYS[1], 'id'))
  redis.call('PERSIST', KEYS[1])
  RBUCKETS('PERSIST')
  redis.call('PERSIST', KEYS[4])
  redis.call('PERSIST', KEYS[6])
  redis.call('DEL', KEYS[7])  -- chunks noted settled hold these again (chunks.note_settled)
end
return moved
"""
)

# Cancel: queued recipients become cancelled, built from their current record (or, for
# one nothing has moved yet, from the record its entry gives, ``Entry.record``).
# ARGV: now, ttl, then (index, that untouched record or '') pairs.
_LUA_CANCEL = (
    _LUA_MOVE
    + """
local moved = 0
for i = 3, #ARGV, 2 do
  local cur = redis.call('HGET', RKEY(ARGV[i]), ARGV[i]) or ARGV[i + 1]
  if cur ~= '' then
    local r = cmsgpack.unpack(cur)
    if r['status'] == 'queued' then
      r['status'] = 'cancelled'
      r['description'] = 'sending cancelled'
      r['updated_at'] = ARGV[1]
      moved = moved + move(ARGV[i], 'cancelled', cmsgpack.pack(r), 'q')
    end
  end
end
flush(ARGV[1])
settle(ARGV[1], ARGV[2])
return moved
"""
)


def _bit(bitmap: bytes, offset: int) -> bool:
    """Bit ``offset`` of a Redis bitmap (its bit 0 is the first byte's highest)."""
    byte = offset >> 3
    return byte < len(bitmap) and bool(bitmap[byte] & (0x80 >> (offset & 7)))


AnswerGroup = tuple[list[int], list[bytes], list[str]]  # indices, packed records, message ids


class Answers:
    """A run's final records for recipients in its own flight (``expect_run``), grouped by
    call, status, tally field and parts: ``_LUA_LANDING`` writes a group with one HSET
    per results hash and moves its counters once. What a group shares is worked out
    once, by ``group``'s caller: a 202's thousand recipients are one or two groups."""

    __slots__ = ("groups",)

    def __init__(self) -> None:
        self.groups: dict[tuple[bytes, str, str, int], AnswerGroup] = {}

    def group(self, expect: bytes, status: str, tfield: str, tparts: int) -> AnswerGroup:
        """The lists to append a group's recipients to (``tally_of`` gives its tally)."""
        key = (expect, status, tfield, tparts)
        found = self.groups.get(key)
        if found is None:
            found = self.groups[key] = ([], [], [])
        return found

    def add(self, index: int, record: Record, expect: bytes) -> None:
        tfield, tparts, mid = tally_of(record)
        indices, records, ids = self.group(expect, record["status"], tfield, tparts)
        indices.append(index)
        records.append(codec.pack(record))
        ids.append(mid)

    def __len__(self) -> int:
        return sum(len(indices) for indices, _, _ in self.groups.values())

    def arguments(self) -> list[tuple[Any, ...]]:
        """The groups as ``_LUA_LANDING`` takes them."""
        return [
            (*expect[1:].decode().split(" ", 1), status, tfield, tparts, *group)
            for (expect, status, tfield, tparts), group in self.groups.items()
        ]


def _batch(items: Sequence[tuple[Any, ...]]) -> bytes:
    """Many recipients' arguments as one MessagePack array: a script argument each would
    cost the Redis client more than everything else a recipient costs the worker."""
    return codec.pack(items)


class ResultStore:
    def __init__(self, redis: Redis, *, ttl_seconds: int = 30 * 86400) -> None:
        # redis-py types async results as ``Awaitable[T] | T``; ``Any`` keeps mypy useful here.
        self.redis: Any = redis
        self.ttl = ttl_seconds
        self._record = redis.register_script(_LUA_RECORD)
        self._claim = redis.register_script(_LUA_CLAIM)
        self._add = redis.register_script(_LUA_ADD)
        self._add_chunk = redis.register_script(_LUA_ADD_CHUNK)
        self._open = redis.register_script(_LUA_OPEN)
        self._create = redis.register_script(_LUA_CREATE)
        self._reopen = redis.register_script(_LUA_REOPEN)
        self._cancel = redis.register_script(_LUA_CANCEL)
        self._load_raw = redis.register_script(_LUA_LOAD)

    @staticmethod
    def _keys(sending_id: str) -> list[str]:
        return [
            keys.sending(sending_id),
            keys.results_prefix(sending_id),
            keys.ACTIVE,
            keys.chunks(sending_id),
            keys.METRICS,
            keys.breakdown(sending_id),
            keys.settled_chunks(sending_id),
            keys.flights(sending_id),
            keys.flying(sending_id),
        ]

    async def create_sending(
        self,
        sending_id: str,
        kind: str,
        spec: Mapping[str, Any],
        spec_digest: str,
        *,
        chunk_size: int | None = None,
    ) -> bool:
        """Claim the sending id; False when it exists already with the same content.

        A spec whose payload names a campaign (the provider's ``campaignName``) is
        findable by it (``find_campaigns``) from the same step on. With ``chunk_size``,
        chunk ``n`` holds the recipients from ``n × chunk_size`` on, and those nothing
        has moved yet are read from it (``load``)."""
        created = now_iso()
        fields: list[Any] = [
            "kind", kind, "state", "enqueuing", "spec", codec.dumps(spec),
            "created_at", created, "touched_at", created, "total", 0,
        ]  # fmt: skip
        if chunk_size is not None:
            fields += ["chunk_size", chunk_size]
        for status in STATUSES:
            fields += [f"n:{status}", 0]
        campaign = campaign_of(spec)
        member = ""
        if campaign is not None:
            fields += ["campaign", campaign]
            member = keys.campaign_member(campaign, sending_id)
        outcome = int(
            await self._create(
                keys=[keys.sending(sending_id), keys.SENDINGS, keys.ACTIVE, keys.CAMPAIGNS],
                args=[sending_id, spec_digest, time.time(), member, *fields],
            )
        )
        if outcome < 0:
            raise IdempotencyConflict(
                f"idempotency key already used for a different sending ({sending_id})"
            )
        return outcome == 1

    async def add_recipients(self, sending_id: str, records: Iterable[tuple[int, Record]]) -> int:
        items = [(str(i), r["status"], codec.pack(r)) for i, r in records]
        if not items:
            return 0
        return int(await self._add(keys=self._keys(sending_id), args=[now_iso(), _batch(items)]))

    async def add_chunk(
        self,
        sending_id: str,
        chunk: str,
        entries: bytes,
        queued: int,
        others: Iterable[tuple[int, Record]],
    ) -> bool:
        """A chunk (``chunks.encode``) and its recipients: ``queued`` of them untouched,
        without a record each, and ``others`` (refused, suppressed) with theirs. False
        when the sending is cancelled: nothing was written, every record must be."""
        items = [(str(i), r["status"], codec.pack(r)) for i, r in others]
        argv: list[Any] = [now_iso(), chunk, entries, queued, _batch(items)]
        return int(await self._add_chunk(keys=self._keys(sending_id), args=argv)) >= 0

    async def open(self, sending_id: str, chunk_count: int) -> str:
        """All chunks are enqueued: the sending can now finish. Returns its state."""
        state = await self._open(
            keys=self._keys(sending_id), args=[now_iso(), self.ttl, chunk_count]
        )
        return state.decode() if isinstance(state, bytes) else str(state)

    async def record(
        self,
        sending_id: str,
        updates: Iterable[tuple[int, Record, str | bytes]],
        answers: Answers | None = None,
    ) -> set[int]:
        """Write new records where their CAS condition holds; returns the indices moved.

        A run's final answers for its own flight go as ``answers`` (``_LUA_LANDING``),
        grouped by whoever built them; one among ``updates`` joins them here."""
        items: list[tuple[Any, ...]] = []
        landing = Answers()
        moved: set[int] = set()  # what is asked; the script answers what it refused
        asked = 0
        for i, r, expect in updates:
            moved.add(i)
            asked += 1
            status = r["status"]
            if expect[:1] in ("@", b"@") and status in FINAL:
                landing.add(i, r, expect if isinstance(expect, bytes) else expect.encode())
            else:
                tfield, tparts, mid = tally_of(r)
                items.append((str(i), status, codec.pack(r), expect, tfield, tparts, mid))
        groups = landing.arguments() + (answers.arguments() if answers is not None else [])
        if not items and not groups:
            return set()
        if answers is not None:
            for indices, _, _ in answers.groups.values():
                moved.update(indices)
                asked += len(indices)
        if len(moved) < asked:  # the script counts a flight's moves to know it landed whole
            raise ValueError("a recipient's index was given twice in one write")
        argv: list[Any] = [now_iso(), self.ttl, _batch(items), _batch(groups)]
        return moved.difference(await self._record(keys=self._keys(sending_id), args=argv))

    async def claim(
        self, sending_id: str, flight: Flight, loaded: Iterable[tuple[int, bytes]]
    ) -> set[int]:
        """Put recipients on the wire in ``flight``: each one still exactly as loaded (its
        stored bytes) and in no other flight. Returns the indices claimed."""
        items, untouched = [], []
        for i, raw in loaded:
            if raw:
                items.append((str(i), raw))
            else:
                untouched.append(i)
        if not items and not untouched:
            return set()
        argv: list[Any] = [
            flight.at, flight.call, flight.run, flight.until, _batch(items),
            codec.pack(_runs(untouched)),
        ]  # fmt: skip
        return _indices(await self._claim(keys=self._keys(sending_id), args=argv))

    async def _flights_of(
        self, sending_id: str, indices: Sequence[int], span: bytes
    ) -> dict[int, Flight]:
        """The flight each of ``indices`` is in, if any, given the bytes of the flying
        bitmap from ``min(indices)``'s on: the flights themselves are read only when one
        of their bits is set."""
        low = min(indices)
        if not span.strip(b"\0"):
            return {}  # none of them (the usual answer): without a look at each
        base = low // 8 * 8
        wanted = [i for i in indices if _bit(span, i - base)]
        if not wanted:
            return {}
        found = await self.flights(sending_id)
        return {i: found[i] for i in wanted if i in found}

    async def flights(self, sending_id: str) -> dict[int, Flight]:
        """Every recipient on the wire now, and its flight."""
        found: dict[int, Flight] = {}
        for call, raw in (await self.redis.hgetall(keys.flights(sending_id))).items():
            run, until, at, runs = codec.unpack(raw)
            flight = Flight(call.decode(), run, float(until), at)
            found.update(dict.fromkeys(_indices(runs), flight))
        return found

    async def reopen(
        self, sending_id: str, status: Requeueable, records: Iterable[tuple[int, Record]]
    ) -> int:
        """Put recipients still in ``status`` back in the queue as ``records``; returns
        how many moved (one that left ``status`` meanwhile is left alone)."""
        if status not in REQUEUEABLE:
            raise ValueError(f"status: {status!r} is not one of {', '.join(REQUEUEABLE)}")
        argv: list[Any] = [status]
        for index, record in records:
            argv += [index, codec.pack(record)]
        if len(argv) == 1:
            return 0
        return int(await self._reopen(keys=self._keys(sending_id), args=argv))

    async def reopen_unknown(self, sending_id: str, records: Iterable[tuple[int, Record]]) -> int:
        """Put ``unknown`` recipients back in the queue; returns how many moved."""
        return await self.reopen(sending_id, "unknown", records)

    async def mark_cancelled(self, sending_id: str) -> bool:
        """Flag the sending cancelled; False when it does not exist."""
        key = keys.sending(sending_id)
        if not await self.redis.exists(key):
            return False
        await self.redis.hsetnx(key, "cancelled_at", now_iso())
        return True

    async def cancel_queued(self, sending_id: str, indices: list[int]) -> int:
        """Record cancelled those of ``indices`` still queued and not on the wire. Those
        nothing has moved yet have no record: the script is given the one their entry
        gives (``untouched``), to use where it finds none."""
        if not indices:
            return 0
        untouched = await self.untouched(sending_id, indices)
        args: list[Any] = [now_iso(), self.ttl]
        for i in indices:
            given = untouched.get(i)
            args += [i, codec.pack(given) if given is not None else ""]
        return int(await self._cancel(keys=self._keys(sending_id), args=args))

    async def spec(self, sending_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(keys.sending(sending_id), "spec")
        return codec.loads(raw) if raw else None

    async def load_raw(self, sending_id: str, indices: list[int]) -> dict[int, bytes]:
        """The stored bytes of each record: what a compare-and-set compares against."""
        return (await self.load_flying(sending_id, indices))[0]

    async def load_flying(
        self, sending_id: str, indices: list[int]
    ) -> tuple[dict[int, bytes], dict[int, Flight]]:
        """``load_raw``, and the flight each of ``indices`` is in, if any, in one round trip:
        what a run loads first."""
        if not indices:
            return {}, {}
        low, high = min(indices), max(indices)
        found = await self._load_raw(
            keys=[keys.results_prefix(sending_id), keys.flying(sending_id)],
            args=[codec.pack(_runs(indices)), low // 8, high // 8],
        )  # a pipeline of HMGETs cost the worker more than the script costs Redis
        span = found.pop()
        raw = {int(found[n]): found[n + 1] for n in range(0, len(found), 2)}
        return raw, await self._flights_of(sending_id, indices, span)

    async def chunk_size(self, sending_id: str) -> int | None:
        """The recipients per chunk its submit used, if it recorded them."""
        size = await self.redis.hget(keys.sending(sending_id), "chunk_size")
        return int(size) if size is not None else None

    async def untouched(self, sending_id: str, indices: Sequence[int]) -> dict[int, Record]:
        """The records of those of ``indices`` that nothing has moved yet, from their
        chunks (``Entry.record``); call it for indices without a stored record."""
        size = await self.chunk_size(sending_id)
        if size is None or not indices:
            return {}
        found: dict[int, Record] = {}
        by_chunk: dict[int, list[int]] = {}
        for i in indices:
            by_chunk.setdefault(i // size, []).append(i)
        for n, some in by_chunk.items():
            given = entry_records(await chunks.load(self.redis, sending_id, str(n)) or [])
            found.update((i, given[i]) for i in some if i in given)
        return found

    async def load(self, sending_id: str, indices: list[int]) -> dict[int, Record]:
        """Each recipient's record as it is now: ``sending`` while in a flight, and the
        one its chunk entry gives while nothing has moved it."""
        return await self._load(sending_id, indices, None)

    async def load_chunk(self, sending_id: str, entries: list[chunks.Entry]) -> dict[int, Record]:
        """``load`` for a chunk's entries, which give the untouched ones' records without
        reading the chunk again."""
        return await self._load(sending_id, [e.index for e in entries], entries)

    async def _load(
        self, sending_id: str, indices: list[int], entries: list[chunks.Entry] | None
    ) -> dict[int, Record]:
        raw, flying = await self.load_flying(sending_id, indices)
        found: dict[int, Record] = {i: codec.unpack(r) for i, r in raw.items()}
        if len(found) < len(indices):
            if entries is None:
                missing = [i for i in indices if i not in found]
                found.update(await self.untouched(sending_id, missing))
            else:
                found.update(entry_records(e for e in entries if e.index not in found))
        for i, flight in flying.items():
            if i in found:
                found[i] = on_the_wire(found[i], flight)
        return found

    async def _total(self, sending_id: str) -> int:
        """Recipients recorded: their indices are 0 to this - 1."""
        return int(await self.redis.hget(keys.sending(sending_id), "total") or 0)

    async def status(self, sending_id: str) -> dict[str, Any] | None:
        return (await self.statuses([sending_id]))[0]

    async def statuses(self, sending_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Each sending's status (None: no such sending), in one round trip.

        Only the fields a status shows are read, never the spec (which holds an
        email's attachments)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for sending_id in sending_ids:
                pipe.hmget(keys.sending(sending_id), STATUS_FIELDS)
            rows = await pipe.execute()
        return [_status(sending_id, row) for sending_id, row in zip(sending_ids, rows, strict=True)]

    async def newest(
        self, count: int, *, before: Position | None = None, since: float | None = None
    ) -> list[Position]:
        """Up to ``count`` sendings as ``(created, id)``, newest first: those after
        ``before`` (a position this returned) and created after ``since`` (epoch)."""
        top = "+inf" if before is None else repr(before[0])
        bottom = "-inf" if since is None else f"({since!r}"
        found: list[Position] = []
        offset = 0
        want = count + (before is not None)  # the sending at ``before`` comes back too
        while len(found) < count:
            got = await self.redis.zrevrangebyscore(
                keys.SENDINGS, top, bottom, start=offset, num=want, withscores=True
            )
            for member, score in got:
                position = (float(score), member.decode())
                # Equal scores come in descending id order: those up to ``before`` were seen.
                if before is None or position < before:
                    found.append(position)
            if len(got) < want:
                break
            offset += len(got)
        return found[:count]

    async def chunk_entries(self, sending_id: str) -> AsyncIterator[tuple[str, list[chunks.Entry]]]:
        """Every chunk of the sending with its entries, one chunk in memory at a time."""
        for name in await chunks.names(self.redis, sending_id):
            entries = await chunks.load(self.redis, sending_id, name)
            if entries is not None:
                yield name, entries

    async def iter_results(
        self, sending_id: str, batch: int = 1000
    ) -> AsyncIterator[dict[str, Any]]:
        """Every recipient's record in index order (the order they were handed in)."""
        total = await self._total(sending_id)
        for start in range(0, total, batch):
            indices = list(range(start, min(start + batch, total)))
            found = await self.load(sending_id, indices)
            for index in indices:
                if index in found:
                    yield {"index": index, **found[index]}

    async def breakdown(self, sending_id: str) -> Breakdown:
        """The sending's codes and parts by encoding (all empty for an unknown id)."""
        raw = await self.redis.hgetall(keys.breakdown(sending_id))
        found: dict[str, dict[str, int]] = {"code": {}, "parts": {}, "accepted": {}}
        for field, n in raw.items():
            what, _, name = field.decode().partition(":")
            if what in found:
                found[what][name] = int(n)
        return Breakdown(found["code"], found["parts"], found["accepted"])

    async def find_campaigns(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` sending ids whose campaign name starts with ``prefix`` (any
        case), by name then id. A sending whose records expired may still be named: its
        status is None, as with ``bs:sendings``."""
        if limit <= 0:
            return []  # ZRANGEBYLEX reads a negative count as "all"
        low = prefix.lower().encode()
        # No UTF-8 text holds the byte 0xff: every name starting with ``low`` sorts below.
        found = await self.redis.zrangebylex(
            keys.CAMPAIGNS, b"[" + low, b"(" + low + b"\xff", start=0, num=limit
        )
        return [m.decode().rsplit(keys.CAMPAIGN_SEP, 1)[1] for m in found]

    async def page(self, sending_id: str, start: int, count: int) -> list[tuple[int, Record]]:
        """The records of recipients ``start`` to ``start + count - 1`` that exist, in
        index order: one HMGET, whatever the sending's size."""
        indices = list(range(max(start, 0), start + count))
        found = await self.load(sending_id, indices)
        return [(i, found[i]) for i in indices if i in found]

    async def scan(
        self,
        sending_id: str,
        *,
        text: str | None,
        status: str | None,
        cursor: int,
        limit: int,
        budget: int = SCAN_BUDGET,
    ) -> tuple[list[tuple[int, Record]], int]:
        """Records whose ``to`` contains ``text`` (any case) and whose status is
        ``status`` (None: any), and the cursor to go on from (0: the whole sending was
        seen).

        A bounded scan, not an index: an index of every address would cost memory
        for each of a million recipients, all the time, to speed up a search someone
        makes now and then. Each call goes on in index order from ``cursor`` (the
        next index to look at), SCAN_STEP records a step, and stops once ``limit``
        matches are found or ``budget`` records were examined; so one call costs
        about the same on any sending, and a search that finds little comes back
        with a cursor to call again with. A step is not cut short, so a call may
        return a few more than ``limit`` (never losing one), in index order.
        """
        needle = text.lower() if text else None
        total = await self._total(sending_id)
        found: dict[int, Record] = {}
        start = max(cursor, 0)
        while start < total:
            indices = list(range(start, min(start + SCAN_STEP, total)))
            start = indices[-1] + 1
            for index, record in (await self.load(sending_id, indices)).items():
                if status is not None and record["status"] != status:
                    continue
                if needle is not None and needle not in str(record.get("to", "")).lower():
                    continue
                found[index] = record
            if len(found) >= limit or start - cursor >= budget:
                break
        cursor = start if start < total else 0
        return sorted(found.items()), cursor
