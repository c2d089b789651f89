"""What workers count for ``/metrics``, in Redis, so that every replica shows the same.

Per provider call, not per recipient: the gateway times each call and hands its
outcome here, and one pipelined round trip adds it to ``keys.METRICS``: the
call by endpoint and outcome code, its duration in a fixed bucket (and the sum
of durations), and the SMS parts the provider said it accepted, by encoding.
Recipients by kind and status are not counted here: the Lua of ``jobs.results``
moves them with each sending's own counters, so that every way a recipient ends
(refused at planning, expired, cancelled, 102 at submit) is counted exactly once.

The same round trip adds the call to its 10-second bucket (``keys.series``):
recipients accepted and errors, what a live chart of the last hour draws
(``read_series``). Buckets by wall-clock time, so that every worker adds to the
same one, and each expires on its own: no trimming, nothing that grows.

Counting must never cost an outcome: the write is bounded in time and a failure
is logged and dropped, before the call's outcome is recorded.

Each worker also beats in ``keys.workers(queue)`` every ``HEARTBEAT_S``: arq's own
health check is one key per queue, overwritten by every worker and deleted by the
first one that stops, so it cannot tell how many are alive. A beat says when, and
how many chunk jobs the worker runs (``read_workers``); a bare epoch, what older
workers wrote, still counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobs import codec, keys
from jobs.planning import Call
from worker.provider import Accepted, Ambiguous, Reply

log = logging.getLogger("bulksend.worker")

# Seconds; a call longer than the last bound counts in +Inf only.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INF = "+Inf"
WRITE_TIMEOUT_S = 0.5  # a metrics write never holds up recording an outcome longer
HEARTBEAT_S = 5.0
ALIVE_S = 4 * HEARTBEAT_S  # a worker heard from within this is alive
FORGET_S = 86400.0  # a worker silent this long is dropped from the hash
SERIES_STEP_S = 10  # the width of a bucket of ``keys.series``
SERIES_KEEP_S = 2 * 3600  # how long a bucket is kept


def code_of(outcome: Reply | BaseException) -> str:
    """The ``code`` label of a call: the provider's error code, ``0`` for a 2xx answer,
    ``http_<status>`` for a status without one, or what became of the request."""
    if isinstance(outcome, Reply):
        if 200 <= outcome.http_status < 300:
            return "0"
        if outcome.code is not None:
            return str(outcome.code)
        return f"http_{outcome.http_status}"
    if isinstance(outcome, Ambiguous):
        return "ambiguous"
    return "not_sent"  # NotSent, or anything else the batcher treats as not sent


def bucket_of(seconds: float) -> str:
    """The ``le`` of the smallest bucket a duration fits in."""
    for bound in BUCKETS:
        if seconds <= bound:
            return le(bound)
    return INF


def le(bound: float) -> str:
    return f"{bound:g}"


def parts_billed(call: Call, outcome: Reply | BaseException) -> int:
    """SMS parts of the recipients the provider answered it accepted."""
    if call.encoding is None or not isinstance(outcome, Reply) or outcome.results is None:
        return 0
    if isinstance(outcome.results, Accepted):  # its columns, not a reply per recipient
        return sum(parts or 0 for parts in outcome.results.parts)
    return sum(r.parts or 0 for r in outcome.results if r.accepted)


def series_counts(call: Call, outcome: Reply | BaseException) -> dict[str, int]:
    """What one call adds to its bucket of ``keys.series``: the recipients the provider
    accepted, and errors — the call itself when it was no plain success, and each
    recipient a 207 refused."""
    accepted, errors = 0, int(code_of(outcome) != "0")
    if isinstance(outcome, Reply):
        if isinstance(outcome.results, Accepted):
            accepted = len(outcome.results)
        elif outcome.results is not None:
            accepted = sum(1 for r in outcome.results if r.accepted)
            errors += len(outcome.results) - accepted
        elif 200 <= outcome.http_status < 300:
            accepted = len(call.entries)
    return {name: n for name, n in (("accepted", accepted), ("errors", errors)) if n}


def series_bucket(epoch: float) -> int:
    """The start of the bucket ``epoch`` falls in."""
    return int(epoch) // SERIES_STEP_S * SERIES_STEP_S


class CallMetrics:
    """A worker's counting of its provider calls, in ``keys.METRICS``."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def observe(
        self, endpoint: str, call: Call, outcome: Reply | BaseException, seconds: float
    ) -> None:
        """Count one call: one round trip, never raises."""
        counts = {
            keys.metrics_field(keys.METRICS_REQUESTS, code_of(outcome), endpoint): 1,
            keys.metrics_field(keys.METRICS_LATENCY, bucket_of(seconds), endpoint): 1,
        }
        parts = parts_billed(call, outcome)
        if parts and call.encoding is not None:
            counts[keys.metrics_field(keys.METRICS_PARTS, call.encoding)] = parts
        series_key = keys.series(series_bucket(time.time()))
        try:
            async with (
                asyncio.timeout(WRITE_TIMEOUT_S),
                self.redis.pipeline(transaction=False) as pipe,
            ):
                for name, n in counts.items():
                    pipe.hincrby(keys.METRICS, name, n)
                pipe.hincrbyfloat(
                    keys.METRICS, keys.metrics_field(keys.METRICS_LATENCY_SUM, endpoint), seconds
                )
                for name, n in series_counts(call, outcome).items():
                    pipe.hincrby(series_key, name, n)
                pipe.expire(series_key, SERIES_KEEP_S)
                await pipe.execute()
        except Exception as exc:
            log.warning("counting a provider call for /metrics failed: %s", exc)


