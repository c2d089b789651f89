"""Several real worker processes on one sending: workers joining it and leaving it
(SIGTERM) halfway lose and duplicate nothing, and the account's rate limit holds
across all of them where it matters, at the provider's door.

Only correctness is asserted — the sandbox's counts, the sending's status, the
workers' exit codes and logs, and the sandbox's arrival log counted in windows of
its own clock; how fast a fleet goes is ``bench/scale.py``'s to measure.

Run: .venv/bin/pytest tests/test_fleet.py
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bulksend.stack import WorkerProcesses
from jobs.producer import Producer
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import numbers, sandbox_stats, set_faults, wait_until
from worker.metrics import read_workers

# What a worker logs when a chunk job ends (worker/tasks.py).
CHUNK_LINE = re.compile(rb"chunk \S+: (\d+) recipients in \d+ calls")


def sms(n: int) -> Sms:
    return Sms.model_validate(
        {
            "to": numbers(n),
            "from": "FLEET",
            "message": "Hi {i}",
            "sub": [{"i": i} for i in range(n)],
        }
    )


@pytest.fixture
def fleet(env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcesses]:
    """Workers logging to ``tmp_path``; whatever still runs is killed at the end."""
    workers = WorkerProcesses(env, log_dir=tmp_path)
    yield workers
    workers.kill()


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(settings.model_copy(update={"chunk_size": 50}))
    yield p
    await p.close()


def logged_recipients(workers: WorkerProcesses, index: int) -> int:
    """Recipients worker ``index``'s finished chunk jobs sent, by its log."""
    path = workers.log(index)
    assert path is not None
    text = path.read_bytes() if path.exists() else b""
    return sum(int(n) for n in CHUNK_LINE.findall(text))


async def test_workers_joining_and_leaving_mid_sending_lose_and_duplicate_nothing(
    env: dict[str, str],
    producer: Producer,
    settings: Settings,
    sandbox_url: str,
    fleet: WorkerProcesses,
) -> None:
    """One worker starts the sending; two join and take chunks; the first leaves with
    SIGTERM, then one of the joiners: each stops taking chunks, finishes those it
    holds and exits 0, all while the sending goes on."""
    total = 6000
    # A worker with one connection to a provider answering in 100 ms carries at most
    # 500 recipients/s: one alone would take 12 s, so there is time to join and leave.
    fleet.env = {
        **env,
        "BULKSEND_CHUNK_SIZE": "50",
        "BULKSEND_PROVIDER_MAX_CONNECTIONS": "1",
        "BULKSEND_WORKER_MAX_JOBS": "5",
    }
    set_faults(sandbox_url, latency_ms=100)
    moments: list[tuple[str, int]] = []  # what happened, recipients accepted by then

    async def accepted() -> int:
        status = await producer.status(sending_id)
        assert status is not None
        return int(status["counts"]["accepted"])

    async def moment(what: str) -> None:
        moments.append((what, await accepted()))

    async def alive() -> int:
        beats = await read_workers(producer.redis, settings.queue_name, time.time())
        return sum(beat.alive for beat in beats)

    async def stop(index: int) -> None:
        fleet[index].send_signal(signal.SIGTERM)
        await moment(f"SIGTERM worker {index}")
        assert await asyncio.to_thread(fleet[index].wait, 60) == 0  # drained, then exited

    def took_part(index: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return logged_recipients(fleet, index) > 0

        return check

    fleet.start(1)
    sending_id = await producer.submit(sms(total))

    async def started() -> bool:
        return await accepted() >= 300

    await wait_until(started, what="the first worker sending")
    await moment("2 workers join")
    fleet.start(2)

    async def three() -> bool:
        return await alive() == 3

    await wait_until(three, what="3 workers")
    for index in (1, 2):  # the joiners have finished a chunk each: they share the sending
        await wait_until(took_part(index), what=f"worker {index}'s chunk")
    await stop(0)
    await stop(1)
    status = await producer.wait(sending_id, timeout=120)

    for what, done in moments:
        assert 0 < done < total, (what, done)  # it all happened in the middle of it
    counts = status["counts"]
    assert counts["total"] == counts["accepted"] == total, counts
    assert {k: v for k, v in counts.items() if k not in ("total", "accepted") and v} == {}
    stats = sandbox_stats(sandbox_url)
    assert stats["recipients"] == stats["unique"] == total, stats
    assert stats["duplicates"] == 0
    shares = [logged_recipients(fleet, i) for i in range(3)]
    print(f"fleet: {moments}; recipients by worker (their logs) {shares}")
    assert all(shares)


async def test_rate_limit_holds_across_three_workers_at_the_providers_door(
    env: dict[str, str], settings: Settings, sandbox_url: str, fleet: WorkerProcesses
) -> None:
    """3 workers, 500 recipients/s for the account, calls of 100: in any window of W
    seconds the sandbox's arrival log shows at most 500 × W recipients plus one call."""
    rate, chunk, total = 500, 100, 3000
    fleet.env = {
        **env,
        "BULKSEND_CHUNK_SIZE": str(chunk),
        "BULKSEND_RATE_MESSAGES_PER_SECOND": str(rate),
    }
    producer = await Producer.connect(settings.model_copy(update={"chunk_size": chunk}))
    try:
        fleet.start(3)
        sending_id = await producer.submit(sms(total))
        status = await producer.wait(sending_id, timeout=120)
    finally:
        await producer.close()
    assert status["counts"]["accepted"] == total, status["counts"]
    stats = sandbox_stats(sandbox_url)
    assert stats["recipients"] == stats["unique"] == total
    for window in (1, 3):
        log: dict[str, Any] = httpx.get(
            f"{sandbox_url}/_sandbox/arrivals", params={"channel": "sms", "window": window}
        ).json()
        assert log["recipients"] == total
        assert log["largest"] <= chunk
        busiest = log["busiest"]["recipients"]
        assert busiest <= rate * window + log["largest"], (window, log["busiest"])
