"""The chunk job: send a chunk's still-pending recipients and record each outcome.

A chunk job may run more than once, even twice at the same time (arq re-runs
a killed worker's job, a resubmission, the sweeper, a requeue). It is safe
because every move of a recipient is a compare-and-set (``jobs.results``): a
run claims the recipients it is about to put on the wire as one flight (``queued
→ sending``), stamped with its run token and the moment its call must be over,
and only that run writes their outcome. A recipient found in a flight past that
moment belonged to a run that died during its call, so it may have reached the
provider: it is recorded ``unknown``, never blindly resent.

A run never waits long: a turn it cannot get before its deadline (rate limit,
connection slots) is given back, its recipients still ``queued``, and the job
comes back when the limiter says; a stopped account parks the chunk
(``jobs.accounts``). So only runs that really failed (an exception) count
towards giving up, and whatever happens — a provider outage, a held account,
a bug, a timeout — every recipient ends in exactly one recorded state.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from itertools import repeat
from types import MappingProxyType
from typing import Any, cast

from arq import Retry

from jobs import chunks, codec, events, keys
from jobs.accounts import ACCOUNT, Stop, Turn, park
from jobs.chunks import Entry
from jobs.fields import parse_api_date
from jobs.planning import Call, plan
from jobs.results import (
    FINAL,
    AnswerGroup,
    Answers,
    Flight,
    Record,
    accepted_packer,
    accepted_successor,
    entry_records,
    expect_exact,
    expect_over,
    expect_run,
    now_iso,
    on_the_wire,
    successor,
    successor_with,
    tally_of,
)
from jobs.settings import Settings
from worker.batching import Outcome, Pending
from worker.budget import NoRoom
from worker.context import WorkerContext, of
from worker.error_policy import Action, classify
from worker.provider import Accepted, Ambiguous, NotSent, Reply
from worker.rate_limit import NoTurn

log = logging.getLogger("bulksend.worker")

AMBIGUOUS_CODE = -1  # our own marker: outcome unknown, not a provider code
INTERNAL_CODE = -2  # our own marker: the worker could not process the recipient
EXPIRED_CODE = 119  # the provider's code for expiration-date problems ("Invalid expiration date")
MAX_JOB_FAILURES = 50  # runs of one chunk that end in an error before giving up on it
CLAIM_GRACE_S = 3.0  # after the call budget, time to record the outcome
SOON_S = 0.05  # how soon a run comes back to go on where nothing else says when
BUDGET_WAIT_S = 5.0  # a run waits this long for its share of the budget, then comes back

Update = tuple[int, Record, str | bytes]

# A recipient a run recorded accepted (``ChunkRun._accept``): its record is the one
# written to Redis, which nothing in the run reads again but ``settled``. One read-only
# stand-in for all of them spares a dict for each (a write to it would raise).
LANDED = cast(Record, MappingProxyType({"status": "accepted"}))


class ChunkRun:
    """One execution of one chunk job."""

    def __init__(
        self,
        w: WorkerContext,
        sending_id: str,
        spec: dict[str, Any],
        loaded: Loaded,
        started: float,  # time.monotonic() when the job began (a wait for the budget too)
    ) -> None:
        self.w = w
        self.settings: Settings = w.settings
        self.sending_id = sending_id
        self.spec = spec
        self.kind: str = spec["kind"]
        self.token = secrets.token_hex(6)
        self.raw = loaded.raw  # b'': no record yet (``loaded.untouched`` gives it)
        self.current: dict[int, Record] = {i: codec.unpack(r) for i, r in self.raw.items() if r}
        # The status of each stored raw; an untouched recipient's is ``queued``.
        self.loaded = {i: r["status"] for i, r in self.current.items()}
        self.current.update(loaded.untouched)
        self.flying = loaded.flying  # other runs' flights its recipients were in when loaded
        for i, flight in self.flying.items():
            if i in self.current:
                self.current[i] = on_the_wire(self.current[i], flight)
        self.expect: dict[int, bytes] = {}  # how to move a recipient this run claimed
        self.calls = 0  # flights this run claimed
        self.refused = False  # a write of this run found a record not as it expected
        self.come_back: float | None = None  # seconds until this chunk needs another run
        self.stop: Stop | None = None  # a stop met during this run
        self.probing: str | None = None  # the scope whose hold this run probes
        self.started = started

    # --- what to come back for -------------------------------------------------
    def later(self, seconds: float) -> None:
        """This chunk needs another run after ``seconds`` (the earliest ask wins)."""
        seconds = max(seconds, 0.0)
        self.come_back = seconds if self.come_back is None else min(self.come_back, seconds)

    @property
    def deadline(self) -> float:
        """Give up a turn rather than wait past this: the call and its record must still fit
        in the job's time."""
        budget = self.settings.job_timeout - self.w.call_budget_s - CLAIM_GRACE_S - 1
        return self.started + max(budget, 1.0)

    # --- records ---------------------------------------------------------------
    def _new(self, index: int, status: str, fields: dict[str, Any]) -> Record:
        new = self.current[index] = successor_with(self.current[index], status, fields)
        return new

    def from_loaded(self, entry: Entry, status: str, **fields: Any) -> Update:
        """A move from the record as this run loaded it (CAS on its exact bytes)."""
        expect = expect_exact(self.raw[entry.index], self.loaded.get(entry.index, "queued"))
        return entry.index, self._new(entry.index, status, fields), expect

    def outcome(self, entry: Entry, status: str, **fields: Any) -> Update:
        """A move of a recipient this run claimed: only while it is still this run's."""
        return self._outcome(entry, status, fields)

    def _outcome(self, entry: Entry, status: str, fields: dict[str, Any]) -> Update:
        return entry.index, self._new(entry.index, status, fields), self.expect[entry.index]

    def over(self, entry: Entry, status: str, **fields: Any) -> Update:
        """A move of a recipient in another run's call that is over: in its flight, or
        recorded ``sending`` by a version before flights (``_legacy_claim``)."""
        flight = self.flying.get(entry.index)
        if flight is None:
            expect = expect_exact(self.raw[entry.index], "sending")
        else:
            expect = expect_over(flight.call)
        return entry.index, self._new(entry.index, status, fields), expect

    async def write(self, updates: list[Update], answers: Answers | None = None) -> set[int]:
        moves = len(updates) + (len(answers) if answers is not None else 0)
        applied = await self.w.store.record(self.sending_id, updates, answers)
        self.refused = self.refused or len(applied) < moves
        return applied

    def settled(self) -> bool:
        """Every recipient this run loaded is final, as far as its own writes show."""
        return not self.refused and all(r["status"] in FINAL for r in self.current.values())

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
            return self.outcome(entry, "failed", **error)
        return self._requeue(entry, error)

    def _requeue(self, entry: Entry, error: dict[str, Any], *, refund: bool = False) -> Update:
        record = self.current[entry.index]
        if refund:  # the account was stopped: that attempt does not count
            record["attempts"] = max(int(record.get("attempts", 0)) - 1, 0)
        attempts = int(record.get("attempts", 0))
        if not refund:
            self.later(_backoff(self.settings, attempts))
        return self.outcome(entry, "queued", last_error=error)

    def ambiguous(self, entry: Entry, why: str, *, over: bool = False) -> Update:
        record = self.current[entry.index]
        record["ambiguous"] = record.get("ambiguous", 0) + 1  # calls whose outcome was unknown
        move = self.over if over else self.outcome
        if self.settings.on_ambiguous == "resend" and not self._used_up(entry):
            description = f"outcome unknown, resending: {why}"
            self.later(_backoff(self.settings, int(record.get("attempts", 0))))
            return move(
                entry, "queued", last_error={"code": AMBIGUOUS_CODE, "description": description}
            )
        # Never "failed": the provider may well have it. The run token stays so
        # that a late, certain answer of that very call can still replace it.
        run = record.get("run", self.token)
        description = f"outcome unknown: {why}"
        return move(entry, "unknown", code=AMBIGUOUS_CODE, description=description, run=run)

    # --- one call ----------------------------------------------------------------
    async def claim(self, entries: list[Entry]) -> list[Entry]:
        """On the wire now: one flight of those still as this run loaded them (``sending``,
        without a write to each record)."""
        if self.stop is not None or (self.probing is None and await self._stopped()):
            return []
        until = time.time() + self.w.call_budget_s + CLAIM_GRACE_S
        flight = Flight(f"{self.token}:{self.calls}", self.token, until, now_iso())
        self.calls += 1
        loaded = [(e.index, self.raw[e.index]) for e in entries]
        claimed = await self.w.store.claim(self.sending_id, flight, loaded)
        self.refused = self.refused or len(claimed) < len(entries)
        expect = expect_run(self.token, flight.call)
        for i in claimed:
            record = self.current[i]
            record["status"] = "sending"  # the run's own copy: what it carries on to
            record["attempts"] = int(record.get("attempts", 0)) + 1
        self.expect.update(dict.fromkeys(claimed, expect))
        return [e for e in entries if e.index in claimed]

    async def _stopped(self) -> bool:
        for scope in (ACCOUNT, self.kind):
            stop = await self.w.gate.current(scope)
            if stop is not None:
                self.stop = stop
                return True
        return False

    async def settle(self, call: Call, entries: list[Entry], outcome: Outcome) -> None:
        answers = None
        if isinstance(outcome, NotSent):
            updates = [self.retry_or_fail(e, None, str(outcome)) for e in entries]
        elif isinstance(outcome, Ambiguous):
            updates = [self.ambiguous(e, str(outcome)) for e in entries]
        elif outcome.results is None:
            updates = await self._call_failed(entries, outcome)
        else:
            updates, answers = await self._results(call, entries, outcome)
        for attempt in range(3):  # a blip of Redis must not turn a known outcome into unknown
            try:
                await self.write(updates, answers)
                return
            except Exception:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))

    async def _results(
        self, call: Call, entries: list[Entry], reply: Reply
    ) -> tuple[list[Update], Answers | None]:
        await self.w.limiter.call_went_through()
        if self.probing is not None:
            await self.w.gate.probe_succeeded(self.probing, self.w.job_expires_s)
            self.probing = None
            self.later(SOON_S)  # the rest of this chunk waited for the probe
        assert reply.results is not None
        if len(reply.results) != len(entries):
            why = f"provider listed {len(reply.results)} results for {len(entries)} recipients"
            return [self.ambiguous(e, why) for e in entries], None
        answers = Answers()
        if isinstance(reply.results, Accepted):  # every one of them: the reply's columns
            results = reply.results
            self._accept(call, zip(entries, results.ids, results.parts, repeat(None)), answers)
            return [], answers
        updates: list[Update] = []
        accepted: list[tuple[Entry, Any, Any, Any]] = []
        for entry, result in zip(entries, reply.results, strict=True):
            if result.accepted:  # what the record keeps of it: the fields the reply has
                accepted.append((entry, result.message_id, result.parts, result.scheduled_at))
                continue
            action, why = classify(result.code, 400)
            description = result.description or why
            if action in (Action.RETRY, Action.HOLD, Action.HOLD_CHANNEL, Action.HALT):
                # A stop code for one recipient of a 207 is about that recipient.
                updates.append(self.retry_or_fail(entry, result.code, description))
            else:
                updates.append(
                    self.outcome(entry, "rejected", code=result.code, description=description)
                )
        self._accept(call, accepted, answers)
        return updates, answers

    def _accept(
        self, call: Call, accepted: Iterable[tuple[Entry, Any, Any, Any]], answers: Answers
    ) -> None:
        """Recipients the provider accepted — (entry, message id, parts, scheduled at) —
        as ``answers``. Accepted alike, they share a tally (``tally_of``), worked out once
        per group: by how the run claimed them and their parts. Their message ids go
        apart only where notifications come (the script links them; without them it
        reads an id from its record, as it does for any other move)."""
        now, encoding = now_iso(), call.encoding
        packed = accepted_packer(now, encoding)
        link = self.w.hooks is not None  # its ids go too, to link notifications to them
        groups: dict[tuple[bytes, type, Any], AnswerGroup] = {}
        current, expects = self.current, self.expect
        last: tuple[bytes, Any] | None = None  # the group of the one before: most share it
        indices: list[int] = []
        records: list[bytes] = []
        ids: list[str] = []
        for entry, mid, parts, scheduled_at in accepted:
            i = entry.index
            old = current[i]
            current[i] = LANDED
            expect = expects[i]
            if last is None or expect is not last[0] or parts is not last[1]:
                key = (expect, type(parts), parts)
                group = groups.get(key)
                if group is None:
                    new = accepted_successor(old, now, encoding, mid, parts, scheduled_at)
                    tfield, tparts, _ = tally_of(new)
                    group = groups[key] = answers.group(expect, "accepted", tfield, tparts)
                indices, records, ids = group
                last = (expect, parts)
            indices.append(i)
            records.append(packed(old, mid, parts, scheduled_at))
            if link:
                ids.append(mid if isinstance(mid, str) else "")

    async def _call_failed(self, entries: list[Entry], reply: Reply) -> list[Update]:
        action, why = classify(reply.code, reply.http_status)
        description = reply.description or why
        if reply.http_status == 429:
            await self.w.limiter.too_many_requests(reply.retry_after)
        if action in (Action.HOLD, Action.HOLD_CHANNEL, Action.HALT):
            scope = self.kind if action == Action.HOLD_CHANNEL else ACCOUNT
            await self.w.gate.stop(scope, action == Action.HALT, reply.code, description)
            self.stop = await self.w.gate.current(scope)
            self.probing = None
            error = {"code": reply.code, "description": description}
            return [self._requeue(e, error, refund=True) for e in entries]
        if action in (Action.REJECT_RECIPIENT, Action.REJECT_MESSAGE):
            return [
                self.outcome(e, "rejected", code=reply.code, description=description)
                for e in entries
            ]
        return [self.retry_or_fail(e, reply.code, description) for e in entries]

    async def send(self, call: Call) -> None:
        pending = Pending(call, self.claim, partial(self.settle, call), self.deadline)
        await self.w.batcher.send(self.spec["endpoint"], pending)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A chunk's recipients as a run (or a give-up) finds them before it moves any."""

    raw: dict[int, bytes]  # each stored record, what a move compares; b'': none stored
    untouched: dict[int, Record]  # the records of those nothing has moved yet
    flying: dict[int, Flight]  # the flights some of them are in


