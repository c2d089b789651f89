"""A worker's way to the provider: a connection slot, a rate-limit turn, then the call.

The slot bounds concurrent calls per worker (``BULKSEND_PROVIDER_MAX_CONNECTIONS``);
the turn is the account's shared rate limit. Both waits end at the caller's
deadline with ``NoTurn``, so waiting never runs a job into its timeout.

Every provider call a worker makes is ``post``: it is timed and counted here
(``worker.metrics``, one Redis round trip), whatever its outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from jobs import channels
from jobs.planning import Call
from worker.mail_api import MailClient
from worker.metrics import CallMetrics
from worker.provider import ProviderClient, Reply
from worker.rate_limit import NoTurn, RateLimiter

SLOT_RETRY_S = 0.5  # how soon to come back when every connection slot stayed busy


class ProviderGateway:
    def __init__(
        self,
        provider: ProviderClient,
        mail: MailClient,
        limiter: RateLimiter,
        max_connections: int,
        metrics: CallMetrics | None = None,
    ) -> None:
        self.provider = provider
        self.mail = mail
        self.limiter = limiter
        self.metrics = metrics
        self._slots = asyncio.Semaphore(max_connections)

    @asynccontextmanager
    async def turn(self, cost: int, deadline: float) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                await self._slots.acquire()
        except TimeoutError:
            raise NoTurn(SLOT_RETRY_S) from None
        try:
            await self.limiter.acquire(cost, deadline)
            yield
        finally:
            self._slots.release()

    async def post(self, endpoint: str, call: Call) -> Reply:
        path = call.endpoint or endpoint
        started = time.perf_counter()
        try:
            reply = await self._post(path, call)
        except Exception as exc:
            await self._count(path, call, exc, started)
            raise
        await self._count(path, call, reply, started)
        return reply

    async def _count(
        self, path: str, call: Call, outcome: Reply | Exception, started: float
    ) -> None:
        if self.metrics is not None:
            await self.metrics.observe(path, call, outcome, time.perf_counter() - started)

    async def _post(self, path: str, call: Call) -> Reply:
        if call.api == "mail":
            return await self.mail.upload(path, call.request_body(), len(call.entries))
        results_of = channels.get(call.kind).results_of
        return await self.provider.post(path, call.request_body(), results_of)
