"""The compare-and-set of ``ResultStore``'s flights: a claim puts recipients on the wire
without writing their records, and the moves must decide exactly what a ``sending``
record decided: who may record an outcome, and when another run may not touch one."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from redis.asyncio import Redis

from jobs import chunks, codec, keys
from jobs.results import (
    Answers,
    Flight,
    Record,
    ResultStore,
    accepted_packer,
    accepted_successor,
    expect_exact,
    expect_over,
    expect_run,
    now_iso,
    successor,
    successor_with,
)
from jobs.settings import Settings


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[tuple[ResultStore, str]]:
    redis = Redis.from_url(str(settings.redis_url))
    store = ResultStore(redis)
    sid = uuid.uuid4().hex
    await store.create_sending(sid, "sms", {"kind": "sms"}, "digest")
    queued = [(i, Record(to=f"34660000{i:03d}", status="queued")) for i in range(70)]
    assert await store.add_recipients(sid, queued) == 70
    assert await store.open(sid, 1) == "running"
    try:
        yield store, sid
    finally:
        await redis.aclose()


async def claim(
    store: ResultStore, sid: str, indices: list[int], run: str, *, seconds: float = 60
) -> str:
    """Claim ``indices`` for ``run`` as a chunk run does, all of them; the flight's call."""
    raw = await store.load_raw(sid, indices)
    flight = Flight(f"{run}:{uuid.uuid4().hex[:4]}", run, time.time() + seconds, now_iso())
    assert await store.claim(sid, flight, raw.items()) == set(indices)
    return flight.call


async def in_flight(store: ResultStore, sid: str, indices: list[int]) -> dict[int, Flight]:
    """The flight each of ``indices`` is in, as a run's first load finds it."""
    return (await store.load_flying(sid, indices))[1]


async def answer(store: ResultStore, sid: str, index: int, expect: bytes, **fields: object) -> bool:
    old = (await store.load(sid, [index]))[index]
    return bool(await store.record(sid, [(index, successor(old, "accepted", **fields), expect)]))


async def counts(store: ResultStore, sid: str) -> dict[str, int]:
    status = await store.status(sid)
    assert status is not None
    return dict(status["counts"])


async def test_a_claim_writes_no_record_yet_every_reader_sees_sending(
    store: tuple[ResultStore, str],
) -> None:
    rs, sid = store
    before = await rs.load_raw(sid, [0, 65])
    call = await claim(rs, sid, [0, 65], "r1")  # two results hashes
    assert await rs.load_raw(sid, [0, 65]) == before  # the records are as they were
    for record in (await rs.load(sid, [0, 65, 1])).values():
        assert record["status"] == ("queued" if record["to"].endswith("001") else "sending")
    shown = (await rs.load(sid, [0]))[0]
    assert shown["run"] == "r1" and shown["attempts"] == 1 and shown["until"] > time.time()
    assert (await counts(rs, sid))["sending"] == 2
    assert [r["status"] async for r in rs.iter_results(sid)].count("sending") == 2
    assert await answer(rs, sid, 0, expect_run("r1", call), id="m0", parts=2, encoding="gsm")
    assert await answer(rs, sid, 65, expect_run("r1", call), id="m1", parts=1, encoding="gsm")
    assert (await rs.load(sid, [0]))[0]["attempts"] == 1  # the claim's attempt is kept
    after = await counts(rs, sid)
    assert (after["sending"], after["accepted"], after["queued"]) == (0, 2, 68)
    assert not await rs.redis.exists(keys.flights(sid), keys.flying(sid))  # nothing left
    breakdown = await rs.breakdown(sid)
    assert breakdown.parts == {"gsm": 3} and breakdown.accepted_by_encoding == {"gsm": 2}


async def test_nobody_but_the_flights_run_moves_its_recipients(
    store: tuple[ResultStore, str],
) -> None:
    """Another run loaded the same bytes before the claim: the bytes still match, but its
    claim, its own moves from them, a cancel and a stranger's answer are all refused."""
    rs, sid = store
    raw = await rs.load_raw(sid, [1, 2])
    call = await claim(rs, sid, [1], "r1")
    other = Flight("r2:0", "r2", time.time() + 60, now_iso())
    assert await rs.claim(sid, other, raw.items()) == {2}  # only the one not on the wire
    expired = successor((await rs.load(sid, [1]))[1], "expired", code=119)
    assert await rs.record(sid, [(1, expired, expect_exact(raw[1], "queued"))]) == set()
    assert not await answer(rs, sid, 1, expect_run("r2", call))
    assert not await answer(rs, sid, 1, expect_run("r2", "r2:0"))  # not in r2's flight
    assert not await answer(rs, sid, 1, expect_over("r2:0"))
    assert await rs.cancel_queued(sid, [1, 2, 3]) == 1  # only 3 was queued and idle
    assert (await rs.load(sid, [1]))[1]["status"] == "sending"
    assert await answer(rs, sid, 1, expect_run("r1", call), id="m1", parts=1, encoding="gsm")
    assert (await rs.load(sid, [1]))[1]["status"] == "accepted"


