"""arq wiring: the worker's settings, start-up and shut-down.

Jobs are (de)serialized as JSON, never pickle. arq's own retry budget is set
out of reach on purpose: a chunk job decides for itself when to give up
(attempts per recipient, failed runs per chunk), and a job that arq dropped
would leave its recipients pending. On SIGTERM the worker stops taking jobs,
lets running ones finish (``job_completion_wait``) and waits for every call
on the wire to be recorded before it closes its HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from typing import Any

import anyio
from arq import Worker
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import func

from jobs import codec, connection, redis_safety
from jobs.accounts import AccountGate, account_id
from jobs.chunks import CHUNK_FUNCTION
from jobs.errors import ConfigurationError
from jobs.results import ResultStore
from jobs.settings import Settings, get_settings
from jobs.templating import TextRules
from worker.batching import Batcher
from worker.budget import RecipientBudget
from worker.context import CTX_KEY, WorkerContext, of
from worker.gateway import ProviderGateway
from worker.mail_api import MailClient
from worker.metrics import CallMetrics, heartbeat_forever, stop_heartbeat, worker_id
from worker.provider import ProviderClient
from worker.rate_limit import RateLimiter
from worker.sweeper import sweep_forever
from worker.tasks import send_chunk

ARQ_MAX_TRIES = 1_000_000_000  # never arq's call: see the module docstring
HEALTH_CHECK_INTERVAL_S = 30
# Chunks a worker holds for each provider connection, unless BULKSEND_WORKER_MAX_RECIPIENTS
# says: one on the wire, one read and planned (or being recorded) meanwhile. With one,
# both workers of a 2-core bench sat idle while the provider had all their calls queued;
# with two, their CPU overlapped its own: pipeline_vs_limit 0.50, 0.53, 0.51 → 0.57,
# 0.58, 0.55 taking turns (four: no better, and a bigger worker).
CHUNKS_PER_CONNECTION = 2
PICK_WINDOW = 100  # jobs a poll reads at a time past those other workers run
PICK_SCAN = 2000  # and how deep into the queue, at most
YOUNG_COLLECTION_AFTER = 10_000  # allocations between young collections (Python: 700)
OWN_PROCESS = "own_process"  # ctx flag: the process runs this worker and nothing else (``run``)
log = logging.getLogger("bulksend.worker")


async def startup(ctx: dict[str, Any]) -> None:
    """Refuse a Redis that evicts keys before anything runs (``jobs.redis_safety``: the
    ``UnsafeRedis`` goes up through ``Worker.run`` to the CLI's one line and exit code),
    then put the worker's clients together."""
    settings: Settings = ctx["settings"]
    redis = ctx["redis"]
    await redis_safety.check(redis, connection.display(settings.redis_url))
    provider = ProviderClient(
        settings.provider_url,
        settings.provider_auth,
        timeout=settings.provider_timeout,
        max_connections=settings.provider_max_connections,
    )
    account = account_id(settings)
    limiter = RateLimiter(
        redis, account, settings.rate_messages_per_second, settings.rate_requests_per_second
    )
    mail = MailClient(
        settings.mail_api_url,
        settings.mail_public_key.get_secret_value(),
        settings.mail_secret_key.get_secret_value(),
        timeout=settings.provider_timeout,
    )
    gateway = ProviderGateway(
        provider, mail, limiter, settings.provider_max_connections, CallMetrics(redis)
    )
    ctx["provider"] = provider
    ctx["mail"] = mail
    ctx[CTX_KEY] = WorkerContext(
        settings=settings,
        redis=redis,
        account=account,
        store=ResultStore(redis, ttl_seconds=settings.result_ttl_days * 86400),
        gate=AccountGate(redis, account, settings.hold_probe_interval),
        limiter=limiter,
        batcher=Batcher(gateway, settings.linger_ms / 1000, settings.chunk_size),
        text_rules=TextRules.from_settings(settings),
        call_budget_s=max(provider.call_budget_s, mail.call_budget_s),
        api=provider,
        budget=RecipientBudget(
            settings.worker_max_recipients
            or CHUNKS_PER_CONNECTION * settings.provider_max_connections * settings.chunk_size
        ),
    )
    ctx["sweeper"] = asyncio.create_task(sweep_forever(redis, settings))
    ctx["worker_id"] = me = worker_id()
    worker: WorkerContext = ctx[CTX_KEY]
    ctx["heartbeat"] = asyncio.create_task(
        heartbeat_forever(redis, settings.queue_name, me, lambda: worker.running)
    )
    _warm_up()
    if ctx.get(OWN_PROCESS):
        _tune_collector()


def _warm_up() -> None:
    """Load now what the first provider call would: httpcore's events load anyio's
    asyncio backend on first use, ~12 ms of imports in the first chunk's time (two
    workers' share of a 100,000-recipient sending was a few percent of its CPU).
    Before ``_tune_collector``, so that it is frozen with the rest of start-up."""
    anyio.Event()


def _tune_collector() -> None:
    """The cyclic collector, set for a process that runs a worker and nothing else.

    What start-up built (modules, schemas, clients) lives as long as the process: out
    of the collector's sight (``gc.freeze``), a full collection no longer walks it
    every time. Young collections then come every ``YOUNG_COLLECTION_AFTER`` allocations:
    a chunk run allocates thousands of short-lived objects, none in a cycle, and at
    Python's 700 a collection came every few recipients. In a worker sending 100,000
    recipients (``gc.callbacks``) the collector took 467 ms; frozen, ~250 ms (full
    collections 328 → 57 ms, RSS +2 MB); with young collections every 10,000 too,
    ~95 ms (RSS unchanged). Rarer was not better: at 100,000 a 1,000,000-recipient
    sending's worker peaked at 290 MB instead of 99, each provider response held in a
    cycle with its bytes until collected. ``ProviderClient._send`` leaves no such cycle
    now (100,000 then peaked at 100 MB), but saved nothing either: the worker collects
    some twenty times a 100,000-recipient sending. Garbage is collected first, so none
    is frozen. Only in a process of its own: in a host's, these are the host's."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, older, oldest)


async def shutdown(ctx: dict[str, Any]) -> None:
    sweeper: asyncio.Task[None] | None = ctx.get("sweeper")
    if sweeper is not None:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    if CTX_KEY in ctx:
        await of(ctx).batcher.close()
    if "worker_id" in ctx:
        settings: Settings = ctx["settings"]
        await stop_heartbeat(
            ctx.get("heartbeat"), ctx["redis"], settings.queue_name, ctx["worker_id"]
        )
    for client in (ctx.get("provider"), ctx.get("mail")):
        if client is not None:
            await client.aclose()


class ChunkWorker(Worker):
    """arq's worker, taking no more jobs than its runs have room for.

    A run waits for its share of the recipient budget (``worker.budget``) holding its
    job, which no other worker can take meanwhile. Taking every job it saw, one worker
    of two held most of a big sending's chunks while the other, its own done, idled
    (100 chunks shared 77 to 23). So a poll takes at most the chunks that fit in the
    budget's room (one at least), and none while a run of its own waits; arq's own
    limits and its refusal at shutdown hold as before.

    Nor does a poll stop at jobs another worker runs. arq reads the head of the queue
    and tries each job there in turn, four round trips for one already running
    elsewhere; and a running job stays at the head until it ends. So with two workers,
    each poll of one tried the other's forty running chunks and found nothing to take:
    two workers spent half as much again per recipient as one (12-13 µs against 8). A
    poll first drops the running ones (``_pickable``: one pipelined look), and reads on
    past them."""

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        await super().start_jobs(await self._pickable(job_ids))

    async def _pickable(self, job_ids: list[bytes]) -> list[bytes]:
        """Of the jobs a poll read, those no worker runs; read on past the running ones
        (``PICK_WINDOW`` at a time, ``PICK_SCAN`` deep at most) while the poll has fewer
        than it wanted and the queue goes on. arq's own claim still decides which of
        them this worker takes."""
        wanted = self.queue_read_limit
        pickable = await self._not_running(job_ids)
        offset, more = len(job_ids), len(job_ids) >= wanted
        while len(pickable) < wanted and more and offset < PICK_SCAN:
            job_ids = await self.pool.zrangebyscore(
                self.queue_name, min="-inf", max=timestamp_ms(), start=offset, num=PICK_WINDOW
            )
            pickable += await self._not_running(job_ids)
            offset, more = offset + len(job_ids), len(job_ids) == PICK_WINDOW
        return pickable[:wanted]

    async def _not_running(self, job_ids: list[bytes]) -> list[bytes]:
        if not job_ids:
            return []
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.exists(in_progress_key_prefix + job_id.decode())
            running = await pipe.execute()
        return [job_id for job_id, busy in zip(job_ids, running, strict=True) if not busy]

    def _room(self) -> tuple[int, bool] | None:
        """Chunks that fit in the budget now, and whether a run waits; None before
        start-up."""
        w: WorkerContext | None = self.ctx.get(CTX_KEY) if self.ctx else None
        if w is None:
            return None
        free = w.budget.limit - w.budget.used
        return max(free // w.settings.chunk_size, 1), w.budget.waiting

    @property
    def allow_pick_jobs(self) -> bool:
        room = self._room()
        return self._arq_allows and not (room is not None and room[1])

    @allow_pick_jobs.setter
    def allow_pick_jobs(self, allowed: bool) -> None:
        self._arq_allows = allowed

    @property
    def queue_read_limit(self) -> int:
        room = self._room()
        return self._read_limit if room is None else min(self._read_limit, room[0])

    @queue_read_limit.setter
    def queue_read_limit(self, limit: int) -> None:
        self._read_limit = limit


def build_worker(settings: Settings | None = None, **overrides: Any) -> Worker:
    settings = settings or get_settings()
    if not settings.redis_url:
        raise ConfigurationError("redis_url: the worker needs a Redis URL")
    options: dict[str, Any] = dict(
        functions=[func(send_chunk, name=CHUNK_FUNCTION, max_tries=ARQ_MAX_TRIES)],
        queue_name=settings.queue_name,
        redis_settings=connection.redis_settings(settings.redis_url),  # Sentinel too
        on_startup=startup,
        on_shutdown=shutdown,
        ctx={"settings": settings},
        max_jobs=settings.worker_max_jobs,
        job_timeout=settings.job_timeout,
        job_completion_wait=settings.job_timeout,
        max_tries=ARQ_MAX_TRIES,
        keep_result=0,  # our records are the results; a kept arq result would copy the chunk
        # arq's health-check key (``{queue}:health-check``) is what a container's
        # HEALTHCHECK reads (``bulksend healthcheck worker``): renewed this often, not hourly.
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        poll_delay=settings.worker_poll_delay,
        job_serializer=codec.dumps,
        job_deserializer=codec.loads,
    )
    options.update(overrides)
    return ChunkWorker(**options)


def run(settings: Settings | None = None) -> None:
    """Run one worker until SIGTERM/SIGINT: it drains (module docstring), then returns.

    Logs as ``BULKSEND_LOG_FORMAT`` says (``bulksend.logs``, which also keeps arq's
    INFO lines, every job's arguments, out: our own lines name sendings, not people)."""
    from bulksend import logs
    from jobs.errors import BulksendError

    settings = settings or get_settings()
    logs.configure(settings.log_format)
    worker = build_worker(settings, ctx={"settings": settings, OWN_PROCESS: True})
    log.info("worker started on queue %s", worker.queue_name)
    try:
        worker.run()
    except BulksendError:
        raise  # refused at start (e.g. a Redis that evicts): the CLI's one line and exit code
    except Exception:
        # arq's own loop failed (e.g. its health-check write refused by a full Redis): a
        # log line (JSON too) rather than a bare traceback; exit 1 for a restart.
        log.critical("worker failed on queue %s; exiting", worker.queue_name, exc_info=True)
        raise SystemExit(1) from None
    log.info("worker stopped on queue %s", worker.queue_name)
