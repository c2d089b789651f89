"""What a worker process holds for its jobs, typed: one object instead of string keys in
arq's ``ctx``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobs.accounts import AccountGate
from jobs.results import ResultStore
from jobs.settings import Settings
from jobs.templating import TextRules
from worker.batching import Batcher
from worker.rate_limit import RateLimiter

SPEC_CACHE_SIZE = 256
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
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)

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


def of(ctx: dict[str, Any]) -> WorkerContext:
    worker: WorkerContext = ctx[CTX_KEY]
    return worker
