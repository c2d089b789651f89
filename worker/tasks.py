"""The chunk job: send a chunk's still-pending recipients and record each outcome.

A chunk job may run more than once (arq retries, a worker killed mid-job, a
resubmission). It is safe to re-run because it starts from the recorded
state: final recipients are skipped, and a recipient left ``sending`` by a run
that died may have reached the provider, so it is not blindly resent.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from typing import Any

from arq import Retry

from jobs.fields import parse_api_date
from jobs.results import FINAL, Record, ResultStore, now_iso
from jobs.settings import Settings
from worker.error_policy import Action, classify
from worker.planning import Call, Entry, plan
from worker.provider import Ambiguous, NotSent, ProviderClient, Reply

log = logging.getLogger("bulksend.worker")

AMBIGUOUS_CODE = -1  # our own marker: outcome unknown, not a provider code
EXPIRED_CODE = 119  # the provider's code for expiration-date problems ("Invalid expiration date")
SPEC_CACHE_SIZE = 256


class ChunkRun:
    """One execution of one chunk job."""

    def __init__(
        self, ctx: dict[str, Any], sending_id: str, spec: dict[str, Any], current: dict[int, Record]
    ) -> None:
        self.settings: Settings = ctx["settings"]
        self.store: ResultStore = ctx["store"]
        self.provider: ProviderClient = ctx["provider"]
        self.sending_id = sending_id
        self.spec = spec
        self.current = current
        self.retry_needed = False
        self.hold_reason: str | None = None

    def _record(self, entry: Entry, status: str, **fields: Any) -> tuple[int, Record]:
        old = self.current[entry.index]
        new = {k: v for k, v in old.items() if k in ("to", "queued_at", "attempts")}
        new.update(status=status, updated_at=now_iso(), **fields)
        self.current[entry.index] = new
        return entry.index, new

    def _retry_or_fail(
        self, entry: Entry, code: int | None, description: str | None
    ) -> tuple[int, Record]:
        """Back to the queue for another attempt, or failed when attempts are used up."""
        error = {"code": code, "description": description}
        if self.current[entry.index]["attempts"] >= self.settings.max_attempts:
            return self._record(entry, "failed", **error)
        self.retry_needed = True
        return self._record(entry, "queued", last_error=error)

    async def send(self, call: Call) -> None:
        marks = []
        for entry in call.entries:
            attempts = int(self.current[entry.index].get("attempts", 0)) + 1
            self.current[entry.index]["attempts"] = attempts
            marks.append(self._record(entry, "sending"))
        await self.store.record(self.sending_id, marks)
        try:
            reply = await self.provider.post(self.spec["endpoint"], call.request_body())
        except NotSent as exc:
            updates = [self._retry_or_fail(e, None, str(exc)) for e in call.entries]
        except Ambiguous as exc:
            updates = [self._ambiguous(e, str(exc)) for e in call.entries]
        else:
            updates = self._outcomes(call, reply)
        await self.store.record(self.sending_id, updates)

    def _ambiguous(self, entry: Entry, why: str) -> tuple[int, Record]:
        if self.settings.on_ambiguous == "resend":
            return self._retry_or_fail(entry, AMBIGUOUS_CODE, why)
        return self._record(
            entry, "unknown", code=AMBIGUOUS_CODE, description=f"outcome unknown: {why}"
        )

    def _outcomes(self, call: Call, reply: Reply) -> list[tuple[int, Record]]:
        if reply.results is None:
            action, why = classify(reply.code, reply.http_status)
            return [
                self._apply(e, action, reply.code, reply.description or why) for e in call.entries
            ]
        if len(reply.results) != len(call.entries):
            why = f"provider listed {len(reply.results)} results for {len(call.entries)} recipients"
            return [self._ambiguous(e, why) for e in call.entries]
        updates = []
        for entry, result in zip(call.entries, reply.results, strict=True):
            if result.accepted:
                accepted = {
                    "id": result.message_id,
                    "parts": result.parts,
                    "encoding": call.encoding,
                    "scheduled_at": result.scheduled_at,
                }
                fields = {k: v for k, v in accepted.items() if v is not None}
                updates.append(self._record(entry, "accepted", **fields))
            else:
                action, why = classify(result.code, 400)
                updates.append(self._apply(entry, action, result.code, result.description or why))
        return updates

    def _apply(
        self, entry: Entry, action: Action, code: int | None, description: str
    ) -> tuple[int, Record]:
        if action in (Action.REJECT_RECIPIENT, Action.REJECT_MESSAGE):
            return self._record(entry, "rejected", code=code, description=description)
        if action in (Action.HOLD, Action.HALT):
            self.hold_reason = f"{code} {description}"
        return self._retry_or_fail(entry, code, description)


async def _spec(ctx: dict[str, Any], sending_id: str) -> dict[str, Any] | None:
    """A sending's spec, read once per worker: it never changes, and may carry attachments."""
    cache: dict[str, dict[str, Any]] = ctx.setdefault("specs", {})
    if sending_id not in cache:
        spec = await ctx["store"].spec(sending_id)
        if spec is None:
            return None
        if len(cache) >= SPEC_CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[sending_id] = spec
    return cache[sending_id]


def _expired(payload: dict[str, Any]) -> str | None:
    """Why the sending may no longer be sent, or None while it is still valid."""
    raw = payload.get("expirationDate")
    if raw and parse_api_date(raw) <= datetime.now(UTC):
        return f"expired before it could be sent (expirationDate {raw} UTC)"
    return None


async def send_chunk(
    ctx: dict[str, Any], sending_id: str, raw_entries: list[list[Any]]
) -> dict[str, int]:
    """arq job: one chunk of one sending. Returns counts of this run, for arq's log."""
    store: ResultStore = ctx["store"]
    spec = await _spec(ctx, sending_id)
    if spec is None:
        log.error("sending %s has no record; chunk dropped", sending_id)
        return {"missing": len(raw_entries)}
    entries = [Entry(int(i), str(to), extras or {}) for i, to, extras in raw_entries]
    current = await store.load(sending_id, [e.index for e in entries])
    run = ChunkRun(ctx, sending_id, spec, current)

    expired = _expired(spec["payload"])
    pending: list[Entry] = []
    settled = []
    for entry in entries:
        status = current.get(entry.index, {}).get("status")
        if status in FINAL or status is None:
            continue
        if status == "sending":  # a previous run died during the call
            settled.append(run._ambiguous(entry, "worker stopped during the provider call"))
        elif expired:
            settled.append(run._record(entry, "expired", code=EXPIRED_CODE, description=expired))
        else:
            pending.append(entry)
    await store.record(sending_id, settled)

    calls, refusals = plan(spec["kind"], spec["payload"], pending, ctx["text_rules"])
    await store.record(
        sending_id,
        [
            run._record(r.entry, "rejected", code=r.code, description=r.description)
            for r in refusals
        ],
    )
    limit = asyncio.Semaphore(ctx.get("call_concurrency", 4))

    async def send(call: Call) -> None:
        async with limit:
            await run.send(call)

    await asyncio.gather(*(send(c) for c in calls))
    if run.hold_reason:
        log.warning("sending %s: provider account problem: %s", sending_id, run.hold_reason)
    if run.retry_needed:
        job_try = int(ctx.get("job_try", 1))
        delay = run.settings.retry_delay * 2 ** min(job_try - 1, 10)
        raise Retry(defer=delay * (0.5 + random.random()))
    return {"calls": len(calls), "refused": len(refusals)}
