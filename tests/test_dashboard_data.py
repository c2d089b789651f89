"""The data a dashboard reads without walking a sending's records: the breakdown and
first call kept by the result store's Lua, the 10 s series of provider calls, worker
heartbeats with their running jobs, requeueing failed recipients, the campaign index,
and paging and bounded search through a million records."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from bulksend.stack import ServeProcess
from jobs import codec, keys
from jobs.chunks import Entry
from jobs.errors import SendingNotFound
from jobs.planning import Call
from jobs.producer import Producer
from jobs.results import (
    SCAN_STEP,
    Breakdown,
    Flight,
    Record,
    ResultStore,
    expect_exact,
    expect_run,
    now_iso,
    successor,
)
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import drain, mixed_sms, numbers, running_worker, set_faults, wait_until
from worker import metrics
from worker.metrics import (
    ALIVE_S,
    FORGET_S,
    SERIES_KEEP_S,
    CallMetrics,
    WorkerBeat,
    alive,
    beat,
    read_series,
    read_workers,
    series_counts,
)
from worker.provider import Ambiguous, NotSent, RecipientReply, Reply

TOKEN = "dashboard-data-token"
CODED = ("rejected", "failed", "unknown", "expired")


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(settings.model_copy(update={"chunk_size": 20}))
    yield p
    await p.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Any]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def records(producer: Producer, sending_id: str) -> list[dict[str, Any]]:
    return [r async for r in producer.store.iter_results(sending_id)]


def expected_breakdown(found: list[dict[str, Any]]) -> Breakdown:
    """The breakdown as the records say it, for a sending where each recipient reached
    one final status once."""
    codes: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    for r in found:
        if r["status"] in CODED:
            codes["none" if r.get("code") is None else str(r["code"])] += 1
        elif r["status"] == "accepted" and "encoding" in r:
            parts[r["encoding"]] += r["parts"]
            accepted[r["encoding"]] += 1
    return Breakdown(dict(codes), dict(parts), dict(accepted))


# --- 1. the breakdown and the first call --------------------------------------------


async def test_a_real_sending_keeps_its_breakdown_first_call_and_series(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    set_faults(sandbox_url, error={"code": 101, "rate": 1.0})
    job = mixed_sms(60, campaignName="Spring Sale")
    sending_id = await producer.submit(job)
    before = await producer.status(sending_id)
    assert before is not None and "first_call_at" not in before  # nothing sent yet
    await drain(settings.model_copy(update={"max_attempts": 1}))  # every call: 101, failed
    failed = await producer.status(sending_id)
    assert failed is not None and failed["counts"]["failed"] == 58
    first = failed["first_call_at"]
    assert failed["created_at"] <= first <= failed["finished_at"]
    set_faults(sandbox_url)
    assert await producer.requeue(sending_id, "failed") == 58
    await drain(settings)

    found = await records(producer, sending_id)
    assert Counter(r["status"] for r in found) == {"accepted": 58, "rejected": 2}
    breakdown = await producer.store.breakdown(sending_id)
    rejected = Counter(str(r["code"]) for r in found if r["status"] == "rejected")
    assert "102" in rejected and len(rejected) == 2  # at submit; at planning
    # Arrivals: each of the 58 failed once (101), then was accepted.
    assert breakdown == Breakdown(
        {**rejected, "101": 58}, {"gsm": 56 + 2, "utf-16": 1}, {"gsm": 57, "utf-16": 1}
    )
    assert breakdown.parts == expected_breakdown(found).parts

    status = await producer.status(sending_id)
    assert status is not None and status["final"]
    assert status["campaign"] == "Spring Sale"
    assert status["first_call_at"] == first  # the first call, not the latest
    redis: Any = producer.redis
    assert 0 < await redis.ttl(keys.breakdown(sending_id)) <= producer.store.ttl

    # Every recipient the provider accepted is in the series, every call that failed too.
    series = await read_series(redis, time.time(), 600)
    assert round(sum(a for _, a, _ in series) * 10) == 58
    requests = await redis.hgetall(keys.METRICS)
    failed_calls = sum(
        int(n)
        for field, n in requests.items()
        if field.startswith(b"req|") and not field.startswith(b"req|0|")
    )
    assert round(sum(e for _, _, e in series) * 10) == failed_calls > 0


async def test_every_results_hash_lives_as_long_as_its_sending(redis: Any) -> None:
    """A sending's records span several hashes (keys.RESULTS_BUCKET): done, each gets the
    sending's lifetime; requeued, each is kept for good again."""
    store = ResultStore(redis, ttl_seconds=3600)
    n = 2 * keys.RESULTS_BUCKET + 1  # three hashes, the last with one record
    await store.create_sending("s1", "sms", {"kind": "sms"}, "digest")
    records: list[tuple[int, Record]] = [(i, {"to": f"t{i}", "status": "queued"}) for i in range(n)]
    records[-1] = (n - 1, {"to": "last", "status": "failed"})
    await store.add_recipients("s1", records)
    assert await store.open("s1", 1) == "running"
    hashes = keys.all_results("s1", n)
    assert len(hashes) == 3 and all([await redis.exists(h) for h in hashes])
    assert all([await redis.ttl(h) == -1 for h in hashes])
    await store.cancel_queued("s1", list(range(n - 1)))
    assert (await store.status("s1") or {})["state"] == "done"
    assert all([3000 < await redis.ttl(h) <= 3600 for h in hashes])
    back = successor((await store.load("s1", [n - 1]))[n - 1], "queued")
    assert await store.reopen("s1", "failed", [(n - 1, back)]) == 1
    assert all([await redis.ttl(h) == -1 for h in hashes])


