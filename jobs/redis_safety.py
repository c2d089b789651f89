"""What a Redis must be like for bulksend, and what it is when it is full.

Redis holds everything not yet sent and every result: the queued chunk jobs,
each sending, each recipient's record. Three things follow.

**It must never evict a key.** ``maxmemory-policy noeviction`` is the only
policy accepted: an ``allkeys-*`` policy evicts any key — a queued job, a
sending's records, a suppression list — and a ``volatile-*`` one evicts keys
with a TTL, which is exactly where losing them hurts: arq's job keys carry one
(a chunk's job expires after ``BULKSEND_RESULT_TTL_DAYS``), and so do a finished
sending's records, kept that long for its report. The policy is refused even
with ``maxmemory 0`` (no limit, nothing evicted today): a managed Redis sets a
limit, and one set later with ``CONFIG SET`` would start losing work with nobody
told. It is read from ``INFO memory``, which answers where ``CONFIG`` is
disabled or renamed (managed Redis); workers (``worker.main.startup``) and
``serve`` (``web.app.create_app``, then ``/readyz``) refuse such a Redis with one
line (``UnsafeRedis``), and so does a submit.

**Results hashes should stay compact.** A final record is ~150 bytes; a results
hash keeps its compact encoding only while every value is at most
``hash-max-listpack-value`` (``hash-max-ziplist-value`` before Redis 7; 64 by
default). Below ``keys.RESULTS_VALUE_BYTES`` everything works and results take
about twice the memory: a warning, not a refusal, and no word at all where
``CONFIG`` is not permitted.

**A full Redis refuses writes.** Under ``noeviction`` at ``maxmemory`` every
command that may grow memory fails with ``OOM command not allowed`` (deleting
still works). ``is_out_of_memory`` recognises it, however it arrives (a command,
a pipeline, a Lua script); ``Memory`` is what ``INFO memory`` says of the room
left, for a producer's preflight (``jobs.producer``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from redis.exceptions import OutOfMemoryError, ResponseError

from jobs import keys
from jobs.errors import UnsafeRedis

__all__ = [
    "SAFE_POLICY",
    "Memory",
    "check",
    "check_sync",
    "eviction_problem",
    "is_out_of_memory",
    "listpack_warning",
    "mib",
    "read_memory",
]

SAFE_POLICY: Final = "noeviction"
_OOM: Final = "OOM command not allowed"  # Redis's reply, in a script's error too
# Redis 7 names it listpack (the ziplist name stays as an alias); Redis 6 knows only ziplist.
_VALUE_SETTINGS: Final = ("hash-max-listpack-value", "hash-max-ziplist-value")
log = logging.getLogger("bulksend.redis")


def mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


@dataclass(frozen=True, slots=True)
class Memory:
    """What ``INFO memory`` says: the eviction policy and the room left.

    ``used`` is what Redis compares with ``maxmemory`` before a write (the AOF and
    replication buffers, ``mem_not_counted_for_evict``, left out); ``maxmemory`` 0
    is no limit."""

    policy: str
    used: int
    maxmemory: int

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> Memory:
        used = int(info.get("used_memory", 0)) - int(info.get("mem_not_counted_for_evict", 0))
        return cls(
            policy=str(info.get("maxmemory_policy", "unknown")),
            used=max(used, 0),
            maxmemory=int(info.get("maxmemory", 0)),
        )

    @property
    def limited(self) -> bool:
        return self.maxmemory > 0

    def describe(self) -> str:
        """``used 3.9 MiB of maxmemory 4.0 MiB``, for a message."""
        return f"used {mib(self.used)} of maxmemory {mib(self.maxmemory)}"


def eviction_problem(memory: Memory, where: str) -> str | None:
    """The one line that refuses this Redis, or None when it never evicts a key."""
    if memory.policy == SAFE_POLICY:
        return None
    return (
        f"Redis at {where} has maxmemory-policy {memory.policy}: it evicts keys, which "
        f"loses queued jobs and results; set maxmemory-policy {SAFE_POLICY}"
    )


def listpack_warning(value: int | None, where: str) -> str | None:
    """The warning for a ``hash-max-listpack-value`` below what results need, if any."""
    if value is None or value >= keys.RESULTS_VALUE_BYTES:
        return None
    return (
        f"Redis at {where} has hash-max-listpack-value {value} (hash-max-ziplist-value "
        f"before Redis 7): a result record is ~150 bytes, so results take about twice the "
        f"memory; set it to {keys.RESULTS_VALUE_BYTES}"
    )


def _value_setting(found: Mapping[Any, Any]) -> int | None:
    for raw in found.values():
        try:
            return int(raw)
        except (TypeError, ValueError):
            return None
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing a write at ``maxmemory`` (``noeviction``).

    redis-py raises ``OutOfMemoryError`` for a command or a pipeline, but a Lua
    script's refused write comes back as a plain ``ResponseError`` naming it."""
    return isinstance(exc, OutOfMemoryError) or (
        isinstance(exc, ResponseError) and _OOM in str(exc)
    )


async def read_memory(client: Any) -> Memory | None:
    """``INFO memory`` of ``client`` (an asyncio Redis); None when INFO is not permitted
    (an ACL). A Redis that does not answer raises, as any command would."""
    try:
        info = await client.info("memory")
    except ResponseError:
        return None
    return Memory.from_info(info)


async def check(client: Any, where: str) -> Memory | None:
    """Refuse a Redis that evicts (``UnsafeRedis``, one line) and warn of one whose
    hashes stay compact only below ``keys.RESULTS_VALUE_BYTES``; what ``INFO memory``
    said, or None when it was not permitted (then a warning says the policy is
    unchecked). ``where``: the Redis as a message names it (``connection.display``)."""
    memory = await read_memory(client)
    _judge(memory, where)
    for name in _VALUE_SETTINGS:
        try:
            found = await client.config_get(name)
        except ResponseError:  # CONFIG disabled, renamed or not permitted: say nothing
            return memory
        if found:
            _warn(listpack_warning(_value_setting(found), where))
            break
    return memory


def check_sync(client: Any, where: str) -> Memory | None:
    """``check`` with a synchronous client (``redis.Redis``), for a check before an event
    loop runs."""
    try:
        memory = Memory.from_info(client.info("memory"))
    except ResponseError:
        memory = None
    _judge(memory, where)
    for name in _VALUE_SETTINGS:
        try:
            found = client.config_get(name)
        except ResponseError:
            return memory
        if found:
            _warn(listpack_warning(_value_setting(found), where))
            break
    return memory


def _judge(memory: Memory | None, where: str) -> None:
    if memory is None:
        log.warning(
            "Redis at %s refused INFO: its maxmemory-policy cannot be checked; it must be %s",
            where,
            SAFE_POLICY,
        )
        return
    problem = eviction_problem(memory, where)
    if problem is not None:
        raise UnsafeRedis(problem)


def _warn(message: str | None) -> None:
    if message is not None:
        log.warning("%s", message)
