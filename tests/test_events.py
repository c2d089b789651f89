"""Delivery notifications and events applied to the records: once, forward only, never lost.

Recipients are made accepted by the real pipeline (producer, in-process worker,
sandbox), then notifications go through the same batched Lua step the hooks use
(``web.hooks.EventSink``) on the real Redis; the HTTP side (secret, malformed,
access log) runs against a real ``bulksend serve``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bulksend.stack import ServeProcess
from jobs import events, keys
from jobs.chunks import Entry
from jobs.events import Event, from_dlr, from_event
from jobs.planning import Call
from jobs.producer import Producer
from jobs.results import Record, expect_exact
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import drain, numbers
from web.hooks import EventSink

SECRET = "hook-secret-for-the-tests"


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(settings)
    yield p
    await p.close()


@pytest.fixture
async def sink(producer: Producer) -> EventSink:
    await redis_of(producer).set(keys.HOOKS, "1")  # what a serve with a hook secret says
    return EventSink(producer.redis, 3600)


async def accepted(producer: Producer, settings: Settings, to: list[str], **fields: Any) -> str:
    body = {"to": to, "from": "SHOP", "message": "Hi", **fields}
    sending_id = await producer.submit(Sms.model_validate(body))
    await drain(settings)
    return sending_id


async def record(producer: Producer, sending_id: str, index: int = 0) -> Record:
    return (await producer.store.load(sending_id, [index]))[index]


def redis_of(producer: Producer) -> Any:
    """The producer's Redis client (redis-py types its async answers as maybe-awaitable)."""
    return producer.redis


def dlr(message_id: str, status: str, date: str = "2026-11-26 10:00", part: int = 0) -> Event:
    params = {"i": message_id, "st": status, "y": date}
    if part:
        params["n"] = str(part)
    return from_dlr(params)


async def test_a_final_state_never_regresses_and_a_duplicate_counts_once(
    producer: Producer, settings: Settings, sink: EventSink
) -> None:
    sending_id = await accepted(producer, settings, numbers(2))
    mid = (await record(producer, sending_id))["id"]
    assert await sink.put(dlr(mid, "DELIVRD")) == "delivered " + (
        await record(producer, sending_id)
    ).get("updated_at", "")
    assert await sink.put(dlr(mid, "DELIVRD")) == "duplicate"
    assert await sink.put(dlr(mid, "ACCEPTD", "2026-11-26 09:59")) == "applied"  # late
    assert await sink.put(dlr(mid, "UNDELIV", "2026-11-26 10:05")) == "applied"
    rec = await record(producer, sending_id)
    assert rec["delivery"] == "delivered" and rec["status"] == "accepted"
    assert [e[0] for e in rec["events"]] == ["delivered", "sent", "undelivered"]
    status = await producer.status(sending_id)
    assert status is not None
    assert status["delivery"] == {
        "delivered": 1, "undelivered": 0, "rejected": 0, "expired": 0, "pending": 1,
        "opened": 0, "clicked": 0, "bounced": 0, "unsubscribed": 0,
    }  # fmt: skip


async def test_a_multipart_sms_gets_one_state_from_its_parts(
    producer: Producer, settings: Settings, sink: EventSink
) -> None:
    long_text = "x" * 200  # 2 GSM parts
    sending_id = await accepted(producer, settings, numbers(2), message=long_text, parts=2)
    first, second = [await record(producer, sending_id, i) for i in (0, 1)]
    assert first["parts"] == 2
    assert (await sink.put(dlr(first["id"], "DELIVRD", part=1))).startswith("applied")
    assert (await record(producer, sending_id, 0))["delivery"] == "sent"  # one part of two
    assert (await sink.put(dlr(first["id"], "DELIVRD", part=2))).startswith("delivered")
    assert (await record(producer, sending_id, 0))["delivery"] == "delivered"
    await sink.put(dlr(second["id"], "UNDELIV", part=2))
    await sink.put(dlr(second["id"], "DELIVRD", part=1))
    assert (await record(producer, sending_id, 1))["delivery"] == "undelivered"
    status = await producer.status(sending_id)
    assert status is not None
    assert (status["delivery"]["delivered"], status["delivery"]["undelivered"]) == (1, 1)


