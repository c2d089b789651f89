"""Recipients nothing has moved yet have no record of their own: their chunk entry is
their record (``ResultStore.add_chunk``, ``chunks.Entry.record``). Every reader must
still see each of them, as handed in, and every move must still find them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from jobs import keys
from jobs.contacts import ContactImport
from jobs.producer import Producer
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import drain, numbers, sandbox_stats


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(settings.model_copy(update={"chunk_size": 4}))
    yield p
    await p.close()


def sms(to: list[str]) -> Sms:
    return Sms.model_validate({"to": to, "from": "TEST", "message": "Hello"})


async def stored(producer: Producer, sending_id: str, total: int) -> int:
    """Records stored in the sending's results hashes."""
    redis: Any = producer.redis
    return sum([await redis.hlen(key) for key in keys.all_results(sending_id, total)])


async def test_a_submit_stores_records_only_for_those_refused_and_readers_see_all(
    producer: Producer,
) -> None:
    to = numbers(9)
    to[2] = "+34 " + to[2][2:]  # as handed in: normalized for the provider, shown as given
    to[5] = "not a number"  # refused at submit (102): recorded
    sending_id = await producer.submit(sms(to))
    assert await stored(producer, sending_id, 9) == 1
    status = await producer.status(sending_id)
    assert status is not None
    assert (status["counts"]["total"], status["counts"]["queued"]) == (9, 8)
    records = [r async for r in producer.store.iter_results(sending_id)]
    assert [r["to"] for r in records] == to
    assert [r["status"] for r in records].count("queued") == 8
    assert records[5]["status"] == "rejected"
    page = await producer.store.page(sending_id, 4, 4)
    assert [i for i, _ in page] == [4, 5, 6, 7]
    found, _ = await producer.store.scan(sending_id, text="+34", status=None, cursor=0, limit=5)
    assert [(i, r["status"]) for i, r in found] == [(2, "queued")]


async def test_a_resubmission_counts_nobody_twice_even_with_another_chunk_size(
    producer: Producer,
) -> None:
    job = sms(numbers(10))
    first = await producer.submit(job, idempotency_key="same")
    other = Producer(producer.redis, producer.settings.model_copy(update={"chunk_size": 3}))
    assert await other.submit(job, idempotency_key="same") == first
    status = await producer.status(first)
    assert status is not None
    assert (status["counts"]["total"], status["counts"]["queued"]) == (10, 10)
    assert len(await producer.store.load(first, list(range(10)))) == 10


async def test_cancel_records_every_untouched_recipient_as_handed_in(
    producer: Producer,
) -> None:
    to = numbers(6)
    to[1] = "+34 " + to[1][2:]
    sending_id = await producer.submit(sms(to))
    status = await producer.cancel(sending_id)
    assert status["final"] and status["counts"]["cancelled"] == 6
    assert await stored(producer, sending_id, 6) == 6
    records = [r async for r in producer.store.iter_results(sending_id)]
    assert [(r["to"], r["status"]) for r in records] == [(t, "cancelled") for t in to]


async def test_untouched_recipients_are_sent_and_recorded_once(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    sending_id = await producer.submit(sms(numbers(10)))
    await drain(settings.model_copy(update={"chunk_size": 4}))
    status = await producer.status(sending_id)
    assert status is not None and status["final"] and status["counts"]["accepted"] == 10
    assert await stored(producer, sending_id, 10) == 10
    assert sandbox_stats(sandbox_url)["recipients"] == 10


async def test_an_imports_untouched_rows_keep_their_row_numbers(
    producer: Producer, tmp_path: Path
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text("phone,name\n+34666555444,Ana\nnot a phone,Bo\n+34666555333,Cy\n")
    job = ContactImport.model_validate({"group": "friends"})
    import_id = await producer.submit_import(job, path)
    records = [r async for r in producer.store.iter_results(import_id)]
    assert [(r["row"], r["status"]) for r in records] == [
        (2, "queued"), (3, "rejected"), (4, "queued"),
    ]  # fmt: skip
