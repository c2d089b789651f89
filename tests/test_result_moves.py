"""The compare-and-set of ``ResultStore.record``: the byte comparisons a run's own moves
take instead of decoding the record in Lua must decide exactly what decoding did."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from jobs.results import Record, ResultStore, expect_exact, expect_run, successor
from jobs.settings import Settings


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[tuple[ResultStore, str]]:
    redis = Redis.from_url(str(settings.redis_url))
    store = ResultStore(redis)
    sid = uuid.uuid4().hex
    await store.create_sending(sid, "sms", {"kind": "sms"}, "digest")
    queued = [(i, Record(to=f"34660000{i:03d}", status="queued")) for i in range(4)]
    assert await store.add_recipients(sid, queued) == 4
    assert await store.open(sid, 1) == "running"
    try:
        yield store, sid
    finally:
        await redis.aclose()


async def claim(store: ResultStore, sid: str, index: int, run: str) -> bytes:
    """Claim recipient ``index`` for ``run`` as a chunk run does; the bytes it wrote."""
    raw = (await store.load_raw(sid, [index]))[index]
    new = successor((await store.load(sid, [index]))[index], "sending", run=run,
                    until=time.time() + 60)  # fmt: skip
    written: dict[int, bytes] = {}
    assert await store.record(sid, [(index, new, expect_exact(raw, "queued"))], written) == {index}
    return written[index]


async def answer(store: ResultStore, sid: str, index: int, expect: bytes, **fields: object) -> bool:
    old = (await store.load(sid, [index]))[index]
    return bool(await store.record(sid, [(index, successor(old, "accepted", **fields), expect)]))


async def test_a_run_records_its_own_claim_by_comparing_bytes(
    store: tuple[ResultStore, str],
) -> None:
    rs, sid = store
    claimed = await claim(rs, sid, 0, "r1")
    assert claimed == (await rs.load_raw(sid, [0]))[0]
    assert await answer(rs, sid, 0, expect_run("r1", claimed), id="m0", parts=2, encoding="gsm")
    assert (await rs.load(sid, [0]))[0]["status"] == "accepted"
    breakdown = await rs.breakdown(sid)
    assert breakdown.parts == {"gsm": 2} and breakdown.accepted_by_encoding == {"gsm": 1}


async def test_another_runs_claim_is_refused_even_with_bytes_given(
    store: tuple[ResultStore, str],
) -> None:
    rs, sid = store
    mine = await claim(rs, sid, 1, "r1")
    # Someone else's claim on the same bytes: wrong run, so neither path may apply it.
    assert not await answer(rs, sid, 1, expect_run("r2", mine))
    assert not await answer(rs, sid, 1, expect_run("r2"))
    assert (await rs.load(sid, [1]))[1]["status"] == "sending"


async def test_a_late_answer_replaces_unknown_when_the_bytes_no_longer_match(
    store: tuple[ResultStore, str],
) -> None:
    """Another run found the claim past its time and wrote ``unknown`` (keeping the
    token): the bytes differ now, so the script decodes the record and lets the late,
    certain answer of that very run replace it, as before."""
    rs, sid = store
    claimed = await claim(rs, sid, 2, "r1")
    raw = (await rs.load_raw(sid, [2]))[2]
    unknown = successor((await rs.load(sid, [2]))[2], "unknown", code=-1, run="r1")
    assert await rs.record(sid, [(2, unknown, expect_exact(raw, "sending"))]) == {2}
    assert await answer(rs, sid, 2, expect_run("r1", claimed), id="m2", parts=1, encoding="gsm")
    status = await rs.status(sid)
    assert status is not None
    assert status["counts"]["accepted"] == 1 and status["counts"]["unknown"] == 0


async def test_a_final_record_is_never_moved_by_its_exact_bytes(
    store: tuple[ResultStore, str],
) -> None:
    """``expect_exact`` with the status the caller read: a final record stays final even
    when the caller hands in its exact bytes, as when the script decoded it."""
    rs, sid = store
    claimed = await claim(rs, sid, 3, "r1")
    assert await answer(rs, sid, 3, expect_run("r1", claimed), id="m3", parts=1, encoding="gsm")
    final = (await rs.load_raw(sid, [3]))[3]
    again = successor((await rs.load(sid, [3]))[3], "queued")
    for said in ("accepted", ""):
        assert await rs.record(sid, [(3, again, expect_exact(final, said))]) == set()
    assert (await rs.load(sid, [3]))[3]["status"] == "accepted"
