"""How many recipients a worker's runs hold in memory at once.

A worker runs up to ``BULKSEND_WORKER_MAX_JOBS`` chunk jobs at once, so that many
small jobs can share a provider call. A big sending queues a thousand chunks of
a thousand recipients: each run that starts decodes its chunk and builds a record
per recipient, about a megabyte, and then mostly waits for a connection. How
many did so at once depended on how fast the rest went, and the worker's peak
RSS with it (issue 6 holds it under 150 MB). A run takes its share of this
budget before it decodes its chunk, so the bound is by design: what it does not
need once decoded it gives back at once, and a run that waits too long goes back
to the queue rather than count against its job's time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Held:
    """One run's share of the budget."""

    def __init__(self, budget: RecipientBudget, n: int) -> None:
        self._budget = budget
        self.n = n

    def resize(self, n: int) -> None:
        """The run holds ``n`` now that it knows: the rest goes back at once; more (a
        chunk bigger than the guess) is taken without waiting, so no run waits while it
        holds a share."""
        n = min(max(n, 0), self._budget.limit)
        self._budget._used += n - self.n
        self.n = n
        self._budget._wake()


class NoRoom(Exception):
    """No share of the budget came in time: the run goes back to the queue."""


class RecipientBudget:
    """A weighted semaphore. Whoever fits goes at once, so a one-recipient job does not
    wait behind big chunks for room it does not need; those that wait are served in
    order. A stream of small jobs cannot starve a waiting chunk: ``max_jobs`` of them
    hold a few recipients, far less than the budget."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def used(self) -> int:
        return self._used

    @property
    def waiting(self) -> bool:
        """A run waits for its share: this worker has more jobs than it has room for."""
        return any(not ready.done() for _, ready in self._waiting)

    @asynccontextmanager
    async def hold(self, n: int, *, wait_s: float) -> AsyncIterator[Held]:
        """Hold ``n`` recipients (at most the whole budget: a chunk bigger than it runs
        alone) for the block; ``NoRoom`` after ``wait_s`` without them."""
        n = min(max(n, 0), self.limit)
        if self._used + n > self.limit:
            ready = asyncio.get_running_loop().create_future()
            self._waiting.append((n, ready))
            try:
                async with asyncio.timeout(wait_s):
                    await ready
            except BaseException as exc:
                if ready.done() and not ready.cancelled():
                    self._used -= n  # granted just as it gave up: give it back
                else:
                    ready.cancel()
                self._wake()
                if isinstance(exc, TimeoutError):
                    raise NoRoom(f"no room for {n} recipients within {wait_s:g}s") from None
                raise
        else:
            self._used += n
        held = Held(self, n)
        try:
            yield held
        finally:
            self._used -= held.n
            self._wake()

    def _wake(self) -> None:
        while self._waiting:
            n, ready = self._waiting[0]
            if ready.cancelled():
                self._waiting.popleft()
                continue
            if self._used + n > self.limit:
                return
            self._waiting.popleft()
            self._used += n
            ready.set_result(None)
