"""Per-sending and per-recipient results in Redis.

The one rule that makes "nothing lost, nothing sent twice" checkable: every
recipient has exactly one record, its status moves only forward out of the
pending states (``queued``, ``sending``) into one final state, and the counters
move with it in the same atomic step (a Lua script), so counts always add up to
the total and a re-run job can never overwrite or double-count a final result.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from jobs import codec, keys

PENDING = ("queued", "sending")
FINAL = ("accepted", "rejected", "failed", "unknown", "expired")
STATUSES = PENDING + FINAL

Record = dict[str, Any]
# What a recipient's new record carries over from the one it replaces.
CARRIED = ("to", "queued_at", "attempts", "ambiguous")


def successor(old: Record, status: str, **fields: Any) -> Record:
    """The record that replaces ``old``: what is carried over, the new status and fields."""
    new: Record = {k: v for k, v in old.items() if k in CARRIED}
    new.setdefault("attempts", 0)
    new.update(status=status, updated_at=now_iso(), **fields)
    return new


class IdempotencyConflict(ValueError):
    """The idempotency key was used before for a different sending."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def digest(payload: Any) -> str:
    return hashlib.sha256(codec.dumps(payload)).hexdigest()


# Shared Lua prelude: move one recipient to a new record if it is still pending.
# Counter changes are summed in DELTA and written once per call (flush), not
# twice per recipient.
_LUA_MOVE = """
local FINAL = {accepted=1, rejected=1, failed=1, unknown=1, expired=1}
local DELTA = {}
local function move(idx, new, rec)
  local cur = redis.call('HGET', KEYS[2], idx)
  local old = 'queued'
  if cur then old = cjson.decode(cur)['status'] end
  if FINAL[old] then return 0 end
  redis.call('HSET', KEYS[2], idx, rec)
  if old ~= new then
    DELTA[old] = (DELTA[old] or 0) - 1
    DELTA[new] = (DELTA[new] or 0) + 1
  end
  return 1
end
local function flush()
  for status, n in pairs(DELTA) do
    if n ~= 0 then redis.call('HINCRBY', KEYS[1], 'n:' .. status, n) end
  end
  DELTA = {}
end
local function settle(now, ttl)
  local state = redis.call('HGET', KEYS[1], 'state')
  if state == 'enqueuing' or state == 'done' then return state end
  local pending = tonumber(redis.call('HGET', KEYS[1], 'n:queued') or '0')
                + tonumber(redis.call('HGET', KEYS[1], 'n:sending') or '0')
  if pending == 0 then
    redis.call('HSET', KEYS[1], 'state', 'done', 'finished_at', now)
    redis.call('EXPIRE', KEYS[1], ttl)
    redis.call('EXPIRE', KEYS[2], ttl)
    return 'done'
  end
  return state
end
"""

# ARGV: now, ttl, then (index, status, record) triples.
_LUA_RECORD = (
    _LUA_MOVE
    + """
local applied = 0
for i = 3, #ARGV, 3 do applied = applied + move(ARGV[i], ARGV[i+1], ARGV[i+2]) end
flush()
settle(ARGV[1], ARGV[2])
return applied
"""
)

# Initial records; a record that already exists (a resubmission) is left alone.
# ARGV: (index, status, record) triples.
_LUA_ADD = """
local added, counts = 0, {}
for i = 1, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i+2]) == 1 then
    counts[ARGV[i+1]] = (counts[ARGV[i+1]] or 0) + 1
    added = added + 1
  end
end
for status, n in pairs(counts) do redis.call('HINCRBY', KEYS[1], 'n:' .. status, n) end
if added > 0 then redis.call('HINCRBY', KEYS[1], 'total', added) end
return added
"""

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


# Deliberately move ``unknown`` recipients back to ``queued`` (requeue on purpose).
# ARGV: (index, record) pairs.
_LUA_REOPEN = """
local moved = 0
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[2], ARGV[i])
  if cur and cjson.decode(cur)['status'] == 'unknown' then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+1])
    redis.call('HINCRBY', KEYS[1], 'n:unknown', -1)
    redis.call('HINCRBY', KEYS[1], 'n:queued', 1)
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('HSET', KEYS[1], 'state', 'running')
  redis.call('HDEL', KEYS[1], 'finished_at')
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
return moved
"""