async def test_the_breakdown_counts_arrivals_and_lives_as_long_as_its_sending(
    redis: Any,
) -> None:
    store = ResultStore(redis, ttl_seconds=3600)

    async def move(index: int, status: str, expect: bytes | None = None, **fields: Any) -> None:
        raw = (await store.load_raw("s1", [index]))[index]
        old: Record = codec.unpack(raw)
        new = successor(old, status, **fields)
        assert await store.record("s1", [(index, new, expect or expect_exact(raw))])

    async def first_call() -> str | None:
        status = await store.status("s1")
        assert status is not None
        return status.get("first_call_at")

    await store.create_sending("s1", "sms", {"kind": "sms"}, "digest")
    await store.add_recipients("s1", [(i, {"to": f"t{i}", "status": "queued"}) for i in range(6)])
    assert await store.open("s1", 1) == "running"
    await move(2, "rejected", code=None, description="refused at planning")
    await move(4, "expired", code=119)
    assert await first_call() is None  # nothing went on the wire
    flight = Flight("r:0", "r", time.time() + 60, now_iso())
    assert await store.claim("s1", flight, (await store.load_raw("s1", [0, 1, 3])).items())
    first = await first_call()
    assert first is not None
    await move(0, "accepted", expect_run("r", "r:0"), parts=2, encoding="gsm")
    await move(1, "unknown", expect_run("r", "r:0"), code=-1, run="r")
    await move(3, "failed", expect_run("r", "r:0"), code=101)
    await move(5, "cancelled")  # cancelled: no code
    assert await first_call() == first  # the first one stays
    assert await redis.ttl(keys.breakdown("s1")) > 3000  # done: kept as long as the sending
    assert await store.breakdown("s1") == Breakdown(
        {"none": 1, "119": 1, "-1": 1, "101": 1}, {"gsm": 2}, {"gsm": 1}
    )

    # Requeued: running again, kept for good until done again.
    back = successor((await store.load("s1", [3]))[3], "queued")
    assert await store.reopen("s1", "failed", [(3, back)]) == 1
    assert await redis.ttl(keys.breakdown("s1")) == -1
    assert await redis.ttl(keys.sending("s1")) == -1
    flight = Flight("r2:0", "r2", time.time() + 60, now_iso())
    assert await store.claim("s1", flight, (await store.load_raw("s1", [3])).items())
    await move(3, "rejected", expect_run("r2", "r2:0"), code=None)
    assert await redis.ttl(keys.breakdown("s1")) > 3000

    # A late answer to a sending recorded before there were breakdowns: made with the
    # sending's lifetime, not forever.
    await redis.delete(keys.breakdown("s1"))
    await move(1, "accepted", expect_run("r", "r:0"), parts=1, encoding="utf-16")
    assert await redis.ttl(keys.breakdown("s1")) > 3000
    assert await store.breakdown("s1") == Breakdown({}, {"utf-16": 1}, {"utf-16": 1})
    assert await store.breakdown("nope") == Breakdown({}, {}, {})


# --- 2. the series of a live chart --------------------------------------------------


def call_of(n: int) -> Call:
    return Call("sms", {}, [Entry(i, f"3466{i:07d}", {}) for i in range(n)], "gsm", 1)


