"""Small helpers shared by the pipeline tests."""

from __future__ import annotations

from typing import Any

import httpx

from jobs.settings import Settings
from worker.main import build_worker


async def drain(settings: Settings, **overrides: Any) -> None:
    """Run an in-process arq worker until the queue is empty (burst mode)."""
    worker = build_worker(settings, burst=True, handle_signals=False, **overrides)
    try:
        await worker.async_run()
    finally:
        await worker.close()


def sandbox_stats(sandbox_url: str, channel: str = "sms") -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
    return dict(stats["channels"].get(channel, {"requests": 0, "recipients": 0, "duplicates": 0}))


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"3466{i:07d}" for i in range(start, start + n)]
