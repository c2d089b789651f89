"""A chunk's entries as stored (``jobs.chunks.encode``) and as a worker reads them back
(``decode``): the same entries, from every form a chunk has had in Redis; and its job
on the queue (``enqueue``), as arq's own would be."""

from __future__ import annotations

import zlib

import orjson
import pytest
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import deserialize_job

from jobs import chunks, codec, keys
from jobs.chunks import CHUNK_FUNCTION, Entry
from jobs.producer import Producer
from jobs.settings import Settings

ENTRIES = [
    Entry(0, "34666000001", {"sub": {"name": "Ana", "n": 1.5}}),
    Entry(1, "34666000002", {}, given="+34 666 000 002"),
    Entry(7, "34666000003", {"row": 9, "cells": ["=1", None], "contact": {"a": [1, 2]}}),
    Entry(123_456_789, "ünïcode@example.com", {"sub": {"x": "ñ €"}}),
]


def test_entries_come_back_as_they_went_in() -> None:
    assert chunks.decode(chunks.encode(ENTRIES)) == ENTRIES


def test_the_stored_form_is_arrays_with_given_only_where_there_is_one() -> None:
    rows = orjson.loads(zlib.decompress(chunks.encode(ENTRIES[:2])))
    assert rows == [
        [0, "34666000001", {"sub": {"name": "Ana", "n": 1.5}}],
        [1, "34666000002", {}, "+34 666 000 002"],
    ]


@pytest.mark.parametrize("compressed", [True, False], ids=["zlib", "plain JSON, as before"])
def test_older_chunks_are_read_null_extras_included(compressed: bool) -> None:
    """Chunks written before compression are plain JSON; some carried ``null`` extras."""
    text = b'[[0,"34666000001",null],[1,"34666000002",{"sub":{"a":"b"}},"0034666000002"]]'
    raw = zlib.compress(text, 1) if compressed else text
    assert chunks.decode(raw) == [
        Entry(0, "34666000001", {}),
        Entry(1, "34666000002", {"sub": {"a": "b"}}, "0034666000002"),
    ]


async def test_a_chunk_job_is_the_job_arqs_own_enqueue_writes(settings: Settings) -> None:
    """``chunks.enqueue`` (one script) writes what ``ArqRedis.enqueue_job`` (three round
    trips) does: the same job, lifetime and place in the queue, a worker reads it as
    arq's own; and neither goes on the queue twice, nor over a kept result."""
    producer = await Producer.connect(settings)
    redis = producer.redis
    try:
        ours = keys.chunk_job_id("s1", "0")
        assert await chunks.enqueue(redis, "s1", "0", expires_s=600)
        arqs = await redis.enqueue_job(
            CHUNK_FUNCTION, "s1", "1", _job_id=keys.chunk_job_id("s1", "1"), _expires=600
        )
        assert arqs is not None
        mine = await redis.get(job_key_prefix + ours)
        theirs = await redis.get(job_key_prefix + arqs.job_id)
        a = deserialize_job(mine, deserializer=codec.loads)
        b = deserialize_job(theirs, deserializer=codec.loads)
        assert (a.function, list(a.args), a.kwargs) == (CHUNK_FUNCTION, ["s1", "0"], {})
        assert (b.function, list(b.args), b.kwargs, b.job_try) == (
            a.function,
            ["s1", "1"],
            {},
            a.job_try,
        )
        assert abs((a.enqueue_time - b.enqueue_time).total_seconds()) < 5
        for job_id in (ours, arqs.job_id):
            assert 595_000 < await redis.pttl(job_key_prefix + job_id) <= 600_000
        queue = await redis.zrange(settings.queue_name, 0, -1, withscores=True)
        assert [job_id.decode() for job_id, _ in queue] == [ours, arqs.job_id]
        assert abs(queue[0][1] - queue[1][1]) < 5_000
        assert not await chunks.enqueue(redis, "s1", "0", expires_s=600)  # waiting already
        await redis.set(result_key_prefix + keys.chunk_job_id("s1", "2"), b"kept")
        assert not await chunks.enqueue(redis, "s1", "2", expires_s=600)
        assert await chunks.enqueue(redis, "s1", "3", expires_s=600, defer_s=30)
        deferred = await redis.zscore(settings.queue_name, keys.chunk_job_id("s1", "3"))
        assert deferred is not None and deferred - queue[0][1] >= 29_000
        assert await redis.zcard(settings.queue_name) == 3
    finally:
        await producer.close()
