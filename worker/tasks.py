"""The chunk job: send a chunk's still-pending recipients and record each outcome.

A chunk job may run more than once (arq retries, a worker killed mid-job, a
resubmission). It is safe to re-run because it starts from the recorded
state: final recipients are skipped, and a recipient left ``sending`` by a run
that died may have reached the provider, so it is not blindly resent. Whatever
happens inside the job — a provider outage, a held account, a bug, arq's job
timeout — every recipient still ends in exactly one recorded state.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from typing import Any

from arq import Retry

from jobs.accounts import AccountGate
from jobs.fields import parse_api_date
from jobs.results import FINAL, Record, ResultStore, now_iso, successor
from jobs.settings import Settings
from worker.batching import Batcher
from worker.error_policy import Action, classify
from worker.planning import Call, Entry, plan
from worker.provider import Ambiguous, NotSent, Reply
from worker.rate_limit import RateLimiter

log = logging.getLogger("bulksend.worker")

AMBIGUOUS_CODE = -1  # our own marker: outcome unknown, not a provider code
INTERNAL_CODE = -2  # our own marker: the worker could not process the recipient
EXPIRED_CODE = 119  # the provider's code for expiration-date problems ("Invalid expiration date")
SPEC_CACHE_SIZE = 256
HOLD_RECHECK_S = 2.0  # how often a job for a stopped account looks again
MAX_JOB_RUNS = 50  # runs of one chunk job that end in an error before giving up on it

Update = tuple[int, Record]


class ChunkRun:
    """One execution of one chunk job."""

    def __init__(
        self, ctx: dict[str, Any], sending_id: str, spec: dict[str, Any], current: dict[int, Record]
    ) -> None:
        self.settings: Settings = ctx["settings"]
        self.store: ResultStore = ctx["store"]
        self.batcher: Batcher = ctx["batcher"]
        self.gate: AccountGate = ctx["gate"]
        self.limiter: RateLimiter = ctx["limiter"]
        self.sending_id = sending_id
        self.spec = spec
        self.current = current
        self.retry_needed = False
        self.attempts_so_far = 0  # the most attempts among recipients going back to the queue
        self.stopped = False  # the account is held or halted

    def record(self, entry: Entry, status: str, **fields: Any) -> Update:
        new = self.current[entry.index] = successor(self.current[entry.index], status, **fields)
        return entry.index, new

    def _used_up(self, entry: Entry) -> bool:
        """No attempt left: too many already, or the recipient is too old to send."""
        record = self.current[entry.index]
        queued_at = record.get("queued_at") or self.spec.get("created_at") or now_iso()
        age = datetime.now(UTC) - datetime.fromisoformat(queued_at)
        too_old = age.total_seconds() > self.settings.max_age
        return bool(record.get("attempts", 0) >= self.settings.max_attempts or too_old)

    def retry_or_fail(self, entry: Entry, code: int | None, description: str | None) -> Update:
        """Back to the queue for another attempt, or failed when attempts or age are used up."""
        error = {"code": code, "description": description}
        if self._used_up(entry):
            return self.record(entry, "failed", **error)
        return self._requeue(entry, error)

    def _requeue(self, entry: Entry, error: dict[str, Any]) -> Update:
        self.retry_needed = True
        attempts = int(self.current[entry.index].get("attempts", 0))
        self.attempts_so_far = max(self.attempts_so_far, attempts)
        return self.record(entry, "queued", last_error=error)

    def requeue_untried(self, entry: Entry, attempted: bool, error: dict[str, Any]) -> Update:
        """Back to the queue without spending an attempt (the account was stopped)."""
        if attempted:
            self.current[entry.index]["attempts"] -= 1
        return self._requeue(entry, error)

    def ambiguous(self, entry: Entry, why: str) -> Update:
        record = self.current[entry.index]
        record["ambiguous"] = record.get("ambiguous", 0) + 1  # calls whose outcome was unknown
        if self.settings.on_ambiguous == "resend" and not self._used_up(entry):
            error = {"code": AMBIGUOUS_CODE, "description": f"outcome unknown, resending: {why}"}
            return self._requeue(entry, error)
        # Never "failed": the provider may well have it. Keep what
        # `bulksend requeue --unknown` needs to send it again on purpose.
        return self.record(
            entry,
            "unknown",
            code=AMBIGUOUS_CODE,
            description=f"outcome unknown: {why}",
            extras=entry.extras,
        )

    async def send(self, call: Call) -> None:
        if self.stopped or not await self.gate.may_send():
            self.stopped = True
            held = {"code": None, "description": "provider account stopped; waiting"}
            updates = [self.requeue_untried(e, False, held) for e in call.entries]
            await self.store.record(self.sending_id, updates)
            return
        marks = []
        for entry in call.entries:
            record = self.current[entry.index]
            record["attempts"] = record.get("attempts", 0) + 1
            marks.append(self.record(entry, "sending"))
        await self.store.record(self.sending_id, marks)
        try:
            reply = await self.batcher.post(self.spec["endpoint"], call)
        except NotSent as exc:
            updates = [self.retry_or_fail(e, None, str(exc)) for e in call.entries]
        except Ambiguous as exc:
            updates = [self.ambiguous(e, str(exc)) for e in call.entries]
        else:
            updates = await self._outcomes(call, reply)
        await self.store.record(self.sending_id, updates)

    async def _outcomes(self, call: Call, reply: Reply) -> list[Update]:
        if reply.results is None:
            return await self._call_failed(call, reply)
        await self.limiter.call_went_through()
        await self.gate.succeeded()
        if len(reply.results) != len(call.entries):
            why = f"provider listed {len(reply.results)} results for {len(call.entries)} recipients"
            return [self.ambiguous(e, why) for e in call.entries]
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
                updates.append(self.record(entry, "accepted", **fields))
                continue
            action, why = classify(result.code, 400)
            description = result.description or why
            if action in (Action.REJECT_RECIPIENT, Action.REJECT_MESSAGE, Action.ACCEPT):
                updates.append(
                    self.record(entry, "rejected", code=result.code, description=description)
                )
            else:
                updates.append(self.retry_or_fail(entry, result.code, description))
        return updates

    async def _call_failed(self, call: Call, reply: Reply) -> list[Update]:
        action, why = classify(reply.code, reply.http_status)
        description = reply.description or why
        if reply.http_status == 429:
            await self.limiter.too_many_requests(reply.retry_after)
        if action in (Action.HOLD, Action.HALT):
            self.stopped = True
            await self.gate.stop(action == Action.HALT, reply.code, description)
            error = {"code": reply.code, "description": description}
            return [self.requeue_untried(e, True, error) for e in call.entries]
        if action in (Action.REJECT_RECIPIENT, Action.REJECT_MESSAGE):
            return [
                self.record(e, "rejected", code=reply.code, description=description)
                for e in call.entries
            ]
        return [self.retry_or_fail(e, reply.code, description) for e in call.entries]


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


def _backoff(settings: Settings, attempts: int) -> float:
    """Exponential backoff with full jitter by attempts made, capped at five minutes."""
    ceiling = min(settings.retry_delay * 2 ** min(max(attempts - 1, 0), 16), 300.0)
    return float(ceiling * random.random())


async def _run(ctx: dict[str, Any], sending_id: str, entries: list[Entry]) -> dict[str, int]:
    store: ResultStore = ctx["store"]
    spec = await _spec(ctx, sending_id)
    if spec is None:
        log.error("sending %s has no record; chunk dropped", sending_id)
        return {"missing": len(entries)}
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
            settled.append(run.ambiguous(entry, "worker stopped during the provider call"))
        elif expired:
            settled.append(run.record(entry, "expired", code=EXPIRED_CODE, description=expired))
        else:
            pending.append(entry)
    await store.record(sending_id, settled)
    # No early return when nothing is pending: recipients resent after an
    # ambiguous call were queued again by this very run, and only the Retry
    # below brings their job back.
    calls, refusals = plan(spec["kind"], spec["payload"], pending, ctx["text_rules"])
    refused = [
        run.record(r.entry, "rejected", code=r.code, description=r.description) for r in refusals
    ]
    await store.record(sending_id, refused)
    await asyncio.gather(*(run.send(c) for c in calls))
    if run.stopped:
        raise Retry(defer=HOLD_RECHECK_S)
    if run.retry_needed:
        raise Retry(defer=_backoff(run.settings, run.attempts_so_far))
    log.info(
        "sending %s: %d recipients in %d calls, %d refused before sending",
        sending_id,
        len(pending) - len(refusals),
        len(calls),
        len(refusals),
    )
    return {"calls": len(calls), "refused": len(refusals)}


async def _give_up(ctx: dict[str, Any], sending_id: str, entries: list[Entry], why: str) -> None:
    """Last resort: record every still-pending recipient, never leave one behind."""
    store: ResultStore = ctx["store"]
    current = await store.load(sending_id, [e.index for e in entries])
    updates = []
    for entry in entries:
        record = current.get(entry.index)
        if record is None or record["status"] in FINAL:
            continue
        if record["status"] == "sending":
            status, code = "unknown", AMBIGUOUS_CODE
        else:
            status, code = "failed", INTERNAL_CODE
        updates.append((entry.index, successor(record, status, code=code, description=why)))
    await store.record(sending_id, updates)


async def send_chunk(
    ctx: dict[str, Any], sending_id: str, raw_entries: list[list[Any]]
) -> dict[str, int]:
    """arq job: one chunk of one sending. Returns counts of this run, for arq's log."""
    entries = [Entry(int(i), str(to), extras or {}) for i, to, extras in raw_entries]
    settings: Settings = ctx["settings"]
    job_try = int(ctx.get("job_try", 1))
    try:
        # Finish before arq's own timeout, which would drop the job without retry.
        async with asyncio.timeout(max(settings.job_timeout - 5, 1)):
            return await _run(ctx, sending_id, entries)
    except Retry:
        raise
    except Exception as exc:  # a bug or an outage of Redis: retry, then give up loudly
        why = f"{type(exc).__name__}: {exc}"
        if job_try >= MAX_JOB_RUNS:
            log.exception("chunk of %s failed %d times; recording it", sending_id, job_try)
            await _give_up(ctx, sending_id, entries, f"worker error: {why}")
            return {"given_up": len(entries)}
        log.warning("chunk of %s failed (%s); retrying", sending_id, why)
        raise Retry(defer=_backoff(settings, job_try)) from exc
