"""Micro-batching and streamed sendings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis as AsyncRedis

from jobs import keys
from jobs.base import InvalidJob
from jobs.chunks import Entry
from jobs.planning import Call
from jobs.producer import Producer
from jobs.results import Record, ResultStore
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import drain, enqueue_entries, numbers, running_worker, sandbox_stats, wait_until
from worker.batching import Batcher, Outcome, Pending
from worker.provider import Accepted, RecipientReply, Reply, _parse


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(settings)
    yield p
    await p.close()


def otp(to: str, code: int) -> Sms:
    return Sms.model_validate(
        {"to": [to], "from": "BANK", "message": "Your code is {c}", "sub": [{"c": code}]}
    )


async def test_single_recipient_jobs_coalesce_and_each_keeps_its_own_result(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    ids = [await producer.submit(otp(n, i)) for i, n in enumerate(numbers(60))]
    other = await producer.submit(  # another text template: never merged with the OTPs
        Sms.model_validate({"to": numbers(1, 500), "from": "SHOP", "message": "Sale!"})
    )
    # A recipient only the provider refuses, in a job of its own among the OTPs.
    refused = await producer.submit(otp(numbers(1, 900)[0], 1))
    await producer.store.add_recipients(refused, [(1, {"to": "34", "status": "queued"})])
    await enqueue_entries(producer.redis, refused, "x", [(1, "34", {"sub": {"c": 2}})])
    await drain(settings.model_copy(update={"linger_ms": 200}))
    for i, sending_id in enumerate(ids):
        [record] = [r async for r in producer.store.iter_results(sending_id)]
        assert (record["to"], record["status"], record["attempts"]) == (
            numbers(60)[i],
            "accepted",
            1,
        )
    sent = {m["to"]: m["text"] for m in _messages(sandbox_url)}
    assert sent[numbers(60)[7]] == "Your code is 7"  # each job's own sub, after merging
    got = [
        (r["to"], r["status"], r.get("code")) async for r in producer.store.iter_results(refused)
    ]
    assert got == [(numbers(1, 900)[0], "accepted", None), ("34", "rejected", 102)]
    assert [r["status"] async for r in producer.store.iter_results(other)] == ["accepted"]
    stats = sandbox_stats(sandbox_url)
    assert stats["recipients"] == 62 and stats["duplicates"] == 0
    assert stats["requests"] < 62 / 4, stats  # coalesced: far fewer calls than jobs


def _messages(sandbox_url: str) -> list[dict[str, str]]:
    return list(
        httpx.get(f"{sandbox_url}/_sandbox/messages", params={"limit": 1000}).json()["messages"]
    )


def _call(n: int, tag: str) -> Call:
    entries = [Entry(i, f"3466000{i:04d}", {"sub": {"t": tag}}) for i in range(n)]
    return Call("sms", {"from": "T", "message": "{t}"}, entries, "gsm", 1)


class _Gateway:
    """The HTTP side replaced by ``send``: a batcher unit test, no provider behind it."""

    def __init__(self, send: Callable[[str, Call], Awaitable[Reply]]) -> None:
        self._send = send

    async def post(self, endpoint: str, call: Call) -> Reply:
        return await self._send(endpoint, call)

    @contextlib.asynccontextmanager
    async def turn(self, cost: int, deadline: float) -> AsyncIterator[None]:
        yield


async def _post(batcher: Batcher, endpoint: str, call: Call) -> Outcome:
    """What one caller's recipients got, through the batcher."""
    got: list[Outcome] = []

    async def claim(entries: list[Entry]) -> list[Entry]:
        return entries

    async def settle(entries: list[Entry], outcome: Outcome) -> None:
        got.append(outcome)

    await batcher.send(endpoint, Pending(call, claim, settle, time.monotonic() + 60))
    [outcome] = got
    return outcome


async def test_batcher_flushes_a_lone_call_when_the_window_closes() -> None:
    sent: list[int] = []

    async def send(endpoint: str, call: Call) -> Reply:
        sent.append(len(call.entries))
        return Reply(202, [RecipientReply(e.to, True, f"id{e.index}") for e in call.entries])

    batcher = Batcher(_Gateway(send), linger_s=0.02, max_size=100)
    async with asyncio.timeout(5):  # a lone call is never held past the window
        reply = await _post(batcher, "/api/rest/sms", _call(1, "a"))
    assert isinstance(reply, Reply)
    assert sent == [1] and reply.results is not None and reply.results[0].accepted