async def test_a_flight_past_its_time_is_unknown_and_its_late_answer_still_lands(
    store: tuple[ResultStore, str],
) -> None:
    """Another run finds the flight over and records ``unknown`` with the flight's run:
    the late, certain answer of that very run replaces it, anyone else's does not."""
    rs, sid = store
    call = await claim(rs, sid, [4, 5], "r1", seconds=-1)
    over = await in_flight(rs, sid, [3, 4, 5, 6])
    assert sorted(over) == [4, 5] and over[4].call == call and over[4].until < time.time()
    moves = [
        (i, successor((await rs.load(sid, [i]))[i], "unknown", code=-1, run="r1"),
         expect_over(call))
        for i in (4, 5)
    ]  # fmt: skip
    assert await rs.record(sid, moves) == {4, 5}
    assert await rs.record(sid, moves) == set()  # the flight is gone: once only
    assert (await counts(rs, sid))["unknown"] == 2
    assert not await answer(rs, sid, 4, expect_run("r2", call))
    assert await answer(rs, sid, 4, expect_run("r1", call), id="m4", parts=1, encoding="gsm")
    after = await counts(rs, sid)
    assert (after["accepted"], after["unknown"], after["sending"]) == (1, 1, 0)


async def test_a_flight_landing_in_parts_keeps_the_rest_on_the_wire(
    store: tuple[ResultStore, str],
) -> None:
    rs, sid = store
    call = await claim(rs, sid, [6, 7, 8], "r1")
    assert await answer(rs, sid, 7, expect_run("r1", call), id="m7", parts=1, encoding="gsm")
    assert sorted(await in_flight(rs, sid, list(range(10)))) == [6, 8]
    assert not await answer(rs, sid, 7, expect_run("r1", call))  # landed already
    for i in (6, 8):
        assert await answer(rs, sid, i, expect_run("r1", call), id=f"m{i}", parts=1,
                            encoding="gsm")  # fmt: skip
    assert await in_flight(rs, sid, list(range(10))) == {}
    assert not await rs.redis.exists(keys.flights(sid), keys.flying(sid))


async def test_after_a_cancel_nothing_is_claimed_and_a_retry_is_cancelled(
    store: tuple[ResultStore, str],
) -> None:
    rs, sid = store
    call = await claim(rs, sid, [9], "r1")
    await rs.mark_cancelled(sid)
    raw = await rs.load_raw(sid, [10])
    assert (
        await rs.claim(sid, Flight("r1:9", "r1", time.time() + 60, now_iso()), raw.items()) == set()
    )
    retry = successor((await rs.load(sid, [9]))[9], "queued", last_error={"code": 1})
    assert await rs.record(sid, [(9, retry, expect_run("r1", call))]) == {9}
    assert (await rs.load(sid, [9]))[9]["status"] == "cancelled"


async def test_a_final_record_is_never_moved_by_its_exact_bytes(
    store: tuple[ResultStore, str],
) -> None:
    """``expect_exact`` with the status the caller read: a final record stays final even
    when the caller hands in its exact bytes, as when the script decodes it."""
    rs, sid = store
    call = await claim(rs, sid, [3], "r1")
    assert await answer(rs, sid, 3, expect_run("r1", call), id="m3", parts=1, encoding="gsm")
    final = (await rs.load_raw(sid, [3]))[3]
    again = successor((await rs.load(sid, [3]))[3], "queued")
    for said in ("accepted", ""):
        assert await rs.record(sid, [(3, again, expect_exact(final, said))]) == set()
    assert (await rs.load(sid, [3]))[3]["status"] == "accepted"


