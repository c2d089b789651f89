"""The chunk message: what a chunk job carries, and where a chunk's recipients live.

A job carries only ``(sending id, chunk name)``; the chunk's entries — each
``[index, to, extras]`` — are kept in the sending's ``bs:chunks`` hash, written
before the job is enqueued. So a chunk can be enqueued again by anyone at any
time (``resume``, the sweeper, a resubmission) without the job's arq payload,
which arq drops when its key expires or its tries run out.

A chunk is kept, compressed, for as long as its sending's records: a requeue
sends its recipients again with their own extras. Its entries repeat the same
keys and shapes a thousand times, so zlib at its fastest level makes them about
an eighth of their JSON (a few bytes of Redis per recipient instead of ~60) for
~0.2 ms of CPU per thousand.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import msgspec
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms, to_ms

from jobs import codec, keys

CHUNK_FUNCTION = "send_chunk"


class Entry(msgspec.Struct, array_like=True, gc=False):
    """One recipient of a chunk: its index in the sending, address, per-recipient params.

    A struct, stored as the array ``[index, to, extras]`` (``given`` after, when there is
    one), so that a worker decodes a chunk straight into its entries (``decode``). Out
    of the cyclic collector's sight (``gc=False``): nothing an entry holds refers back
    to it, and a worker holds thousands of them."""

    index: int
    to: str
    extras: dict[str, Any]
    given: str | None = None  # the address as handed in, where it differs from ``to``

    def record(self) -> dict[str, Any]:
        """The record of a recipient nothing has moved yet: none is stored for it
        (``jobs.results``, untouched recipients); this is the one it would have."""
        record: dict[str, Any] = {"to": self.given or self.to, "status": "queued"}
        if "row" in self.extras:  # an import's row number
            record["row"] = self.extras["row"]
        return record


def encode(entries: Iterable[Entry]) -> bytes:
    rows = [
        [e.index, e.to, e.extras] if e.given is None else [e.index, e.to, e.extras, e.given]
        for e in entries
    ]
    return zlib.compress(codec.dumps(rows), 1)


_ENTRIES = msgspec.json.Decoder(list[Entry])


def decode(raw: bytes) -> list[Entry]:
    """A chunk's entries: straight from its JSON into structs, a quarter of the CPU of
    building them from what ``orjson`` parsed (1.6 → 0.4 µs a recipient). A chunk that
    is not what ``encode`` writes today (``null`` extras) takes the long way."""
    # A chunk written before they were compressed is JSON: it starts with '['.
    text = raw if raw[:1] == b"[" else zlib.decompress(raw)
    try:
        return _ENTRIES.decode(text)
    except msgspec.ValidationError:
        return [Entry(row[0], row[1], row[2] or {}, *row[3:]) for row in codec.loads(text)]


async def save(redis: Any, sending_id: str, chunk: str, entries: Iterable[Entry]) -> None:
    """First write wins: a resubmission writes the same chunk again and changes nothing."""
    await redis.hsetnx(keys.chunks(sending_id), chunk, encode(entries))


async def load(redis: Any, sending_id: str, chunk: str) -> list[Entry] | None:
    raw = await load_encoded(redis, sending_id, chunk)
    return decode(raw) if raw is not None else None


async def load_encoded(redis: Any, sending_id: str, chunk: str) -> bytes | None:
    """The chunk as stored, a few bytes per recipient: decoded, it is a thousand times
    that (``worker.budget``)."""
    raw: bytes | None = await redis.hget(keys.chunks(sending_id), chunk)
    return raw


async def note_settled(redis: Any, sending_id: str, chunk: str, *, expires_s: float) -> None:
    """Every recipient of the chunk is final: the sweeper need not decode it again
    (``worker.sweeper``). A final record leaves its state only by a requeue, which
    clears every note of its sending in the same step (``ResultStore.reopen``)."""
    key = keys.settled_chunks(sending_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.sadd(key, chunk)
        pipe.expire(key, int(expires_s))
        await pipe.execute()


async def names(redis: Any, sending_id: str) -> list[str]:
    return [n.decode() for n in await redis.hkeys(keys.chunks(sending_id))]


# arq's ``ArqRedis.enqueue_job`` as one script: the same job, key, lifetime and score,
# written only when neither the job nor its result exists. arq's own takes three round
# trips (WATCH, EXISTS, then MULTI/EXEC), a third of what a submit waited on per chunk.
_LUA_ENQUEUE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""


async def enqueue(
    redis: Any, sending_id: str, chunk: str, *, expires_s: float, defer_s: float = 0
) -> bool:
    """Enqueue the chunk's job on ``redis`` (an ``ArqRedis``: its queue and serializer);
    False when a job with its id is already waiting or running, or its result is kept."""
    job_id = keys.chunk_job_id(sending_id, chunk)
    enqueued_ms = timestamp_ms()
    score = enqueued_ms + to_ms(defer_s) if defer_s else enqueued_ms
    job = serialize_job(
        CHUNK_FUNCTION, (sending_id, chunk), {}, None, enqueued_ms, serializer=redis.job_serializer
    )
    job_keys = [job_key_prefix + job_id, result_key_prefix + job_id, redis.default_queue_name]
    done = await redis.register_script(_LUA_ENQUEUE)(
        keys=job_keys,
        args=[to_ms(expires_s) or score - enqueued_ms + redis.expires_extra_ms, job, score, job_id],
    )
    return bool(done)