async def test_batcher_flushes_at_once_when_full_and_splits_replies_in_order() -> None:
    sent: list[int] = []

    async def send(endpoint: str, call: Call) -> Reply:
        sent.append(len(call.entries))
        return Reply(207, [RecipientReply(e.to, e.index % 2 == 0, None) for e in call.entries])

    batcher = Batcher(_Gateway(send), linger_s=3600, max_size=6)  # the window never closes
    async with asyncio.timeout(5):
        replies = await asyncio.gather(*(_post(batcher, "/x", _call(2, t)) for t in "abc"))
    assert sent == [6]
    for reply in replies:
        assert isinstance(reply, Reply) and reply.results is not None
        assert [r.accepted for r in reply.results] == [True, False]


async def test_batcher_never_merges_different_bodies() -> None:
    bodies: list[str] = []

    async def send(endpoint: str, call: Call) -> Reply:
        bodies.append(call.body["from"])
        return Reply(202, [RecipientReply(e.to, True) for e in call.entries])

    batcher = Batcher(_Gateway(send), linger_s=0.05, max_size=100)
    one = _call(1, "a")
    two = Call("sms", {"from": "OTHER", "message": "{t}"}, one.entries, "gsm", 1)
    await asyncio.gather(_post(batcher, "/x", one), _post(batcher, "/x", two))
    assert sorted(bodies) == ["OTHER", "T"]


async def test_a_caller_cancelled_before_its_turn_is_never_claimed_nor_sent() -> None:
    sent: list[int] = []

    async def send(endpoint: str, call: Call) -> Reply:
        sent.append(len(call.entries))
        return Reply(202, [RecipientReply(e.to, True) for e in call.entries])

    claimed: list[int] = []

    async def claim(entries: list[Entry]) -> list[Entry]:
        claimed.append(len(entries))
        return entries

    async def settle(entries: list[Entry], outcome: Outcome) -> None:
        raise AssertionError("nothing was sent, nothing to record")

    batcher = Batcher(_Gateway(send), linger_s=0.2, max_size=100)
    pending = Pending(_call(2, "a"), claim, settle, time.monotonic() + 60)
    caller = asyncio.create_task(batcher.send("/x", pending))
    await asyncio.sleep(0.05)
    caller.cancel()  # its job timed out while the window was open
    await batcher.close()
    assert claimed == [] and sent == []


async def test_a_caller_cancelled_while_on_the_wire_still_gets_its_outcome_recorded() -> None:
    started = asyncio.Event()

    async def send(endpoint: str, call: Call) -> Reply:
        started.set()
        await asyncio.sleep(0.2)
        return Reply(202, [RecipientReply(e.to, True) for e in call.entries])

    async def claim(entries: list[Entry]) -> list[Entry]:
        return entries

    recorded: list[Outcome] = []

    async def settle(entries: list[Entry], outcome: Outcome) -> None:
        recorded.append(outcome)

    batcher = Batcher(_Gateway(send), linger_s=0, max_size=100)
    caller = asyncio.create_task(
        batcher.send("/x", Pending(_call(2, "a"), claim, settle, time.monotonic() + 60))
    )
    await started.wait()
    caller.cancel()  # the request is out: its answer is still worth keeping
    await batcher.close()
    [outcome] = recorded
    assert isinstance(outcome, Reply) and outcome.results is not None