async def test_a_whole_flight_lands_in_one_write_across_results_hashes(
    store: tuple[ResultStore, str],
) -> None:
    """A run's answers for its own flight go as one landing (one HSET per results hash):
    mixed statuses, a recipient already gone from the flight, and the counters, the
    breakdown and the flight's bits as a move of each would leave them."""
    rs, sid = store
    indices = list(range(60, 70))  # two results hashes (64 each)
    call = await claim(rs, sid, indices, "r1")
    expect = expect_run("r1", call)
    assert await answer(rs, sid, 61, expect, id="m61", parts=1, encoding="gsm")  # landed
    old = await rs.load(sid, indices)
    moves = [
        (i, successor(old[i], "accepted", id=f"m{i}", parts=2, encoding="gsm"), expect)
        for i in indices
        if i < 66
    ] + [
        (i, successor(old[i], "rejected", code=103, description="Invalid phone"), expect)
        for i in indices
        if i >= 66
    ]
    assert await rs.record(sid, moves) == set(indices) - {61}
    after = await rs.load(sid, indices)
    assert [after[i]["status"] for i in indices] == ["accepted"] * 6 + ["rejected"] * 4
    assert after[64]["id"] == "m64" and after[61]["parts"] == 1 and after[69]["code"] == 103
    assert (await counts(rs, sid))["accepted"] == 6 and (await counts(rs, sid))["sending"] == 0
    breakdown = await rs.breakdown(sid)
    assert breakdown.accepted_by_encoding == {"gsm": 6} and breakdown.parts == {"gsm": 11}
    assert breakdown.codes == {"103": 4}
    assert await in_flight(rs, sid, indices) == {}
    assert not await rs.redis.exists(keys.flights(sid), keys.flying(sid))
    assert await rs.record(sid, moves) == set()  # once only


async def test_load_raw_reads_runs_and_scattered_indices_alike(
    store: tuple[ResultStore, str],
) -> None:
    """``load_raw`` reads whole results hashes for runs of indices: what it returns must
    be exactly the records asked for, however the indices lie."""
    rs, sid = store
    every = await rs.load_raw(sid, list(range(70)))
    assert sorted(every) == list(range(70))  # all stored by the fixture
    for asked in ([5], [63, 64], [0, 65, 3], list(range(1, 70, 2)), [69, 2, 2, 80]):
        assert await rs.load_raw(sid, asked) == {i: every[i] for i in asked if i in every}


async def test_a_claim_of_untouched_recipients_skips_one_that_got_a_record_since(
    settings: Settings,
) -> None:
    """A claim takes recipients loaded untouched (no record) as runs and reads only the
    results hashes that exist: one that got a record since it was loaded stays out, the
    rest of the run goes on the wire."""
    redis = Redis.from_url(str(settings.redis_url))
    rs, sid = ResultStore(redis), uuid.uuid4().hex
    try:
        await rs.create_sending(sid, "sms", {"kind": "sms"}, "digest", chunk_size=100)
        entries = [chunks.Entry(i, f"+3466000{i:04d}", {}) for i in range(100)]
        assert await rs.add_chunk(sid, "0", chunks.encode(entries), 100, [])
        assert await rs.open(sid, 1) == "running"
        loaded = await rs.load_raw(sid, list(range(100)))
        assert loaded == {}  # all untouched
        failed = successor(Record(to="+34660000070", status="queued"), "failed", code=-2)
        assert await rs.record(sid, [(70, failed, expect_exact(b"", "queued"))]) == {70}
        flight = Flight("r1:0", "r1", time.time() + 60, now_iso())
        claimed = await rs.claim(sid, flight, [(i, b"") for i in range(100)])
        assert claimed == set(range(100)) - {70}
        assert (await counts(rs, sid))["sending"] == 99
    finally:
        await redis.aclose()


_OPTIONAL = st.none() | st.text(max_size=8)


@given(
    old=st.fixed_dictionaries(
        {"to": st.text(max_size=12), "status": st.sampled_from(["sending", "queued"])},
        optional={"attempts": st.integers(0, 3), "row": st.integers(1, 9), "ambiguous": st.just(1)},
    ),
    encoding=st.none() | st.sampled_from(["gsm", "utf-16"]),
    mid=_OPTIONAL,
    parts=st.none() | st.integers(1, 3) | st.booleans(),
    scheduled_at=_OPTIONAL,
)
def test_accepted_successor_is_successor_with_key_for_key(
    old: dict[str, Any], encoding: str | None, mid: Any, parts: Any, scheduled_at: Any
) -> None:
    """The literal for a claimed recipient's usual 202 is the general record, in the same
    key order: its packed bytes are what a later move compares."""
    now = "2026-11-26T22:00:00.000+00:00"
    given_fields = {"encoding": encoding, "id": mid, "parts": parts, "scheduled_at": scheduled_at}
    fields = {k: v for k, v in given_fields.items() if v is not None}
    record = cast(Record, old)
    quick = accepted_successor(record, now, encoding, mid, parts, scheduled_at)
    general = successor_with(record, "accepted", fields, now)
    assert list(quick.items()) == list(general.items())
    assert codec.pack(quick) == codec.pack(general)


