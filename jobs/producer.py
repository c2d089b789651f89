"""How backend services hand a sending to the pipeline.

``submit`` validates (the model did), records every recipient, and enqueues one
arq job per chunk with a deterministic id. A queued recipient's record is its
chunk entry until something moves it (``ResultStore.add_chunk``). The order
matters for "nothing lost": recipients and the chunk's entries are recorded
before its job is enqueued, so a crash between the two leaves a chunk the sweeper enqueues; and
a resubmission with the same idempotency key re-enqueues the same job ids (arq
ignores the ones it has), so a producer that crashed half-way can simply submit
again. Every submit has a key — one is made up when the caller gives none — so
that ``submit`` itself retries a Redis blip without creating a second sending.
A recipient whose address is on its channel's suppression list (``jobs.suppression``,
read a chunk at a time) is recorded ``suppressed`` and left out of its chunk.

A Redis with a ``maxmemory`` (under ``noeviction``, the only policy a submit accepts:
``jobs.redis_safety``) can be full, and a full Redis refuses writes. There a submit
is careful. It first asks ``INFO memory`` whether the sending fits once finished
(``PER_RECIPIENT_BYTES`` a recipient) and refuses it whole (``RedisFull``) if not.
Then it writes every chunk's records and entries before it enqueues any job, so a
write refused at ``maxmemory`` finds no worker sending yet: what this submit wrote
is deleted (deleting is allowed at ``maxmemory``) and ``RedisFull`` says nothing of
the sending was queued; the same idempotency key can be submitted again later.
Without a ``maxmemory`` (the embedded Redis, the benchmarks) Redis cannot be full,
and each chunk's job is enqueued as soon as the chunk is written: workers start
on the first chunk while later ones are still being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import uuid
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

from arq.connections import ArqRedis, create_pool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from jobs import (
    channels,
    chunks,
    codec,
    connection,
    keys,
    recipients_file,
    redis_safety,
    suppression,
)
from jobs.accounts import ACCOUNT, account_id, read_stop
from jobs.base import InvalidJob, SendJob
from jobs.chunks import CHUNK_FUNCTION, Entry
from jobs.contact_rows import ContactFile
from jobs.contacts import ContactImport, neutralise_cell
from jobs.errors import ConfigurationError, RedisFull, SendingNotFound, UnsafeRedis
from jobs.results import (
    REQUEUEABLE,
    Position,
    Record,
    Requeueable,
    ResultStore,
    campaign_of,
    digest,
    digest_bytes,
    now_iso,
    successor,
)
from jobs.settings import Settings, get_settings
from jobs.templating import TextRules, missing_variables, stand_ins

__all__ = ["CHUNK_FUNCTION", "Producer", "SyncProducer"]

NO_VALID_RECIPIENT: Final = "No valid recipients"  # messaging-api.txt → "Errors" → 102
SUBMIT_TRIES = 3  # a Redis blip mid-submit: the same key again resumes, never duplicates
LIST_BATCH = 200  # sendings a filtered listing reads per round trip
LIST_SCAN = 5000  # sendings one page of a filtered listing reads at most
# Redis memory one recipient of a finished sending keeps (its record, its share of the
# chunk entries and of the job): bench/redis_ops.py measures 160-240 bytes for an SMS
# with a short ``sub``; with headroom, what a careful submit asks to be free before it
# writes anything. Far larger ``sub`` values take more: the writes' own OOM check is
# what stays exact (``Producer._full``).
PER_RECIPIENT_BYTES: Final = 300
JOB_BYTES: Final = 512  # one chunk's arq job (its key and its queue entry), rounded up
ROOM: Final = (
    "make room in Redis (raise maxmemory, or let finished sendings expire: "
    "BULKSEND_RESULT_TTL_DAYS) and submit again"
)
log = logging.getLogger("bulksend.producer")

T = TypeVar("T")


def sending_id_for(idempotency_key: str) -> str:
    return "s" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]


UNKEYED: Final = "unkeyed"  # the digest of a sending submitted without an idempotency key


def content_digest(job: SendJob) -> str:
    """What a resubmission under the same idempotency key must match: the digest of the
    job as JSON, the same bytes as ``digest(job.model_dump(mode="json", ...))`` made
    straight by pydantic, in half the time (a tenth of a big submit)."""
    return digest_bytes(job.model_dump_json(by_alias=True, exclude_none=True).encode())


def normalize_recipient(kind: str, raw: str) -> str | None:
    """The recipient as the provider wants it, or None when the provider would say 102."""
    return channels.get(kind).normalize(raw)


# One recipient as submitted: its index, its first record, and its chunk entry (None
# when there is nothing to send and nothing to report).
Item = tuple[int, Record, Entry | None]


def _recipients(kind: str, rows: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[Item]:
    normalize = channels.get(kind).normalize  # looked up once, not per recipient
    for index, (raw, extras) in enumerate(rows):
        normalized = normalize(raw)
        if normalized is None:
            yield (
                index,
                Record(to=raw, status="rejected", code=102, description=NO_VALID_RECIPIENT),
                None,
            )
        else:
            given = raw if raw != normalized else None
            record: Record = {"to": raw, "status": "queued"}  # a literal: twice as quick
            yield index, record, Entry(index, normalized, extras, given)


def _variables(contact: dict[str, Any]) -> dict[str, Any]:
    """A contact's fields as ``{var}`` values: its own names, and custom fields by key."""
    values = {k: v for k, v in contact.items() if isinstance(v, str | int | float) and v != ""}
    for custom in contact.get("customFields") or []:
        values[custom["key"]] = custom["value"]
    for key, value in (contact.get("custom_field") or {}).items():
        values[key] = value
    return values


