"""The sandbox's delivery notifications, event notifications and blacklist, over real
HTTP: ``sandbox.notifications``, ``sandbox.outcomes``, ``sandbox.blacklist`` against
messaging-api.txt ("Delivery notifications", "Event Notifications", "Blacklist").

Each test that needs one runs a receiver: a small Starlette app served by uvicorn in
the test's event loop on a free loopback port, which records what arrives and can be
told to fail (500) its first N requests, or to hold requests until released.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bulksend.stack import SandboxProcess, free_port
from sandbox.notifications import dlr_url
from sandbox.outcomes import CLICKED_URL, Rates, decide
from tests.conftest import SANDBOX_AUTH
from tests.helpers import wait_until

SMS = "/api/rest/sms"
NOTIFICATIONS = "/_sandbox/notifications"
BLACKLIST = "/api/rest/v2/blacklist"
GOOD, OTHER = "34666555444", "34666555333"
ALL_ESCAPES = "i=%i&p=%p&P=%P&t=%t&c=%c&s=%s&m=%m&y=%y&n=%n&C=%C&S=%S"
MINUTE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
EVENT_FIELDS = {
    "id",
    "channel",
    "contactId",
    "campaignId",
    "campaignName",
    "formId",
    "event",
    "extra",
    "eventDate",
}


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    content_type: str
    at: float  # time.monotonic()


@dataclass
class Receiver:
    """What arrived, in order; the first ``fail_first`` requests are answered 500."""

    url: str = ""
    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)
    hold: asyncio.Event | None = None  # set: requests wait for it before answering
    in_flight: int = 0

    async def endpoint(self, request: Request) -> Response:
        form: dict[str, str] = {}
        if request.method == "POST":
            form = {key: str(value) for key, value in (await request.form()).items()}
        self.requests.append(
            Received(
                request.method,
                request.url.path,
                dict(request.query_params),
                form,
                request.headers.get("content-type", ""),
                time.monotonic(),
            )
        )
        if len(self.requests) <= self.fail_first:
            return Response("no", 500)
        if self.hold is not None:
            self.in_flight += 1
            try:
                await self.hold.wait()
            finally:
                self.in_flight -= 1
        return Response("ok")

    def dlrs(self, path: str = "/dlr") -> list[dict[str, str]]:
        return [r.query for r in self.requests if r.method == "GET" and r.path == path]

    def events(self) -> list[dict[str, str]]:
        return [r.form for r in self.requests if r.method == "POST"]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = Receiver()
    app = Starlette(routes=[Route("/{path:path}", got.endpoint, methods=["GET", "POST"])])
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    got.url = f"http://127.0.0.1:{port}"
    try:
        yield got
    finally:
        if got.hold is not None:
            got.hold.set()
        server.should_exit = True
        await task


async def configure(client: httpx.AsyncClient, **config: Any) -> dict[str, Any]:
    response = await client.post(NOTIFICATIONS, json=config)
    assert response.status_code == 200, response.text
    shown: dict[str, Any] = response.json()
    return shown


async def notifications(client: httpx.AsyncClient) -> dict[str, Any]:
    shown: dict[str, Any] = (await client.get(NOTIFICATIONS)).json()
    return shown


async def decisions(client: httpx.AsyncClient) -> dict[str, Any]:
    shown: dict[str, Any] = (await client.get(f"{NOTIFICATIONS}/decisions")).json()
    return shown


async def settled(client: httpx.AsyncClient, timeout: float = 20) -> dict[str, Any]:
    """The counters once nothing is pending."""

    async def done() -> bool:
        return bool((await notifications(client))["pending"] == 0)

    await wait_until(done, timeout)
    return await notifications(client)


async def send(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def sms(*to: str, **changes: Any) -> dict[str, Any]:
    return {"to": list(to or [GOOD]), "from": "TEST", "message": "SMS text message", **changes}


EMAIL = {
    "to": ["ann@example.com"],
    "fromName": "Info",
    "fromEmail": "info@sample.com",
    "body": "<html><body><a href='https://example.com'>link</a></body></html>",
    "replyTo": "replyto@example.com",
    "subject": "TEST",
}
LANDING = {
    "to": [GOOD],
    "message": "Landing {LAND_URL}",
    "from": "LANDINGAPI",
    "templateBody": "<html><body>Hi</body></html>",
}
VOICE = {"to": [GOOD], "message": "Test", "gender": "F", "language": "es_ES"}
VOICE_AUDIO = {"to": [GOOD], "audioUrl": "https://example.com/audio.mp3"}


# --- delivery notifications ----------------------------------------------------------


def test_escapes_are_replaced_url_encoded_and_encoded_bytes_kept() -> None:
    values = dict.fromkeys("ipPtcsmynCS", "v") | {"t": "2020-09-21 14:18", "p": "A&B"}
    url = dlr_url("https://x.test/n?p=%p&t=%t&c=%c&raw=%C3%A9%2C&x=%Z&C=%C", values)
    assert url == "https://x.test/n?p=A%26B&t=2020-09-21%2014%3A18&c=v&raw=%C3%A9%2C&x=%Z&C=v"


async def test_dlrs_of_a_two_part_sms_replace_every_escape(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    await configure(sandbox, undelivered=0)
    url = f"{receiver.url}/dlr?{ALL_ESCAPES}&raw=%C3%A9"
    body = sms(message="x" * 200, parts=2, campaignName="DLR_CAMPAIGN", notificationUrl=url)
    answer = await send(sandbox, SMS, body)
    (entry,) = answer["result"]
    assert entry["parts"] == 2

    counters = await settled(sandbox)
    assert counters["delivered"] == counters["sent"] == 4
    dlrs = receiver.dlrs()
    assert [(d["n"], d["s"]) for d in dlrs] == [
        ("1", "ACCEPTD"),
        ("2", "ACCEPTD"),
        ("1", "DELIVRD"),
        ("2", "DELIVRD"),
    ]
    for dlr in dlrs:
        assert dlr["i"] == entry["id"]
        assert dlr["p"] == "TEST"
        assert dlr["P"] == GOOD
        assert MINUTE.fullmatch(dlr["t"]) and MINUTE.fullmatch(dlr["y"])
        assert dlr["c"] == "0.05"
        assert re.fullmatch(r"\d\d", dlr["m"])
        assert dlr["C"] == str(answer["campaignId"])
        assert dlr["S"] == str(answer["sendingId"])
        assert dlr["raw"] == "é"  # the URL's own percent-encoding is left alone


async def test_undelivered_multipart_has_one_undeliv_part(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    await configure(sandbox, undelivered=1)
    url = f"{receiver.url}/dlr?i=%i&s=%s&n=%n&C=%C"
    answer = await send(sandbox, SMS, sms(message="y" * 400, parts=3, notificationUrl=url))
    await settled(sandbox)
    finals = {d["n"]: d["s"] for d in receiver.dlrs() if d["s"] != "ACCEPTD"}
    assert sorted(finals) == ["1", "2", "3"]
    assert sorted(finals.values()) == ["DELIVRD", "DELIVRD", "UNDELIV"]
    assert {d["C"] for d in receiver.dlrs()} == {"0"}  # no campaignName: campaign 0
    message_id = answer["result"][0]["id"]
    assert (await decisions(sandbox))[message_id]["delivery"] == "undelivered"


async def test_per_recipient_notification_urls(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    urls = [f"{receiver.url}/a?i=%i&P=%P&s=%s", f"{receiver.url}/b?i=%i&P=%P&s=%s"]
    answer = await send(sandbox, SMS, sms(GOOD, OTHER, notificationUrl=urls))
    await settled(sandbox)
    first, second = answer["result"]
    assert {(d["i"], d["P"]) for d in receiver.dlrs("/a")} == {(first["id"], GOOD)}
    assert {(d["i"], d["P"]) for d in receiver.dlrs("/b")} == {(second["id"], OTHER)}
    assert len(receiver.dlrs("/a")) == len(receiver.dlrs("/b")) == 2


async def test_landing_sms_gets_dlrs_and_landing_events(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    await configure(
        sandbox, events_url=f"{receiver.url}/events", undelivered=0, landing_unsubscribe=1
    )
    url = f"{receiver.url}/dlr?i=%i&s=%s&p=%p"
    answer = await send(sandbox, "/api/rest/landingsms", {**LANDING, "notificationUrl": url})
    await settled(sandbox)
    message_id = answer["result"][0]["id"]
    assert [(d["i"], d["s"], d["p"]) for d in receiver.dlrs()] == [
        (message_id, "ACCEPTD", "LANDINGAPI"),
        (message_id, "DELIVRD", "LANDINGAPI"),
    ]
    events = receiver.events()
    assert [e["event"] for e in events] == ["sent", "delivered", "unsubscribed_landing"]
    assert {e["channel"] for e in events} == {"landing"}
    entries = (await sandbox.get(f"{BLACKLIST}/sms")).json()["data"]
    assert [(e["recipient"], e["sendingId"]) for e in entries] == [(GOOD, answer["sendingId"])]


async def test_no_notification_url_no_events_url_sends_nothing(
    sandbox: httpx.AsyncClient,
) -> None:
    await send(sandbox, SMS, sms())
    counters = await notifications(sandbox)
    assert counters["sent"] == counters["pending"] == 0
    assert await decisions(sandbox) == {}


async def test_disabled_sends_no_dlrs(sandbox: httpx.AsyncClient, receiver: Receiver) -> None:
    await configure(sandbox, enabled=False)
    await send(sandbox, SMS, sms(notificationUrl=f"{receiver.url}/dlr?s=%s"))
    await asyncio.sleep(0.2)
    assert receiver.requests == []
    assert (await notifications(sandbox))["sent"] == 0


# --- event notifications -------------------------------------------------------------


async def test_sms_events_are_form_posts_with_the_documented_fields(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    await configure(sandbox, events_url=f"{receiver.url}/events", undelivered=0)
    answer = await send(sandbox, SMS, sms(campaignName="EV_CAMPAIGN"))
    await settled(sandbox)
    message_id = answer["result"][0]["id"]
    assert all(r.content_type == "application/x-www-form-urlencoded" for r in receiver.requests)
    sent, delivered = receiver.events()
    for event in (sent, delivered):
        assert set(event) == EVENT_FIELDS  # no smtpResponse outside email
        assert event["id"] == message_id
        assert event["channel"] == "sms"
        assert event["contactId"].isdigit() and int(event["contactId"]) > 0
        assert event["campaignId"] == str(answer["campaignId"])
        assert event["campaignName"] == "EV_CAMPAIGN"
        assert event["formId"] == event["extra"] == ""
        assert ISO.fullmatch(event["eventDate"])
    assert (sent["event"], delivered["event"]) == ("sent", "delivered")
    assert sent["contactId"] == delivered["contactId"]


async def test_events_without_campaign_name_have_campaign_zero(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    await configure(sandbox, events_url=f"{receiver.url}/events")
    await send(sandbox, SMS, sms())
    await settled(sandbox)
    assert {(e["campaignId"], e["campaignName"]) for e in receiver.events()} == {("0", "")}


async def test_email_facts_in_order_with_smtp_responses_and_blacklist(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    await configure(
        sandbox,
        events_url=f"{receiver.url}/events",
        email_bounce=0,
        email_soft_bounce=1,
        email_open=1,
        email_click=1,
        email_unsubscribe=1,
    )
    answer = await send(sandbox, "/api/rest/mailing", {**EMAIL, "campaignName": "NEWS"})
    await settled(sandbox)
    events = receiver.events()
    assert [e["event"] for e in events] == [
        "sent",
        "soft_bounced",
        "delivered",
        "opened",
        "clicked",
        "unsubscribed",
    ]
    assert {e["channel"] for e in events} == {"mailing"}
    by_event = {e["event"]: e for e in events}
    assert by_event["delivered"]["smtpResponse"].startswith("250")
    assert by_event["soft_bounced"]["smtpResponse"].startswith("4")
    assert "smtpResponse" not in by_event["opened"]
    assert orjson.loads(by_event["clicked"]["extra"]) == {"url": quote(CLICKED_URL, safe="")}

    message_id = answer["result"][0]["id"]
    assert (await decisions(sandbox))[message_id] == {
        "channel": "mailing",
        "to": "ann@example.com",
        "sending": answer["sendingId"],
        "delivery": "delivered",
        "facts": ["soft_bounced", "opened", "clicked", "unsubscribed"],
    }
    (entry,) = (await sandbox.get(f"{BLACKLIST}/mailing")).json()["data"]
    assert entry["recipient"] == "ann@example.com"
    assert entry["sendingId"] == answer["sendingId"]
    assert entry["campaignName"] == "NEWS"
    assert entry["isDefinitive"] is False


async def test_hard_bounced_email_is_undelivered_without_delivered(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    await configure(sandbox, events_url=f"{receiver.url}/events", email_bounce=1)
    answer = await send(sandbox, "/api/rest/mailing", EMAIL)
    await settled(sandbox)
    events = receiver.events()
    assert [e["event"] for e in events] == ["sent", "hard_bounced"]
    assert events[1]["smtpResponse"].startswith("550")
    decision = (await decisions(sandbox))[answer["result"][0]["id"]]
    assert (decision["delivery"], decision["facts"]) == ("undelivered", ["hard_bounced"])
    blacklisted = (await sandbox.get("/_sandbox/blacklist")).json()
    assert [(e["type"], e["recipient"], e["isDefinitive"]) for e in blacklisted["data"]] == [
        ("mailing", "ann@example.com", True)
    ]


@pytest.mark.parametrize(
    ("path", "body"), [("/api/rest/voice", VOICE), ("/api/rest/voiceAudio", VOICE_AUDIO)]
)
async def test_voice_events_are_text2speech(
    sandbox: httpx.AsyncClient, receiver: Receiver, path: str, body: dict[str, Any]
) -> None:
    await configure(sandbox, events_url=f"{receiver.url}/events", undelivered=0)
    answer = await send(sandbox, path, body)
    await settled(sandbox)
    events = receiver.events()
    assert [(e["event"], e["channel"]) for e in events] == [
        ("sent", "text2speech"),
        ("delivered", "text2speech"),
    ]
    assert {e["id"] for e in events} == {answer["result"][0]["id"]}


# --- decisions -----------------------------------------------------------------------


async def test_decisions_agree_with_dlrs_and_events_and_are_deterministic(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    await configure(
        sandbox, events_url=f"{receiver.url}/events", seed=7, undelivered=0.4, expired=0.2
    )
    numbers = [f"3466{i:07d}" for i in range(60)]
    answer = await send(
        sandbox, SMS, sms(*numbers, notificationUrl=f"{receiver.url}/dlr?i=%i&s=%s")
    )
    await settled(sandbox)
    decided = await decisions(sandbox)
    assert set(decided) == {entry["id"] for entry in answer["result"]}
    final_dlr = {d["i"]: d["s"] for d in receiver.dlrs() if d["s"] != "ACCEPTD"}
    final_event = {e["id"]: e["event"] for e in receiver.events() if e["event"] != "sent"}
    statuses = {"delivered": "DELIVRD", "undelivered": "UNDELIV", "expired": "EXPIRED"}
    rates = Rates(undelivered=0.4, expired=0.2)
    for entry in answer["result"]:
        decision = decided[entry["id"]]
        assert final_dlr[entry["id"]] == statuses[decision["delivery"]]
        assert final_event[entry["id"]] == decision["delivery"]
        again = decide(7, entry["id"], "sms", decision["to"], answer["sendingId"], 1, rates)
        assert again.as_json() == decision
    assert len({d["delivery"] for d in decided.values()}) == 3  # 60 draws: all three happen


# --- duplicates, order, retries ------------------------------------------------------


async def test_duplicates_and_reorder_at_roughly_their_rates(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    await configure(
        sandbox, events_url=f"{receiver.url}/events", undelivered=0, duplicates=0.3, reorder=0.3
    )
    numbers = [f"3466{i:07d}" for i in range(200)]
    await send(sandbox, SMS, sms(*numbers))
    counters = await settled(sandbox)
    events = receiver.events()
    # sent + delivered per message, plus the copies (0.3 + 0.09 + 0.027 per notification)
    assert len(events) == 400 + counters["duplicates"] == counters["sent"]
    assert 0.2 * 400 < counters["duplicates"] < 0.65 * 400
    seen = Counter((e["id"], e["event"]) for e in events)
    assert sum(n - 1 for n in seen.values()) == counters["duplicates"]
    first: dict[str, str] = {}
    for event in events:
        first.setdefault(event["id"], event["event"])
    reversed_share = sum(event == "delivered" for event in first.values()) / len(first)
    assert 0.15 < reversed_share < 0.45


async def test_no_duplicates_nor_reorder_by_default(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    await configure(sandbox, events_url=f"{receiver.url}/events")
    await send(sandbox, SMS, sms(*[f"3466{i:07d}" for i in range(50)]))
    counters = await settled(sandbox)
    assert counters["duplicates"] == 0
    events = receiver.events()
    assert len(events) == 100
    first: dict[str, str] = {}
    for event in events:
        first.setdefault(event["id"], event["event"])
    assert set(first.values()) == {"sent"}


async def test_retries_until_answered_200(sandbox: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.fail_first = 2
    await configure(sandbox, minute_s=0.01, undelivered=0)
    await send(sandbox, SMS, sms(notificationUrl=f"{receiver.url}/dlr?s=%s"))
    counters = await settled(sandbox)
    assert counters | {"config": None} == {
        "config": None,
        "pending": 0,
        "sent": 4,
        "delivered": 2,
        "retries": 2,
        "given_up": 0,
        "duplicates": 0,
    }
    assert Counter(d["s"] for d in receiver.dlrs()) == {"ACCEPTD": 2, "DELIVRD": 2}


async def test_retry_waits_are_progressive(sandbox: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.fail_first = 10**6
    minute = 0.04
    await configure(sandbox, events_url=f"{receiver.url}/events", minute_s=minute, undelivered=0)
    await send(sandbox, SMS, sms())
    counters = await settled(sandbox)
    assert (counters["sent"], counters["retries"], counters["given_up"]) == (12, 10, 2)
    assert counters["delivered"] == 0
    for event in ("sent", "delivered"):
        times = [r.at for r in receiver.requests if r.form["event"] == event]
        assert len(times) == 6  # the first try and 5 retries
        waits = [later - earlier for earlier, later in itertools.pairwise(times)]
        for k, wait in enumerate(waits, 1):
            assert wait >= k * minute * 0.9, waits


async def test_unreachable_receiver_is_given_up(sandbox: httpx.AsyncClient) -> None:
    await configure(sandbox, minute_s=0.001)
    nobody = f"http://127.0.0.1:{free_port()}/dlr?s=%s"
    await send(sandbox, SMS, sms(notificationUrl=nobody))
    counters = await settled(sandbox)
    assert (counters["sent"], counters["retries"], counters["given_up"]) == (12, 10, 2)


async def test_a_slow_receiver_times_out_and_is_retried(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.hold = asyncio.Event()
    await configure(sandbox, minute_s=0.001, timeout_s=0.05, undelivered=0)
    await send(sandbox, SMS, sms(notificationUrl=f"{receiver.url}/dlr?s=%s"))
    counters = await settled(sandbox)
    assert counters["given_up"] == 2 and counters["retries"] == 10


SATURATION_S = 120  # how long the bound test waits for 64 held notifications, at most
ANSWER_S = 60  # and for an answer while they are held


async def test_sending_is_bounded_and_does_not_hold_answers_up(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.hold = asyncio.Event()
    # Held notifications must not time out (and be retried: more on the wire, as the
    # receiver counts them) while this test waits, however long a loaded machine takes.
    await configure(sandbox, timeout_s=SATURATION_S + ANSWER_S + 60, delay_s=0)
    url = f"{receiver.url}/dlr?s=%s"
    numbers = [f"3466{i:07d}" for i in range(100)]
    await send(sandbox, SMS, sms(*numbers, notificationUrl=url))

    async def saturated() -> bool:
        return receiver.in_flight >= 64

    await wait_until(saturated, SATURATION_S)  # a loaded machine may take its time
    # Answered while 64 notifications hang: were answers held up by them, this would
    # wait for ``hold`` forever (the guard turns that into a failure, not a hang).
    await asyncio.wait_for(send(sandbox, SMS, sms()), ANSWER_S)
    assert not receiver.hold.is_set()
    await asyncio.sleep(0.2)
    assert receiver.in_flight == 64  # never more on the wire
    assert (await notifications(sandbox))["pending"] == 200
    receiver.hold.set()
    counters = await settled(sandbox)
    assert counters["delivered"] == 200


# --- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"nope": 1}, "nope"),
        ({"undelivered": 1.5}, "undelivered"),
        ({"duplicates": -0.1}, "duplicates"),
        ({"undelivered": 0.6, "expired": 0.5}, "undelivered"),
        ({"events_url": "ftp://x"}, "events_url"),
        ({"enabled": "yes"}, "enabled"),
        ({"seed": 1.5}, "seed"),
        ({"minute_s": "1"}, "minute_s"),
    ],
)
async def test_bad_configuration_is_400_and_keeps_the_old_one(
    sandbox: httpx.AsyncClient, config: dict[str, Any], key: str
) -> None:
    await configure(sandbox, seed=5)
    response = await sandbox.post(NOTIFICATIONS, json=config)
    assert response.status_code == 400
    assert response.json()["error"]["description"].startswith(f"{key}:")
    assert (await notifications(sandbox))["config"]["seed"] == 5


async def test_configuration_shows_every_key_with_its_default(sandbox: httpx.AsyncClient) -> None:
    shown = await configure(sandbox, seed=3)
    assert shown["config"] == {
        "seed": 3,
        "events_url": None,
        "enabled": True,
        "delay_s": 0.02,
        "minute_s": 0.05,
        "timeout_s": 5.0,
        "duplicates": 0.0,
        "reorder": 0.0,
        "undelivered": 0.1,
        "expired": 0.0,
        "rejected": 0.0,
        "email_bounce": 0.05,
        "email_soft_bounce": 0.05,
        "email_open": 0.5,
        "email_click": 0.2,
        "email_unsubscribe": 0.05,
        "email_complaint": 0.0,
        "landing_unsubscribe": 0.05,
    }
    assert {k: v for k, v in shown.items() if k != "config"} == dict.fromkeys(
        ("pending", "sent", "delivered", "retries", "given_up", "duplicates"), 0
    )


async def test_reset_clears_config_pending_decisions_and_blacklist(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    await configure(sandbox, events_url=f"{receiver.url}/events", delay_s=1.0, email_bounce=1)
    await send(sandbox, "/api/rest/mailing", EMAIL)
    await sandbox.put(f"{BLACKLIST}/sms", json={"recipient": GOOD})
    before = await notifications(sandbox)
    assert before["pending"] == 2
    assert len(await decisions(sandbox)) == 1
    assert (await sandbox.get("/_sandbox/blacklist")).json()["count"] == 2

    (await sandbox.post("/_sandbox/reset")).raise_for_status()
    after = await notifications(sandbox)
    assert after["config"]["events_url"] is None
    assert {k: v for k, v in after.items() if k != "config"} == dict.fromkeys(
        ("pending", "sent", "delivered", "retries", "given_up", "duplicates"), 0
    )
    assert await decisions(sandbox) == {}
    assert (await sandbox.get("/_sandbox/blacklist")).json() == {"count": 0, "data": []}
    await asyncio.sleep(1.2)  # past the delay: the cancelled notifications never come
    assert receiver.requests == []


def test_shutdown_does_not_wait_for_pending_notifications(tmp_path: Path) -> None:
    """Notifications on the wire to a server that never answers, more scheduled for a
    minute later: SIGTERM stops the sandbox at once, without a traceback."""
    with socket.socket() as silent, SandboxProcess(log=tmp_path / "sandbox.log") as process:
        silent.bind(("127.0.0.1", 0))
        silent.listen(128)  # connections complete in the backlog; nobody reads them
        hangs = f"http://127.0.0.1:{silent.getsockname()[1]}/x"
        config = {"events_url": hangs, "delay_s": 0, "timeout_s": 60}
        httpx.post(f"{process.url}{NOTIFICATIONS}", json=config).raise_for_status()
        sent = httpx.post(f"{process.url}{SMS}", json=sms(GOOD, OTHER), auth=SANDBOX_AUTH)
        assert sent.status_code == 202
        config = {**config, "delay_s": 60}
        httpx.post(f"{process.url}{NOTIFICATIONS}", json=config).raise_for_status()
        assert httpx.post(f"{process.url}{SMS}", json=sms(), auth=SANDBOX_AUTH).is_success
        deadline = time.monotonic() + 10
        while httpx.get(f"{process.url}{NOTIFICATIONS}").json()["sent"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert httpx.get(f"{process.url}{NOTIFICATIONS}").json()["pending"] == 6
        process.stop(grace=30)  # SIGTERM, then SIGKILL only if it hangs that long
        # It ended on the SIGTERM (uvicorn re-raises the one it handled), not on a SIGKILL:
        # the pending notifications did not hold it up.
        assert process.process.returncode in (0, -signal.SIGTERM)
    assert "Traceback" not in (tmp_path / "sandbox.log").read_text()


# --- blacklist -----------------------------------------------------------------------


async def test_blacklist_put_get_delete(sandbox: httpx.AsyncClient) -> None:
    empty = await sandbox.get(f"{BLACKLIST}/sms")
    assert empty.status_code == 200
    assert empty.json() == {
        "data": [],
        "meta": {
            "pagination": {
                "total": 0,
                "count": 0,
                "per_page": 100,
                "current_page": 1,
                "total_pages": 1,
                "links": {},
            }
        },
    }
    put = await sandbox.put(f"{BLACKLIST}/sms", json={"recipient": "+34 666 555 444"})
    assert put.status_code == 200
    data = put.json()["data"]
    assert set(data) == {"type", "recipient", "isDefinitive", "campaignName", "createdAt"}
    assert (data["type"], data["recipient"], data["isDefinitive"]) == ("sms", GOOD, False)
    assert data["campaignName"] is None
    assert ISO.fullmatch(data["createdAt"])
    again = await sandbox.put(f"{BLACKLIST}/sms", json={"recipient": GOOD})
    assert again.status_code == 200 and again.json() == put.json()

    listed = (await sandbox.get(f"{BLACKLIST}/sms")).json()["data"]
    assert listed == [{**data, "sendingId": None}]
    assert (await sandbox.get(f"{BLACKLIST}/voice")).json()["data"] == []
    mail = await sandbox.put(f"{BLACKLIST}/mailing", json={"recipient": "Test@Example.COM"})
    assert mail.json()["data"]["recipient"] == "Test@example.com"
    found = await sandbox.get(f"{BLACKLIST}/mailing", params={"recipient": "Test@example.com"})
    assert len(found.json()["data"]) == 1

    gone = await sandbox.request("DELETE", f"{BLACKLIST}/sms", json={"recipient": GOOD})
    assert gone.status_code == 204 and gone.content == b""
    missing = await sandbox.request("DELETE", f"{BLACKLIST}/sms", json={"recipient": GOOD})
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": 404, "description": "Resource not found"}}


async def test_blacklist_pagination_and_filters(
    sandbox: httpx.AsyncClient, receiver: Receiver
) -> None:
    for i in range(5):
        await sandbox.put(f"{BLACKLIST}/sms", json={"recipient": f"3466{i:07d}"})
    page1 = (await sandbox.get(f"{BLACKLIST}/sms", params={"limit": 2})).json()
    pagination = page1["meta"]["pagination"]
    assert [e["recipient"] for e in page1["data"]] == ["34660000000", "34660000001"]
    assert {k: v for k, v in pagination.items() if k != "links"} == {
        "total": 5,
        "count": 2,
        "per_page": 2,
        "current_page": 1,
        "total_pages": 3,
    }
    next_url = pagination["links"]["next"]
    assert next_url.endswith(f"{BLACKLIST}/sms?limit=2&page=2")
    page2 = (await sandbox.get(next_url)).json()
    assert [e["recipient"] for e in page2["data"]] == ["34660000002", "34660000003"]
    page3 = (await sandbox.get(f"{BLACKLIST}/sms", params={"limit": 2, "page": 3})).json()
    assert page3["meta"]["pagination"]["count"] == 1
    assert page3["meta"]["pagination"]["links"] == {}

    # sendingId: the sandbox's own unsubscribes carry theirs
    await configure(sandbox, events_url=f"{receiver.url}/events", email_bounce=1)
    answer = await send(sandbox, "/api/rest/mailing", EMAIL)
    by_sending = await sandbox.get(
        f"{BLACKLIST}/mailing", params={"sendingId": answer["sendingId"]}
    )
    assert [e["recipient"] for e in by_sending.json()["data"]] == ["ann@example.com"]
    other = await sandbox.get(f"{BLACKLIST}/mailing", params={"sendingId": 1})
    assert other.json()["data"] == []
    one = await sandbox.get(f"{BLACKLIST}/sms", params={"recipient": "+34660000003"})
    assert [e["recipient"] for e in one.json()["data"]] == ["34660000003"]


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"limit": 0}, "The limit must be at least 1."),
        ({"limit": 1001}, "The limit must not be greater than 1000."),
        ({"limit": "x"}, "The limit must be an integer."),
        ({"sendingId": "x"}, "The sending id must be an integer."),
    ],
)
async def test_blacklist_bad_filters_are_422(
    sandbox: httpx.AsyncClient, params: dict[str, Any], description: str
) -> None:
    response = await sandbox.get(f"{BLACKLIST}/sms", params=params)
    assert response.status_code == 422
    assert response.json() == {"error": {"code": 422, "description": description}}


async def test_blacklist_limit_1000_is_fine(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.get(f"{BLACKLIST}/voice", params={"limit": 1000})
    assert response.status_code == 200
    assert response.json()["meta"]["pagination"]["per_page"] == 1000


@pytest.mark.parametrize(
    ("body", "description"),
    [
        ({}, "The recipient field is required."),
        ({"recipient": "  "}, "The recipient field is required."),
        ({"recipient": 34666555444}, "The recipient must be a string."),
        ({"recipient": "not a number"}, "The recipient format is invalid."),
    ],
)
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_blacklist_bad_recipient_is_422(
    sandbox: httpx.AsyncClient, method: str, body: dict[str, Any], description: str
) -> None:
    response = await sandbox.request(method, f"{BLACKLIST}/sms", json=body)
    assert response.status_code == 422
    assert response.json() == {"error": {"code": 422, "description": description}}


async def test_blacklist_unknown_type_is_404_and_bad_json_400(sandbox: httpx.AsyncClient) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await sandbox.request(method, f"{BLACKLIST}/whatsapp", json={"recipient": GOOD})
        assert response.status_code == 404
        assert response.json() == {"error": {"code": 404, "description": "Resource not found"}}
    bad = await sandbox.put(
        f"{BLACKLIST}/sms", content=b"{", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400
    assert bad.json() == {"error": {"code": 125, "description": "Invalid JSON"}}
    wrong = await sandbox.post(f"{BLACKLIST}/sms", json={"recipient": GOOD})
    assert wrong.status_code == 405


async def test_blacklist_needs_auth_and_is_counted(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        response = await client.get(f"{BLACKLIST}/sms")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == 103
        stats = (await client.get("/_sandbox/stats")).json()
    assert stats["channels"]["blacklist"]["requests"] == 1
    assert stats["blacklist"] == {"entries": 0, "added": 0, "removed": 0, "from_events": 0}
