"""``/metrics``: the cluster-wide view read from Redis adds up to what the producer and the
provider (the sandbox) saw, and every replica renders the same."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from jobs import keys
from jobs.accounts import account_id, parked_scopes
from jobs.contacts import ContactImport
from jobs.producer import Producer
from jobs.results import (
    FINAL,
    Flight,
    Record,
    ResultStore,
    expect_exact,
    expect_over,
    expect_run,
    now_iso,
    successor,
)
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import drain, mixed_sms, numbers, running_worker, set_faults, wait_until
from web.metrics import render
from worker.metrics import BUCKETS, bucket_of, code_of
from worker.provider import Ambiguous, NotSent, Reply

CUSTOMERS = Path(__file__).parent / "data" / "imports" / "customers.csv"
SMS = "/api/rest/sms"
CONTACTS = "/api/rest/contacts"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(settings.model_copy(update={"chunk_size": 50}))
    yield p
    await p.close()


async def scrape(redis: Any, settings: Settings) -> Samples:
    body, content_type = await render(redis, settings)
    assert content_type == CONTENT_TYPE_LATEST and content_type.startswith("text/plain;")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Summed over every sample of ``name`` whose labels include ``labels``."""
    return sum(
        v for (n, got), v in samples.items() if n == name and set(labels.items()) <= set(got)
    )


def sandbox(sandbox_url: str, path: str) -> dict[str, Any]:
    got: dict[str, Any] = httpx.get(f"{sandbox_url}/_sandbox/{path}").json()
    return got


