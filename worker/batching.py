"""Micro-batching: many small calls with the same body become one provider call.

Services that submit one-recipient jobs (OTPs, notifications) would otherwise
cost one HTTP request each. Every call a worker is about to make goes through
here: calls whose body is the same but for the recipients (same channel,
account, sender, text template, options, encoding and parts) are merged until
the batch is full or ``BULKSEND_LINGER_MS`` has passed since the first one
arrived, whichever comes first, so no call waits longer than the window. The
merged reply is split back: each caller gets the results of its own
recipients, in order, and records, retries and fails them on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from worker.planning import Call
from worker.provider import Reply

Send = Callable[[str, Call], Awaitable[Reply]]


def signature(endpoint: str, call: Call) -> bytes:
    """What must be equal for two calls to share one request."""
    extras = sorted({k for e in call.entries for k in e.extras})
    key = [endpoint, call.kind, call.encoding, call.parts, extras, call.body]
    return orjson.dumps(key, option=orjson.OPT_SORT_KEYS)


@dataclass
class _Batch:
    endpoint: str
    calls: list[Call] = field(default_factory=list)
    waiters: list[asyncio.Future[Reply]] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class Batcher:
    def __init__(self, send: Send, linger_s: float, max_size: int) -> None:
        self._send = send
        self.linger_s = linger_s
        self.max_size = max_size
        self._open: dict[bytes, _Batch] = {}
        self._flushing: set[asyncio.Task[None]] = set()

    async def post(self, endpoint: str, call: Call) -> Reply:
        """The reply for ``call``'s recipients, possibly sent together with others."""
        if self.linger_s <= 0 or len(call.entries) >= self.max_size:
            return await self._send(endpoint, call)
        key = signature(endpoint, call)
        batch = self._open.get(key)
        if batch is not None and batch.size + len(call.entries) > self.max_size:
            self._flush(key)
            batch = None
        if batch is None:
            batch = self._open[key] = _Batch(endpoint)
            batch.timer = asyncio.get_running_loop().call_later(self.linger_s, self._flush, key)
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        batch.calls.append(call)
        batch.waiters.append(waiter)
        batch.size += len(call.entries)
        if batch.size >= self.max_size:
            self._flush(key)
        return await waiter

    def _flush(self, key: bytes) -> None:
        batch = self._open.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.get_running_loop().create_task(self._deliver(batch))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _deliver(self, batch: _Batch) -> None:
        first = batch.calls[0]
        merged = Call(
            first.kind,
            first.body,
            [e for c in batch.calls for e in c.entries],
            first.encoding,
            first.parts,
        )
        try:
            reply = await self._send(batch.endpoint, merged)
        except BaseException as exc:  # NotSent / Ambiguous reach every caller alike
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        results = reply.results
        start = 0
        for call, waiter in zip(batch.calls, batch.waiters, strict=True):
            count = len(call.entries)
            part = reply  # a whole-request answer, or a result list we cannot split: as is
            if results is not None and len(results) == batch.size:
                part = Reply(reply.http_status, results[start : start + count])
            start += count
            if not waiter.done():
                waiter.set_result(part)