def _contact_rows(contact_file: ContactFile) -> Iterator[Item]:
    """An import's rows: each with its number, cells (for the report) and contact."""
    for index, row in enumerate(contact_file.rows()):
        to = row.key or f"row {row.number}"
        extras = {"row": row.number, "cells": row.cells, "contact": row.contact}
        if row.contact is None:
            record = Record(
                to=to, status="rejected", row=row.number, code=422, description=row.error
            )
        else:
            record = Record(to=to, status="queued", row=row.number)
        yield index, record, Entry(index, to, extras)


_PAUSES = [0, False]  # submits running with the collector paused; was it on before them


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while submits run, on again after the last.

    A submit makes a few short-lived objects per recipient, none in a cycle, so
    reference counting frees every one; but each allocation counts towards a
    collection, and a full one walks every live object, the caller's job of a hundred
    thousand recipients included. That was a third of a submit's CPU (300,000
    recipients: 2.1 s, 1.3 s paused). The young generations are still collected every
    ``YOUNG_EVERY`` chunks (``_collect_young``), so that cycles made meanwhile anywhere
    in the process do not pile up over a long streamed submit. A process that turned
    the collector off itself keeps it off."""
    if _PAUSES[0] == 0:
        _PAUSES[1] = gc.isenabled()
        gc.disable()
    _PAUSES[0] += 1
    try:
        yield
    finally:
        _PAUSES[0] -= 1
        if _PAUSES[0] == 0 and _PAUSES[1]:
            gc.enable()


YOUNG_EVERY: Final = 16  # a young collection before a submit's first chunk, and every 16th


def _collect_young() -> None:
    """While submits keep the collector paused, what it would have found young: cheap,
    since reference counting already freed nearly every young object. Not every chunk:
    a collection walks the chunk in hand too (some 4,000 objects, ~0.13 ms, a tenth of a
    submit's CPU) and moves it to the oldest generation, where it is freed anyway."""
    if _PAUSES[0] and _PAUSES[1]:
        gc.collect(1)


@dataclass
class _Written:
    """What one submit call has written so far, across its tries: what a full Redis
    leaves behind, and whether it can be taken back (``Producer._full``)."""

    created: bool = False  # this call created the sending (its id was new)
    existed: bool = False  # the sending was there before this call (a resubmission)
    queued: bool = False  # a chunk job is on the queue: a worker may be sending
    recipients: int = 0  # indices 0 to this (excluded) were handed to Redis


def _count_lines(path: str | Path) -> int:
    """Lines in a file, read in blocks: an import's rows, for the memory preflight."""
    lines = 0
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            lines += block.count(b"\n")
    return lines


class Producer:
    """Async producer. ``await Producer.connect()`` or pass an ``ArqRedis``."""

    def __init__(self, redis: ArqRedis, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.redis = redis
        self.store = ResultStore(redis, ttl_seconds=self.settings.result_ttl_days * 86400)
        self.text_rules = TextRules.from_settings(self.settings)

    @classmethod
    async def connect(cls, settings: Settings | None = None, *, wait: bool = True) -> Producer:
        """Connect to ``BULKSEND_REDIS_URL``: one Redis, or Sentinel (``jobs.connection``).
        ``wait=False``: return at once and connect on first use (a server that starts,
        and says it is not ready, while Redis is down)."""
        settings = settings or get_settings()
        if not settings.redis_url:
            raise ConfigurationError("redis_url: Producer.connect needs BULKSEND_REDIS_URL")
        if not wait:
            lazy = connection.arq_client(settings.redis_url, queue_name=settings.queue_name)
            return cls(lazy, settings)
        pool = await create_pool(
            connection.redis_settings(settings.redis_url),
            job_serializer=codec.dumps,
            job_deserializer=codec.loads,
            default_queue_name=settings.queue_name,
        )
        return cls(pool, settings)

    async def close(self) -> None:
        await self.redis.aclose()

    def _check(self, job: SendJob, rules: TextRules | None = None) -> None:
        """What the model cannot check alone: text rules and attachment limits (settings),
        cc/bcc with chunks."""
        check_text = getattr(job, "check_text", None)
        check_settings = getattr(job, "check_settings", None)
        try:
            if check_text is not None:
                check_text(rules or self.text_rules)
            if check_settings is not None:
                check_settings(self.settings)
        except ValueError as exc:
            raise InvalidJob(f"invalid {job.kind} sending: {exc}") from None
        size = self.settings.chunk_size
        if len(job.recipients()) > size and (getattr(job, "cc", None) or getattr(job, "bcc", None)):
            raise InvalidJob(
                f"invalid {job.kind} sending: cc/bcc: with more than {size} recipients "
                "(BULKSEND_CHUNK_SIZE) they would be copied once per provider call"
            )

    async def submit(self, job: SendJob, idempotency_key: str | None = None) -> str:
        """Record and enqueue ``job``; returns its sending id."""
        self._check(job)

        def items() -> Iterable[Item]:
            return _recipients(job.kind, job.recipient_rows())

        # Without a key the sending's id is new: nothing can resubmit it, so no digest is
        # compared, and none is made (a sixth of a submit's CPU, before its first chunk).
        content = content_digest(job) if idempotency_key is not None else UNKEYED
        return await self._submit(
            job, content, items, idempotency_key, expected=len(job.recipients())
        )

    async def submit_file(
        self, job: SendJob, path: str | Path, idempotency_key: str | None = None
    ) -> str:
        """Like ``submit``, with the recipients (and their ``sub``) streamed from a file.

        ``job`` gives everything but the recipients (its ``to`` is ignored). The
        file is validated whole first, then read again chunk by chunk, so memory
        stays flat however many recipients it holds.
        """
        self._check(job, replace(self.text_rules, allow_unknown=True))
        template: str | None = getattr(job, "message", None)
        rules = self.text_rules
        fixed = stand_ins(rules.short_link_length, rules.otp_length)

        def check(to: str, extras: dict[str, Any]) -> None:
            missing = missing_variables(str(template), extras.get("sub") or {}, fixed)
            if missing:
                raise ValueError(f"sub: no value for {{{missing[0]}}} used in message")

        checked = None if template is None or rules.allow_unknown else check
        summary = recipients_file.scan(path, partial(normalize_recipient, job.kind), checked)
        if summary.first_valid is None:
            raise InvalidJob(f"invalid {job.kind} sending: to: no valid recipients (code 102)")
        fields = job.model_dump(by_alias=True, mode="json", exclude_none=True, exclude={"to"})
        content = digest({"job": fields, "file": summary.sha256})
        return await self._submit(
            job,
            content,
            lambda: _recipients(job.kind, recipients_file.rows(path)),
            idempotency_key,
            expected=summary.count,
        )

    async def submit_import(
        self, job: ContactImport, path: str | Path, idempotency_key: str | None = None
    ) -> str:
        """Import a contact CSV: one recipient per data row, streamed at flat memory.

        File-level problems (unreadable, empty, binary, no contact column, a bad
        ``--map``, no data rows) raise ``InvalidJob`` before anything is queued; a
        bad row is recorded ``rejected`` with its reason and the rest go on.
        """
        contact_file = ContactFile(path, job.options())
        if next(iter(contact_file.rows()), None) is None:
            raise InvalidJob("file: no data rows (only a header)", field="file")
        job = job.model_copy(
            update={
                "header": contact_file.header,
                "filename": Path(path).name,
                "upload_max_bytes": self.settings.import_upload_max_bytes,
            }
        )
        fields = job.model_dump(mode="json", exclude={"upload_max_bytes"})
        content = digest({"job": fields, "file": recipients_file.sha256_of(path)})
        sending_id = await self._submit(
            job,
            content,
            lambda: _contact_rows(contact_file),
            idempotency_key,
            expected=_count_lines(path),
            extra_bytes=Path(path).stat().st_size,  # the rows' cells, kept for the report
        )
        if job.target == "messaging":
            await self.store.redis.sadd(keys.group_imports(job.group), sending_id)
        return sending_id

    async def _submit(
        self,
        job: SendJob,
        content_digest: str,
        items: Callable[[], Iterable[Item]],
        idempotency_key: str | None,
        *,
        expected: int = 0,
        extra_bytes: int = 0,
    ) -> str:
        """Record and enqueue a sending whose recipients ``items()`` yields (again on each
        try). ``expected``: how many it yields (0: unknown) and ``extra_bytes`` what else
        the sending keeps, for the memory preflight (module docstring)."""
        sending_id = sending_id_for(idempotency_key or uuid.uuid4().hex)
        spec = {
            "kind": job.kind,
            "endpoint": job.endpoint,
            "payload": job.api_payload(),
            "created_at": now_iso(),
        }
        need = expected * PER_RECIPIENT_BYTES + len(codec.dumps(spec)) + extra_bytes
        careful = await self._preflight(sending_id, need, expected)
        written = _Written()
        try:
            with _collector_paused():
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type((RedisConnectionError, RedisTimeoutError)),
                    stop=stop_after_attempt(SUBMIT_TRIES),
                    wait=wait_exponential(multiplier=0.2, max=2),
                    reraise=True,
                ):
                    with attempt:
                        await self._submit_once(
                            sending_id, job, spec, content_digest, items(), careful, written
                        )
        except ResponseError as exc:
            if not redis_safety.is_out_of_memory(exc):
                raise
            raise await self._full(sending_id, spec, written) from None
        return sending_id

    @property
    def _where(self) -> str:
        return connection.display(self.settings.redis_url)

    async def _preflight(self, sending_id: str, need: int, expected: int) -> bool:
        """Before anything is written: refuse a Redis that evicts keys (``UnsafeRedis``)
        and a new sending that would not fit in its ``maxmemory`` once finished, ``need``
        bytes (``RedisFull``); a resubmission of one that is there already needs no
        more room. Returns whether the submit must be careful: write every chunk before
        the first job (a Redis with a ``maxmemory``, or one that would not say). One
        ``INFO memory``, a round trip per submit."""
        memory = await redis_safety.read_memory(self.redis)
        if memory is None:
            return True
        problem = redis_safety.eviction_problem(memory, self._where)
        if problem is not None:
            raise UnsafeRedis(problem)
        if not memory.limited:
            return False
        if memory.used + need > memory.maxmemory and not await self.redis.exists(
            keys.sending(sending_id)
        ):
            raise RedisFull(
                f"Redis is out of memory for this sending ({memory.describe()}; its "
                f"{expected} recipients need about {redis_safety.mib(need)}): nothing of it "
                f"was queued; {ROOM}",
                used=memory.used,
                maxmemory=memory.maxmemory,
            )
        return True

    @staticmethod
    def _chunks(
        items: Iterable[Item], size: int
    ) -> Iterator[tuple[list[tuple[int, Record]], list[Entry]]]:
        """``items`` a chunk (``size`` recipients) at a time: the records and the entries
        (one per recipient with something to send or report)."""
        batch: list[tuple[int, Record]] = []
        entries: list[Entry] = []
        for index, record, entry in items:
            batch.append((index, record))
            if entry is not None:
                entries.append(entry)
            if len(batch) == size:
                yield batch, entries
                batch, entries = [], []
        if batch:
            yield batch, entries

    async def _submit_once(
        self,
        sending_id: str,
        job: SendJob,
        spec: dict[str, Any],
        content_digest: str,
        items: Iterable[Item],
        careful: bool,
        written: _Written,
    ) -> None:
        """One try: claim the id, write chunk after chunk, then open the sending.
        Streaming, each chunk's job goes on the queue once it is written; ``careful``,
        the jobs wait for the last chunk (module docstring)."""
        size = self.settings.chunk_size
        fresh = await self.store.create_sending(
            sending_id, job.kind, spec, content_digest, chunk_size=size
        )
        if not fresh:  # a resubmission cuts its chunks where the first submit did
            size = await self.store.chunk_size(sending_id) or size
        written.created = written.created or fresh
        written.existed = written.existed or not (fresh or written.created)
        screen = suppression.list_for_kind(job.kind)
        jobs = 0
        ready: list[str] = []  # careful: the chunks written whose jobs wait
        for n, (batch, entries) in enumerate(self._chunks(items, size)):
            if n % YOUNG_EVERY == 0:
                _collect_young()
            if screen is not None:
                batch, entries = await self._screen(sending_id, screen, batch, entries, fresh)
            written.recipients = max(written.recipients, batch[-1][0] + 1)
            if careful:
                if await self._write(sending_id, str(n), batch, entries):
                    ready.append(str(n))
            else:
                jobs += await self._enqueue(sending_id, str(n), batch, entries)
                written.queued = written.queued or jobs > 0
        if careful:
            jobs = await self._enqueue_written(sending_id, ready, written)
        await self.store.open(sending_id, jobs)

    async def _enqueue_written(self, sending_id: str, names: list[str], written: _Written) -> int:
        """A careful submit's last step: every chunk is written, now their jobs. Redis is
        asked for the jobs' room first, so that a full Redis is found before the first
        job goes on the queue: after it a worker may be sending, and nothing can be
        taken back. Returns the jobs enqueued."""
        if not names:
            return 0
        memory = await redis_safety.read_memory(self.redis)
        room = memory.maxmemory - memory.used if memory is not None and memory.limited else None
        if room is not None and len(names) * JOB_BYTES > room:
            # What Redis itself would answer a moment later, with a job already queued.
            raise OutOfMemoryError(f"no room for {len(names)} chunk jobs")
        for name in names:
            await chunks.enqueue(self.redis, sending_id, name, expires_s=self._job_expires_s)
            written.queued = True
        return len(names)

    async def _full(self, sending_id: str, spec: Mapping[str, Any], written: _Written) -> RedisFull:
        """Redis refused a write at ``maxmemory``: take back what can be and say what is left.

        A sending this call created, with no job on the queue, is deleted whole (no
        worker has seen it), and so is nothing at all when the refused write was the
        first. One that was there before (a resubmission) or has a job queued (a worker
        may be sending it) is left: the same idempotency key submitted again finishes
        it, and if nobody does, the sweeper opens it with what was recorded after
        ``BULKSEND_STALE_SUBMIT_AFTER``."""
        removed = written.created and not written.queued
        if removed:
            await self._forget(sending_id, spec, written.recipients)
        try:
            memory = await redis_safety.read_memory(self.redis)
        except RedisError:
            memory = None
        numbers = f" ({memory.describe()})" if memory is not None and memory.limited else ""
        if written.queued:
            what = (
                f"sending {sending_id} was queued in part; submit it again with the same "
                "idempotency key once Redis has room, to finish it"
            )
        elif written.existed:
            what = (
                f"sending {sending_id}, from an earlier submit with this idempotency key, "
                "was left as it was; submit it again with the same key once Redis has room"
            )
        else:
            what = f"nothing of sending {sending_id} was queued; {ROOM}"
        used = memory.used if memory is not None else None
        limit = memory.maxmemory if memory is not None else None
        return RedisFull(f"Redis is out of memory{numbers}: {what}", used=used, maxmemory=limit)

    async def _forget(self, sending_id: str, spec: Mapping[str, Any], recipients: int) -> None:
        """Delete everything a submit of this sending wrote: its hash, its results and
        chunks, its breakdown, its place in the listings, the campaign index and the
        sweeper's set (deleting is allowed at ``maxmemory``). Its queued recipients leave
        ``/metrics``' gauge too; the counters of final statuses (those rejected at
        submit) only ever go up, and keep them."""
        redis: Any = self.redis  # redis-py types results as ``Awaitable[T] | T``
        sending_key = keys.sending(sending_id)
        total, queued = await redis.hmget(sending_key, ["total", "n:queued"])
        buckets = keys.all_results(sending_id, max(int(total or 0), recipients))
        campaign = campaign_of(spec)
        async with redis.pipeline(transaction=False) as pipe:
            # DEL, not UNLINK: the memory must be free when the next write comes.
            pipe.delete(sending_key, keys.chunks(sending_id), keys.breakdown(sending_id))
            pipe.delete(keys.flights(sending_id), keys.flying(sending_id))
            for start in range(0, len(buckets), 1000):
                pipe.delete(*buckets[start : start + 1000])
            pipe.zrem(keys.SENDINGS, sending_id)
            pipe.srem(keys.ACTIVE, sending_id)
            if campaign is not None:
                pipe.zrem(keys.CAMPAIGNS, keys.campaign_member(campaign, sending_id))
            await pipe.execute()
        if queued is not None and int(queued) > 0:
            field = keys.metrics_field(keys.METRICS_RECIPIENTS, str(spec["kind"]), "queued")
            try:
                await redis.hincrby(keys.METRICS, field, -int(queued))
            except ResponseError as exc:  # still full: the gauge is off by that many
                log.warning("sending %s: /metrics keeps %s queued: %s", sending_id, queued, exc)

    async def _screen(
        self,
        sending_id: str,
        list_name: str,
        batch: list[tuple[int, Record]],
        entries: list[Entry],
        fresh: bool,
    ) -> tuple[list[tuple[int, Record]], list[Entry]]:
        """A chunk's recipients against the suppression list (one HMGET): a suppressed
        one is recorded ``suppressed`` (final, with the entry's reason) and left out of
        the chunk. On a resubmission (``fresh`` False) a recipient already recorded
        otherwise keeps its record and its entry: the chunk it is in, or will be in,
        must still send it, or it would stay queued with nothing to send it."""
        queued = [(index, record) for index, record in batch if record["status"] == "queued"]
        if not queued:
            return batch, entries
        found = await suppression.get_many(self.redis, list_name, [r["to"] for _, r in queued])
        if not found:
            return batch, entries
        hits: dict[int, Record] = {}
        for index, record in queued:
            entry = found.get(suppression.normalize(list_name, record["to"]))
            if entry is not None:
                description = suppression.describe(entry)
                hits[index] = Record(
                    to=record["to"], status="suppressed", code=None, description=description
                )
        if not fresh:
            earlier = await self.store.load(sending_id, list(hits))
            for index, record in earlier.items():
                if record["status"] != "suppressed":
                    del hits[index]
        if not hits:
            return batch, entries
        return (
            [(index, hits.get(index, record)) for index, record in batch],
            [entry for entry in entries if entry.index not in hits],
        )

    @property
    def _job_expires_s(self) -> float:
        return float(self.settings.result_ttl_days * 86400)

    async def _write(
        self, sending_id: str, chunk: str, records: list[tuple[int, Record]], entries: list[Entry]
    ) -> bool:
        """Record a chunk's recipients and entries; whether it has a job to enqueue (a
        recipient to send).

        A queued recipient gets no record of its own: its chunk entry is its record
        until something moves it (``ResultStore.add_chunk``). Entries with nothing
        queued are kept too, for the report (an import's refused rows)."""
        queued = sum(record["status"] == "queued" for _, record in records)
        if not entries:
            await self.store.add_recipients(sending_id, records)
            return False
        explicit = [(i, r) for i, r in records if r["status"] != "queued"]
        blob = chunks.encode(entries)
        if not await self.store.add_chunk(sending_id, chunk, blob, queued, explicit):
            # Cancelled meanwhile: every record written, the queued ones as cancelled.
            await self.store.add_recipients(sending_id, records)
            await chunks.save(self.redis, sending_id, chunk, entries)
        return queued > 0

    async def _enqueue(
        self, sending_id: str, chunk: str, records: list[tuple[int, Record]], entries: list[Entry]
    ) -> int:
        """Record a chunk (``_write``), then enqueue its job; returns jobs enqueued (0 or 1)."""
        if not await self._write(sending_id, chunk, records, entries):
            return 0
        await chunks.enqueue(self.redis, sending_id, chunk, expires_s=self._job_expires_s)
        return 1

    async def requeue(self, sending_id: str, status: Requeueable) -> int:
        """Send again, on purpose, the recipients recorded ``status`` (``unknown`` or
        ``failed``); returns how many were queued again.

        An ``unknown`` one may already have reached the provider, and a ``failed``
        one used up its attempts or its age: sending either again is the operator's
        decision (``bulksend requeue ID --unknown`` / ``--failed``), never the
        pipeline's. Each goes back with the entry it was submitted with (its ``sub``
        included), as a new chunk written before the records are reopened: a crash
        after the reopening leaves a chunk the sweeper enqueues. Their age counts
        afresh (``queued_at``); a failed one also gets its attempts back (they ran
        out, or it would not have failed), an unknown one keeps its count. An earlier
        run still holding one of them cannot send it too: the claims are
        compare-and-set.
        """
        if status not in REQUEUEABLE:
            raise ValueError(f"status: {status!r} is not one of {', '.join(REQUEUEABLE)}")
        if await self.store.status(sending_id) is None:
            raise SendingNotFound(sending_id)
        tag = uuid.uuid4().hex[:8]
        fresh = {"attempts": 0} if status == "failed" else {}
        moved, n = 0, 0
        async for _, entries in self.store.chunk_entries(sending_id):
            current = await self.store.load_chunk(sending_id, entries)
            found = [
                e for e in entries if e.index in current and current[e.index]["status"] == status
            ]
            size = self.settings.chunk_size
            for start in range(0, len(found), size):
                part = found[start : start + size]
                chunk = f"requeue-{tag}-{n}"
                n += 1
                await chunks.save(self.redis, sending_id, chunk, part)
                queued_at = now_iso()
                reopened = [
                    (
                        e.index,
                        successor(
                            current[e.index],
                            "queued",
                            queued_at=queued_at,
                            requeued_at=queued_at,
                            **fresh,
                        ),
                    )
                    for e in part
                ]
                moved += await self.store.reopen(sending_id, status, reopened)
                await chunks.enqueue(self.redis, sending_id, chunk, expires_s=self._job_expires_s)
        return moved

    async def requeue_unknown(self, sending_id: str) -> int:
        """``requeue(sending_id, "unknown")``: the recipients whose outcome is unknown."""
        return await self.requeue(sending_id, "unknown")

    async def submit_group(
        self, job: SendJob, group: str, idempotency_key: str | None = None
    ) -> str:
        """Send ``job`` to the contacts imported here into messaging ``group``.

        ``job``'s own recipients are ignored; each contact's fields (name,
        surname, email, phone, externalId and custom fields) fill its ``{var}``.
        A contact without an address for this channel is left out, and one
        address imported twice is sent once.
        """
        self._check(job, replace(self.text_rules, allow_unknown=True))
        imports = sorted(
            m.decode() for m in await self.store.redis.smembers(keys.group_imports(group))
        )
        if not imports:
            raise InvalidJob(f"group: no import into a group {group!r}", field="group")
        members = [m async for m in self.group_members(imports, job.kind)]
        if not members:
            raise InvalidJob(f"group: {group!r} has no contact reachable by {job.kind}")
        fields = job.model_dump(by_alias=True, mode="json", exclude_none=True, exclude={"to"})
        content = digest({"job": fields, "group": group, "members": members})

        def items() -> Iterable[Item]:
            return _recipients(job.kind, ((to, {"sub": sub}) for to, sub in members))

        return await self._submit(job, content, items, idempotency_key, expected=len(members))

    async def group_stand_in(self, group: str, kind: str) -> str | None:
        """One member's address (for validating a group sending's model), or None."""
        found = await self.store.redis.smembers(keys.group_imports(group))
        async for address, _ in self.group_members(sorted(m.decode() for m in found), kind):
            return address
        return None

    async def group_members(
        self, imports: list[str], kind: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(address, variables) of each contact the imports created, once per address."""
        address_field = channels.get(kind).contact_field
        seen: set[str] = set()
        for import_id in imports:
            async for _, entries in self.store.chunk_entries(import_id):
                current = await self.store.load_chunk(import_id, entries)
                for entry in entries:
                    contact = entry.extras.get("contact") or {}
                    address = contact.get(address_field)
                    record = current.get(entry.index)
                    if not address or address in seen or not record:
                        continue
                    if record["status"] != "accepted":
                        continue
                    seen.add(address)
                    yield address, _variables(contact)

    async def report(self, sending_id: str, status: str | None = None) -> AsyncIterator[list[str]]:
        """CSV rows of a sending's recipients (``status``: only those), formula-neutralised.

        A sending's report has a row per recipient, from its record (those refused at
        submit, which have no chunk entry, too). An import's report has its file's
        columns as they were, plus ``row`` and ``reason``: the rejected rows, fixed,
        can be imported again.
        """
        meta = await self.store.status(sending_id)
        if meta is None:
            raise SendingNotFound(sending_id)
        if meta["kind"] != "contacts":
            yield [
                "index", "to", "status", "code", "description", "id", "parts", "attempts",
                "delivery",
            ]  # fmt: skip
            async for record in self.store.iter_results(sending_id):
                if status is None or record["status"] == status:
                    cells = [str(record["index"]), record["to"], record["status"]]
                    cells += [
                        "" if record.get(k) is None else str(record[k])
                        for k in ("code", "description", "id", "parts", "attempts", "delivery")
                    ]
                    yield [neutralise_cell(cell) for cell in cells]
            return
        spec = await self.store.spec(sending_id) or {}
        header: list[str] = list(spec.get("payload", {}).get("header") or [])
        yield [*header, "row", "reason"]
        async for _, entries in self.store.chunk_entries(sending_id):
            current = await self.store.load_chunk(sending_id, entries)
            for entry in entries:
                found = current.get(entry.index)
                if found is None or (status is not None and found["status"] != status):
                    continue
                given = entry.extras.get("cells") or {}
                reason = found.get("description") or found["status"]
                row = [*(given.get(name, "") for name in header), str(entry.extras["row"])]
                yield [neutralise_cell(cell) for cell in [*row, str(reason)]]

    async def cancel(self, sending_id: str) -> dict[str, Any]:
        """Recipients not yet sent are recorded ``cancelled`` and never sent; calls on the
        wire finish and are recorded. Returns the status after cancelling."""
        if not await self.store.mark_cancelled(sending_id):
            raise SendingNotFound(sending_id)
        # From here on no run can claim a recipient of this sending (the claim
        # script checks the flag), and a recipient sent back to the queue is
        # recorded cancelled instead; what is queued now is cancelled here.
        async for _, entries in self.store.chunk_entries(sending_id):
            await self.store.cancel_queued(sending_id, [e.index for e in entries])
        status = await self.status(sending_id)
        assert status is not None
        return status

    async def status(self, sending_id: str) -> dict[str, Any] | None:
        """The sending's state and counts, and the provider account's stop if any."""
        return (await self.statuses([sending_id]))[0]

    async def statuses(self, sending_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """``status`` of each sending (None: unknown): one pipelined read for any number,
        and one per stop scope that concerns them."""
        statuses = await self.store.statuses(sending_ids)
        # Only the stops that concern them (the account's, their channels'), read by key:
        # never a SCAN, whose cost grows with every key in Redis.
        account = account_id(self.settings)
        scopes = {ACCOUNT, *(status["kind"] for status in statuses if status)}
        stops = {scope: await read_stop(self.redis, account, scope) for scope in scopes}
        for status in filter(None, statuses):
            stop = stops[ACCOUNT] or stops[status["kind"]]
            status["account"] = stop.as_dict() if stop else None
        return statuses

    async def sendings(
        self,
        limit: int = 50,
        *,
        after: Position | None = None,
        since: float | None = None,
        state: str | None = None,
        kind: str | None = None,
        scan: int = LIST_SCAN,
    ) -> tuple[list[dict[str, Any]], Position | None]:
        """A page of statuses, newest first, and where the next page starts (None: the end).

        ``after``: the position the previous page ended at; ``since``: created after
        this epoch. Each page reads at most ``scan`` sendings, so a filter (``state``,
        ``kind``) that matches few of them gives a short page with a position to go on
        from, never a walk through every sending.
        """
        page: list[dict[str, Any]] = []
        position = after
        budget = max(scan, limit)
        # Unfiltered, a page reads exactly its sendings; filtered, larger steps.
        step = limit if state is None and kind is None else max(limit, LIST_BATCH)
        while budget > 0:
            want = min(budget, step)
            batch = await self.store.newest(want, before=position, since=since)
            for found, status in zip(
                batch, await self.statuses([i for _, i in batch]), strict=True
            ):
                position = found
                if status and state in (None, status["state"]) and kind in (None, status["kind"]):
                    page.append(status)
                    if len(page) == limit:
                        return page, position
            if len(batch) < want:
                return page, None
            budget -= len(batch)
        return page, position

    async def wait(
        self, sending_id: str, *, timeout: float | None = None, poll: float = 0.2
    ) -> dict[str, Any]:
        """Poll until the sending is final; TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while True:
                status = await self.status(sending_id)
                if status is None:
                    raise SendingNotFound(sending_id)
                if status["final"]:
                    return status
                await asyncio.sleep(poll)


class SyncProducer:
    """The same API for synchronous code; owns a private event loop."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._producer = self._run(Producer.connect(settings))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def submit(self, job: SendJob, idempotency_key: str | None = None) -> str:
        return self._run(self._producer.submit(job, idempotency_key))

    def status(self, sending_id: str) -> dict[str, Any] | None:
        return self._run(self._producer.status(sending_id))

    def wait(self, sending_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        return self._run(self._producer.wait(sending_id, timeout=timeout))

    def cancel(self, sending_id: str) -> dict[str, Any]:
        return self._run(self._producer.cancel(sending_id))

    def close(self) -> None:
        self._run(self._producer.close())
        self._loop.close()

    def __enter__(self) -> SyncProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