def replies(*accepted: bool) -> list[RecipientReply]:
    return [RecipientReply(to="x", accepted=a, code=None if a else 113) for a in accepted]


def test_what_one_call_adds_to_the_series() -> None:
    assert series_counts(call_of(3), Reply(202, replies(True, True, True))) == {"accepted": 3}
    assert series_counts(call_of(3), Reply(207, replies(True, False, False))) == {
        "accepted": 1,
        "errors": 2,
    }
    assert series_counts(call_of(4), Reply(202, None)) == {"accepted": 4}  # no list: all
    assert series_counts(call_of(4), Reply(500, None, 101, "db")) == {"errors": 1}
    assert series_counts(call_of(4), Ambiguous("late")) == {"errors": 1}
    assert series_counts(call_of(4), NotSent("refused")) == {"errors": 1}


async def test_the_series_reads_every_bucket_of_the_window_as_rates(redis: Any) -> None:
    counting = CallMetrics(redis)
    outcomes: list[tuple[int, Reply | BaseException]] = [
        (3, Reply(202, replies(True, True, True))),
        (3, Reply(207, replies(True, True, False))),
        (4, Reply(202, None)),
        (4, Reply(500, None, 101, "db")),
        (4, Ambiguous("late")),
        (4, NotSent("refused")),
    ]
    for n, outcome in outcomes:
        await counting.observe("/api/rest/sms", call_of(n), outcome, 0.01)
    now = time.time()
    rows = await read_series(redis, now)
    last = int(now) // 10 * 10
    assert [start for start, _, _ in rows] == list(range(last - 3590, last + 1, 10))
    assert round(sum(a for _, a, _ in rows) * 10) == 3 + 2 + 4
    assert round(sum(e for _, _, e in rows) * 10) == 1 + 3
    written = [start for start, a, e in rows if a or e]
    ttls = [await redis.ttl(keys.series(start)) for start in written]
    assert ttls and all(SERIES_KEEP_S - 60 < ttl <= SERIES_KEEP_S for ttl in ttls)

    # A bucket's counts over its 10 s; one just before the window is not in it.
    await redis.flushdb()
    await redis.hset(keys.series(last - 600), mapping={"accepted": 25, "errors": 5})
    await redis.hset(keys.series(last - 3600), mapping={"accepted": 99})
    rows = await read_series(redis, now, 3600)
    assert len(rows) == 360 and (last - 600, 2.5, 0.5) in rows
    assert [row for row in rows if row[1] or row[2]] == [(last - 600, 2.5, 0.5)]
    assert len(await read_series(redis, now, 60)) == 6


# --- 3. heartbeats with detail --------------------------------------------------------


async def test_heartbeats_say_when_and_how_many_jobs_in_either_format(redis: Any) -> None:
    key = keys.workers("q")
    now = time.time()
    await beat(redis, "q", "b-host:20:aa", running=3)
    raw = await redis.hget(key, "b-host:20:aa")
    assert codec.loads(raw)["running"] == 3 and abs(codec.loads(raw)["at"] - now) < 5
    await redis.hset(
        key,
        mapping={
            "a-host:7:bb": repr(now - 1),  # an older worker: a bare epoch
            "b-host:3:cc": codec.dumps({"at": now - ALIVE_S - 5, "running": 1}),  # silent
            "gone:1:dd": repr(now - FORGET_S - 5),
            "gone:2:ee": codec.dumps({"at": now - FORGET_S - 5, "running": 0}),
        },
    )
    assert alive(await redis.hgetall(key), now) == 2
    await beat(redis, "q", "b-host:20:aa", running=2)  # forgets the long silent ones
    workers = await read_workers(redis, "q", now)
    assert [(w.host, w.pid, w.running, w.alive) for w in workers] == [
        ("a-host", 7, 0, True),
        ("b-host", 3, 1, False),
        ("b-host", 20, 2, True),
    ]
    assert workers[0].last_beat == pytest.approx(now - 1)
    assert await read_workers(redis, "elsewhere", now) == []