async def test_single_jobs_with_a_running_worker_are_not_held(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    async with running_worker(settings):
        ids = []
        for i, n in enumerate(numbers(20)):
            ids.append(await producer.submit(otp(n, i)))
            await asyncio.sleep(0.005)

        async def all_final() -> bool:
            statuses = [await producer.status(i) for i in ids]
            return all(s is not None and s["final"] for s in statuses)

        await wait_until(all_final, timeout=30)
    assert sandbox_stats(sandbox_url)["recipients"] == 20


def write_jsonl(path: Path, n: int, bad: dict[int, str] | None = None) -> list[str]:
    to = numbers(n)
    for i, value in (bad or {}).items():
        to[i] = value
    path.write_text(
        "".join(json.dumps({"to": t, "sub": {"name": f"n{i}"}}) + "\n" for i, t in enumerate(to))
    )
    return to


async def test_streamed_file_sending(
    producer: Producer, settings: Settings, sandbox_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "r.jsonl"
    to = write_jsonl(path, 2_345, bad={10: "12", 2000: "abc"})
    small = await Producer.connect(settings.model_copy(update={"chunk_size": 500}))
    sending_id = await small.submit_file(
        Sms.model_validate({"to": ["34666555444"], "from": "T", "message": "Hi {name}"}), path
    )
    await small.close()
    await drain(settings)
    status = await producer.status(sending_id)
    assert status is not None and status["final"] and status["chunks"] == 5
    assert (status["counts"]["accepted"], status["counts"]["rejected"]) == (2_343, 2)
    rows = [r async for r in producer.store.iter_results(sending_id)]
    assert [r["to"] for r in rows] == to
    assert sandbox_stats(sandbox_url)["recipients"] == 2_343
    # arq keeps no copy of a finished chunk's payload
    assert await producer.redis.keys(keys.ARQ_RESULTS_MATCH) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"to": "34666555444", "sub": {"name": "a"}}\n{"sub": {"name": "b"}}\n', "line 2: to"),
        ('{"to": "34666555444", "sub": {"name": "a"}}\nnot json\n', "line 2: not JSON"),
        ('{"to": "34666555444", "sub": {"name": "a"}}\n{"to": "34666555443"}\n', "{name}"),
        ('{"to": "34666555444", "sub": {"name": "a"}, "x": 1}\n', "unknown keys"),
    ],
)
async def test_bad_file_is_refused_whole_before_anything_is_queued(
    producer: Producer, tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    job = Sms.model_validate({"to": ["34666555444"], "from": "T", "message": "Hi {name}"})
    with pytest.raises(InvalidJob, match="recipients-file") as err:
        await producer.submit_file(job, path)
    assert reason in str(err.value)
    assert await producer.redis.dbsize() == 0


def test_cli_streams_a_csv_file(env: dict[str, str], tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "r.csv"
    path.write_text("to,name\n34666555444,Ana\nabc,Bad\n34666555333,Luis\n")
    done = subprocess.run(
        [sys.executable, "-m", "bulksend", "send", "sms", "--from", "T", "--message", "Hi {name}",
         "--recipients-file", str(path), "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sending_id = json.loads(done.stdout)["id"]

    async def records() -> dict[int, Record]:
        client = AsyncRedis.from_url(redis_url)
        try:
            return await ResultStore(client).load(sending_id, [0, 1, 2])
        finally:
            await client.aclose()

    got = sorted((i, r["to"], r["status"]) for i, r in asyncio.run(records()).items())
    assert got == [
        (0, "34666555444", "queued"),
        (1, "abc", "rejected"),
        (2, "34666555333", "queued"),
    ]


def test_a_plain_202_is_kept_as_columns_and_reads_as_its_replies() -> None:
    """Every recipient accepted plainly: the answer is kept as its columns (``Accepted``),
    and reads, slice by slice, as the replies it stands for; one recipient scheduled or
    refused, and every recipient is read on its own, as before."""
    expected = [RecipientReply(f"3466600000{i}", True, f"m{i}", 1 + i % 2) for i in range(5)]
    items: list[dict[str, Any]] = [
        {"to": r.to, "accepted": True, "id": r.message_id, "parts": r.parts} for r in expected
    ]
    plain = _parse(httpx.Response(202, json={"result": items}))
    assert isinstance(plain.results, Accepted)
    assert list(plain.results) == expected and len(plain.results) == 5
    assert isinstance(plain.results[1:3], Accepted) and list(plain.results[1:3]) == expected[1:3]
    refused = {"accepted": False, "error": {"code": 102, "description": "No valid recipients"}}
    for odd, status in (({"scheduledAt": "2026-12-01 10:00:00"}, 202), (refused, 207)):
        mixed = _parse(httpx.Response(status, json={"result": [*items[:2], {**items[2], **odd}]}))
        assert mixed.results is not None and not isinstance(mixed.results, Accepted)
        assert list(mixed.results[:2]) == expected[:2]
        assert mixed.results[2].scheduled_at or mixed.results[2].code == 102
