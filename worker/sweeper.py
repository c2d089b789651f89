"""The sweeper: whatever no job is looking after, found and put back on its way.

Every path that could strand a recipient ends here, so none has to be perfect:
a chunk whose job is gone (arq dropped it, a requeue or a submit crashed
between recording and enqueueing, a resume raced a parking), parked chunks of
a scope that is no longer stopped, holds due for a probe, and a submit that
crashed half-way (the sending is opened with what was recorded, and marked
``interrupted`` so that somebody looks). Each worker runs it every
``BULKSEND_SWEEP_INTERVAL`` seconds or so; a lock in Redis lets one sweep at a
time. Enqueueing is idempotent (a chunk's job id is fixed) and a duplicate run
is harmless (claims are compare-and-set), so a sweep can only help.

A chunk whose recipients were all final is noted (``chunks.note_settled``) and
not read again: without the note every pass decoded every finished chunk of an
active sending, a cost that grew with the sending. The run that finishes a chunk
notes it itself, so in the usual case the sweeper never decodes it at all.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from jobs import chunks, keys
from jobs.accounts import account_id, parked_scopes, read_stops, unpark
from jobs.results import FINAL, ResultStore
from jobs.settings import Settings
from worker import blacklist

log = logging.getLogger("bulksend.sweeper")


async def sweep(redis: Any, settings: Settings, *, force: bool = False) -> dict[str, int]:
    """One pass; returns what it did. ``force`` skips the lock (tests, one-off runs)."""
    lock_ms = max(int(settings.sweep_interval * 900), 100)
    if not force and not await redis.set(
        keys.SWEEP_LOCK, secrets.token_hex(4), nx=True, px=lock_ms
    ):
        return {}
    expires_s = float(settings.result_ttl_days * 86400)
    store = ResultStore(redis, ttl_seconds=settings.result_ttl_days * 86400)
    report: Counter[str] = Counter()
    account = account_id(settings)
    await _stops(redis, account, expires_s, report)
    parked = {f.decode() for f in await redis.hkeys(keys.parked(account))}
    for raw_id in await redis.smembers(keys.ACTIVE):
        sending_id = raw_id.decode()
        await _sending(redis, store, settings, sending_id, parked, expires_s, report)
    if report:
        log.warning("sweep: %s", dict(report))
    return dict(report)


async def _stops(redis: Any, account: str, expires_s: float, report: Counter[str]) -> None:
    stops = {s.scope: s for s in await read_stops(redis, account)}
    for scope in await parked_scopes(redis, account):
        stop = stops.get(scope)
        if stop is None:
            report["unparked"] += await unpark(redis, account, scope=scope, expires_s=expires_s)
        elif stop.state == "held" and stop.probe_at is not None and time.time() >= stop.probe_at:
            # One parked chunk goes; its run alone may call the provider (AccountGate.turn).
            report["probes"] += await unpark(
                redis, account, scope=scope, limit=1, expires_s=expires_s
            )


async def _sending(
    redis: Any,
    store: ResultStore,
    settings: Settings,
    sending_id: str,
    parked: set[str],
    expires_s: float,
    report: Counter[str],
) -> None:
    state, touched = await redis.hmget(keys.sending(sending_id), ["state", "touched_at"])
    if state is None or state == b"done":
        await redis.srem(keys.ACTIVE, sending_id)
        return
    if state == b"enqueuing":
        touched_at = touched.decode() if touched else "1970-01-01T00:00:00+00:00"
        age = datetime.now(UTC) - datetime.fromisoformat(touched_at)
        if age.total_seconds() < settings.stale_submit_after:
            return  # the producer may still be at it
        names = await chunks.names(redis, sending_id)
        note = (
            f"submit stopped after {len(names)} chunks; submit again with the same "
            "idempotency key to finish it"
        )
        await redis.hset(keys.sending(sending_id), "interrupted", note)
        await store.open(sending_id, len(names))
        log.error("sending %s: %s", sending_id, note, extra={"sending": sending_id})
        report["interrupted"] += 1
    settled_key = keys.settled_chunks(sending_id)
    settled = {n.decode() for n in await redis.smembers(settled_key)}
    names = [n for n in await chunks.names(redis, sending_id) if n not in settled]
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            job_id = keys.chunk_job_id(sending_id, name)
            pipe.exists(keys.arq_job(job_id), keys.arq_in_progress(job_id))
        alive = await pipe.execute()
    now = time.time()
    for name, jobs in zip(names, alive, strict=True):
        if jobs or keys.parked_field(sending_id, name) in parked:
            continue
        entries = await chunks.load(redis, sending_id, name) or []
        records = list((await store.load_chunk(sending_id, entries)).values())
        if all(r["status"] in FINAL for r in records):
            await chunks.note_settled(redis, sending_id, name, expires_s=expires_s)
            continue
        stranded = any(
            r["status"] == "queued"
            or (r["status"] == "sending" and float(r.get("until", 0)) <= now)
            for r in records
        )
        if stranded and await chunks.enqueue(redis, sending_id, name, expires_s=expires_s):
            log.warning(
                "sending %s chunk %s had no job; enqueued again",
                sending_id,
                name,
                extra={"sending": sending_id, "chunk": name},
            )
            report["enqueued"] += 1


async def sweep_forever(redis: Any, settings: Settings) -> None:
    """A worker's background loop; the first pass comes soon after start. With
    ``BULKSEND_BLACKLIST_SYNC``, each pass also syncs the provider's blacklist when one
    is due (``worker.blacklist.sync_due``: one worker per interval)."""
    delay = min(settings.sweep_interval, 2.0)
    while True:
        await asyncio.sleep(delay)
        try:
            await sweep(redis, settings)
        except Exception:
            log.exception("sweep failed; trying again next time")
        if settings.blacklist_sync:
            try:
                await blacklist.sync_due(redis, settings)
            except Exception:
                log.exception("blacklist sync failed; trying again next time")
        delay = settings.sweep_interval * random.uniform(0.5, 1.0)