async def test_a_worker_beats_the_chunk_jobs_it_runs(
    producer: Producer, settings: Settings, sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "HEARTBEAT_S", 0.05)
    set_faults(sandbox_url, latency_ms=400)
    sending_id = await producer.submit(
        Sms.model_validate({"to": numbers(60), "from": "TEST", "message": "Hi"})
    )
    seen: list[WorkerBeat] = []

    async def beats(check: Any) -> bool:
        seen[:] = await read_workers(producer.redis, settings.queue_name, time.time())
        return len(seen) == 1 and bool(check(seen[0]))

    async with running_worker(settings):
        await wait_until(lambda: beats(lambda w: w.running >= 1 and w.alive), timeout=30)
        await producer.wait(sending_id, timeout=60)
        await wait_until(lambda: beats(lambda w: w.running == 0 and w.alive), timeout=30)
    assert await read_workers(producer.redis, settings.queue_name, time.time()) == []


# --- 4. retry failed ----------------------------------------------------------------


async def failed_sending(producer: Producer, settings: Settings, sandbox_url: str) -> str:
    """A sending whose 6 recipients all failed, 2 attempts each."""
    set_faults(sandbox_url, error={"code": 101, "rate": 1.0})
    sending_id = await producer.submit(
        Sms.model_validate({"to": numbers(6), "from": "TEST", "message": "Hi"})
    )
    await drain(settings.model_copy(update={"max_attempts": 2}))
    found = await records(producer, sending_id)
    assert [(r["status"], r["attempts"]) for r in found] == [("failed", 2)] * 6
    set_faults(sandbox_url)
    return sending_id


