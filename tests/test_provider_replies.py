"""How the worker reads the provider's answers (``worker.provider._parse``): the usual
202, every recipient plainly accepted, is decoded straight into columns
(``_accepted``); whatever its shape, the reply must be exactly the one the general
reading of the same bytes gives (messaging-api.txt, the 202/207 responses)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from jobs.channels import result_list
from worker.provider import Accepted, Ambiguous, Reply, _parse

_VALUE = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=6)
_ITEM = st.fixed_dictionaries(
    {},
    optional={
        "to": st.text(max_size=12) | st.integers(0, 10**12),
        "accepted": st.just(True) | _VALUE,
        "id": st.text(max_size=40) | _VALUE,
        "parts": st.integers(1, 8) | _VALUE,
        "scheduledAt": st.none() | st.text(max_size=14),
        "error": st.none() | st.fixed_dictionaries({"code": st.integers(100, 130)}),
        "extra": _VALUE,
    },
)
_BODY = st.fixed_dictionaries({"result": st.lists(_ITEM, max_size=6) | _VALUE}) | _VALUE


def read(content: bytes, status: int, *, general: bool) -> Reply | str:
    """The reply, or the ambiguity it raised; ``general``: without the quick decode."""
    response = httpx.Response(status, content=content)
    try:
        return _parse(response, (lambda body: result_list(body)) if general else result_list)
    except Ambiguous as exc:
        return f"ambiguous: {exc}"


def plain(reply: Reply | str) -> Any:
    if isinstance(reply, str):
        return reply
    results = list(reply.results) if reply.results is not None else None
    columns = isinstance(reply.results, Accepted)
    return (reply.http_status, columns, results, reply.code, reply.description, reply.retry_after)


@given(body=_BODY, status=st.sampled_from([200, 202, 207]))
@example(
    body={"result": [{"to": "3466600001", "accepted": True, "id": "m", "parts": 1}]}, status=202
)
@example(body={"result": [{"to": "1", "accepted": True, "id": "m1", "error": None}]}, status=202)
@example(body={"result": [{"to": "1", "accepted": 1, "id": "m1", "parts": 1}]}, status=202)
@example(body={"result": None}, status=202)
@example(body={"result": [{"to": "1", "accepted": True, "error": {"code": 105}}]}, status=207)
@example(body={"result": [{"to": "1", "accepted": True, "scheduledAt": "20261127"}]}, status=202)
def test_the_quick_reading_gives_the_general_readings_reply(body: Any, status: int) -> None:
    content = orjson.dumps(body)
    assert plain(read(content, status, general=False)) == plain(read(content, status, general=True))


def test_the_usual_answer_is_kept_as_columns() -> None:
    items = [
        {"to": f"3466600000{i}", "accepted": True, "id": f"m{i}", "parts": 1} for i in range(3)
    ]
    reply = read(orjson.dumps({"result": items}), 202, general=False)
    assert isinstance(reply, Reply) and isinstance(reply.results, Accepted)
    assert reply.results.ids == ["m0", "m1", "m2"] and reply.results.parts == [1, 1, 1]
    assert reply.results[2].to == "34666000002"
