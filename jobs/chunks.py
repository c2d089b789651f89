"""The chunk message: what a chunk job carries, and where a chunk's recipients live.

A job carries only ``(sending id, chunk name)``; the chunk's entries — each
``[index, to, extras]`` — are kept in the sending's ``bs:chunks`` hash, written
before the job is enqueued. So a chunk can be enqueued again by anyone at any
time (``resume``, the sweeper, a resubmission) without the job's arq payload,
which arq drops when its key expires or its tries run out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jobs import codec, keys

CHUNK_FUNCTION = "send_chunk"


@dataclass(frozen=True, slots=True)
class Entry:
    """One recipient of a chunk: its index in the sending, address, per-recipient params."""

    index: int
    to: str
    extras: dict[str, Any]


def encode(entries: Iterable[Entry]) -> bytes:
    return codec.dumps([[e.index, e.to, e.extras] for e in entries])


def decode(raw: bytes) -> list[Entry]:
    return [Entry(int(i), str(to), extras or {}) for i, to, extras in codec.loads(raw)]


async def save(redis: Any, sending_id: str, chunk: str, entries: Iterable[Entry]) -> None:
    """First write wins: a resubmission writes the same chunk again and changes nothing."""
    await redis.hsetnx(keys.chunks(sending_id), chunk, encode(entries))


async def load(redis: Any, sending_id: str, chunk: str) -> list[Entry] | None:
    raw = await redis.hget(keys.chunks(sending_id), chunk)
    return decode(raw) if raw is not None else None


async def names(redis: Any, sending_id: str) -> list[str]:
    return [n.decode() for n in await redis.hkeys(keys.chunks(sending_id))]


async def enqueue(
    redis: Any, sending_id: str, chunk: str, *, expires_s: float, defer_s: float = 0
) -> bool:
    """Enqueue the chunk's job; False when a job with its id is already waiting or running."""
    job = await redis.enqueue_job(
        CHUNK_FUNCTION,
        sending_id,
        chunk,
        _job_id=keys.chunk_job_id(sending_id, chunk),
        _expires=expires_s,
        _defer_by=defer_s or None,
    )
    return job is not None