class ResultStore:
    def __init__(self, redis: Redis, *, ttl_seconds: int = 30 * 86400) -> None:
        # redis-py types async results as ``Awaitable[T] | T``; ``Any`` keeps mypy useful here.
        self.redis: Any = redis
        self.ttl = ttl_seconds
        self._record = redis.register_script(_LUA_RECORD)
        self._add = redis.register_script(_LUA_ADD)
        self._open = redis.register_script(_LUA_OPEN)
        self._reopen = redis.register_script(_LUA_REOPEN)

    @staticmethod
    def _keys(sending_id: str) -> list[str]:
        return [keys.sending(sending_id), keys.results(sending_id)]

    async def create_sending(
        self, sending_id: str, kind: str, spec: Mapping[str, Any], spec_digest: str
    ) -> bool:
        """Claim the sending id; False when it exists already with the same content."""
        key = keys.sending(sending_id)
        if not await self.redis.hsetnx(key, "id", sending_id):
            if await self.redis.hget(key, "digest") != spec_digest.encode():
                raise IdempotencyConflict(
                    f"idempotency key already used for a different sending ({sending_id})"
                )
            return False
        created = now_iso()
        counters = {f"n:{status}": 0 for status in STATUSES}
        await self.redis.hset(
            key,
            mapping={
                "kind": kind,
                "state": "enqueuing",
                "spec": codec.dumps(spec),
                "digest": spec_digest,
                "created_at": created,
                "total": 0,
                **counters,
            },
        )
        await self.redis.zadd(keys.SENDINGS, {sending_id: time.time()})
        return True

    async def add_recipients(self, sending_id: str, records: Iterable[tuple[int, Record]]) -> int:
        argv: list[Any] = []
        for index, record in records:
            argv += [index, record["status"], codec.dumps(record)]
        if not argv:
            return 0
        return int(await self._add(keys=self._keys(sending_id), args=argv))

    async def open(self, sending_id: str, chunks: int) -> str:
        """All chunks are enqueued: the sending can now finish. Returns its state."""
        state = await self._open(keys=self._keys(sending_id), args=[now_iso(), self.ttl, chunks])
        return state.decode() if isinstance(state, bytes) else str(state)

    async def record(self, sending_id: str, updates: Iterable[tuple[int, Record]]) -> int:
        """Write new records for still-pending recipients; returns how many moved."""
        argv: list[Any] = [now_iso(), self.ttl]
        for index, record in updates:
            argv += [index, record["status"], codec.dumps(record)]
        if len(argv) == 2:
            return 0
        return int(await self._record(keys=self._keys(sending_id), args=argv))

    async def reopen_unknown(self, sending_id: str, records: Iterable[tuple[int, Record]]) -> int:
        """Put ``unknown`` recipients back in the queue; returns how many moved."""
        argv: list[Any] = []
        for index, record in records:
            argv += [index, codec.dumps(record)]
        if not argv:
            return 0
        return int(await self._reopen(keys=self._keys(sending_id), args=argv))

    async def spec(self, sending_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(keys.sending(sending_id), "spec")
        return codec.loads(raw) if raw else None

    async def load(self, sending_id: str, indices: list[int]) -> dict[int, Record]:
        if not indices:
            return {}
        raw = await self.redis.hmget(keys.results(sending_id), [str(i) for i in indices])
        return {i: codec.loads(r) for i, r in zip(indices, raw, strict=True) if r is not None}

    async def status(self, sending_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(keys.sending(sending_id))
        if not raw:
            return None
        meta = {k.decode(): v.decode() for k, v in raw.items() if k != b"spec"}
        counts = {s: int(meta.get(f"n:{s}", 0)) for s in STATUSES}
        return {
            "id": sending_id,
            "kind": meta.get("kind"),
            "state": meta.get("state"),
            "final": meta.get("state") == "done",
            "counts": {"total": int(meta.get("total", 0)), **counts},
            "chunks": int(meta["chunks"]) if "chunks" in meta else None,
            "created_at": meta.get("created_at"),
            "finished_at": meta.get("finished_at"),
        }

    async def iter_results(self, sending_id: str, batch: int = 1000) -> AsyncIterator[Record]:
        """Every recipient's record in index order (the order they were handed in)."""
        key = keys.results(sending_id)
        total = await self.redis.hlen(key)
        for start in range(0, total, batch):
            indices = list(range(start, min(start + batch, total)))
            found = await self.load(sending_id, indices)
            for index in indices:
                if index in found:
                    yield {"index": index, **found[index]}