async def test_metrics_add_up_to_the_producer_and_the_provider(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    set_faults(sandbox_url, error={"code": 101, "rate": 0.5}, seed=1, channels=["sms", "contacts"])
    job = mixed_sms(120)
    sms_id = await producer.submit(job)
    import_id = await producer.submit_import(
        ContactImport.model_validate({"group": "Customers"}), CUSTOMERS
    )
    await drain(settings.model_copy(update={"max_attempts": 30}))  # 101s end accepted
    samples = await scrape(producer.redis, settings)

    # Recipients: exactly the producer's counts, by kind; nothing pending.
    for sending_id, kind in ((sms_id, "sms"), (import_id, "contacts")):
        status = await producer.status(sending_id)
        assert status is not None and status["final"], status
        counts = status["counts"]
        for final in FINAL:
            got = value(samples, "bulksend_recipients_total", kind=kind, status=final)
            assert got == counts[final], (kind, final, got, counts)
        assert total(samples, "bulksend_recipients_pending", kind=kind) == 0
    assert value(samples, "bulksend_recipients_total", kind="sms", status="rejected") >= 2
    assert value(samples, "bulksend_recipients_total", kind="contacts", status="rejected") >= 1

    # Provider calls: what the sandbox counted, per endpoint, and the faults it injected.
    channels = sandbox(sandbox_url, "stats")["channels"]
    for endpoint, channel in ((SMS, "sms"), (CONTACTS, "contacts")):
        requests = total(samples, "bulksend_provider_requests_total", endpoint=endpoint)
        assert requests == channels[channel]["requests"] > 0, endpoint
        timed = "bulksend_provider_request_duration_seconds"
        assert value(samples, f"{timed}_count", endpoint=endpoint) == requests
        assert value(samples, f"{timed}_bucket", endpoint=endpoint, le="+Inf") == requests
        assert value(samples, f"{timed}_sum", endpoint=endpoint) > 0
        cumulative = [
            v
            for (n, labels), v in samples.items()
            if n == f"{timed}_bucket" and ("endpoint", endpoint) in labels
        ]
        assert cumulative == sorted(cumulative) and len(cumulative) == len(BUCKETS) + 1
    injected = sandbox(sandbox_url, "faults")["injected"]["error"]
    assert total(samples, "bulksend_provider_requests_total", code="101") == injected > 0
    assert total(samples, "bulksend_provider_requests_total", code="0") > 0

    # Parts: those of the accepted records, by encoding.
    parts: dict[str, int] = {}
    async for record in producer.store.iter_results(sms_id):
        if record["status"] == "accepted":
            parts[record["encoding"]] = parts.get(record["encoding"], 0) + record["parts"]
    assert parts == {"gsm": 116 + 2, "utf-16": 1}, parts
    for encoding, n in parts.items():
        assert value(samples, "bulksend_parts_billed_total", encoding=encoding) == n
    assert total(samples, "bulksend_parts_billed_total") == sum(parts.values())

    # Gauges once all is done: nothing queued or running, the drained worker gone.
    for gauge in (
        "bulksend_queue_depth",
        "bulksend_jobs_in_progress",
        "bulksend_jobs_deferred",
        "bulksend_oldest_job_age_seconds",
        "bulksend_workers_alive",
    ):
        assert value(samples, gauge) == 0, gauge
    assert value(samples, "bulksend_sendings", state="done") == 2
    assert value(samples, "bulksend_sendings", state="running") == 0
    assert total(samples, "bulksend_account_state") == 0

    # Every replica answers the same: another connection, the same text.
    other = Redis.from_url(str(settings.redis_url))
    try:
        assert (await render(other, settings))[0] == (await render(producer.redis, settings))[0]
    finally:
        await other.aclose()


async def test_a_held_account_pending_recipients_and_a_live_worker_show(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    set_faults(sandbox_url, credits=0)
    await producer.submit(Sms.model_validate({"to": numbers(120), "from": "TEST", "message": "Hi"}))
    account = account_id(settings)
    async with running_worker(settings):

        async def all_parked() -> bool:
            return (await parked_scopes(producer.redis, account)).get("*", 0) == 3

        await wait_until(all_parked, timeout=30)
        samples = await scrape(producer.redis, settings)
        assert value(samples, "bulksend_account_state", scope="*", state="held") == 1
        assert total(samples, "bulksend_account_state") == 1
        assert value(samples, "bulksend_workers_alive") == 1
        assert value(samples, "bulksend_recipients_pending", kind="sms", status="queued") == 120
        assert total(samples, "bulksend_recipients_total") == 0
        assert value(samples, "bulksend_sendings", state="running") == 1
        held = value(samples, "bulksend_provider_requests_total", endpoint=SMS, code="111")
        assert held >= 1
        assert total(samples, "bulksend_parts_billed_total") == 0
    samples = await scrape(producer.redis, settings)
    assert value(samples, "bulksend_workers_alive") == 0  # a stopped worker leaves


async def test_queue_gauges_tell_waiting_running_and_deferred_jobs(
    producer: Producer, settings: Settings
) -> None:
    sending_id = await producer.submit(
        Sms.model_validate({"to": numbers(120), "from": "TEST", "message": "Hi"})
    )
    redis: Any = producer.redis
    queue = settings.queue_name
    now = time.time()
    assert await redis.zcard(queue) == 3  # chunks of 50; no worker runs
    await redis.set(keys.arq_in_progress(keys.chunk_job_id(sending_id, 0)), 1)
    await redis.zadd(queue, {keys.chunk_job_id(sending_id, 1): (now - 30) * 1000})
    await redis.zadd(queue, {"elsewhere:0": (now + 600) * 1000})
    await redis.hset(keys.workers(queue), mapping={"a:1:x": repr(now), "b:2:y": repr(now - 3600)})
    samples = await scrape(redis, settings)
    assert value(samples, "bulksend_queue_depth") == 2
    assert value(samples, "bulksend_jobs_in_progress") == 1
    assert value(samples, "bulksend_jobs_deferred") == 1
    assert 30 <= value(samples, "bulksend_oldest_job_age_seconds") < 60
    assert value(samples, "bulksend_workers_alive") == 1
    assert value(samples, "bulksend_sendings", state="running") == 1
    assert value(samples, "bulksend_recipients_pending", kind="sms", status="queued") == 120


async def test_recipient_counters_follow_every_move_of_the_result_store(
    settings: Settings,
) -> None:
    """Late answers, requeues and cancels: final statuses count arrivals, pending ones
    what is there now — the per-sending counters, summed, without reading a sending."""
    redis = Redis.from_url(str(settings.redis_url))
    store = ResultStore(redis)

    async def counters() -> dict[str, int]:
        raw = await redis.hgetall(keys.METRICS)
        return {k.decode().removeprefix("rcpt|sms|"): int(v) for k, v in raw.items() if int(v)}

    async def move(index: int, status: str, expect: bytes | None = None, **fields: Any) -> None:
        raw = (await store.load_raw("s1", [index]))[index]
        old: Record = (await store.load("s1", [index]))[index]
        new = successor(old, status, **fields)
        assert await store.record("s1", [(index, new, expect or expect_exact(raw))])

    try:
        await store.create_sending("s1", "sms", {"kind": "sms"}, "digest")
        added = await store.add_recipients(
            "s1",
            [
                (0, {"to": "a", "status": "queued"}),
                (1, {"to": "b", "status": "queued"}),
                (2, {"to": "c", "status": "rejected", "code": 102}),
            ],
        )
        assert added == 3 and await store.open("s1", 1) == "running"
        assert await counters() == {"queued": 2, "rejected": 1}
        flight = Flight("r:0", "r", time.time() + 60, now_iso())
        assert await store.claim("s1", flight, (await store.load_raw("s1", [0, 1])).items())
        assert await counters() == {"sending": 2, "rejected": 1}
        await move(0, "unknown", expect_over("r:0"), run="r")
        await move(0, "accepted", expect_run("r", "r:0"), parts=1)  # the late, certain answer
        await move(1, "unknown", expect_over("r:0"), run="r")
        assert await counters() == {"rejected": 1, "unknown": 2, "accepted": 1}
        back = successor((await store.load("s1", [1]))[1], "queued")
        assert await store.reopen_unknown("s1", [(1, back)]) == 1  # requeue --unknown
        assert await counters() == {"rejected": 1, "unknown": 2, "accepted": 1, "queued": 1}
        assert await store.mark_cancelled("s1")
        assert await store.cancel_queued("s1", [1]) == 1
        assert await counters() == {"rejected": 1, "unknown": 2, "accepted": 1, "cancelled": 1}
        status = await store.status("s1")
        assert status is not None and status["state"] == "done"
        assert {s: n for s, n in status["counts"].items() if n and s != "total"} == {
            "rejected": 1,
            "accepted": 1,
            "cancelled": 1,
        }
    finally:
        await redis.aclose()


def test_call_outcome_codes_and_buckets() -> None:
    assert code_of(Reply(202, [])) == "0"
    assert code_of(Reply(207, [])) == "0"
    assert code_of(Reply(500, None, 101, "db")) == "101"
    assert code_of(Reply(429, None, None, "Too Many Requests")) == "http_429"
    assert code_of(Ambiguous("late")) == "ambiguous"
    assert code_of(NotSent("refused")) == "not_sent"
    assert code_of(RuntimeError("bug")) == "not_sent"  # what the batcher makes of it
    assert [bucket_of(s) for s in (0, 0.005, 0.006, 0.3, 10, 10.5)] == [
        "0.005",
        "0.005",
        "0.01",
        "0.5",
        "10",
        "+Inf",
    ]