async def _load(w: WorkerContext, sending_id: str, entries: list[Entry]) -> Loaded:
    """The stored records, and for those without one the record their entry gives
    (``Entry.record``): nothing has moved them yet, and their raw is ``b''``, which is
    what a move from it expects (no record)."""
    indices = [e.index for e in entries]
    raw, flying = await w.store.load_flying(sending_id, indices)
    untouched = entry_records(e for e in entries if e.index not in raw)
    raw.update(dict.fromkeys(untouched, b""))
    return Loaded(raw, untouched, flying)


def _legacy_claim(record: Record) -> Flight | None:
    """A recipient an earlier version claimed with a ``sending`` record of its own (a
    worker upgraded mid-sending): its call, as a flight, so that it is waited for or
    recorded ``unknown`` as before, never sent again."""
    if record["status"] != "sending":
        return None
    return Flight("", str(record.get("run", "")), float(record.get("until", 0)), "")


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


async def _run(w: WorkerContext, sending_id: str, chunk: str) -> dict[str, int]:
    started = time.monotonic()
    blob = await chunks.load_encoded(w.redis, sending_id, chunk)
    spec = await w.spec(sending_id)
    if blob is None or spec is None:
        log.warning(
            "sending %s chunk %s has no record (expired?); nothing to do",
            sending_id,
            chunk,
            extra={"sending": sending_id, "chunk": chunk},
        )
        return {"missing": 1}
    try:  # its share of the worker's memory before it decodes (``worker.budget``)
        async with w.budget.hold(w.settings.chunk_size, wait_s=BUDGET_WAIT_S) as held:
            entries = chunks.decode(blob)
            held.resize(len(entries))
            return await _run_chunk(w, sending_id, chunk, spec, entries, started)
    except NoRoom:
        raise Retry(defer=SOON_S) from None  # not a failure: the worker is busy