async def read_series(
    redis: Any, now: float, seconds: int = 3600
) -> list[tuple[int, float, float]]:
    """``(bucket start, accepted/s, errors/s)`` for every bucket of the ``seconds`` up to
    ``now``, oldest first, zeros where no call was counted: one round trip. The last
    bucket is the one still filling."""
    last = series_bucket(now)
    count = max(-(-seconds // SERIES_STEP_S), 1)
    starts = [last - SERIES_STEP_S * i for i in range(count - 1, -1, -1)]
    async with redis.pipeline(transaction=False) as pipe:
        for start in starts:
            pipe.hmget(keys.series(start), ["accepted", "errors"])
        rows = await pipe.execute()
    return [
        (start, int(accepted or 0) / SERIES_STEP_S, int(errors or 0) / SERIES_STEP_S)
        for start, (accepted, errors) in zip(starts, rows, strict=True)
    ]


def worker_id() -> str:
    """This worker, as ``keys.workers`` names it: host, pid and a token (one process may
    run several workers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def parse_beat(raw: bytes | str) -> tuple[float, int]:
    """``(epoch, chunk jobs running)`` of a heartbeat: JSON ``{"at", "running"}``, or
    the bare epoch older workers write (running: 0, they did not say)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    if not text.startswith("{"):
        return float(text), 0
    beat = codec.loads(text)
    return float(beat["at"]), int(beat.get("running", 0))


async def beat(redis: Any, queue_name: str, me: str, running: int = 0) -> None:
    """Say this worker is alive and runs ``running`` chunk jobs; drop workers silent for
    ``FORGET_S``."""
    key = keys.workers(queue_name)
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(key, me, codec.dumps({"at": now, "running": running}))
        pipe.hgetall(key)
        _, beats = await pipe.execute()
    gone = [w for w, raw in beats.items() if parse_beat(raw)[0] < now - FORGET_S]
    if gone:
        await redis.hdel(key, *gone)


async def heartbeat_forever(
    redis: Any, queue_name: str, me: str, running: Callable[[], int] = lambda: 0
) -> None:
    """Beat every ``HEARTBEAT_S`` with what ``running()`` says then."""
    while True:
        try:
            await beat(redis, queue_name, me, running())
        except Exception as exc:  # Redis away for a while: the next beat tries again
            log.warning("worker heartbeat failed: %s", exc)
        await asyncio.sleep(HEARTBEAT_S)


async def stop_heartbeat(task: asyncio.Task[None] | None, redis: Any, queue: str, me: str) -> None:
    """Stop beating and leave the hash: a worker that stopped is not alive."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with contextlib.suppress(Exception):
        await redis.hdel(keys.workers(queue), me)


def alive(beats: dict[bytes, bytes], now: float) -> int:
    """Workers heard from within ``ALIVE_S`` of ``now``."""
    return sum(1 for raw in beats.values() if parse_beat(raw)[0] >= now - ALIVE_S)


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """One worker as its last heartbeat tells it."""

    host: str
    pid: int
    running: int  # chunk jobs it ran at its last beat
    last_beat: float  # epoch seconds
    alive: bool  # heard from within ALIVE_S


def workers_of(beats: dict[bytes, bytes], now: float) -> list[WorkerBeat]:
    """The workers a ``keys.workers`` hash (as read) tells of, by host and pid."""
    found = []
    for field, raw in beats.items():
        host, pid, _token = field.decode().rsplit(":", 2)
        at, running = parse_beat(raw)
        found.append(WorkerBeat(host, int(pid), running, at, at >= now - ALIVE_S))
    return sorted(found, key=lambda w: (w.host, w.pid))


async def read_workers(redis: Any, queue_name: str, now: float) -> list[WorkerBeat]:
    """Every worker in ``keys.workers(queue_name)`` (those silent up to ``FORGET_S``
    too, not alive), by host and pid."""
    return workers_of(await redis.hgetall(keys.workers(queue_name)), now)