async def test_requeue_failed_sends_them_again_with_their_attempts_afresh(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    sending_id = await failed_sending(producer, settings, sandbox_url)
    assert await producer.requeue(sending_id, "unknown") == 0  # none is unknown
    assert await producer.requeue(sending_id, "failed") == 6
    found = await records(producer, sending_id)
    assert all(r["status"] == "queued" and r["attempts"] == 0 for r in found)
    assert not any("code" in r for r in found)
    status = await producer.status(sending_id)
    assert status is not None and status["state"] == "running"
    assert (status["counts"]["queued"], status["counts"]["failed"]) == (6, 0)
    assert await producer.requeue(sending_id, "failed") == 0  # nothing failed now
    await drain(settings.model_copy(update={"max_attempts": 2}))
    found = await records(producer, sending_id)
    assert [(r["status"], r["attempts"]) for r in found] == [("accepted", 1)] * 6
    with pytest.raises(ValueError, match="status"):
        await producer.requeue(sending_id, "accepted")  # type: ignore[arg-type]
    with pytest.raises(SendingNotFound):
        await producer.requeue("nope", "failed")


async def test_requeue_failed_over_http_and_from_the_cli(
    producer: Producer, settings: Settings, sandbox_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    sending_id = await failed_sending(producer, settings, sandbox_url)
    with (
        ServeProcess({**env, "BULKSEND_API_TOKEN": TOKEN}, log=tmp_path / "serve.log") as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api,
    ):
        path = f"/v1/sendings/{sending_id}/requeue"
        for params, field in (({}, "unknown"), ({"unknown": "1", "failed": "1"}, "failed")):
            refused = api.post(path, params=params)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["field"] == field
        assert api.post(path, params={"unknown": "1"}).json() == {"requeued": 0}
        assert api.post(path, params={"failed": "1"}).json() == {"requeued": 6}
        document = api.get("/openapi.json").json()
    params = document["paths"]["/v1/sendings/{id}/requeue"]["post"]["parameters"]
    assert {(p["name"], p.get("required", False)) for p in params} >= {
        ("unknown", False),
        ("failed", False),
    }

    other = await failed_sending(producer, settings, sandbox_url)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "bulksend", "requeue", other, *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    for bad in (cli(), cli("--unknown", "--failed")):
        assert bad.returncode != 0 and "--unknown, --failed" in bad.stderr
    done = cli("--failed")
    assert done.returncode == 0 and done.stdout.startswith("6 recipients that failed")
    status = await producer.status(other)
    assert status is not None and status["counts"]["queued"] == 6


# --- 5. campaign search ---------------------------------------------------------------


async def test_sendings_are_found_by_campaign_name_prefix_in_any_case(
    producer: Producer,
) -> None:
    def sms(campaign: str | None) -> Sms:
        body: dict[str, Any] = {"to": numbers(1), "from": "TEST", "message": "Hi"}
        if campaign is not None:
            body["campaignName"] = campaign
        return Sms.model_validate(body)

    spring = await producer.submit(sms("Spring Sale"), "k1")
    promo = await producer.submit(sms("spring promo"), "k2")
    summer = await producer.submit(sms("Summer"), "k3")
    ete = await producer.submit(sms("Été 2025"), "k4")
    plain = await producer.submit(sms(None), "k5")
    assert await producer.submit(sms("Spring Sale"), "k1") == spring  # resubmitted: once
    store = producer.store
    assert await store.find_campaigns("SPR", 10) == [promo, spring]  # by name
    assert await store.find_campaigns("spring s", 10) == [spring]
    assert await store.find_campaigns("s", 10) == [promo, spring, summer]
    assert await store.find_campaigns("s", 2) == [promo, spring]
    assert await store.find_campaigns("ÉT", 10) == [ete]
    assert await store.find_campaigns("winter", 10) == []
    assert await store.find_campaigns("s", 0) == []
    assert len(await store.find_campaigns("", 10)) == 4
    statuses = await producer.statuses([spring, plain])
    assert statuses[0] is not None and statuses[0]["campaign"] == "Spring Sale"
    assert statuses[1] is not None and "campaign" not in statuses[1]


# --- 6. paging and searching big sendings ----------------------------------------------

# Records made inside Redis: a million in a few seconds, without a million round trips.
_FILL = """
local st = {'accepted', 'rejected', 'failed', 'unknown'}
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) - 1 do
  local to = string.format('user%07d@Example.COM', i)
  local key = KEYS[1] .. math.floor(i / tonumber(ARGV[3]))
  redis.call('HSET', key, i, cmsgpack.pack({to = to, status = st[i % 4 + 1]}))
end
"""


async def fill(redis: Any, sending_id: str, n: int) -> None:
    script = redis.register_script(_FILL)
    await redis.hset(keys.sending(sending_id), "total", n)
    for start in range(0, n, 100_000):
        await script(
            keys=[keys.results_prefix(sending_id)],
            args=[start, min(start + 100_000, n), keys.RESULTS_BUCKET],
        )


async def search(
    store: ResultStore, *, text: str | None, status: str | None, limit: int, budget: int
) -> tuple[dict[int, Record], int]:
    """Every match of a whole search, and how many calls it took."""
    found: dict[int, Record] = {}
    cursor, calls = 0, 0
    while True:
        page, cursor = await store.scan(
            "big", text=text, status=status, cursor=cursor, limit=limit, budget=budget
        )
        calls += 1
        assert [i for i, _ in page] == sorted(i for i, _ in page)
        assert not set(found) & {i for i, _ in page}  # nothing twice
        found.update(page)
        if cursor == 0:
            return found, calls


async def test_a_million_records_are_paged_and_searched_a_bounded_step_at_a_time(
    redis: Any,
) -> None:
    n = 1_000_000
    await fill(redis, "big", n)
    store = ResultStore(redis)
    page = await store.page("big", n - 5, 10)
    assert [i for i, _ in page] == list(range(n - 5, n))
    assert page[0][1] == {"to": f"user{n - 5:07d}@Example.COM", "status": "unknown"}
    assert [i for i, _ in await store.page("big", 500_000, 3)] == [500_000, 500_001, 500_002]
    assert await store.page("big", -5, 3) == []

    # One address in a million: found, and no call examined much more than its budget.
    started = time.perf_counter()
    found, calls = await search(store, text="USER0765432@", status=None, limit=10, budget=20_000)
    assert list(found) == [765_432]
    assert n // (20_000 + 2 * SCAN_STEP) <= calls <= n // 20_000 + 1
    print(f"searched {n:,} records in {calls} calls, {time.perf_counter() - started:.2f} s")


async def test_a_search_stops_at_its_limit_and_goes_on_from_its_cursor(redis: Any) -> None:
    n = 30_000
    await fill(redis, "big", n)
    store = ResultStore(redis)

    first, cursor = await store.scan("big", text="00@example", status=None, cursor=0, limit=5)
    assert len(first) >= 5 and cursor != 0  # stopped early, with somewhere to go on from
    for text, status in (("00@EXAMPLE", None), (None, "failed"), ("1@example", "unknown")):
        found, _ = await search(store, text=text, status=status, limit=50, budget=5_000)
        expected = {
            i
            for i in range(n)
            if (text is None or text.lower() in f"user{i:07d}@example.com")
            and (status is None or ("accepted", "rejected", "failed", "unknown")[i % 4] == status)
        }
        assert set(found) == expected and expected, (text, status)
        assert all(r["status"] == (status or r["status"]) for r in found.values())
    everything, calls = await search(store, text=None, status=None, limit=n, budget=10_000)
    assert len(everything) == n and calls >= 3  # the budget stops a call, not the limit
