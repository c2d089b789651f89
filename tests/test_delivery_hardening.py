"""Delivery hardening: each test here failed on the code before it (issue 10).

Rate limits, long holds, one sender's problem, uncertain answers, two runs of
one chunk, lost details, a poisoned call and cancel: every recipient ends in
exactly one recorded state, and nobody is sent twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobs import chunks, codec, keys
from jobs.accounts import account_id, parked_scopes, read_stop, read_stops, resume
from jobs.email import Email
from jobs.producer import Producer
from jobs.results import FINAL
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import (
    drain,
    enqueue_entries,
    numbers,
    running_worker,
    sandbox_stats,
    set_faults,
    wait_until,
)
from worker.sweeper import sweep


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(settings.model_copy(update={"chunk_size": 50}))
    yield p
    await p.close()


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"chunk_size": 50, "max_attempts": 3, "hold_probe_interval": 0}
    )


def sms(n: int, start: int = 0, text: str = "Hi {name}") -> Sms:
    return Sms.model_validate(
        {
            "to": numbers(n, start),
            "from": "T",
            "message": text,
            "sub": [{"name": f"n{i}"} for i in range(start, start + n)],
        }
    )


def email(sender: str = "news@example.com", n: int = 3) -> Email:
    return Email.model_validate(
        {
            "to": [f"user{i}@example.com" for i in range(n)],
            "fromEmail": sender,
            "replyTo": "news@example.com",
            "subject": "Hello",
            "body": "<p>Hi</p>",
        }
    )


def redis_of(producer: Producer) -> Any:
    """redis-py types async results as ``Awaitable[T] | T``; tests read them as ``T``."""
    return producer.redis


async def records(producer: Producer, sending_id: str) -> list[dict[str, Any]]:
    return [r async for r in producer.store.iter_results(sending_id)]


async def statuses(producer: Producer, sending_id: str) -> dict[str, int]:
    status = await producer.status(sending_id)
    assert status is not None
    return {k: v for k, v in status["counts"].items() if v and k != "total"}


def messages(sandbox_url: str, channel: str = "sms") -> list[dict[str, Any]]:
    got = httpx.get(
        f"{sandbox_url}/_sandbox/messages", params={"channel": channel, "limit": 100_000}
    ).json()
    return list(got["messages"])


# --- 2. long holds park, and lose nothing ----------------------------------------


async def test_a_long_hold_parks_the_chunks_and_loses_nothing(
    producer: Producer, fast: Settings, sandbox_url: str
) -> None:
    """Two days without credits, compressed: while held no chunk job exists to spin, so
    what two days do to a spinning job (arq's tries used up, its job key expired) finds
    nothing to break; the first transient error after the resume spends no run budget."""
    set_faults(sandbox_url, credits=0)
    sending_id = await producer.submit(sms(300))  # 6 chunks
    account = account_id(fast)
    patient = fast.model_copy(update={"sweep_interval": 0.3, "max_attempts": 10})
    async with running_worker(patient):

        async def all_parked() -> bool:
            return (await parked_scopes(producer.redis, account)).get("*", 0) == 6

        await wait_until(all_parked, timeout=30)
        stop = await read_stop(producer.redis, account)
        assert stop is not None and stop.code == 111
        assert await producer.redis.zcard(fast.queue_name) == 0  # nothing spins in arq
        # Two days of a spinning job: every try used, every job key expired.
        for chunk in await chunks.names(producer.redis, sending_id):
            job_id = keys.chunk_job_id(sending_id, chunk)
            await producer.redis.set(keys.arq_retry(job_id), 999_999)
            await producer.redis.delete(keys.arq_job(job_id))
        await asyncio.sleep(1.0)
        assert await statuses(producer, sending_id) == {"queued": 300}
        # Credits bought; the provider's first answer after the weekend is a 101.
        set_faults(sandbox_url, error={"code": 101, "rate": 0.3}, seed=3)
        await resume(producer.redis, account)
        done = await producer.wait(sending_id, timeout=60)
    assert done["counts"]["accepted"] == 300, done["counts"]
    assert sandbox_stats(sandbox_url)["duplicates"] == 0


# --- 3. one sender's problem stops one sending, not the account -------------------


async def test_an_unverified_sender_rejects_its_sending_and_sms_keeps_flowing(
    producer: Producer, fast: Settings, sandbox_url: str
) -> None:
    set_faults(sandbox_url, unverified={"senders": ["bad@example.com"], "reply_to": []})
    bad = await producer.submit(email("bad@example.com"))
    good = await producer.submit(sms(100))
    await drain(fast)
    assert {(r["status"], r.get("code")) for r in await records(producer, bad)} == {
        ("rejected", 115)
    }
    assert await statuses(producer, good) == {"accepted": 100}
    assert await read_stops(producer.redis, account_id(fast)) == []


async def test_a_hard_bounce_block_holds_email_only_and_sms_success_does_not_lift_it(
    producer: Producer, fast: Settings, sandbox_url: str
) -> None:
    set_faults(sandbox_url, error={"code": 118}, channels=["email"])
    mail = await producer.submit(email())
    text = await producer.submit(sms(100))
    await drain(fast)
    account = account_id(fast)
    [stop] = await read_stops(producer.redis, account)
    assert (stop.scope, stop.code) == ("email", 118)
    assert await statuses(producer, text) == {"accepted": 100}  # flowed, and lifted nothing
    assert await statuses(producer, mail) == {"queued": 3}
    assert await parked_scopes(producer.redis, account) == {"email": 1}
    set_faults(sandbox_url)
    await resume(producer.redis, account)
    await drain(fast)
    assert await statuses(producer, mail) == {"accepted": 3}


# --- 4. uncertain answers are recorded as uncertain --------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"empty_body": {"status": 202}},
        {"empty_body": {"status": 200, "body": "<html>ok</html>"}},
        {"status": {"status": 502, "after_processing": True}},
        {"status": {"status": 504, "after_processing": True}},
    ],
)
async def test_answers_that_are_not_the_documented_ones_are_unknown(
    producer: Producer, fast: Settings, sandbox_url: str, fault: dict[str, Any]
) -> None:
    set_faults(sandbox_url, **fault)
    sending_id = await producer.submit(sms(10))
    await drain(fast)
    assert await statuses(producer, sending_id) == {"unknown": 10}
    assert sandbox_stats(sandbox_url)["recipients"] == 10  # the provider did take them
    set_faults(sandbox_url)
    assert await producer.requeue_unknown(sending_id) == 10  # on purpose only
    await drain(fast)
    assert await statuses(producer, sending_id) == {"accepted": 10}


async def test_a_bare_404_halts_naming_the_url_and_rejects_nobody(
    producer: Producer, fast: Settings, sandbox_url: str
) -> None:
    wrong = fast.model_copy(update={"provider_url": f"{sandbox_url}/wrong-prefix"})
    sending_id = await producer.submit(sms(10))
    await drain(wrong)
    stop = await read_stop(producer.redis, account_id(wrong))
    assert stop is not None and stop.state == "halted"
    assert "/wrong-prefix/api/rest/sms" in stop.reason
    assert await statuses(producer, sending_id) == {"queued": 10}


# --- 5. two runs of one chunk never both send a recipient ----------------------------


async def test_duplicate_runs_of_every_chunk_send_each_recipient_once(
    producer: Producer, fast: Settings, sandbox_url: str
) -> None:
    set_faults(sandbox_url, latency_ms={"min": 20, "max": 200})
    sending_id = await producer.submit(sms(400))
    for chunk in await chunks.names(producer.redis, sending_id):
        entries = await chunks.load(producer.redis, sending_id, chunk)
        assert entries is not None
        copy = [(e.index, e.to, e.extras) for e in entries]
        for twin in ("a", "b"):  # three runs of every chunk, side by side
            await enqueue_entries(producer.redis, sending_id, f"{chunk}{twin}", copy)
    async with running_worker(fast), running_worker(fast):
        done = await producer.wait(sending_id, timeout=60)
    assert done["counts"]["accepted"] == 400
    assert all(r["attempts"] == 1 for r in await records(producer, sending_id))
    assert sandbox_stats(sandbox_url)["duplicates"] == 0


async def test_a_recipient_claimed_before_flights_existed_is_unknown_not_sent_again(
    producer: Producer, fast: Settings, sandbox_url: str
) -> None:
    """A worker upgraded mid-sending: a recipient the earlier version claimed with a
    ``sending`` record of its own, whose call is over, may have reached the provider.
    It is recorded ``unknown`` with that run, as before, and never sent again."""
    sending_id = await producer.submit(sms(3))
    loaded = (await producer.store.load(sending_id, [1]))[1]
    claimed = {**loaded, "status": "sending", "attempts": 1, "run": "old", "until": 1.0}
    redis = redis_of(producer)
    await redis.hset(keys.results(sending_id, 1), "1", codec.pack(claimed))
    await redis.hincrby(keys.sending(sending_id), "n:queued", -1)  # as its claim did
    await redis.hincrby(keys.sending(sending_id), "n:sending", 1)
    await drain(fast)
    assert await statuses(producer, sending_id) == {"accepted": 2, "unknown": 1}
    unknown = (await producer.store.load(sending_id, [1]))[1]
    assert (unknown["status"], unknown["run"], unknown["attempts"]) == ("unknown", "old", 1)
    assert sandbox_stats(sandbox_url)["recipients"] == 2


async def test_requeue_while_the_original_run_still_holds_a_recipient_sends_it_once(
    producer: Producer, fast: Settings, sandbox_url: str
) -> None:
    set_faults(sandbox_url, ambiguous={"rate": 1.0, "delay_s": 2})
    sending_id = await producer.submit(sms(5))
    await drain(fast.model_copy(update={"provider_timeout": 0.3}))
    assert await statuses(producer, sending_id) == {"unknown": 5}
    set_faults(sandbox_url)
    # The original chunk is enqueued again too (a resubmission, the sweeper): both
    # runs see the requeued recipients, one sends them.
    await producer.requeue_unknown(sending_id)
    await chunks.enqueue(producer.redis, sending_id, "0", expires_s=60)
    await drain(fast)
    assert await statuses(producer, sending_id) == {"accepted": 5}
    # Sent twice in all — the ambiguous call and the requeue — and not a third time.
    assert sandbox_stats(sandbox_url)["recipients"] == 10


# --- 6. details that went missing ---------------------------------------------------


async def test_requeue_sends_each_recipient_with_its_own_sub(
    producer: Producer, fast: Settings, sandbox_url: str
) -> None:
    sending_id = await producer.submit(sms(3))
    # Recorded unknown by a path that kept nothing but the address (a give-up).
    for index, to in enumerate(numbers(3)):
        record = {"to": to, "status": "unknown", "attempts": 1, "code": -2}
        await redis_of(producer).hset(
            keys.results(sending_id, index), str(index), codec.pack(record)
        )
    await redis_of(producer).hset(keys.sending(sending_id), mapping={"n:queued": 0, "n:unknown": 3})
    await producer.requeue_unknown(sending_id)
    await drain(fast)
    assert sorted(m["text"] for m in messages(sandbox_url)) == ["Hi n0", "Hi n1", "Hi n2"]


async def test_a_requeued_old_sending_retries_a_transient_error_instead_of_failing(
    producer: Producer, fast: Settings, sandbox_url: str
) -> None:
    set_faults(sandbox_url, ambiguous={"rate": 1.0, "delay_s": 1})
    sending_id = await producer.submit(sms(5))
    await drain(fast.model_copy(update={"provider_timeout": 0.3}))
    # Two days later, the operator requeues them; the provider hiccups once.
    old = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    spec = await producer.store.spec(sending_id)
    assert spec is not None
    await redis_of(producer).hset(
        keys.sending(sending_id), "spec", codec.dumps({**spec, "created_at": old})
    )
    set_faults(sandbox_url, error={"code": 101, "rate": 0.5}, seed=1)
    await producer.requeue_unknown(sending_id)
    await drain(fast.model_copy(update={"max_age": 3600, "max_attempts": 10}))
    assert await statuses(producer, sending_id) == {"accepted": 5}


async def test_a_crash_between_reopening_and_enqueueing_is_swept_up(
    producer: Producer, fast: Settings, sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_faults(sandbox_url, ambiguous={"rate": 1.0, "delay_s": 1})
    sending_id = await producer.submit(sms(5))
    await drain(fast.model_copy(update={"provider_timeout": 0.3}))
    set_faults(sandbox_url)

    async def crash(*args: Any, **kwargs: Any) -> bool:
        raise ConnectionError("producer died")

    with monkeypatch.context() as patch:
        patch.setattr(chunks, "enqueue", crash)
        with pytest.raises(ConnectionError):
            await producer.requeue_unknown(sending_id)
    assert await statuses(producer, sending_id) == {"queued": 5}  # reopened, no job
    # Both chunks that hold them have no job: the original and the requeue's own.
    assert await sweep(producer.redis, fast, force=True) == {"enqueued": 2}
    await drain(fast)
    assert await statuses(producer, sending_id) == {"accepted": 5}


def count_chunk_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the name of every chunk anyone decodes, in order."""
    loaded: list[str] = []
    load = chunks.load

    async def counted(redis: Any, sid: str, chunk: str) -> Any:
        loaded.append(chunk)
        return await load(redis, sid, chunk)

    monkeypatch.setattr(chunks, "load", counted)
    return loaded


async def test_the_sweeper_reads_a_finished_chunk_once(
    producer: Producer, fast: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk whose recipients are all final is noted and not decoded again; one with a
    queued recipient and no job is still enqueued, on every pass."""
    sending_id = await producer.submit(sms(60))  # chunks of 50: "0" and "1"
    await producer.store.cancel_queued(sending_id, list(range(50)))  # chunk 0: all final
    for chunk in ("0", "1"):  # both jobs lost
        await redis_of(producer).delete(keys.arq_job(keys.chunk_job_id(sending_id, chunk)))
    loaded = count_chunk_loads(monkeypatch)
    assert await sweep(producer.redis, fast, force=True) == {"enqueued": 1}
    assert loaded == ["0", "1"]
    assert await redis_of(producer).smembers(keys.settled_chunks(sending_id)) == {b"0"}
    await redis_of(producer).delete(keys.arq_job(keys.chunk_job_id(sending_id, "1")))
    loaded.clear()
    assert await sweep(producer.redis, fast, force=True) == {"enqueued": 1}
    assert loaded == ["1"]  # chunk 0 was not read again


async def test_a_run_that_finishes_its_chunk_notes_it_so_the_sweeper_never_decodes_it(
    producer: Producer, fast: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run that finishes a chunk notes it: a sweep after the jobs are gone decodes
    none of them."""
    sending_id = await producer.submit(sms(60))  # chunks of 50: "0" and "1"
    await drain(fast)
    assert await statuses(producer, sending_id) == {"accepted": 60}
    settled = await redis_of(producer).smembers(keys.settled_chunks(sending_id))
    assert settled == {b"0", b"1"}
    loaded = count_chunk_loads(monkeypatch)
    for chunk in ("0", "1"):  # as after arq dropped the finished jobs' results
        await redis_of(producer).delete(keys.arq_job(keys.chunk_job_id(sending_id, chunk)))
    assert await sweep(producer.redis, fast, force=True) == {}
    assert loaded == []


async def test_a_submit_that_crashed_half_way_is_opened_and_reported_by_the_sweeper(
    producer: Producer, fast: Settings, sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Producer._enqueue
    calls = 0

    async def dies_after_two(self: Producer, *args: Any) -> int:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise RuntimeError("producer killed")
        return await real(self, *args)

    monkeypatch.setattr(Producer, "_enqueue", dies_after_two)
    with pytest.raises(RuntimeError):
        await producer.submit(sms(200))  # 4 chunks, 2 recorded
    [raw_id] = await redis_of(producer).smembers(keys.ACTIVE)
    sending_id = raw_id.decode()
    assert (await producer.status(sending_id) or {})["state"] == "enqueuing"
    stale = fast.model_copy(update={"stale_submit_after": 0.1})
    await asyncio.sleep(0.2)
    assert (await sweep(producer.redis, stale, force=True))["interrupted"] == 1
    await drain(fast)
    status = await producer.status(sending_id)
    assert status is not None and status["final"] and "interrupted" in status
    assert status["counts"]["accepted"] == status["counts"]["total"] == 100


async def test_a_redis_blip_mid_submit_is_retried_into_one_sending(
    producer: Producer, fast: Settings, sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    real = Producer._enqueue
    calls = 0

    async def blip_once(self: Producer, *args: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RedisConnectionError("connection reset")
        return await real(self, *args)

    monkeypatch.setattr(Producer, "_enqueue", blip_once)
    sending_id = await producer.submit(sms(200))
    assert await redis_of(producer).scard(keys.ACTIVE) == 1  # one sending, not two
    await drain(fast)
    assert await statuses(producer, sending_id) == {"accepted": 200}
    assert sandbox_stats(sandbox_url)["duplicates"] == 0


async def test_concurrent_submits_with_one_key_make_one_sending_and_no_conflict(
    producer: Producer,
) -> None:
    job = sms(20)
    ids = await asyncio.gather(*(producer.submit(job, idempotency_key="k1") for _ in range(20)))
    assert len(set(ids)) == 1
    assert await statuses(producer, ids[0]) == {"queued": 20}


# --- 7. one row never poisons a call --------------------------------------------------


async def test_a_recipient_without_sub_does_not_poison_its_call_or_a_merged_one(
    producer: Producer, fast: Settings, sandbox_url: str, tmp_path: Path
) -> None:
    lines = [{"to": numbers(1)[0], "sub": {"name": "Ann"}}, {"to": numbers(1, 1)[0]}]
    path = tmp_path / "to.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    job = Sms.model_validate({"to": numbers(1), "from": "T", "message": "Hi {name}"})
    lenient = producer.settings.model_copy(update={"allow_unknown_variables": True})
    filed = await Producer(producer.redis, lenient).submit_file(job, path)
    other = await producer.submit(sms(3, 10))  # same body: merged into the same call
    await drain(fast.model_copy(update={"linger_ms": 300, "allow_unknown_variables": True}))
    assert await statuses(producer, filed) == {"accepted": 2}
    assert await statuses(producer, other) == {"accepted": 3}
    assert sandbox_stats(sandbox_url)["requests"] == 1


async def test_a_recipient_missing_a_variable_is_refused_alone(
    producer: Producer, fast: Settings, sandbox_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "to.jsonl"
    path.write_text(
        json.dumps({"to": numbers(1)[0], "sub": {"name": "Ann"}})
        + "\n"
        + json.dumps({"to": numbers(1, 1)[0]})
        + "\n"
    )
    job = Sms.model_validate({"to": numbers(1), "from": "T", "message": "Hi {name}"})
    lenient = producer.settings.model_copy(update={"allow_unknown_variables": True})
    sending_id = await Producer(producer.redis, lenient).submit_file(job, path)
    await drain(fast)  # the worker's own rule: no unknown variables
    got = [(r["status"], r.get("code")) for r in await records(producer, sending_id)]
    assert got == [("accepted", None), ("rejected", 422)]


# --- 9. cancel -------------------------------------------------------------------------


async def test_cancel_records_what_was_not_sent_and_sends_nothing_more(
    producer: Producer, fast: Settings, sandbox_url: str
) -> None:
    set_faults(sandbox_url, latency_ms=300)
    sending_id = await producer.submit(sms(500))
    async with running_worker(fast, max_jobs=1):

        async def some_sent() -> bool:
            return (await statuses(producer, sending_id)).get("accepted", 0) >= 50

        await wait_until(some_sent, timeout=30)
        status = await producer.cancel(sending_id)
        await producer.wait(sending_id, timeout=30)
        await asyncio.sleep(1.0)  # whatever was still queued in arq runs and sends nothing
    final = await producer.status(sending_id)
    assert final is not None and final["final"] and "cancelled_at" in status
    counts = final["counts"]
    assert counts["cancelled"] > 0
    assert counts["accepted"] + counts["cancelled"] == 500
    assert sandbox_stats(sandbox_url)["recipients"] == counts["accepted"]
    assert all(r["status"] in FINAL for r in await records(producer, sending_id))
