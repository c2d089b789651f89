"""What a worker process holds for its jobs, typed: one object instead of string keys in
arq's ``ctx``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from arq import Retry

from jobs import channels, codec, keys
from jobs.accounts import AccountGate
from jobs.results import ResultStore
from jobs.settings import Settings
from jobs.templating import TextRules
from worker.batching import Batcher
from worker.budget import RecipientBudget
from worker.rate_limit import RateLimiter

SPEC_CACHE_SIZE = 256
PREPARE_LOCK_S = 60
CTX_KEY = "bulksend"


@dataclass
class WorkerContext:
    settings: Settings
    redis: Any  # arq's ArqRedis: enqueues as well as reads and writes
    account: str
    store: ResultStore
    gate: AccountGate
    limiter: RateLimiter
    batcher: Batcher
    text_rules: TextRules
    call_budget_s: float  # the longest one provider call may take
    api: Any  # the messaging API as JSON in, JSON out (jobs.contacts.Api), for preparing
    budget: RecipientBudget  # recipients its runs hold in memory at once
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Chunk jobs this process runs now (``send_chunk`` counts them): its heartbeat says
    # it, so that a dashboard tells a busy worker from an idle one.
    running: int = 0

    @property
    def hooks(self) -> str | None:
        """The hook secret our notificationUrl carries (``jobs.events``), if hooks are on."""
        secret = self.settings.hook_secret
        return secret.get_secret_value() if secret is not None else None

    @property
    def job_expires_s(self) -> float:
        """How long an enqueued chunk job's payload is kept by arq."""
        return float(self.settings.result_ttl_days * 86400)

    async def spec(self, sending_id: str) -> dict[str, Any] | None:
        """A sending's spec, read once per worker: it never changes, and may carry
        attachments."""
        if sending_id not in self.specs:
            spec = await self.store.spec(sending_id)
            if spec is None:
                return None
            if len(self.specs) >= SPEC_CACHE_SIZE:
                self.specs.pop(next(iter(self.specs)))
            self.specs[sending_id] = spec
        return self.specs[sending_id]

    async def payload(self, sending_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        """The payload its calls are planned from: as submitted, or as its channel's
        ``prepare`` completed it — once per sending for all workers (a lock in Redis),
        kept in the sending's record."""
        prepare = channels.get(spec["kind"]).prepare
        if prepare is None:
            return dict(spec["payload"])
        if "prepared" in spec:
            return dict(spec["prepared"])
        key = keys.sending(sending_id)
        raw = await self.redis.hget(key, "prepared")
        if raw is None:
            lock = keys.prepare_lock(sending_id)
            if not await self.redis.set(lock, "1", nx=True, ex=PREPARE_LOCK_S):
                raise Retry(defer=0.5)  # another run is preparing it
            try:
                raw = await self.redis.hget(key, "prepared")
                if raw is None:
                    raw = codec.dumps(await prepare(self.api, spec["payload"]))
                    await self.redis.hset(key, "prepared", raw)
            finally:
                await self.redis.delete(lock)
        spec["prepared"] = codec.loads(raw)
        return dict(spec["prepared"])


def of(ctx: dict[str, Any]) -> WorkerContext:
    worker: WorkerContext = ctx[CTX_KEY]
    return worker
