"""What workers count for ``/metrics``, in Redis, so that every replica shows the same.

Per provider call, not per recipient: the gateway times each call and hands its
outcome here, and one pipelined round trip adds it to ``keys.METRICS``: the
call by endpoint and outcome code, its duration in a fixed bucket (and the sum
of durations), and the SMS parts the provider said it accepted, by encoding.
Recipients by kind and status are not counted here: the Lua of ``jobs.results``
moves them with each sending's own counters, so that every way a recipient ends
(refused at planning, expired, cancelled, 102 at submit) is counted exactly once.

Counting must never cost an outcome: the write is bounded in time and a failure
is logged and dropped, before the call's outcome is recorded.

Each worker also beats in ``keys.workers(queue)`` every ``HEARTBEAT_S``: arq's own
health check is one key per queue, overwritten by every worker and deleted by the
first one that stops, so it cannot tell how many are alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from typing import Any

from jobs import keys
from jobs.planning import Call
from worker.provider import Ambiguous, Reply

log = logging.getLogger("bulksend.worker")

# Seconds; a call longer than the last bound counts in +Inf only.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INF = "+Inf"
WRITE_TIMEOUT_S = 0.5  # a metrics write never holds up recording an outcome longer
HEARTBEAT_S = 5.0
ALIVE_S = 4 * HEARTBEAT_S  # a worker heard from within this is alive
FORGET_S = 86400.0  # a worker silent this long is dropped from the hash


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
    return sum(r.parts or 0 for r in outcome.results if r.accepted)


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
                await pipe.execute()
        except Exception as exc:
            log.warning("counting a provider call for /metrics failed: %s", exc)


def worker_id() -> str:
    """This worker, as ``keys.workers`` names it: host, pid and a token (one process may
    run several workers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def beat(redis: Any, queue_name: str, me: str) -> None:
    """Say this worker is alive; drop workers silent for ``FORGET_S``."""
    key = keys.workers(queue_name)
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(key, me, repr(now))
        pipe.hgetall(key)
        _, beats = await pipe.execute()
    gone = [w for w, at in beats.items() if float(at) < now - FORGET_S]
    if gone:
        await redis.hdel(key, *gone)


async def heartbeat_forever(redis: Any, queue_name: str, me: str) -> None:
    while True:
        try:
            await beat(redis, queue_name, me)
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
    return sum(1 for at in beats.values() if float(at) >= now - ALIVE_S)