async def _run_chunk(
    w: WorkerContext,
    sending_id: str,
    chunk: str,
    spec: dict[str, Any],
    entries: list[Entry],
    started: float,
) -> dict[str, int]:
    run = ChunkRun(w, sending_id, spec, await _load(w, sending_id, entries), started)
    expired = _expired(spec["payload"])
    now = time.time()
    pending: list[Entry] = []
    settled: list[Update] = []
    for entry in entries:
        record = run.current.get(entry.index)
        if record is None or record["status"] in FINAL:
            continue
        flight = run.flying.get(entry.index) or _legacy_claim(record)
        if flight is not None:
            if flight.until > now:  # another run's call may still be on the wire: its outcome
                run.later(flight.until - now + SOON_S)
                continue
            settled.append(
                run.ambiguous(entry, "worker stopped during the provider call", over=True)
            )
        elif expired:
            settled.append(
                run.from_loaded(entry, "expired", code=EXPIRED_CODE, description=expired)
            )
        else:
            pending.append(entry)
    await run.write(settled)
    calls: list[Call] = []
    refused = 0
    if pending:
        turn, stop = await w.gate.turn(run.kind)
        if turn is Turn.STOPPED:
            assert stop is not None
            return await _park(w, run, chunk, stop)
        if turn is Turn.PROBE:
            assert stop is not None
            run.probing = stop.scope
        payload = await w.payload(sending_id, spec)
        calls, refusals = plan(run.kind, payload, pending, w.text_rules)
        calls = events.with_notification_urls(calls, sending_id, w.settings.public_url, w.hooks)
        await run.write(
            [
                run.from_loaded(r.entry, "rejected", code=r.code, description=r.description)
                for r in refusals
            ]
        )
        refused = len(refusals)
        if run.probing is not None and len(calls) > 1:
            calls = calls[:1]  # one call probes the hold; the rest goes once it is lifted
        # Every sibling ends before the job ends, whatever one of them raised.
        outcomes = await asyncio.gather(*(run.send(c) for c in calls), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, NoTurn):
                run.later(outcome.wait_s)
            elif isinstance(outcome, BaseException):
                raise outcome
    if run.stop is not None:
        return await _park(w, run, chunk, run.stop)
    if run.come_back is not None:
        raise Retry(defer=run.come_back)
    if run.settled():
        await chunks.note_settled(w.redis, sending_id, chunk, expires_s=w.job_expires_s)
    log.info(
        "sending %s chunk %s: %d recipients in %d calls, %d refused before sending",
        sending_id,
        chunk,
        len(pending) - refused,
        len(calls),
        refused,
        extra={"sending": sending_id, "chunk": chunk},
    )
    return {"calls": len(calls), "refused": refused}