_ANSWER = st.tuples(
    st.fixed_dictionaries(
        {"to": st.text(max_size=40), "status": st.just("sending")},
        optional={"attempts": st.integers(0, 300) | st.booleans(), "row": st.integers(1, 9)},
    ),
    st.none() | st.text(max_size=300) | st.integers(-(2**40), 2**40),  # the message id
    st.none() | st.integers(0, 70000) | st.booleans(),  # parts
    _OPTIONAL,  # scheduled at
)
_CLAIMED = {"to": "34666000001", "status": "sending", "attempts": 1}


@given(answers=st.lists(_ANSWER, max_size=8), encoding=st.none() | st.sampled_from(["gsm", "ü"]))
@example(  # equal but not alike: 1 and True, as attempts and as parts
    answers=[
        (_CLAIMED, "m1", 1, None),
        ({**_CLAIMED, "attempts": True}, "m2", True, None),
        (_CLAIMED, "m3", True, None),
    ],
    encoding="gsm",
)
def test_accepted_packer_packs_what_accepted_successor_would(
    answers: list[tuple[dict[str, Any], Any, Any, Any]], encoding: str | None
) -> None:
    """The records a run writes for a call's answers: byte for byte the packed
    ``accepted_successor``, whatever their attempts, parts, ids and addresses (short and
    long strings, ints and booleans alike), one after another."""
    now = "2026-11-27T01:30:00.000+00:00"
    packed = accepted_packer(now, encoding)
    for old, mid, parts, scheduled_at in answers:
        record = cast(Record, old)
        expected = codec.pack(accepted_successor(record, now, encoding, mid, parts, scheduled_at))
        assert packed(record, mid, parts, scheduled_at) == expected


