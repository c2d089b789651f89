"""Producer → Redis → in-process arq worker → sandbox over HTTP → recorded results."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from jobs import keys
from jobs.accounts import account_id, read_stop, resume
from jobs.producer import Producer, sending_id_for
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import drain, numbers, running_worker, sandbox_stats, wait_until


@pytest.fixture
async def producer(settings: Settings):  # type: ignore[no-untyped-def]
    p = await Producer.connect(settings.model_copy(update={"chunk_size": 50}))
    yield p
    await p.close()


async def test_every_valid_recipient_accepted_once_and_invalid_rejected(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    to = numbers(120)
    to[7] = "12"
    to[99] = "abc"
    job = Sms.model_validate(
        {
            "to": to,
            "from": "TEST",
            "message": "Hello {name}",
            "sub": [{"name": f"n{i}"} for i in range(120)],
        }
    )
    sending_id = await producer.submit(job)
    await drain(settings)
    status = await producer.status(sending_id)
    assert status is not None
    assert status["state"] == "done" and status["final"]
    counts = status["counts"]
    assert counts["accepted"] == 118 and counts["rejected"] == 2
    assert counts["queued"] == counts["sending"] == counts["failed"] == counts["unknown"] == 0
    results = [r async for r in producer.store.iter_results(sending_id)]
    assert len(results) == 120
    accepted = [r for r in results if r["status"] == "accepted"]
    assert len({r["id"] for r in accepted}) == 118  # one provider message id each
    assert all(r["parts"] == 1 and r["encoding"] == "gsm" and r["attempts"] == 1 for r in accepted)
    assert {(r["to"], r["code"]) for r in results if r["status"] == "rejected"} == {
        ("12", 102),
        ("abc", 102),
    }
    stats = sandbox_stats(sandbox_url)
    assert stats["recipients"] == 118 and stats["duplicates"] == 0
    # 3 chunk jobs of 50, all one (encoding, parts): micro-batching merges them into one call
    assert stats["requests"] == 1


async def test_rerunning_a_finished_chunk_sends_nothing(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    job = Sms.model_validate(
        {"to": numbers(10), "from": "TEST", "message": "Hi {name}", "sub": [{"name": "a"}] * 10}
    )
    await producer.submit(job, idempotency_key="rerun")
    await drain(settings)
    # Same key: the chunk job id is known to arq (its result is kept), so nothing runs again;
    # forcing a re-run of the chunk function must also send nothing.
    await producer.submit(job, idempotency_key="rerun")
    await drain(settings)
    job_id = keys.chunk_job_id(sending_id_for("rerun"), 0)
    await producer.redis.delete(keys.arq_result(job_id))
    await producer.submit(job, idempotency_key="rerun")
    await drain(settings)
    stats = sandbox_stats(sandbox_url)
    assert stats["recipients"] == 10 and stats["duplicates"] == 0


async def test_wrong_credentials_halt_the_account_and_lose_nothing(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    """103 halts: no attempt is spent, recipients wait queued, `resume` lets them go."""
    sending_id = await producer.submit(
        Sms.model_validate({"to": numbers(3), "from": "TEST", "message": "x"})
    )
    bad = settings.model_copy(update={"provider_username": "nobody", "hold_probe_interval": 0})
    async with running_worker(bad):

        async def halted() -> bool:
            return await read_stop(producer.redis, account_id(bad)) is not None

        await wait_until(halted)
        await asyncio.sleep(0.3)  # more runs of the job must not spend attempts or send
    stop = await read_stop(producer.redis, account_id(bad))
    assert stop is not None and (stop.state, stop.code) == ("halted", 103)
    status = await producer.status(sending_id)
    assert status is not None and not status["final"]
    assert status["counts"]["queued"] == 3
    results = [r async for r in producer.store.iter_results(sending_id)]
    assert {(r["status"], r["attempts"]) for r in results} == {("queued", 0)}
    assert sandbox_stats(sandbox_url)["recipients"] == 0

    await resume(producer.redis, account_id(bad))
    # The operator fixed the credentials and resumed: the same jobs now go through.
    await drain(settings.model_copy(update={"provider_username": "sandbox"}))
    status = await producer.status(sending_id)
    assert status is not None and status["final"] and status["counts"]["accepted"] == 3
    assert sandbox_stats(sandbox_url)["duplicates"] == 0


async def test_grouping_by_encoding_and_parts_per_recipient(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    names = ["ana"] * 40
    names[3] = "Ωmega"  # GSM basic (Greek capital): still GSM
    names[5] = "Zoë"  # ë is not GSM: this recipient alone goes UCS-2
    names[9] = "x" * 200  # makes a 2-part GSM text
    names[11] = "😀" * 600  # 1200+ UTF-16 units: more than 15 parts → 105, never sent
    job = Sms.model_validate(
        {
            "to": numbers(40),
            "from": "TEST",
            "message": "Hello {name|capitalize}",
            "parts": 2,  # without it the provider allows one (its default)
            "sub": [{"name": n} for n in names],
        }
    )
    sending_id = await producer.submit(job)
    await drain(settings)
    results = {r["index"]: r async for r in producer.store.iter_results(sending_id)}
    assert (results[0]["encoding"], results[0]["parts"]) == ("gsm", 1)
    assert (results[3]["encoding"], results[3]["parts"]) == ("gsm", 1)
    assert (results[5]["encoding"], results[5]["parts"]) == ("utf-16", 1)
    assert (results[9]["encoding"], results[9]["parts"]) == ("gsm", 2)
    assert (results[11]["status"], results[11]["code"]) == ("rejected", 105)
    assert "needs 19 parts" in results[11]["description"]
    assert sum(r["status"] == "accepted" for r in results.values()) == 39
    stats = sandbox_stats(sandbox_url)
    assert stats["requests"] == 3  # (gsm,1) (utf-16,1) (gsm,2)
    sent = httpx.get(f"{sandbox_url}/_sandbox/messages", params={"channel": "sms"}).json()
    by_to = {m["to"]: m for m in sent["messages"]}
    assert by_to[numbers(40)[5]]["text"] == "Hello Zoë"
    assert by_to[numbers(40)[5]]["encoding"] == "utf-16"
    assert by_to[numbers(40)[0]]["encoding"] == "gsm"
