"""Small helpers shared by the pipeline tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from arq import Worker

from jobs import chunks
from jobs.chunks import Entry
from jobs.settings import Settings
from jobs.sms import Sms
from worker.main import build_worker


async def drain(settings: Settings, **overrides: Any) -> None:
    """Run an in-process arq worker until the queue is empty (burst mode)."""
    worker = build_worker(settings, burst=True, handle_signals=False, **overrides)
    try:
        await worker.async_run()
    finally:
        await worker.close()


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, **overrides: Any) -> AsyncIterator[Worker]:
    """An in-process worker running in the background for the duration of the block."""
    worker = build_worker(settings, handle_signals=False, **overrides)
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float = 60, what: str = "condition"
) -> None:
    """Poll ``check`` until true; fail the test (not hang it) after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


def set_faults(sandbox_url: str, **faults: Any) -> None:
    httpx.post(f"{sandbox_url}/_sandbox/faults", json=faults).raise_for_status()


def sandbox_stats(sandbox_url: str, channel: str = "sms") -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
    return dict(stats["channels"].get(channel, {"requests": 0, "recipients": 0, "duplicates": 0}))


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"3466{i:07d}" for i in range(start, start + n)]


async def enqueue_entries(
    redis: Any, sending_id: str, chunk: str, entries: list[tuple[int, str, dict[str, Any]]]
) -> None:
    """A chunk made by hand (recipients the producer would not make), enqueued as the
    producer enqueues its own."""
    await chunks.save(redis, sending_id, chunk, [Entry(i, to, x) for i, to, x in entries])
    await chunks.enqueue(redis, sending_id, chunk, expires_s=3600)


def mixed_sms(n: int, **fields: Any) -> Sms:
    """An SMS sending of ``n`` recipients where every path shows: one refused at submit
    (102), one refused at planning (more parts than allowed), one UCS-2, one of two GSM
    parts, the rest one GSM part."""
    to = numbers(n)
    to[3] = "12"  # refused at submit: 102
    names = [f"n{i}" for i in range(n)]
    names[10] = "x" * 400  # more parts than the sending allows: refused at planning
    names[11] = "Zoë"  # UCS-2
    names[12] = "y" * 200  # two GSM parts
    body = {"to": to, "from": "TEST", "message": "Hello {name}", "parts": 2,
            "sub": [{"name": name} for name in names], **fields}  # fmt: skip
    return Sms.model_validate(body)
