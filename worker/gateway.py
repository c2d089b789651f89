"""A worker's way to the provider: a connection slot, a rate-limit turn, then the call.

The slot bounds concurrent calls per worker (``BULKSEND_PROVIDER_MAX_CONNECTIONS``);
the turn is the account's shared rate limit. Both waits end at the caller's
deadline with ``NoTurn``, so waiting never runs a job into its timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from jobs import channels
from jobs.planning import Call
from worker.mail_api import MailClient
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
    ) -> None:
        self.provider = provider
        self.mail = mail
        self.limiter = limiter
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
        if call.api == "mail":
            return await self.mail.upload(path, call.request_body(), len(call.entries))
        results_of = channels.get(call.kind).results_of
        return await self.provider.post(path, call.request_body(), results_of)