async def _park(w: WorkerContext, run: ChunkRun, chunk: str, stop: Stop) -> dict[str, int]:
    """The account (or this channel) is stopped: wait in the parked set, not in arq."""
    if await park(w.redis, w.account, stop.scope, run.sending_id, chunk):
        log.info(
            "sending %s chunk %s parked: account %s",
            run.sending_id,
            chunk,
            stop.state,
            extra={"sending": run.sending_id, "chunk": chunk, "scope": stop.scope},
        )
        return {"parked": 1}
    raise Retry(defer=SOON_S)  # lifted in the meantime: go on


async def _give_up(w: WorkerContext, sending_id: str, chunk: str, why: str) -> None:
    """Last resort: record every still-pending recipient, never leave one behind."""
    entries = await chunks.load(w.redis, sending_id, chunk) or []
    loaded = await _load(w, sending_id, entries)
    raw, untouched, flying = loaded.raw, loaded.untouched, loaded.flying
    now = time.time()
    updates: list[Update] = []
    for entry in entries:
        record = untouched.get(entry.index) or codec.unpack(raw[entry.index])
        flight = flying.get(entry.index)
        call = flight or _legacy_claim(record)
        if call is not None:
            if call.until > now:  # a live call on the wire: its run records it
                continue
            if flight is not None:
                record = on_the_wire(record, flight)
                expect = expect_over(flight.call)
            else:
                expect = expect_exact(raw[entry.index], "sending")
            new = successor(record, "unknown", code=AMBIGUOUS_CODE, description=why,
                            run=record.get("run"))  # fmt: skip
            updates.append((entry.index, new, expect))
        elif record["status"] == "queued":
            new = successor(record, "failed", code=INTERNAL_CODE, description=why)
            updates.append((entry.index, new, expect_exact(raw[entry.index], "queued")))
    await w.store.record(sending_id, updates)


