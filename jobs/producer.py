"""How backend services hand a sending to the pipeline.

``submit`` validates (the model did), records every recipient, and enqueues one
arq job per chunk with a deterministic id. The order matters for "nothing
lost": recipients are recorded before their chunk is enqueued, and a
resubmission with the same idempotency key re-enqueues the same job ids (arq
ignores the ones it has), so a producer that crashed half-way can simply submit
again.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from arq.connections import ArqRedis, RedisSettings, create_pool

from jobs import codec, keys, recipients_file
from jobs.accounts import account_id, read_stop
from jobs.base import InvalidJob, SendJob
from jobs.email import normalize_email
from jobs.fields import normalize_phone
from jobs.results import CARRIED, Record, ResultStore, digest, now_iso
from jobs.settings import Settings, get_settings
from jobs.templating import TextRules, missing_variables, stand_ins

CHUNK_FUNCTION = "send_chunk"
NO_VALID_RECIPIENT = {"code": 102, "description": "No valid recipients"}

T = TypeVar("T")


def sending_id_for(idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return "s" + uuid.uuid4().hex[:20]
    return "s" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]


def normalize_recipient(kind: str, raw: str) -> str | None:
    """The recipient as the provider wants it, or None when the provider would say 102."""
    return normalize_email(raw) if kind == "email" else normalize_phone(raw)


class Producer:
    """Async producer. ``await Producer.connect()`` or pass an ``ArqRedis``."""

    def __init__(self, redis: ArqRedis, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.redis = redis
        self.store = ResultStore(redis, ttl_seconds=self.settings.result_ttl_days * 86400)
        self.text_rules = TextRules.from_settings(self.settings)

    @classmethod
    async def connect(cls, settings: Settings | None = None) -> Producer:
        settings = settings or get_settings()
        if not settings.redis_url:
            raise ValueError("Producer.connect needs BULKSEND_REDIS_URL (or use the CLI)")
        pool = await create_pool(
            RedisSettings.from_dsn(settings.redis_url),
            job_serializer=codec.dumps,
            job_deserializer=codec.loads,
            default_queue_name=settings.queue_name,
        )
        return cls(pool, settings)

    async def close(self) -> None:
        await self.redis.aclose()

    def _check(self, job: SendJob, rules: TextRules | None = None) -> None:
        """What the model cannot check alone: text rules (settings) and cc/bcc with chunks."""
        check_text = getattr(job, "check_text", None)
        try:
            if check_text is not None:
                check_text(rules or self.text_rules)
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
        full = job.model_dump(by_alias=True, mode="json", exclude_none=True)
        recipients = job.recipients()
        rows = ((recipients[i], job.recipient_extras(i)) for i in range(len(recipients)))
        return await self._submit(job, digest(full), rows, idempotency_key)

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
        return await self._submit(job, content, recipients_file.rows(path), idempotency_key)

    async def _submit(
        self,
        job: SendJob,
        content_digest: str,
        rows: Iterable[tuple[str, dict[str, Any]]],
        idempotency_key: str | None,
    ) -> str:
        sending_id = sending_id_for(idempotency_key)
        spec = {
            "kind": job.kind,
            "endpoint": job.endpoint,
            "payload": job.api_payload(),
            "created_at": now_iso(),
        }
        await self.store.create_sending(sending_id, job.kind, spec, content_digest)
        chunks = 0
        batch: list[tuple[int, Record]] = []
        entries: list[list[Any]] = []
        for index, (raw, extras) in enumerate(rows):
            normalized = normalize_recipient(job.kind, raw)
            if normalized is None:
                batch.append((index, {"to": raw, "status": "rejected", **NO_VALID_RECIPIENT}))
            else:
                batch.append((index, {"to": raw, "status": "queued"}))
                entries.append([index, normalized, extras])
            if len(batch) == self.settings.chunk_size:
                chunks += await self._enqueue(sending_id, chunks, batch, entries)
                batch, entries = [], []
        if batch:
            chunks += await self._enqueue(sending_id, chunks, batch, entries)
        await self.store.open(sending_id, chunks)
        return sending_id

    async def _enqueue(
        self,
        sending_id: str,
        chunk: int,
        records: list[tuple[int, Record]],
        entries: list[list[Any]],
    ) -> int:
        """Record a chunk's recipients, then enqueue its job; returns jobs enqueued (0 or 1)."""
        await self.store.add_recipients(sending_id, records)
        if not entries:
            return 0
        await self.redis.enqueue_job(
            CHUNK_FUNCTION, sending_id, entries, _job_id=keys.chunk_job_id(sending_id, chunk)
        )
        return 1

    async def requeue_unknown(self, sending_id: str) -> int:
        """Send again, on purpose, the recipients whose outcome is unknown.

        They may already have reached the provider: this is the operator's
        decision (``bulksend requeue ID --unknown``), never the pipeline's.
        """
        status = await self.store.status(sending_id)
        if status is None:
            raise KeyError(f"no sending {sending_id}")
        batch: list[tuple[int, Record]] = []
        entries: list[list[Any]] = []
        async for record in self.store.iter_results(sending_id):
            if record["status"] != "unknown":
                continue
            index = record.pop("index")
            extras = record.pop("extras", {})
            reopened = {k: v for k, v in record.items() if k in CARRIED}
            batch.append((index, {**reopened, "status": "queued", "requeued_at": now_iso()}))
            address = normalize_recipient(str(status["kind"]), record["to"]) or record["to"]
            entries.append([index, address, extras])
        moved = await self.store.reopen_unknown(sending_id, batch)
        tag = uuid.uuid4().hex[:8]
        size = self.settings.chunk_size
        for n, start in enumerate(range(0, len(entries), size)):
            await self.redis.enqueue_job(
                CHUNK_FUNCTION,
                sending_id,
                entries[start : start + size],
                _job_id=keys.chunk_job_id(sending_id, f"requeue-{tag}-{n}"),
            )
        return moved

    async def status(self, sending_id: str) -> dict[str, Any] | None:
        """The sending's state and counts, and the provider account's stop if any."""
        status = await self.store.status(sending_id)
        if status is not None:
            stop = await read_stop(self.redis, account_id(self.settings))
            status["account"] = stop.as_dict() if stop else None
        return status

    async def wait(
        self, sending_id: str, *, timeout: float | None = None, poll: float = 0.2
    ) -> dict[str, Any]:
        """Poll until the sending is final; TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while True:
                status = await self.status(sending_id)
                if status is None:
                    raise KeyError(f"no sending {sending_id}")
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

    def close(self) -> None:
        self._run(self._producer.close())
        self._loop.close()

    def __enter__(self) -> SyncProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
