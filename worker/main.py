"""arq wiring: the worker's settings, start-up and shut-down.

Jobs are (de)serialized as JSON, never pickle. arq's own retry budget is set
high on purpose: attempts are counted per recipient by the task itself, which
then records ``failed``; if arq gave up first, recipients would be left pending.
On SIGTERM the worker stops taking jobs and lets running ones finish
(``job_completion_wait``) so in-flight calls are recorded before it exits.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq import Worker
from arq.connections import RedisSettings
from arq.worker import func

from jobs import codec
from jobs.accounts import AccountGate, account_id
from jobs.producer import CHUNK_FUNCTION
from jobs.results import ResultStore
from jobs.settings import Settings, get_settings
from jobs.templating import TextRules
from worker.batching import Batcher
from worker.planning import Call
from worker.provider import ProviderClient, Reply
from worker.rate_limit import RateLimiter
from worker.tasks import send_chunk

ARQ_MAX_TRIES = 1000
log = logging.getLogger("bulksend.worker")


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    ctx["store"] = ResultStore(ctx["redis"], ttl_seconds=settings.result_ttl_days * 86400)
    ctx["provider"] = ProviderClient(
        settings.provider_url,
        settings.provider_auth,
        timeout=settings.provider_timeout,
        max_connections=settings.provider_max_connections,
    )
    account = account_id(settings)
    ctx["gate"] = AccountGate(ctx["redis"], account, settings.hold_probe_interval)
    limiter = ctx["limiter"] = RateLimiter(
        ctx["redis"],
        account,
        settings.rate_messages_per_second,
        settings.rate_requests_per_second,
    )
    provider: ProviderClient = ctx["provider"]
    slots = asyncio.Semaphore(settings.provider_max_connections)

    async def send(endpoint: str, call: Call) -> Reply:
        async with slots:  # at most this many provider calls at once per worker
            await limiter.acquire(len(call.entries))
            return await provider.post(endpoint, call.request_body())

    ctx["batcher"] = Batcher(send, settings.linger_ms / 1000, settings.chunk_size)
    ctx["text_rules"] = TextRules.from_settings(settings)


async def shutdown(ctx: dict[str, Any]) -> None:
    provider: ProviderClient | None = ctx.get("provider")
    if provider is not None:
        await provider.aclose()


def build_worker(settings: Settings | None = None, **overrides: Any) -> Worker:
    settings = settings or get_settings()
    if not settings.redis_url:
        raise ValueError("the worker needs a Redis URL")
    options: dict[str, Any] = dict(
        functions=[func(send_chunk, name=CHUNK_FUNCTION, max_tries=ARQ_MAX_TRIES)],
        queue_name=settings.queue_name,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        ctx={"settings": settings},
        max_jobs=settings.worker_max_jobs,
        job_timeout=settings.job_timeout,
        job_completion_wait=settings.job_timeout,
        max_tries=ARQ_MAX_TRIES,
        keep_result=0,  # our records are the results; a kept arq result would copy the chunk
        poll_delay=settings.worker_poll_delay,
        job_serializer=codec.dumps,
        job_deserializer=codec.loads,
    )
    options.update(overrides)
    return Worker(**options)


def run(settings: Settings | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # arq logs every job's arguments at INFO: recipients and their sub values.
    # Personal data stays out of the logs; our own lines name sendings, not people.
    logging.getLogger("arq.worker").setLevel(logging.WARNING)
    worker = build_worker(settings)
    log.info("worker started on queue %s", worker.queue_name)
    worker.run()
