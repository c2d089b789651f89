"""A chunk's entries as stored (``jobs.chunks.encode``) and as a worker reads them back
(``decode``): the same entries, from every form a chunk has had in Redis."""

from __future__ import annotations

import zlib

import orjson
import pytest

from jobs import chunks
from jobs.chunks import Entry

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