@pytest.mark.parametrize("seed", range(6))
async def test_flights_of_unaligned_chunks_keep_the_bitmap_exact(
    settings: Settings, seed: int
) -> None:
    """Chunks of 13 (runs that share the bitmap's bytes with their neighbours) claimed
    and answered in a random order, wholly, in part (a 207: some rejected one by one), or
    not yet: after every step the bitmap holds exactly the recipients in a flight, no
    recipient is claimed twice, and once all have landed no flight is left."""
    rng = random.Random(seed)
    size, n_chunks = 13, 6
    redis = Redis.from_url(str(settings.redis_url))
    rs = ResultStore(redis)
    sid = uuid.uuid4().hex
    await rs.create_sending(sid, "sms", {"kind": "sms"}, "digest", chunk_size=size)
    for c in range(n_chunks):
        entries = [chunks.Entry(i, f"3466{i:07d}", {}) for i in range(c * size, (c + 1) * size)]
        assert await rs.add_chunk(sid, str(c), chunks.encode(entries), size, [])
    await rs.open(sid, n_chunks)
    total = size * n_chunks
    waiting = set(range(total))  # queued, in no flight
    flying: dict[str, tuple[str, set[int]]] = {}  # call → (run, its recipients on the wire)

    async def check() -> None:
        bitmap = await redis.get(keys.flying(sid)) or b""
        on = {i for i in range(len(bitmap) * 8) if bitmap[i >> 3] & (0x80 >> (i & 7))}
        expected = set().union(*(members for _, members in flying.values()))
        assert on == expected
        assert set(await rs.flights(sid)) == expected
        assert len(bitmap) * 8 < total + 8  # never longer than the sending needs

    step = 0
    while waiting or flying:
        step += 1
        if waiting and (not flying or rng.random() < 0.5):
            c = rng.choice(sorted({i // size for i in waiting}))
            wanted = sorted(i for i in waiting if i // size == c)
            raw = await rs.load_raw(sid, wanted)
            run = f"r{step}"
            flight = Flight(f"{run}:0", run, time.time() + 60, now_iso())
            got = await rs.claim(sid, flight, [(i, raw.get(i, b"")) for i in wanted])
            assert got == set(wanted)
            again = Flight(f"x{step}:0", f"x{step}", time.time() + 60, now_iso())
            assert await rs.claim(sid, again, [(i, b"") for i in wanted]) == set()
            waiting -= got
            flying[flight.call] = (run, got)
        else:
            call = rng.choice(sorted(flying))
            run, members = flying[call]
            answered = sorted(m for m in members if rng.random() < 0.7) or sorted(members)
            expect = expect_run(run, call)
            answers = Answers()
            updates: list[tuple[int, Record, bytes]] = []
            for i in answered:
                old = Record(to=f"3466{i:07d}", status="sending", attempts=1)
                if rng.random() < 0.8:
                    answers.add(
                        i, accepted_successor(old, now_iso(), "gsm", f"m{i}", 1, None), expect
                    )
                else:
                    updates.append((i, successor(old, "rejected", code=102), expect))
            assert await rs.record(sid, updates, answers) == set(answered)
            left = members - set(answered)
            if left:
                flying[call] = (run, left)
            else:
                del flying[call]
        await check()
    assert not await redis.exists(keys.flights(sid), keys.flying(sid))
    final = await counts(rs, sid)
    assert final["accepted"] + final["rejected"] == total and final["sending"] == 0
    await redis.aclose()


@pytest.mark.parametrize("with_ids", [True, False])
async def test_an_accepted_recipient_is_linked_to_its_message_id_given_or_not(
    store: tuple[ResultStore, str], with_ids: bool
) -> None:
    """While notifications are received (``keys.HOOKS``) a recipient recorded accepted is
    linked to its message id: the one sent beside its record, or, from a worker that
    sends none (it sets no notification URL), the one in the record itself."""
    rs, sid = store
    await rs.redis.set(keys.HOOKS, 1)
    try:
        call = await claim(rs, sid, [5, 6], "r1")
        expect = expect_run("r1", call)
        answers = Answers()
        for i in (5, 6):
            old = Record(to=f"34660000{i:03d}", status="sending", attempts=1)
            indices, records, ids = answers.group(expect, "accepted", "accepted:gsm", 1)
            indices.append(i)
            records.append(codec.pack(accepted_successor(old, now_iso(), "gsm", f"m{i}", 1, None)))
            if with_ids:
                ids.append(f"m{i}")
        assert await rs.record(sid, [], answers) == {5, 6}
        linked = [await rs.redis.get(keys.message(f"m{i}")) for i in (5, 6)]
        assert linked == [f"{sid} 5".encode(), f"{sid} 6".encode()]
    finally:
        await rs.redis.delete(keys.HOOKS)


async def test_a_landing_with_one_not_in_its_flight_lands_and_links_the_others(
    store: tuple[ResultStore, str],
) -> None:
    """A group of a run's answers in which one recipient is not in its flight (never
    claimed by it): that one is refused and left as it was, the others before and after
    it land across two results hashes, and only they are linked to their message ids."""
    rs, sid = store
    await rs.redis.set(keys.HOOKS, 1)
    try:
        call = await claim(rs, sid, [5, 6, 66], "r1")
        expect = expect_run("r1", call)
        answers = Answers()
        indices, records, ids = answers.group(expect, "accepted", "accepted:gsm", 1)
        for i in (5, 8, 6, 66):  # 8 is queued, in no flight
            old = Record(to=f"34660000{i:03d}", status="sending", attempts=1)
            indices.append(i)
            records.append(codec.pack(accepted_successor(old, now_iso(), "gsm", f"m{i}", 1, None)))
            ids.append(f"m{i}")
        assert await rs.record(sid, [], answers) == {5, 6, 66}
        linked = {i: await rs.redis.get(keys.message(f"m{i}")) for i in (5, 6, 8, 66)}
        assert linked == {5: f"{sid} 5".encode(), 6: f"{sid} 6".encode(), 8: None,
                          66: f"{sid} 66".encode()}  # fmt: skip
        records_now = await rs.load(sid, [5, 6, 8, 66])
        assert [records_now[i]["status"] for i in (5, 6, 8, 66)] == [
            "accepted", "accepted", "queued", "accepted",
        ]  # fmt: skip
        assert not await rs.flights(sid)
        assert (await counts(rs, sid))["accepted"] == 3
    finally:
        await rs.redis.delete(keys.HOOKS)
