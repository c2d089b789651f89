"""Chaos for delivery events: duplicates, reordering, and the receiving process killed.

10,000 recipients (8,000 SMS with our notificationUrl, 2,000 email) sent by real
worker processes to the sandbox, which then sends the documented notifications —
DLRs to each SMS recipient's URL, events to ``/hooks/events`` — with 30 % of them
duplicated and 10 % of messages' notifications in reverse order. Mid-stream the
``bulksend serve`` that receives them is SIGKILLed and started again on the same
port; the sandbox's progressive retries (its "minute" scaled down) carry the
notifications over the gap. At the end every recipient's delivery state and facts
equal what the sandbox decided, the counts match exactly, nothing was given up,
and an address that unsubscribed is ``suppressed`` in a later sending and never
reaches the sandbox again.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bulksend.stack import ServeProcess, WorkerProcesses, free_port
from jobs.email import Email
from jobs.events import DELIVERY_STATES, FACT_COUNTERS
from jobs.producer import Producer
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import numbers, wait_until

SECRET = "chaos-hook-secret"
SMS_N, EMAIL_N = 8_000, 2_000


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(settings)
    yield p
    await p.close()


def notifications(sandbox_url: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{sandbox_url}/_sandbox/notifications").json()
    return stats


def emails(n: int, start: int = 0) -> list[str]:
    return [f"user{i}@example.com" for i in range(start, start + n)]


async def test_every_delivery_state_matches_the_sandbox_through_duplicates_and_a_crash(
    producer: Producer, settings: Settings, env: dict[str, str], sandbox_url: str, tmp_path: Path
) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    hooks = {"BULKSEND_HOOK_SECRET": SECRET, "BULKSEND_PUBLIC_URL": public}
    serve_env = {**env, **hooks, "BULKSEND_API_TOKEN": "chaos"}
    config = {
        "events_url": f"{public}/hooks/events/{SECRET}",
        "duplicates": 0.3,
        "reorder": 0.1,
        "minute_s": 0.5,  # 5 retries span 7.5 s: more than the restart takes
        "timeout_s": 2,
        "email_unsubscribe": 0.1,
        "seed": 11,
    }
    httpx.post(f"{sandbox_url}/_sandbox/notifications", json=config).raise_for_status()
    serve = ServeProcess(serve_env, port=port, log=tmp_path / "serve-1.log")
    try:
        sms_id = await producer.submit(
            Sms.model_validate({"to": numbers(SMS_N), "from": "SHOP", "message": "Sale!"})
        )
        email_id = await producer.submit(Email.model_validate({
            "to": emails(EMAIL_N), "fromEmail": "news@example.com", "replyTo": "help@example.com",
            "subject": "Sale",
            "body": "<p>Sale</p>"}))  # fmt: skip
        with WorkerProcesses({**env, **hooks}, log_dir=tmp_path) as workers:
            workers.start(2)
            await wait_until(
                lambda: _at_least(sandbox_url, "delivered", 8_000), 300, "notifications flowing"
            )
            serve.process.send_signal(signal.SIGKILL)  # mid-stream, no goodbye
            serve.process.wait()
            await asyncio.sleep(1.0)
            serve = ServeProcess(serve_env, port=port, log=tmp_path / "serve-2.log")
            await wait_until(lambda: _settled(producer, [sms_id, email_id]), 300, "sendings done")
            await wait_until(lambda: _at_most(sandbox_url, "pending", 0), 600, "all notified")
        stats = notifications(sandbox_url)
        assert stats["given_up"] == 0 and stats["duplicates"] > 0 and stats["retries"] > 0
        decisions: dict[str, Any] = httpx.get(
            f"{sandbox_url}/_sandbox/notifications/decisions"
        ).json()

        unsubscribed: list[str] = []
        for sending_id, n in ((sms_id, SMS_N), (email_id, EMAIL_N)):
            expected: Counter[str] = Counter()
            seen = 0
            async for rec in producer.store.iter_results(sending_id):
                assert rec["status"] == "accepted", rec
                decided = decisions[rec["id"]]
                assert rec.get("delivery") == decided["delivery"], (rec, decided)
                facts = {FACT_COUNTERS[f] for f in decided["facts"]}
                assert set(rec.get("facts", {})) == facts, (rec, decided)
                expected.update([decided["delivery"], *facts])
                if "unsubscribed" in facts:
                    unsubscribed.append(rec["to"])
                seen += 1
            assert seen == n
            status = await producer.status(sending_id)
            assert status is not None
            delivery = status["delivery"]
            for state in DELIVERY_STATES:
                assert delivery[state] == expected[state], (state, delivery, expected)
            assert delivery["pending"] == 0
            for fact in ("opened", "clicked", "bounced", "unsubscribed"):
                assert delivery[fact] == expected[fact], (fact, delivery, expected)

        # Those who unsubscribed are suppressed in the next sending and never sent again.
        assert unsubscribed, "the sandbox decided some unsubscribes"
        later = {
            "to": [*unsubscribed[:20], "new@example.com"],
            "fromEmail": "news@example.com",
            "replyTo": "help@example.com",
            "subject": "Again",
            "body": "<p>Sale</p>",
        }
        again = await producer.submit(Email.model_validate(later))
        with WorkerProcesses({**env, **hooks}) as workers:
            workers.start(1)
            await wait_until(lambda: _settled(producer, [again]), 60, "later sending done")
        status = await producer.status(again)
        assert status is not None
        assert (status["counts"]["suppressed"], status["counts"]["accepted"]) == (
            len(unsubscribed[:20]),
            1,
        )
        received = _received(sandbox_url)
        assert all(received[to] == 1 for to in unsubscribed[:20])  # the first sending only
        assert received["new@example.com"] == 1
    finally:
        serve.stop()


async def _at_least(sandbox_url: str, name: str, n: int) -> bool:
    return int(notifications(sandbox_url)[name]) >= n


async def _at_most(sandbox_url: str, name: str, n: int) -> bool:
    return int(notifications(sandbox_url)[name]) <= n


async def _settled(producer: Producer, ids: list[str]) -> bool:
    for status in await producer.statuses(ids):
        if status is None or not status["final"]:
            return False
    return True


def _received(sandbox_url: str) -> Counter[str]:
    answer = httpx.get(f"{sandbox_url}/_sandbox/messages", params={"channel": "email",
                                                                   "limit": 100_000})  # fmt: skip
    return Counter(m["to"] for m in answer.json()["messages"])
