"""Workers killed or stopped mid-sending, and a Redis restart: nothing lost, nothing resent."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bulksend.redis_server import RedisServer
from bulksend.stack import WorkerProcesses
from jobs.producer import Producer
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import drain, numbers, sandbox_stats, set_faults, wait_until


def sms(n: int, text: str = "Hi") -> Sms:
    return Sms.model_validate(
        {
            "to": numbers(n),
            "from": "T",
            "message": text + " {i}",
            "sub": [{"i": i} for i in range(n)],
        }
    )


@pytest.fixture
def crash_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "BULKSEND_CHUNK_SIZE": "50", "BULKSEND_JOB_TIMEOUT": "6"}


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(settings.model_copy(update={"chunk_size": 50}))
    yield p
    await p.close()


@pytest.fixture
def spawn(crash_env: dict[str, str]) -> Iterator[WorkerProcesses]:
    workers = WorkerProcesses(crash_env)
    yield workers
    workers.kill()


async def counts(producer: Producer, sending_id: str) -> dict[str, int]:
    status = await producer.status(sending_id)
    assert status is not None
    return dict(status["counts"])


async def test_sigterm_drains_in_flight_calls_then_exits(
    producer: Producer,
    crash_env: dict[str, str],
    sandbox_url: str,
    spawn: WorkerProcesses,
) -> None:
    set_faults(sandbox_url, latency_ms=400)
    sending_id = await producer.submit(sms(500))
    [worker] = spawn.start()

    async def in_flight() -> bool:
        return (await counts(producer, sending_id))["sending"] > 0

    await wait_until(in_flight)
    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 30) == 0
    after = await counts(producer, sending_id)
    assert after["sending"] == 0 and after["unknown"] == 0  # every in-flight call was recorded
    assert after["accepted"] > 0
    set_faults(sandbox_url)
    spawn.start()
    await producer.wait(sending_id, timeout=60)
    final = await counts(producer, sending_id)
    assert final["accepted"] == 500
    assert sandbox_stats(sandbox_url)["duplicates"] == 0


async def test_sigkill_mid_call_reruns_elsewhere_and_only_the_calls_in_flight_are_unknown(
    producer: Producer,
    crash_env: dict[str, str],
    sandbox_url: str,
    spawn: WorkerProcesses,
) -> None:
    set_faults(sandbox_url, latency_ms=3000)
    sending_id = await producer.submit(sms(300))  # 6 chunks of 50
    victim_env = {**crash_env, "BULKSEND_WORKER_MAX_JOBS": "2"}  # 2 chunks in flight at a time
    [victim] = spawn.start(env=victim_env)

    async def two_calls_in_flight() -> bool:
        return (await counts(producer, sending_id))["sending"] == 100

    await wait_until(two_calls_in_flight)
    in_flight = {
        r["to"] async for r in producer.store.iter_results(sending_id) if r["status"] == "sending"
    }
    victim.kill()
    victim.wait()
    set_faults(sandbox_url)
    spawn.start()
    status = await producer.wait(sending_id, timeout=90)
    final = status["counts"]
    assert (final["accepted"], final["unknown"], final["failed"]) == (200, 100, 0)
    unknown = {
        r["to"] async for r in producer.store.iter_results(sending_id) if r["status"] == "unknown"
    }
    assert unknown == in_flight  # exactly the calls that were in flight, nothing else
    assert sandbox_stats(sandbox_url)["duplicates"] == 0  # none of them resent


async def test_redis_restart_with_aof_loses_no_job_or_result(
    tmp_path: Path, sandbox_url: str, settings: Settings
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    local = settings.model_copy(update={"redis_url": server.url, "chunk_size": 10})
    try:
        producer = await Producer.connect(local)
        done_id = await producer.submit(sms(20))
        await drain(local)
        waiting_id = await producer.submit(sms(30, "Later"))  # queued, not yet sent
        before = [await producer.status(i) for i in (done_id, waiting_id)]
        await producer.close()
        server.stop()  # clean shutdown: AOF flushed

        server.start()  # same data directory, new process (and port)
        local = local.model_copy(update={"redis_url": server.url})
        producer = await Producer.connect(local)
        after = [await producer.status(i) for i in (done_id, waiting_id)]
        assert [s and s["counts"] for s in after] == [s and s["counts"] for s in before]
        assert len([r async for r in producer.store.iter_results(done_id)]) == 20
        await drain(local)  # the queued chunk jobs survived the restart
        status = await producer.status(waiting_id)
        assert status is not None and status["counts"]["accepted"] == 30
        await producer.close()
    finally:
        server.stop()
    stats = httpx.get(f"{sandbox_url}/_sandbox/stats").json()["channels"]["sms"]
    assert stats["recipients"] == 50 and stats["duplicates"] == 0