async def test_an_event_before_the_message_id_is_parked_and_applied_when_it_appears(
    producer: Producer, settings: Settings, sink: EventSink
) -> None:
    sending_id = await producer.submit(Sms.model_validate(
        {"to": numbers(1), "from": "SHOP", "message": "Hi"}))  # fmt: skip
    # The DLR races the 202: the worker has not recorded the message id yet.
    early = from_dlr({"i": "m-early", "st": "DELIVRD", "y": "2026-11-26 10:00", "s": sending_id,
                      "r": "0"})  # fmt: skip
    assert await sink.put(early) == "parked"
    opened = {"id": "m-early", "event": "opened", "eventDate": "2026-11-26T10:01:00+00:00"}
    assert await sink.put(from_event(opened)) == "parked"
    assert await redis_of(producer).llen(keys.early("m-early")) == 2
    # The worker's move records it accepted with that id: what was parked is applied.
    untouched = b""  # nothing has moved it yet: it has no record of its own
    rec: Record = {"to": numbers(1)[0], "status": "accepted", "id": "m-early", "attempts": 1}
    assert await producer.store.record(sending_id, [(0, rec, expect_exact(untouched))]) == {0}
    after = await record(producer, sending_id)
    assert after["delivery"] == "delivered" and after["facts"] == {
        "opened": "2026-11-26T10:01:00+00:00"}  # fmt: skip
    assert not await redis_of(producer).exists(keys.early("m-early"))
    status = await producer.status(sending_id)
    assert status is not None and status["delivery"]["opened"] == 1


async def test_events_by_message_id_facts_and_suppression(
    producer: Producer, settings: Settings, sink: EventSink
) -> None:
    sending_id = await accepted(producer, settings, ["+34 666 000 111", *numbers(1)])
    mid = (await record(producer, sending_id))["id"]
    at = "2026-11-26T10:00:00+00:00"
    url = "https%3A%2F%2Fshop.example%2Fsale"
    for form in [
        {"id": mid, "event": "delivered", "eventDate": at},
        {"id": mid, "event": "clicked", "eventDate": at, "extra": f'{{"url": "{url}"}}'},
        {"id": mid, "event": "clicked", "eventDate": "2026-11-26T10:02:00+00:00"},
        {"id": mid, "event": "unsubscribed", "eventDate": at},
    ]:
        assert (await sink.put(from_event(form))).split()[0] in ("applied", "delivered")
    rec = await record(producer, sending_id)
    assert rec["delivery"] == "delivered"
    clicks = [e for e in rec["events"] if e[0] == "clicked"]
    assert len(clicks) == 2 and clicks[0][3] == "https://shop.example/sale"
    status = await producer.status(sending_id)
    assert status is not None
    assert (status["delivery"]["clicked"], status["delivery"]["unsubscribed"]) == (1, 1)
    entry = await redis_of(producer).hget(keys.suppression("sms"), "34666000111")
    assert entry is not None and b'"reason":"unsubscribed"' in entry
    # A hard bounce: undelivered, bounced, suppressed.
    other = (await record(producer, sending_id, 1))["id"]
    await sink.put(from_event({"id": other, "event": "hard_bounced", "eventDate": at}))
    rec = await record(producer, sending_id, 1)
    assert rec["delivery"] == "undelivered" and "bounced" in rec["facts"]
    assert await redis_of(producer).hexists(keys.suppression("sms"), numbers(1)[0])


async def test_malformed_notifications_are_refused_by_the_parser() -> None:
    for params in [{}, {"i": "m"}, {"i": "m", "st": "NOPE"}, {"i": "m", "st": "DELIVRD", "n": "x"}]:
        with pytest.raises(events.Malformed):
            from_dlr(params)
    for form in [{"id": "m", "event": "exploded", "eventDate": "x"}, {"event": "opened"},
                 {"id": "m", "event": "clicked", "eventDate": "x", "extra": "{"}]:  # fmt: skip
        with pytest.raises(events.Malformed):
            from_event(form)