async def send_chunk(ctx: dict[str, Any], sending_id: str, chunk: str) -> dict[str, int]:
    """arq job: one chunk of one sending. Returns counts of this run, for arq's log.

    While it runs it counts in ``WorkerContext.running``, which the worker's
    heartbeat reports: however it ends (a result, a Retry, an error)."""
    w = of(ctx)
    w.running += 1
    try:
        return await _attempt(w, sending_id, str(chunk))
    finally:
        w.running -= 1


async def _attempt(w: WorkerContext, sending_id: str, chunk: str) -> dict[str, int]:
    """One run, within the job's time; an error is retried, then given up loudly."""
    try:
        # Finish before arq's own timeout, which would drop the job without retry.
        async with asyncio.timeout(max(w.settings.job_timeout - 1, 1)):
            return await _run(w, sending_id, chunk)
    except Retry:
        raise
    except Exception as exc:  # a bug or an outage of Redis: retry, then give up loudly
        why = f"{type(exc).__name__}: {exc}"
        fails_key = keys.chunk_fails(sending_id, chunk)
        failures = int(await w.redis.incr(fails_key))
        await w.redis.expire(fails_key, int(w.job_expires_s))
        if failures >= MAX_JOB_FAILURES:
            log.exception(
                "chunk %s of %s failed %d times; recording it",
                chunk,
                sending_id,
                failures,
                extra={"sending": sending_id, "chunk": chunk},
            )
            await _give_up(w, sending_id, chunk, f"worker error: {why}")
            return {"given_up": 1}
        log.warning(
            "chunk %s of %s failed (%s); retrying",
            chunk,
            sending_id,
            why,
            extra={"sending": sending_id, "chunk": chunk},
        )
        raise Retry(defer=_backoff(w.settings, failures)) from exc
