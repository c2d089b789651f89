"""Micro-batching and the turn to call: every provider call a worker makes goes through here.

Services that submit one-recipient jobs (OTPs, notifications) would otherwise
cost one HTTP request each. Calls whose body is the same but for the recipients
(same channel, account, sender, text template, options, encoding, parts and
per-recipient field names) are merged until the batch is full or
``BULKSEND_LINGER_MS`` has passed since the first one arrived, so no call waits
longer than the window.

A batch then waits for its *turn* (a connection slot and the shared rate
limit), and only then are its recipients *claimed* — marked ``sending`` by a
compare-and-set — so a recipient is ``sending`` only while its request is on
the wire; waiting for a turn or a window is still ``queued``. A batch that gets
no turn before the earliest deadline of its callers gives it up: each caller
hears ``NoTurn`` and comes back later, its recipients untouched.

The delivery runs in a task of its own, not in the caller's: a caller that is
cancelled (its job timed out) before the claim simply drops out of the batch;
once its recipients are on the wire, the delivery still records their outcome,
because the answer to a request already sent is worth keeping, and the records
it writes are the claiming run's alone (its run token), never another run's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Protocol

import orjson

from jobs import channels
from jobs.chunks import Entry
from jobs.planning import Call
from worker.provider import Ambiguous, NotSent, Reply

log = logging.getLogger("bulksend.worker")

Outcome = Reply | NotSent | Ambiguous


class Gateway(Protocol):
    def turn(self, cost: int, deadline: float) -> AbstractAsyncContextManager[None]:
        """Hold a connection slot and a rate-limit slot; ``NoTurn`` past ``deadline``."""
        ...

    async def post(self, endpoint: str, call: Call) -> Reply: ...


@dataclass(eq=False)
class Pending:
    """One run's call on its way: what to claim, how to record the outcome, until when."""

    call: Call
    claim: Callable[[list[Entry]], Awaitable[list[Entry]]]  # mark sending; returns the claimed
    settle: Callable[[list[Entry], Outcome], Awaitable[None]]
    deadline: float  # time.monotonic(): give up the turn rather than wait past this
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def signature(endpoint: str, call: Call) -> bytes:
    """What must be equal for two calls to share one request."""
    extras = sorted({k for e in call.entries for k in e.extras})
    key = [endpoint, call.kind, call.encoding, call.parts, extras, call.body]
    return orjson.dumps(key, option=orjson.OPT_SORT_KEYS)


@dataclass
class _Batch:
    endpoint: str
    members: list[Pending] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class Batcher:
    def __init__(self, gateway: Gateway, linger_s: float, max_size: int) -> None:
        self._gateway = gateway
        self.linger_s = linger_s
        self.max_size = max_size
        self._open: dict[bytes, _Batch] = {}
        self._delivering: set[asyncio.Task[None]] = set()

    async def send(self, endpoint: str, pending: Pending) -> None:
        """Returns once ``pending``'s recipients are recorded; ``NoTurn`` when it got none."""
        alone = not channels.get(pending.call.kind).batch
        if alone or self.linger_s <= 0 or len(pending.call.entries) >= self.max_size:
            self._spawn(_Batch(endpoint, [pending], len(pending.call.entries)))
        else:
            self._join(endpoint, pending)
        await pending.done

    def _join(self, endpoint: str, pending: Pending) -> None:
        key = signature(endpoint, pending.call)
        batch = self._open.get(key)
        if batch is not None and batch.size + len(pending.call.entries) > self.max_size:
            self._flush(key)
            batch = None
        if batch is None:
            batch = self._open[key] = _Batch(endpoint)
            batch.timer = asyncio.get_running_loop().call_later(self.linger_s, self._flush, key)
        batch.members.append(pending)
        batch.size += len(pending.call.entries)
        if batch.size >= self.max_size:
            self._flush(key)

    def _flush(self, key: bytes) -> None:
        batch = self._open.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        self._spawn(batch)

    def _spawn(self, batch: _Batch) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(batch))
        self._delivering.add(task)
        task.add_done_callback(self._delivering.discard)

    async def close(self) -> None:
        """Send what is waiting and let every delivery record its outcome (worker shutdown)."""
        for key in list(self._open):
            self._flush(key)
        while self._delivering:
            await asyncio.gather(*self._delivering, return_exceptions=True)

    async def _deliver(self, batch: _Batch) -> None:
        live = [p for p in batch.members if not p.done.done()]
        if not live:
            return
        claimed: list[tuple[Pending, list[Entry]]] = []
        try:
            cost = sum(len(p.call.entries) for p in live)
            async with self._gateway.turn(cost, min(p.deadline for p in live)):
                for p in live:
                    if p.done.done():  # its run was cancelled while waiting: not sent
                        continue
                    entries = await p.claim(p.call.entries)
                    if entries:
                        claimed.append((p, entries))
                    else:
                        p.done.set_result(None)
                if not claimed:
                    return
                first = live[0].call
                merged = replace(first, entries=[e for _, entries in claimed for e in entries])
                outcome: Outcome
                try:
                    outcome = await self._gateway.post(batch.endpoint, merged)
                except (NotSent, Ambiguous) as exc:
                    outcome = exc
        except Exception as exc:  # no turn, or Redis failed while claiming: nothing was sent
            unsent = NotSent(f"not sent: {type(exc).__name__}: {exc}")
            for p, entries in claimed:
                await self._settle(p, entries, unsent)
            for p in live:
                if not p.done.done():
                    p.done.set_exception(exc)
            return
        await self._settle_all(claimed, outcome)

    async def _settle_all(
        self, claimed: list[tuple[Pending, list[Entry]]], outcome: Outcome
    ) -> None:
        """Each caller records the part of the outcome that is its own."""
        total = sum(len(entries) for _, entries in claimed)
        results = outcome.results if isinstance(outcome, Reply) else None
        start = 0
        for p, entries in claimed:
            part: Outcome = outcome  # a whole-request answer, or a list we cannot split: as is
            if isinstance(outcome, Reply) and results is not None and len(results) == total:
                part = Reply(outcome.http_status, results[start : start + len(entries)])
            start += len(entries)
            await self._settle(p, entries, part)

    @staticmethod
    async def _settle(p: Pending, entries: list[Entry], outcome: Outcome) -> None:
        try:
            await p.settle(entries, outcome)
        except Exception as exc:
            log.exception("recording a call's outcome failed")
            if not p.done.done():
                p.done.set_exception(exc)
            return
        if not p.done.done():
            p.done.set_result(None)
