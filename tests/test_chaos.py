"""Chaos: real worker processes, a hostile provider, workers killed.

The main run: 3 workers, 20,000 SMS recipients; 20% of calls fail with 101, 1%
are accepted but answered past the client's timeout, one worker is SIGKILLed
twice (the time until its calls are recovered is printed), and the credits run
out once and are refilled with ``bulksend resume``. Then a rate-limited account
(the shared limit holds across workers and strands nobody), and a mixed run: an
email sending from an unverified sender (115) while SMS keeps flowing, 502s
after the provider took the message, and three runs of every chunk at once.
At the end of each, every recipient is in exactly one final state and the
provider's own record agrees with ours.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bulksend.stack import start_workers
from jobs import chunks
from jobs.accounts import account_id, read_stop, read_stops
from jobs.email import Email
from jobs.producer import Producer
from jobs.results import FINAL
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import numbers, sandbox_stats, set_faults

TOTAL = 20_000
HOSTILE = {
    "seed": 7,
    "error": {"code": 101, "rate": 0.2},
    "ambiguous": {"rate": 0.01, "delay_s": 2},
}


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(settings.model_copy(update={"chunk_size": 200}))
    yield p
    await p.close()


async def chaos(
    producer: Producer, env: dict[str, str], sandbox_url: str, mode: str
) -> dict[str, Any]:
    env = {
        **env,
        "BULKSEND_CHUNK_SIZE": "200",
        "BULKSEND_JOB_TIMEOUT": "10",
        "BULKSEND_PROVIDER_TIMEOUT": "1",
        "BULKSEND_RETRY_DELAY": "0.05",
        "BULKSEND_MAX_ATTEMPTS": "10",
        "BULKSEND_HOLD_PROBE_INTERVAL": "0",
        "BULKSEND_ON_AMBIGUOUS": mode,
    }
    set_faults(sandbox_url, **HOSTILE, credits=8_000)
    job = Sms.model_validate(
        {
            "to": numbers(TOTAL),
            "from": "CHAOS",
            "message": "Hello {name}, ref {ref}",
            "sub": [{"name": f"n{i}", "ref": i} for i in range(TOTAL)],
        }
    )
    started = time.monotonic()
    sending_id = await producer.submit(job)
    workers = start_workers(3, env)
    events: list[str] = []
    recoveries: list[asyncio.Task[float]] = []
    try:
        kills = 0
        refilled = False
        async with asyncio.timeout(300):
            while True:
                status = await producer.status(sending_id)
                assert status is not None
                counts = status["counts"]
                done = TOTAL - counts["queued"] - counts["sending"]
                if (kills == 0 and done >= 3_000) or (kills == 1 and refilled and done >= 12_000):
                    in_flight = await sending_now(producer, sending_id)
                    killed_at = time.monotonic()
                    workers.restart(0)  # SIGKILL, then a fresh one in its place
                    kills += 1
                    events.append(f"SIGKILL at {done}")
                    recoveries.append(
                        asyncio.create_task(recovered(producer, sending_id, in_flight, killed_at))
                    )
                if not refilled and await read_stop(producer.redis, account_id(producer.settings)):
                    set_faults(sandbox_url, **HOSTILE)  # credits bought …
                    resume = subprocess.run(
                        [sys.executable, "-m", "bulksend", "resume"], env=env, capture_output=True
                    )
                    assert resume.returncode == 0, resume.stderr
                    refilled = True
                    events.append(f"credits out, resumed at {done}")
                if status["final"]:
                    break
                await asyncio.sleep(0.1)
        assert kills == 2 and refilled, events
    finally:
        workers.kill()
    elapsed = time.monotonic() - started
    recovery = [round(await t, 1) for t in recoveries]
    events.append(f"recovered from each SIGKILL in {recovery} s")
    records = [r async for r in producer.store.iter_results(sending_id)]
    sent = httpx.get(
        f"{sandbox_url}/_sandbox/messages", params={"channel": "sms", "limit": 200_000}
    ).json()["messages"]
    stats = httpx.get(f"{sandbox_url}/_sandbox/stats").json()["channels"]["sms"]
    print(f"chaos[{mode}] {elapsed:.1f}s {events} counts={status['counts']} sandbox={stats}")
    return {"status": status, "records": records, "sent": sent, "stats": stats}


async def sending_now(producer: Producer, sending_id: str) -> set[int]:
    return {
        int(r["index"])
        async for r in producer.store.iter_results(sending_id)
        if r["status"] == "sending"
    }


async def recovered(
    producer: Producer, sending_id: str, in_flight: set[int], killed_at: float
) -> float:
    """Seconds from a SIGKILL until every call on the wire at that moment is recorded."""
    while True:
        current = await producer.store.load(sending_id, sorted(in_flight))
        if all(r["status"] != "sending" for r in current.values()):
            return time.monotonic() - killed_at
        await asyncio.sleep(0.25)


def check_accounting(run: dict[str, Any]) -> tuple[set[str], set[str]]:
    counts = run["status"]["counts"]
    records = run["records"]
    assert len(records) == TOTAL == counts["total"]
    assert all(r["status"] in FINAL for r in records)  # exactly one final state each
    assert sum(counts[s] for s in FINAL) == TOTAL and counts["queued"] == counts["sending"] == 0
    accepted = {r["to"] for r in records if r["status"] == "accepted"}
    unknown = {r["to"] for r in records if r["status"] == "unknown"}
    received = {m["to"] for m in run["sent"]}
    assert accepted <= received  # what we call accepted, the provider has
    assert received <= accepted | unknown  # what the provider has, we accepted or said so
    return accepted, unknown


async def test_chaos_hold_nobody_receives_twice(
    producer: Producer, env: dict[str, str], sandbox_url: str
) -> None:
    run = await chaos(producer, env, sandbox_url, "hold")
    check_accounting(run)
    assert run["stats"]["duplicates"] == 0


async def test_chaos_resend_only_ambiguous_recipients_may_receive_twice(
    producer: Producer, env: dict[str, str], sandbox_url: str
) -> None:
    run = await chaos(producer, env, sandbox_url, "resend")
    check_accounting(run)
    ambiguous = {r["to"] for r in run["records"] if r.get("ambiguous")}
    seen: set[str] = set()
    twice: set[str] = set()
    for message in run["sent"]:
        (twice if message["to"] in seen else seen).add(message["to"])
    assert twice <= ambiguous


async def test_chaos_rate_limited_account_strands_nobody_and_never_bursts(
    settings: Settings, env: dict[str, str], sandbox_url: str
) -> None:
    """The numbers that stranded 600 of 900 recipients before: R=20/s, chunks of 150,
    job timeout 15 s, 2 workers. In any window of W seconds the provider sees at most
    R×W recipients plus one call."""
    rate, chunk, total = 20, 150, 900
    env = {
        **env,
        "BULKSEND_RATE_MESSAGES_PER_SECOND": str(rate),
        "BULKSEND_CHUNK_SIZE": str(chunk),
        "BULKSEND_JOB_TIMEOUT": "15",
    }
    producer = await Producer.connect(settings.model_copy(update={"chunk_size": chunk}))
    workers = start_workers(2, env)
    try:
        started = time.monotonic()
        sending_id = await producer.submit(
            Sms.model_validate({"to": numbers(total), "from": "RATE", "message": "Hi"})
        )
        status = await producer.wait(sending_id, timeout=180)
        elapsed = time.monotonic() - started
    finally:
        workers.kill()
        await producer.close()
    assert status["counts"]["accepted"] == total, status["counts"]
    sent = httpx.get(
        f"{sandbox_url}/_sandbox/messages", params={"channel": "sms", "limit": 10_000}
    ).json()["messages"]
    calls: dict[int, list[float]] = {}
    for m in sent:
        calls.setdefault(m["requestNo"], []).append(m["receivedAt"])
    arrivals = sorted((min(times), len(times)) for times in calls.values())
    biggest = max(n for _, n in arrivals)
    assert biggest <= chunk
    for window in (1.0, 2.0, 5.0, 10.0):
        for i, (start, _) in enumerate(arrivals):
            seen = sum(n for t, n in arrivals[i:] if t < start + window)
            assert seen <= rate * window + biggest, (window, start, seen)
    print(f"chaos[rate-limited] {total} at {rate}/s in {elapsed:.1f}s, {len(arrivals)} calls")
    assert sandbox_stats(sandbox_url)["duplicates"] == 0


async def test_chaos_unverified_sender_502s_and_duplicate_runs(
    settings: Settings, env: dict[str, str], sandbox_url: str
) -> None:
    total = 6_000
    env = {**env, "BULKSEND_CHUNK_SIZE": "200", "BULKSEND_JOB_TIMEOUT": "10"}
    set_faults(
        sandbox_url,
        seed=11,
        status={"status": 502, "rate": 0.05, "after_processing": True},
        latency_ms={"min": 5, "max": 60},
        unverified={"senders": ["spoof@example.com"], "reply_to": []},
    )
    producer = await Producer.connect(settings.model_copy(update={"chunk_size": 200}))
    workers = start_workers(3, env)
    try:
        sms_id = await producer.submit(
            Sms.model_validate(
                {
                    "to": numbers(total),
                    "from": "MIX",
                    "message": "Hi {name}",
                    "sub": [{"name": f"n{i}"} for i in range(total)],
                }
            )
        )
        for chunk in await chunks.names(producer.redis, sms_id):  # three runs of each
            for twin in ("a", "b"):
                entries = await chunks.load(producer.redis, sms_id, chunk)
                assert entries is not None
                await chunks.save(producer.redis, sms_id, chunk + twin, entries)
                await chunks.enqueue(producer.redis, sms_id, chunk + twin, expires_s=600)
        mail_id = await producer.submit(
            Email.model_validate(
                {
                    "to": [f"u{i}@example.com" for i in range(50)],
                    "fromEmail": "spoof@example.com",
                    "replyTo": "news@example.com",
                    "subject": "s",
                    "body": "b",
                }
            )
        )
        sms_status = await producer.wait(sms_id, timeout=180)
        mail_status = await producer.wait(mail_id, timeout=60)
        records = [r async for r in producer.store.iter_results(sms_id)]
        stops = await read_stops(producer.redis, account_id(producer.settings))
    finally:
        workers.kill()
        await producer.close()
    counts = sms_status["counts"]
    assert mail_status["counts"]["rejected"] == 50 and stops == []  # nothing else stopped
    assert all(r["status"] in FINAL for r in records)
    assert counts["accepted"] + counts["unknown"] == total and counts["unknown"] > 0
    received = {
        m["to"]
        for m in httpx.get(
            f"{sandbox_url}/_sandbox/messages", params={"channel": "sms", "limit": 100_000}
        ).json()["messages"]
    }
    assert received == {r["to"] for r in records}  # the 502s' recipients reached it too
    stats = sandbox_stats(sandbox_url)
    print(f"chaos[mixed] counts={counts} sandbox={stats}")
    assert stats["duplicates"] == 0  # three runs of every chunk, nobody twice