def test_workers_add_a_notification_url_per_recipient_unless_the_sending_has_one() -> None:
    entries = [Entry(3, "34666000003", {}), Entry(4, "34666000004", {})]
    sms = Call("sms", {"from": "SHOP", "message": "Hi"}, entries)
    [ours] = events.with_notification_urls([sms], "s1", "https://bs.example/", "k3y")
    urls = [e.extras["notificationUrl"] for e in ours.entries]
    assert urls[0].startswith("https://bs.example/hooks/dlr/k3y?s=s1&r=3&i=%i&st=%s&n=%n")
    for escape in ("%i", "%P", "%p", "%s", "%t", "%y", "%n", "%S", "%C", "%c"):
        assert escape in urls[1]
    theirs = Call("sms", {"from": "SHOP", "notificationUrl": "https://them"}, entries)
    assert events.with_notification_urls([theirs], "s1", "https://bs", "k")[0] is theirs
    landing = Call("landing", {"from": "SHOP"}, entries)
    [one] = events.with_notification_urls([landing], "s1", "https://bs", "k")
    assert "s=" not in one.body["notificationUrl"] and "i=%i" in one.body["notificationUrl"]
    assert events.with_notification_urls([sms], "s1", None, "k")[0] is sms


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> ServeProcess:
    serve_env = {**env, "BULKSEND_API_TOKEN": "t", "BULKSEND_HOOK_SECRET": SECRET}
    return ServeProcess(serve_env, log=tmp_path / "serve.log")


async def test_hooks_over_http_secret_malformed_and_a_quiet_access_log(
    server: ServeProcess, producer: Producer, settings: Settings, tmp_path: Path
) -> None:
    with server:
        sending_id = await accepted(producer, settings, numbers(1))
        mid = (await record(producer, sending_id))["id"]
        async with httpx.AsyncClient(base_url=server.url) as client:
            query = {"i": mid, "st": "DELIVRD", "y": "2026-11-26 10:00", "P": numbers(1)[0]}
            wrong = await client.get("/hooks/dlr/guess", params=query)
            assert wrong.status_code == 404
            assert "delivery" not in await record(producer, sending_id)
            ok = await client.get(f"/hooks/dlr/{SECRET}", params=query)
            assert (ok.status_code, ok.text) == (200, "ok")
            assert (await record(producer, sending_id))["delivery"] == "delivered"
            bad = await client.get(f"/hooks/dlr/{SECRET}", params={"st": "DELIVRD"})
            assert bad.status_code == 200  # retrying cannot help: counted and dropped
            form = {"id": mid, "event": "opened", "eventDate": "2026-11-26T10:01:00+00:00"}
            posted = await client.post(f"/hooks/events/{SECRET}", data=form)
            assert posted.status_code == 200
            await asyncio.sleep(0.2)
            metrics = (await client.get("/metrics", headers={"Authorization": "Bearer t"})).text
            # The dashboard shows delivery per sending, and a recipient's events.
            assert (await client.post("/ui/signin", data={"token": "t"})).status_code == 303
            page = re.sub(r"\s+", " ", (await client.get(f"/ui/sendings/{sending_id}")).text)
            assert re.search(r'class="counts delivery">.*?<dt>delivered</dt><dd>1</dd>', page)
            one = (await client.get(f"/ui/sendings/{sending_id}/recipients/0")).text
            assert "2026-11-26 10:00 · delivered" in one and "opened" in one
        assert re.search(r'bulksend_notifications_total\{outcome="malformed"\} 1', metrics)
        assert re.search(r'bulksend_delivery_total\{kind="sms",state="delivered"\} 1', metrics)
        assert "bulksend_delivery_latency_seconds_count 1" in metrics
    log = (tmp_path / "serve.log").read_text()
    assert "/hooks/dlr/…" in log
    assert SECRET not in log and numbers(1)[0] not in log and mid not in log


async def test_without_a_secret_the_hooks_are_404(env: dict[str, str], tmp_path: Path) -> None:
    with ServeProcess({**env, "BULKSEND_API_TOKEN": "t"}, log=tmp_path / "s.log") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            answer = await client.get("/hooks/dlr/anything", params={"i": "m", "st": "DELIVRD"})
            assert answer.status_code == 404
