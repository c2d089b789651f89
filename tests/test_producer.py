"""The producer against a real redis-server: records, chunks, idempotency."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest
from arq.jobs import Job

from jobs import IdempotencyConflict, chunks, codec, keys
from jobs.producer import UNKEYED, Producer, content_digest, sending_id_for
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import numbers


def sms(to: list[str], **extra: object) -> Sms:
    return Sms.model_validate({"to": to, "from": "TEST", "message": "Hello {name}", **extra})


@pytest.fixture
async def producer(settings: Settings):  # type: ignore[no-untyped-def]
    p = await Producer.connect(settings.model_copy(update={"chunk_size": 4}))
    yield p
    await p.close()


async def queued_job_ids(producer: Producer) -> list[str]:
    raw = await producer.redis.zrange(producer.settings.queue_name, 0, -1)
    return sorted(r.decode() for r in raw)


async def test_chunks_have_deterministic_ids_and_all_recipients(producer: Producer) -> None:
    to = numbers(10)
    sending_id = await producer.submit(sms(to, sub=[{"name": str(i)} for i in range(10)]))
    ids = await queued_job_ids(producer)
    assert ids == sorted(keys.chunk_job_id(sending_id, n) for n in range(3))
    # Every recipient is in exactly one chunk, with its own sub object.
    seen = []
    for job_id in ids:
        info = await Job(job_id, producer.redis, _deserializer=codec.loads).info()
        assert info is not None
        chunk_sending, chunk = info.args  # a job carries (sending, chunk); entries are stored
        assert chunk_sending == sending_id
        entries = await chunks.load(producer.redis, sending_id, chunk)
        assert entries is not None
        seen += [(e.index, e.to, e.extras["sub"]["name"]) for e in entries]
    assert sorted(seen) == [(i, to[i], str(i)) for i in range(10)]
    status = await producer.status(sending_id)
    assert status is not None
    assert status["counts"]["total"] == 10 and status["counts"]["queued"] == 10
    assert status["state"] == "running" and status["chunks"] == 3


async def test_same_idempotency_key_enqueues_nothing_new(producer: Producer) -> None:
    job = sms(numbers(6), sub=[{"name": "x"}] * 6)
    first = await producer.submit(job, idempotency_key="order-42")
    before = await queued_job_ids(producer)
    second = await producer.submit(job, idempotency_key="order-42")
    assert first == second
    assert await queued_job_ids(producer) == before
    status = await producer.status(first)
    assert status is not None and status["counts"]["total"] == 6


async def test_idempotency_key_reused_for_other_content_is_refused(producer: Producer) -> None:
    await producer.submit(sms(numbers(2), sub=[{"name": "a"}] * 2), idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        await producer.submit(sms(numbers(3), sub=[{"name": "a"}] * 3), idempotency_key="k")


async def test_only_a_keyed_sending_keeps_its_contents_digest(producer: Producer) -> None:
    """The digest is what a resubmission under the key must match; without a key the id
    is new and nothing can resubmit it, so none is made."""
    job = sms(numbers(2), sub=[{"name": "a"}] * 2)
    keyed = await producer.submit(job, idempotency_key="k")
    unkeyed = await producer.submit(job)
    redis: Any = producer.redis
    digests = [await redis.hget(keys.sending(s), "digest") for s in (keyed, unkeyed)]
    assert digests == [content_digest(job).encode(), UNKEYED.encode()]


async def test_invalid_recipients_are_recorded_rejected_102_and_not_enqueued(
    producer: Producer,
) -> None:
    to = ["34666555444", "12", "abc", "34666555333"]
    sending_id = await producer.submit(sms(to, sub=[{"name": n} for n in "abcd"]))
    results = [r async for r in producer.store.iter_results(sending_id)]
    assert [(r["to"], r["status"], r.get("code")) for r in results] == [
        ("34666555444", "queued", None),
        ("12", "rejected", 102),
        ("abc", "rejected", 102),
        ("34666555333", "queued", None),
    ]
    status = await producer.status(sending_id)
    assert status is not None
    assert status["counts"]["rejected"] == 2 and status["counts"]["queued"] == 2
    entries = await chunks.load(producer.redis, sending_id, "0")
    assert entries is not None
    assert [e.to for e in entries] == ["34666555444", "34666555333"]


async def test_plus_prefixed_numbers_are_sent_without_the_plus(producer: Producer) -> None:
    sending_id = await producer.submit(sms(["+34 666 555 444"], sub=[{"name": "a"}]))
    entries = await chunks.load(producer.redis, sending_id, "0")
    assert entries is not None and entries[0].to == "34666555444"


class _Box:
    """Something a weak reference can follow, put in a cycle of dicts."""

    def __init__(self, inside: dict[str, Any]) -> None:
        self.inside = inside


async def test_the_cyclic_collector_is_off_while_submits_run_and_back_after(
    producer: Producer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overlapping submits, one of them failing: the collector is off while any runs,
    on again after the last, and a cycle dropped meanwhile is still collected (before
    the first chunk, and every ``YOUNG_EVERY`` after it); a process that turned it off
    itself keeps it off."""
    seen: list[bool] = []
    cycles_left: list[bool] = []
    real = Producer._submit_once
    both_in = asyncio.Barrier(2)  # the two submits are inside at once

    async def watched(self: Producer, *args: Any) -> None:
        seen.append(gc.isenabled())
        cycle: dict[str, Any] = {}
        cycle["box"] = box = _Box(cycle)  # only a collection can free the two
        dropped = weakref.ref(box)
        del cycle, box
        if len(seen) <= 2:  # each submit's first try waits for the other's
            async with asyncio.timeout(10):
                await both_in.wait()
        await real(self, *args)
        cycles_left.append(dropped() is not None)
        seen.append(gc.isenabled())
        if args[0] == sending_id_for("fails"):
            raise IdempotencyConflict("this one fails after writing")

    monkeypatch.setattr(Producer, "_submit_once", watched)
    assert gc.isenabled()
    results = await asyncio.gather(
        producer.submit(sms(numbers(3), sub=[{"name": "a"}] * 3), "fails"),
        producer.submit(sms(numbers(3, 3), sub=[{"name": "b"}] * 3), "works"),
        return_exceptions=True,
    )
    assert isinstance(results[0], IdempotencyConflict), results
    assert isinstance(results[1], str)
    assert seen == [False] * 4
    assert cycles_left == [False, False]
    assert gc.isenabled()
    gc.disable()
    try:
        await producer.submit(sms(numbers(2, 6), sub=[{"name": "c"}] * 2))
        assert not gc.isenabled()
    finally:
        gc.enable()
