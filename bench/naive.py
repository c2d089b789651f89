"""The naive baseline: one queued job per recipient, one HTTP call per job.

This is how a bulk send is usually first written as a Celery-style task queue:
the producer loops over the recipients and enqueues ``send_sms(to, ...)`` for
each (arq, JSON serializer), and each job makes one ``POST /api/rest/sms`` with
a single recipient. Nothing is recorded per recipient beyond arq's own job
result. It gets the same fair settings as the pipeline's workers: one shared,
pooled httpx client per worker, ``max_jobs`` 10 and the poll delay of the
pipeline's workers (arq's default, 500 ms, would make it look far worse than it is).

``bench/throughput.py`` imports ``enqueue`` and starts the workers as
subprocesses::

    python bench/naive.py worker --redis-url redis://127.0.0.1:6379/0 \
        --queue naive --provider-url http://127.0.0.1:8025

Credentials come from ``BULKSEND_PROVIDER_USERNAME`` / ``_API_PASSWORD`` (the
sandbox's by default), as for ``bulksend worker``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterable
from typing import Any

import httpx
from arq import Worker, create_pool
from arq.connections import RedisSettings

from jobs.settings import get_settings

TASK = "send_sms"


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def loads(data: bytes) -> Any:
    return json.loads(data)


async def send_sms(
    ctx: dict[str, Any], to: str, sender: str, message: str, sub: dict[str, str]
) -> str:
    """The task: one recipient, one provider call; returns the provider's message id."""
    client: httpx.AsyncClient = ctx["http"]
    body = {"to": [to], "from": sender, "message": message, "sub": [sub]}
    response = await client.post("/api/rest/sms", json=body)
    response.raise_for_status()
    return str(response.json()["result"][0]["id"])


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    ctx["http"] = httpx.AsyncClient(
        base_url=ctx["provider_url"], auth=settings.provider_auth, timeout=10.0
    )


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["http"].aclose()


def build_worker(
    redis_url: str, queue: str, provider_url: str, *, max_jobs: int = 10, poll_delay: float = 0.05
) -> Worker:
    return Worker(
        functions=[send_sms],
        queue_name=queue,
        redis_settings=RedisSettings.from_dsn(redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        ctx={"provider_url": provider_url},
        max_jobs=max_jobs,
        poll_delay=poll_delay,
        job_serializer=dumps,
        job_deserializer=loads,
    )


async def enqueue(
    redis_url: str,
    queue: str,
    sender: str,
    message: str,
    recipients: Iterable[tuple[str, dict[str, str]]],
) -> int:
    """The producer side: one job per recipient, enqueued one after the other."""
    pool = await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=dumps,
        job_deserializer=loads,
        default_queue_name=queue,
    )
    count = 0
    try:
        for to, sub in recipients:
            await pool.enqueue_job(TASK, to, sender, message, sub)
            count += 1
    finally:
        await pool.aclose()
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python bench/naive.py", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run one naive arq worker")
    worker.add_argument("--redis-url", required=True)
    worker.add_argument("--queue", required=True)
    worker.add_argument("--provider-url", required=True)
    worker.add_argument("--max-jobs", type=int, default=10)
    worker.add_argument("--poll-delay", type=float, default=0.05)
    args = parser.parse_args(argv)
    # The same logging as `bulksend worker` (arq logs every job at INFO).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    build_worker(
        args.redis_url,
        args.queue,
        args.provider_url,
        max_jobs=args.max_jobs,
        poll_delay=args.poll_delay,
    ).run()


if __name__ == "__main__":
    main()
