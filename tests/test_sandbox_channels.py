"""The sandbox's email, voice, voice-audio, landing SMS and WhatsApp routes over real
HTTP, against messaging-api.txt (the SMS route has tests/test_sandbox_sms.py)."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from jobs.templating import short_link
from sandbox.state import ChannelStats
from tests.conftest import SANDBOX_AUTH

MAILING = "/api/rest/mailing"
VOICE = "/api/rest/voice"
AUDIO = "/api/rest/voiceAudio"
LANDING = "/api/rest/landingsms"
WHATSAPP = "/api/rest/whatsapp"

GOOD = "34666555444"
OTHER = "34666555333"
ANN = "ann@example.com"
BOB = "bob@example.org"
HTML = "<html><body>Hello {name}, <a href='[unsubscribe_link]'>unsubscribe</a></body></html>"
AUDIO_URL = "https://example.com/audio.mp3"
PAGE = "<html><body><h1>HELLO LANDING</h1></body></html>"
TXT = base64.b64encode(b"hello\n").decode()


def _with(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied (a value of ``...`` removes the key)."""
    out = dict(base)
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def email(**changes: Any) -> dict[str, Any]:
    base = {
        "to": [ANN],
        "fromName": "Info",
        "fromEmail": "info@sample.com",
        "body": "<html><body><a href='https://example.com'>link</a></body></html>",
        "replyTo": "replyto@example.com",
        "subject": "TEST",
    }
    return _with(base, changes)


def voice(**changes: Any) -> dict[str, Any]:
    base = {"to": [GOOD], "message": "Esto es un test", "gender": "F", "language": "es_ES"}
    return _with(base, changes)


def audio(**changes: Any) -> dict[str, Any]:
    return _with({"to": [GOOD], "audioUrl": AUDIO_URL}, changes)


def landing(**changes: Any) -> dict[str, Any]:
    base = {
        "to": [GOOD],
        "message": "TEST API LANDING {LAND_URL}",
        "from": "LANDINGAPI",
        "templateBody": PAGE,
    }
    return _with(base, changes)


def whatsapp(**changes: Any) -> dict[str, Any]:
    base = {"templateId": 123, "from": "34666777555", "messages": [{"to": GOOD}]}
    return _with(base, changes)


def error_of(response: httpx.Response) -> dict[str, Any]:
    detail: dict[str, Any] = response.json()["error"]
    return detail


async def channel_stats(client: httpx.AsyncClient, channel: str) -> dict[str, Any]:
    response = await client.get("/_sandbox/stats")
    assert response.status_code == 200
    stats: dict[str, Any] = response.json()["channels"][channel]
    return stats


async def sent(client: httpx.AsyncClient, channel: str) -> list[dict[str, Any]]:
    response = await client.get("/_sandbox/messages", params={"channel": channel})
    assert response.status_code == 200
    assert response.json()["channel"] == channel
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def assert_error(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], code: int, status: int = 400
) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code, error
    assert isinstance(error["description"], str) and error["description"]
    return error


async def assert_fields(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], field: str
) -> None:
    error = await assert_error(client, path, body, 422, status=422)
    assert error["description"] == "Input validation error"
    assert set(error["fields"]) == {field}, error["fields"]
    assert error["fields"][field]


# --- what every channel shares -------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    name: str  # in /_sandbox/stats and /_sandbox/messages
    path: str
    make: Callable[..., dict[str, Any]]  # a valid body with changes applied
    good: tuple[str, str]  # two valid recipients
    bad: str  # an invalid one
    expected_text: str  # the messages view's "text" of make()'s message

    def to(self, recipients: list[Any]) -> dict[str, Any]:
        """A valid body sent to ``recipients``."""
        if self.name == "whatsapp":
            return self.make(messages=[{"to": r} for r in recipients])
        return self.make(to=recipients)


CHANNELS = [
    Channel("email", MAILING, email, (ANN, BOB), "invalidEmail", "TEST"),
    Channel("voice", VOICE, voice, (GOOD, OTHER), "34", "Esto es un test"),
    Channel("voice-audio", AUDIO, audio, (GOOD, OTHER), "34", AUDIO_URL),
    Channel("landing", LANDING, landing, (GOOD, OTHER), "34", f"TEST API LANDING {short_link()}"),
    Channel("whatsapp", WHATSAPP, whatsapp, (GOOD, OTHER), "34", "template 123"),
]
each_channel = pytest.mark.parametrize("channel", CHANNELS, ids=[c.name for c in CHANNELS])


@each_channel
async def test_no_auth_is_401_103(sandbox_url: str, channel: Channel) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        response = await client.post(channel.path, json=channel.make())
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": 103, "description": "Username or password unknown"}
    }
    assert response.headers["www-authenticate"] == "Basic"


@each_channel
async def test_wrong_password_is_401_103(sandbox_url: str, channel: Channel) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url, auth=(SANDBOX_AUTH[0], "nope")) as client:
        response = await client.post(channel.path, json=channel.make())
    assert response.status_code == 401
    assert error_of(response)["code"] == 103


@each_channel
@pytest.mark.parametrize("raw", [b"not json", b"", b'{"to": [', b"[1, 2]", b"null"])
async def test_body_not_a_json_object_is_125(
    sandbox: httpx.AsyncClient, channel: Channel, raw: bytes
) -> None:
    response = await sandbox.post(
        channel.path, content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"error": {"code": 125, "description": "Invalid JSON"}}


@each_channel
async def test_wrong_method_is_405(sandbox: httpx.AsyncClient, channel: Channel) -> None:
    response = await sandbox.get(channel.path)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == {"error": {"code": 405, "description": "Method not allowed"}}


@each_channel
async def test_mixed_recipients_are_207_in_order(
    sandbox: httpx.AsyncClient, channel: Channel
) -> None:
    recipients = [channel.bad, channel.good[0], channel.good[1]]
    response = await sandbox.post(channel.path, json=channel.to(recipients))
    assert response.status_code == 207, response.text
    data = response.json()
    assert set(data) == {"campaignId", "sendingId", "result"}
    result = data["result"]
    assert [r["to"] for r in result] == recipients
    assert [r["accepted"] for r in result] == [False, True, True]
    assert result[0]["error"]["code"] == 102
    assert set(result[0]) == {"accepted", "to", "error"}
    assert result[1]["id"] != result[2]["id"]


@each_channel
async def test_no_valid_recipient_is_400_102(sandbox: httpx.AsyncClient, channel: Channel) -> None:
    response = await sandbox.post(channel.path, json=channel.to([channel.bad, "", 7]))
    assert response.status_code == 400
    assert response.json() == {"error": {"code": 102, "description": "No valid recipients"}}
    empty = await sandbox.post(channel.path, json=channel.to([]))
    assert error_of(empty)["code"] == 102


@each_channel
async def test_blank_campaign_name_is_126(sandbox: httpx.AsyncClient, channel: Channel) -> None:
    error = await assert_error(sandbox, channel.path, channel.make(campaignName=" "), 126)
    assert error["description"] == "Empty campaign name"


@each_channel
@pytest.mark.parametrize(
    "changes",
    [{"tags": ["promo"]}, {"tags": "promo", "campaignName": "spring"}, {"campaignName": 7}],
)
async def test_campaign_and_tags_rules_are_422(
    sandbox: httpx.AsyncClient, channel: Channel, changes: dict[str, Any]
) -> None:
    field = "campaignName" if "tags" not in changes else "tags"
    await assert_fields(sandbox, channel.path, channel.make(**changes), field)


@each_channel
async def test_same_campaign_name_keeps_its_campaign_id(
    sandbox: httpx.AsyncClient, channel: Channel
) -> None:
    tagged = channel.make(campaignName="spring", tags=["promo"])
    first = (await sandbox.post(channel.path, json=tagged)).json()
    second = (await sandbox.post(channel.path, json=tagged)).json()
    other = (await sandbox.post(channel.path, json=channel.make(campaignName="autumn"))).json()
    assert first["campaignId"] == second["campaignId"] != other["campaignId"]
    assert first["sendingId"] != second["sendingId"]


@each_channel
async def test_stats_count_only_this_channel(sandbox: httpx.AsyncClient, channel: Channel) -> None:
    good, other = channel.good
    await sandbox.post(channel.path, json=channel.to([good, channel.bad]))  # 207: 1 accepted
    await sandbox.post(channel.path, json=channel.to([good]))  # the same again: a duplicate
    await sandbox.post(channel.path, json=channel.to([other]))
    await sandbox.post(channel.path, json=channel.to([channel.bad]))  # 400
    async with httpx.AsyncClient(base_url=sandbox.base_url) as anonymous:
        await anonymous.post(channel.path, json=channel.make())  # 401

    stats = await channel_stats(sandbox, channel.name)
    assert stats["requests"] == 5
    assert stats["rejected"] == 2
    assert stats["recipients"] == 3
    assert stats["unique"] == 2
    assert stats["duplicates"] == 1
    assert len(stats["duplicate_samples"]) == 1
    sample = stats["duplicate_samples"][0]
    assert sample["to"] == good
    assert sample["text"] == channel.expected_text
    for name in {c.name for c in CHANNELS} | {"sms"}:
        if name != channel.name:
            assert (await channel_stats(sandbox, name))["requests"] == 0, name


@each_channel
async def test_messages_view_lists_what_was_accepted(
    sandbox: httpx.AsyncClient, channel: Channel
) -> None:
    response = await sandbox.post(channel.path, json=channel.to(list(channel.good)))
    ids = [r["id"] for r in response.json()["result"]]
    messages = await sent(sandbox, channel.name)
    assert [m["to"] for m in messages] == list(channel.good)
    assert [m["id"] for m in messages] == ids
    assert all(m["text"] == channel.expected_text for m in messages)
    assert {m["sendingId"] for m in messages} == {response.json()["sendingId"]}
    assert {m["requestNo"] for m in messages} == {1}
    assert len({m["receivedAt"] for m in messages}) == 1
    assert await sent(sandbox, "sms") == []


async def accepting_and_refused_requests(sandbox: httpx.AsyncClient) -> tuple[float, float]:
    """Email: one request accepting two, one refused (400), one accepting one of two (207);
    then a voice call. Returns the clock before and after them."""
    before = time.time()
    assert (await sandbox.post(MAILING, json=email(to=[ANN, BOB]))).status_code == 202
    assert (await sandbox.post(MAILING, json=email(to=["invalidEmail"]))).status_code == 400
    assert (await sandbox.post(MAILING, json=email(to=["invalidEmail", ANN]))).status_code == 207
    assert (await sandbox.post(VOICE, json=voice())).status_code == 202
    return before, time.time()


async def test_messages_carry_when_and_by_which_request(sandbox: httpx.AsyncClient) -> None:
    before, after = await accepting_and_refused_requests(sandbox)

    mails = await sent(sandbox, "email")
    # Only requests that accepted someone are numbered, per channel.
    assert [m["requestNo"] for m in mails] == [1, 1, 2]
    assert [m["requestNo"] for m in await sent(sandbox, "voice")] == [1]
    assert all(isinstance(m["receivedAt"], float) for m in mails)
    assert mails[0]["receivedAt"] == mails[1]["receivedAt"]  # one request, one time
    assert before <= mails[0]["receivedAt"] <= mails[2]["receivedAt"] <= after

    assert (await sandbox.post("/_sandbox/reset")).status_code == 200
    assert (await sandbox.post(MAILING, json=email())).status_code == 202
    assert [m["requestNo"] for m in await sent(sandbox, "email")] == [1]


async def test_concurrent_requests_are_numbered_in_acceptance_order(
    sandbox: httpx.AsyncClient,
) -> None:
    bodies = [voice(to=[f"3466655{i:04d}", OTHER]) for i in range(20)]
    answers = await asyncio.gather(*(sandbox.post(VOICE, json=body) for body in bodies))
    assert all(answer.status_code == 202 for answer in answers)
    messages = await sent(sandbox, "voice")
    assert [m["requestNo"] for m in messages] == [n for n in range(1, 21) for _ in range(2)]
    times = [m["receivedAt"] for m in messages]
    assert times == sorted(times)
    # A request's number is the one its sending id was answered with.
    by_sending = {m["sendingId"]: m["requestNo"] for m in messages}
    assert len(by_sending) == 20
    assert {a.json()["sendingId"] for a in answers} == set(by_sending)


async def arrivals(client: httpx.AsyncClient, channel: str) -> list[list[float]]:
    response = await client.get("/_sandbox/arrivals", params={"channel": channel})
    assert response.status_code == 200
    body = response.json()
    assert body["channel"] == channel
    assert body["count"] == len(body["arrivals"])
    logged: list[list[float]] = body["arrivals"]
    return logged


async def test_arrivals_log_each_accepting_request_by_request_number(
    sandbox: httpx.AsyncClient,
) -> None:
    """One [arrival time, recipients accepted] per request that accepted someone, in
    requestNo order; refused requests and other channels' are not in it."""
    before, after = await accepting_and_refused_requests(sandbox)

    mails = await arrivals(sandbox, "email")
    assert [n for _, n in mails] == [2, 1]
    assert before <= mails[0][0] <= mails[1][0] <= after
    messages = await sent(sandbox, "email")
    for message in messages:  # entry i is request i + 1; it arrived before it was accepted
        arrived, _ = mails[message["requestNo"] - 1]
        assert arrived <= message["receivedAt"]
    assert [n for _, n in await arrivals(sandbox, "voice")] == [1]
    assert await arrivals(sandbox, "sms") == []

    assert (await sandbox.post("/_sandbox/reset")).status_code == 200
    assert await arrivals(sandbox, "email") == []
    assert (await sandbox.post(MAILING, json=email())).status_code == 202
    assert [n for _, n in await arrivals(sandbox, "email")] == [1]


async def test_arrivals_of_concurrent_requests_add_up_to_the_recipients(
    sandbox: httpx.AsyncClient,
) -> None:
    bodies = [voice(to=[f"3466655{i:04d}", OTHER][: 1 + i % 2]) for i in range(20)]
    answers = await asyncio.gather(*(sandbox.post(VOICE, json=body) for body in bodies))
    assert all(answer.status_code == 202 for answer in answers)
    logged = await arrivals(sandbox, "voice")
    assert len(logged) == 20
    assert sum(n for _, n in logged) == (await channel_stats(sandbox, "voice"))["recipients"] == 30
    by_request: dict[int, int] = {}
    for message in await sent(sandbox, "voice"):
        by_request[message["requestNo"]] = by_request.get(message["requestNo"], 0) + 1
    assert [n for _, n in logged] == [by_request[i + 1] for i in range(20)]


async def test_arrivals_of_an_unknown_channel_is_404(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.get("/_sandbox/arrivals", params={"channel": "fax"})
    assert response.status_code == 404
    assert error_of(response)["code"] == 404


@pytest.mark.parametrize("window", ["0", "-1", "x", "nan", "inf"])
async def test_arrivals_window_must_be_positive_seconds(
    sandbox: httpx.AsyncClient, window: str
) -> None:
    response = await sandbox.get("/_sandbox/arrivals", params={"window": window})
    assert response.status_code == 400
    assert "window" in error_of(response)["description"]


async def test_arrivals_busiest_window_over_http(sandbox: httpx.AsyncClient) -> None:
    empty = (await sandbox.get("/_sandbox/arrivals", params={"window": "1"})).json()
    assert empty["busiest"] == {"seconds": 1.0, "recipients": 0, "start": None}
    assert (empty["count"], empty["recipients"], empty["largest"]) == (0, 0, 0)
    for to in ([GOOD, OTHER], [GOOD]):
        assert (await sandbox.post(VOICE, json=voice(to=to))).status_code == 202
    body = (
        await sandbox.get("/_sandbox/arrivals", params={"channel": "voice", "window": "60"})
    ).json()
    assert (body["count"], body["recipients"], body["largest"]) == (2, 3, 2)
    assert body["busiest"] == {"seconds": 60.0, "recipients": 3, "start": body["arrivals"][0][0]}
    assert "busiest" not in (await sandbox.get("/_sandbox/arrivals")).json()


def test_busiest_window_counts_recipients_in_any_window_of_its_width() -> None:
    stats = ChannelStats()
    # Logged in acceptance order, which may differ from arrival order.
    for at, recipients in [(10.0, 5), (10.5, 5), (10.2, 1), (11.0, 7), (11.4, 2), (13.0, 50)]:
        stats.arrived(at, recipients)
    assert stats.busiest(1.0) == (50, 13.0)  # one call alone can be the most
    assert stats.busiest(0.5) == (50, 13.0)
    assert stats.busiest(1.5) == (50, 13.0)
    assert stats.busiest(2.0) == (52, 11.4)  # [11.4, 13.4)
    assert stats.busiest(3.5) == (70, 10.0)  # everything
    small = ChannelStats()
    for at, recipients in [(0.0, 3), (0.9, 3), (1.0, 3), (1.95, 3)]:
        small.arrived(at, recipients)
    assert small.busiest(1.0) == (6, 0.0)  # [t, t + 1): 1.0 is not in the first window
    assert small.busiest(1.0000001) == (9, 0.0)
    assert ChannelStats().busiest(1.0) == (0, None)


# --- email ---------------------------------------------------------------------------


async def test_email_202_has_the_documented_shape(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        MAILING, json=email(to=[ANN, " Bob@Example.ORG "], scheduleDate="20300215142000")
    )
    assert response.status_code == 202, response.text
    data = response.json()
    assert isinstance(data["campaignId"], int) and isinstance(data["sendingId"], int)
    assert [r["to"] for r in data["result"]] == [ANN, " Bob@Example.ORG "]  # echoed as sent
    for result in data["result"]:
        assert set(result) == {"accepted", "to", "id", "scheduledAt"}
        assert result["accepted"] is True
        assert isinstance(result["id"], str) and len(result["id"]) == 13
        assert result["scheduledAt"] == "2030-02-15 14:20:00"
    messages = await sent(sandbox, "email")
    assert [m["to"] for m in messages] == [ANN, "Bob@example.org"]  # domain lower-cased
    assert messages[0]["from"] == "info@sample.com"
    assert messages[0]["replyTo"] == "replyto@example.com"


async def test_email_all_optional_parameters_are_accepted(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        MAILING,
        json=email(
            to=[ANN, BOB],
            cc=["cc@example.com"],
            bcc=["bcc@example.com"],
            body=HTML,
            sub=[{"name": "Ann"}, {"name": "Bob"}],
            attachments=[{"name": "file.txt", "content": TXT, "contentType": "text/plain"}],
            trackOpens=False,
            trackClicks=True,
            certified=False,
            campaignName="spring",
            tags=["promo"],
            otpConfig={"alpha": True, "length": 6},
        ),
    )
    assert response.status_code == 202, response.text
    messages = await sent(sandbox, "email")
    assert messages[0]["cc"] == ["cc@example.com"]
    assert messages[0]["attachments"] == ["file.txt"]


@pytest.mark.parametrize(
    "changes", [{"templateId": 5, "body": ...}, {"templateV2Id": 7, "body": ""}]
)
async def test_email_template_instead_of_body(
    sandbox: httpx.AsyncClient, changes: dict[str, Any]
) -> None:
    response = await sandbox.post(MAILING, json=email(**changes))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("path", "make", "changes"),
    [
        (MAILING, email, {"templateId": 5}),  # with the body
        (MAILING, email, {"templateId": 5, "templateV2Id": 7}),
        (LANDING, landing, {"templateV2Id": 9}),  # with the templateBody
    ],
)
async def test_more_than_one_content_source_is_accepted(
    sandbox: httpx.AsyncClient,
    path: str,
    make: Callable[..., dict[str, Any]],
    changes: dict[str, Any],
) -> None:
    """The sandbox's own reading (the job models refuse two, on purpose): each of
    body / templateId / templateV2Id is "Required without" the others ("Send Email
    message" and "Landing SMS" → Parameters), and nothing forbids giving two."""
    response = await sandbox.post(path, json=make(**changes))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"body": ...}, 140),
        ({"body": ""}, 140),
        ({"body": "  "}, 140),
        ({"body": None, "templateId": None}, 140),
        ({"to": ...}, 102),
        ({"to": ANN}, 102),
        ({"to": ["nope", "a@", "@example.com", "a b@example.com"]}, 102),
        ({"fromEmail": ...}, 106),
        ({"fromEmail": ""}, 106),
        ({"fromEmail": "   "}, 106),
        ({"subject": ...}, 114),
        ({"subject": ""}, 114),
        ({"subject": "two\nlines"}, 114),
        ({"subject": "carriage\rreturn"}, 114),
        ({"subject": 42}, 114),
        ({"replyTo": ...}, 116),
        ({"replyTo": "not-an-email"}, 116),
        ({"replyTo": 42}, 116),
        ({"scheduleDate": "2030-01-01 10:00"}, 108),
        ({"scheduleDate": "20301301100000"}, 108),
        ({"scheduleDate": 20300101100000}, 108),
    ],
)
async def test_email_documented_error_codes(
    sandbox: httpx.AsyncClient, changes: dict[str, Any], code: int
) -> None:
    await assert_error(sandbox, MAILING, email(**changes), code)


async def test_email_code_descriptions(sandbox: httpx.AsyncClient) -> None:
    missing = await assert_error(sandbox, MAILING, email(body=...), 140)
    assert missing["description"] == "Template missing"
    subject = await assert_error(sandbox, MAILING, email(subject=""), 114)
    assert subject["description"] == "Invalid subject"
    reply = await assert_error(sandbox, MAILING, email(replyTo="x"), 116)
    assert reply["description"] == "Invalid replyTo"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"fromEmail": "not-an-email"}, "fromEmail"),
        ({"fromEmail": 42}, "fromEmail"),
        ({"fromName": "two\nlines"}, "fromName"),
        ({"fromName": 7}, "fromName"),
        ({"cc": "cc@example.com"}, "cc"),
        ({"cc": ["cc@example.com", "bad"]}, "cc"),
        ({"bcc": ["bad"]}, "bcc"),
        ({"body": 42}, "body"),
        ({"templateId": "5"}, "templateId"),
        ({"templateV2Id": 0}, "templateV2Id"),
        ({"trackOpens": "yes"}, "trackOpens"),
        ({"trackClicks": 1}, "trackClicks"),
        ({"certified": "true"}, "certified"),
        ({"sub": [{"name": "a"}, {"name": "b"}]}, "sub"),
        ({"sub": {"name": "a"}}, "sub"),
        ({"sub": ["a"]}, "sub"),
        ({"attachments": {"name": "a.txt"}}, "attachments"),
        ({"attachments": ["a.txt"]}, "attachments.0"),
        (
            {"attachments": [{"name": "a.txt", "content": "not base64!", "contentType": "a/b"}]},
            "attachments.0.content",
        ),
        (
            {"attachments": [{"name": "a.txt", "content": 12, "contentType": "text/plain"}]},
            "attachments.0.content",
        ),
        (
            {"attachments": [{"content": TXT, "contentType": "text/plain"}]},
            "attachments.0.name",
        ),
        (
            {"attachments": [{"name": " ", "content": TXT, "contentType": "text/plain"}]},
            "attachments.0.name",
        ),
        ({"attachments": [{"name": "a.txt", "content": TXT}]}, "attachments.0.contentType"),
        (
            {"attachments": [{"name": "a.txt", "content": TXT, "contentType": "text"}]},
            "attachments.0.contentType",
        ),
        ({"otpConfig": {"length": 11}}, "otpConfig.length"),
    ],
)
async def test_email_rules_without_a_code_are_422(
    sandbox: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    await assert_fields(sandbox, MAILING, email(**changes), field)


async def test_email_attachment_errors_name_their_index(sandbox: httpx.AsyncClient) -> None:
    good = {"name": "a.txt", "content": TXT, "contentType": "text/plain"}
    bad = {"name": "b.txt", "content": "@@@", "contentType": "text/plain"}
    error = await assert_error(
        sandbox, MAILING, email(attachments=[good, bad, good, bad]), 422, status=422
    )
    assert set(error["fields"]) == {"attachments.1.content", "attachments.3.content"}


async def test_email_body_is_rendered_per_recipient(sandbox: httpx.AsyncClient) -> None:
    sub = [{"name": "Ann"}, {"name": "Ann"}, {"name": "Bob"}]
    response = await sandbox.post(MAILING, json=email(to=[ANN, ANN, ANN], body=HTML, sub=sub))
    assert response.status_code == 202
    stats = await channel_stats(sandbox, "email")
    # Same address and subject: only the rendered bodies tell the sends apart.
    assert (stats["recipients"], stats["unique"], stats["duplicates"]) == (3, 2, 1)


async def test_email_other_subject_is_not_a_duplicate(sandbox: httpx.AsyncClient) -> None:
    await sandbox.post(MAILING, json=email(subject="one"))
    await sandbox.post(MAILING, json=email(subject="two"))
    await sandbox.post(MAILING, json=email(subject="two", to=["ann@EXAMPLE.com"]))
    stats = await channel_stats(sandbox, "email")
    assert (stats["unique"], stats["duplicates"]) == (2, 1)


async def test_email_bad_filter_fails_that_recipient(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        MAILING,
        json=email(to=[ANN, BOB], body="Total {n|formatDotComma}", sub=[{"n": "1"}, {"n": "x"}]),
    )
    assert response.status_code == 207
    ok, bad = response.json()["result"]
    assert ok["accepted"] is True
    assert bad["error"]["code"] == 422 and "body" in bad["error"]["fields"]


# --- voice ---------------------------------------------------------------------------


async def test_voice_202_has_the_documented_shape(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        VOICE,
        json=voice(
            to=[GOOD, OTHER],
            scheduleDate="20300215142000",
            expirationDate="20300216000000",
            callers={"ES": "6123456789", "PT": "6987654321"},
            retries=5,
            amd=True,
        ),
    )
    assert response.status_code == 202, response.text
    for result in response.json()["result"]:
        assert set(result) == {"accepted", "to", "id", "scheduledAt", "expiresAt"}
        assert result["accepted"] is True
        assert result["scheduledAt"] == "2030-02-15 14:20:00"
        assert result["expiresAt"] == "2030-02-16 00:00:00"
    messages = await sent(sandbox, "voice")
    assert messages[0]["language"] == "es_ES" and messages[0]["gender"] == "F"
    assert messages[0]["retries"] == 5


@pytest.mark.parametrize(
    "changes",
    [
        {"language": "arb", "gender": "F"},
        {"language": "hi_IN", "gender": "F"},
        {"language": "en_GB", "gender": "M"},
        {"message": "x" * 500},
        {"retries": 0},
        {"callers": {}},
    ],
)
async def test_voice_valid_variants(sandbox: httpx.AsyncClient, changes: dict[str, Any]) -> None:
    response = await sandbox.post(VOICE, json=voice(**changes))
    assert response.status_code == 202, response.text


CALL_ERRORS = [
    ({"to": ...}, 102),
    ({"to": GOOD}, 102),
    ({"callers": "ES"}, 132),
    ({"callers": ["ES", "6123456789"]}, 132),
    ({"callers": {"ESP": "6123456789"}}, 132),
    ({"callers": {"es": "6123456789"}}, 132),
    ({"callers": {"ES": "61234a"}}, 132),
    ({"callers": {"ES": 6123456789}}, 132),
    ({"callers": {"ES": "1234567890123456"}}, 132),
    ({"scheduleDate": "2030-01-01"}, 108),
    ({"scheduleDate": "20300230100000"}, 108),
    ({"retries": None}, 190),
    ({"retries": ""}, 190),
    ({"retries": "3"}, 176),
    ({"retries": 2.5}, 176),
    ({"retries": True}, 176),
    ({"retries": 6}, 177),
    ({"retries": -1}, 177),
    ({"expirationDate": "tomorrow"}, 119),
    ({"expirationDate": 20300101100000}, 119),
    ({"scheduleDate": "20300101100000", "expirationDate": "20300101100000"}, 119),
]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"message": ...}, 104),
        ({"message": ""}, 104),
        ({"message": 42}, 104),
        ({"message": "x" * 501}, 105),
        ({"language": ...}, 130),
        ({"language": "es"}, 130),
        ({"language": "xx_XX"}, 130),
        ({"language": 5}, 130),
        ({"gender": ...}, 131),
        ({"gender": "X"}, 131),
        ({"gender": "f"}, 131),
        ({"language": "cmn_CN", "gender": "M"}, 131),
        ({"language": "arb", "gender": "M"}, 131),
        *CALL_ERRORS,
    ],
)
async def test_voice_documented_error_codes(
    sandbox: httpx.AsyncClient, changes: dict[str, Any], code: int
) -> None:
    await assert_error(sandbox, VOICE, voice(**changes), code)


async def test_voice_code_descriptions(sandbox: httpx.AsyncClient) -> None:
    pairs: list[tuple[dict[str, Any], str]] = [
        ({"message": "x" * 501}, "Text message too long"),
        ({"language": "xx"}, "Invalid voice language"),
        ({"gender": "X"}, "Invalid voice gender"),
        ({"callers": "ES"}, "Invalid voice caller"),
        ({"retries": ""}, "Call Retries is specified but its value is empty"),
        ({"retries": "3"}, "Call retries value is not an integer"),
        ({"retries": 6}, "Call retries value out of range"),
    ]
    for changes, description in pairs:
        response = await sandbox.post(VOICE, json=voice(**changes))
        assert error_of(response)["description"] == description


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amd": "yes"}, "amd"),
        ({"amd": 1}, "amd"),
        ({"sub": [{"name": "a"}, {"name": "b"}]}, "sub"),
        ({"sub": "name"}, "sub"),
    ],
)
async def test_voice_rules_without_a_code_are_422(
    sandbox: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    await assert_fields(sandbox, VOICE, voice(**changes), field)


async def test_voice_message_is_rendered_and_checked_per_recipient(
    sandbox: httpx.AsyncClient,
) -> None:
    response = await sandbox.post(
        VOICE,
        json=voice(
            to=[GOOD, OTHER, "34666555222"],
            message="Hola {name|upper} {missing}",
            sub=[{"name": "ana"}, {"name": "x" * 490}, {"name": "bea"}],
        ),
    )
    assert response.status_code == 207
    first, second, third = response.json()["result"]
    assert first["accepted"] is True and third["accepted"] is True
    assert second == {
        "accepted": False,
        "to": OTHER,
        "error": {"code": 105, "description": "Text message too long"},
    }
    texts = [m["text"] for m in await sent(sandbox, "voice")]
    assert texts == ["Hola ANA {missing}", "Hola BEA {missing}"]


async def test_voice_all_rendered_too_long_is_400_105(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        VOICE,
        json=voice(to=["34", GOOD], message="{text}", sub=[{"text": ""}, {"text": "y" * 501}]),
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == 105


# --- voice with an audio file --------------------------------------------------------


async def test_voice_audio_202_has_the_documented_shape(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        AUDIO, json=audio(to=[GOOD, "+34 666 555 333"], retries=2, expirationDate="20300101000000")
    )
    assert response.status_code == 202, response.text
    for result in response.json()["result"]:
        assert set(result) == {"accepted", "to", "id", "scheduledAt", "expiresAt"}
        assert result["scheduledAt"] is None
        assert result["expiresAt"] == "2030-01-01 00:00:00"
    assert [m["to"] for m in await sent(sandbox, "voice-audio")] == [GOOD, OTHER]


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a/b/audio.mp3",
        "https://example.com/AUDIO.MP3",
        "https://example.com/audio.mp3?version=2",
    ],
)
async def test_voice_audio_valid_urls(sandbox: httpx.AsyncClient, url: str) -> None:
    response = await sandbox.post(AUDIO, json=audio(audioUrl=url))
    assert response.status_code == 202, response.text
    assert (await sent(sandbox, "voice-audio"))[-1]["text"] == url


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"audioUrl": ...}, 133),
        ({"audioUrl": ""}, 133),
        ({"audioUrl": 5}, 133),
        ({"audioUrl": "ftp://example.com/audio.mp3"}, 133),
        ({"audioUrl": "example.com/audio.mp3"}, 133),
        ({"audioUrl": "https:///audio.mp3"}, 133),
        ({"audioUrl": "https://example.com/audio.wav"}, 134),
        ({"audioUrl": "https://example.com/audio"}, 134),
        ({"audioUrl": "https://example.com/mp3"}, 134),
        ({"audioUrl": "https://example.com/audio.mp3/"}, 134),
        *CALL_ERRORS,
    ],
)
async def test_voice_audio_documented_error_codes(
    sandbox: httpx.AsyncClient, changes: dict[str, Any], code: int
) -> None:
    await assert_error(sandbox, AUDIO, audio(**changes), code)


async def test_voice_audio_url_descriptions(sandbox: httpx.AsyncClient) -> None:
    bad = await sandbox.post(AUDIO, json=audio(audioUrl="not a url"))
    assert error_of(bad)["description"] == "Invalid audio URL"
    wav = await sandbox.post(AUDIO, json=audio(audioUrl="https://example.com/a.wav"))
    assert error_of(wav)["description"] == "Unsupported audio format"


async def test_voice_audio_amd_must_be_boolean(sandbox: httpx.AsyncClient) -> None:
    await assert_fields(sandbox, AUDIO, audio(amd="false"), "amd")
    assert (await sandbox.post(AUDIO, json=audio(amd=False))).status_code == 202


# --- landing SMS ---------------------------------------------------------------------


async def test_landing_202_has_the_documented_shape(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(LANDING, json=landing(to=[GOOD, OTHER]))
    assert response.status_code == 202, response.text
    for result in response.json()["result"]:
        assert set(result) == {"accepted", "to", "id", "parts", "scheduledAt", "expiresAt"}
        assert result["parts"] == 1
    messages = await sent(sandbox, "landing")
    assert messages[0]["text"] == "TEST API LANDING " + short_link()
    assert messages[0]["from"] == "LANDINGAPI"
    assert messages[0]["encoding"] == "gsm"


@pytest.mark.parametrize(
    "changes",
    [
        {"templateBody": ..., "templateId": 5},
        {"templateBody": "", "templateV2Id": 9},
        {"parts": 8},
        {"notificationUrl": "https://example.com/dlr"},
        {"availableTimes": []},  # not a landing parameter: ignored (an SMS would get 194)
        {"otpConfig": "ignored"},  # likewise
        {"trans": 1, "flash": True, "certified": False, "splitParts": False},
    ],
)
async def test_landing_valid_variants(sandbox: httpx.AsyncClient, changes: dict[str, Any]) -> None:
    response = await sandbox.post(LANDING, json=landing(**changes))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"templateBody": ...}, 140),
        ({"templateBody": ""}, 140),
        ({"templateBody": None, "templateId": None}, 140),
        ({"message": "TEST API LANDING"}, 141),
        ({"message": "TEST {land_url}"}, 141),
        ({"parts": 9}, 110),
        ({"parts": 0}, 110),
        ({"parts": "2"}, 110),
        ({"notificationUrl": ["https://example.com/dlr"]}, 109),
        ({"notificationUrl": "not a url"}, 109),
        ({"message": ...}, 104),
        ({"to": ...}, 102),
        ({"from": ...}, 106),
        ({"from": "TWELVECHARSX"}, 107),
        ({"encoding": "latin1"}, 113),
        ({"scheduleDate": "soon"}, 108),
        ({"expirationDate": "20300230100000"}, 119),
    ],
)
async def test_landing_documented_error_codes(
    sandbox: httpx.AsyncClient, changes: dict[str, Any], code: int
) -> None:
    await assert_error(sandbox, LANDING, landing(**changes), code)


async def test_landing_code_descriptions(sandbox: httpx.AsyncClient) -> None:
    no_page = await assert_error(sandbox, LANDING, landing(templateBody=...), 140)
    assert no_page["description"] == "Template missing"
    no_link = await assert_error(sandbox, LANDING, landing(message="no link"), 141)
    assert no_link["description"] == "Missing landing placeholder"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"templateBody": 42}, "templateBody"),
        ({"templateId": "5"}, "templateId"),
        ({"templateV2Id": -1}, "templateV2Id"),
        ({"trans": 2}, "trans"),
        ({"flash": "yes"}, "flash"),
        ({"sub": [{}, {}]}, "sub"),
    ],
)
async def test_landing_rules_without_a_code_are_422(
    sandbox: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    await assert_fields(sandbox, LANDING, landing(**changes), field)


async def test_landing_link_counts_at_its_real_length(sandbox: httpx.AsyncClient) -> None:
    # 151 characters as written, 162 once {LAND_URL} is a short link: two parts.
    message = "a" * 140 + " {LAND_URL}"
    assert len(message) <= 160
    one = await sandbox.post(LANDING, json=landing(message=message))
    assert one.status_code == 400
    assert error_of(one) == {"code": 105, "description": "Text message too long"}
    two = await sandbox.post(LANDING, json=landing(message=message, parts=2))
    assert two.status_code == 202
    assert two.json()["result"][0]["parts"] == 2


async def test_landing_renders_sub_and_keeps_otp_placeholder(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        LANDING,
        json=landing(
            to=[GOOD, OTHER],
            message="Hi {name|capitalize} {LAND_URL} {OTP_CODE} {UNSUB_URL}",
            sub=[{"name": "ANN"}, {"name": "bob"}],
        ),
    )
    assert response.status_code == 202, response.text
    link = short_link()
    texts = [m["text"] for m in await sent(sandbox, "landing")]
    assert texts == [f"Hi Ann {link} {{OTP_CODE}} {link}", f"Hi Bob {link} {{OTP_CODE}} {link}"]


async def test_landing_other_page_is_not_a_duplicate(sandbox: httpx.AsyncClient) -> None:
    await sandbox.post(LANDING, json=landing())
    await sandbox.post(LANDING, json=landing(templateBody="<html>other page</html>"))
    await sandbox.post(LANDING, json=landing(templateBody="<html>other page</html>"))
    await sandbox.post(LANDING, json=landing(templateBody=..., templateId=5))
    stats = await channel_stats(sandbox, "landing")
    assert (stats["recipients"], stats["unique"], stats["duplicates"]) == (4, 3, 1)


# --- WhatsApp ------------------------------------------------------------------------


async def test_whatsapp_202_has_the_documented_shape(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        WHATSAPP, json=whatsapp(messages=[{"to": GOOD}, {"to": "+34 666 555 333"}])
    )
    assert response.status_code == 202, response.text
    data = response.json()
    assert set(data) == {"campaignId", "sendingId", "result"}
    for result in data["result"]:
        assert set(result) == {"accepted", "to", "id"}
        assert uuid.UUID(result["id"]).version == 4
    assert [m["to"] for m in await sent(sandbox, "whatsapp")] == [GOOD, OTHER]


async def test_whatsapp_doc_examples_are_accepted(sandbox: httpx.AsyncClient) -> None:
    variables = {
        "to": GOOD,
        "headerFields": ["headerField1"],
        "bodyFields": ["bodyField1", "bodyField2"],
        "callToActionFields": ["actionField1"],
        "defaultAnswer": "Example answer",
        "buttonAnswers": ["first button answer", "second button answer"],
    }
    location = {
        "to": GOOD,
        "location": {
            "lat": "39.92516922986921",
            "long": "-0.10572674363232447",
            "name": "NRS-Group",
            "address": "Carrer, Av. Arcadi Garcia Sanz, 19, 12540 Vila-real, Castelló",
        },
    }
    auth_code = {"to": GOOD, "bodyFields": ["auth_code"]}
    for message in (variables, location, auth_code):
        response = await sandbox.post(WHATSAPP, json=whatsapp(messages=[message]))
        assert response.status_code == 202, response.text
    messages = await sent(sandbox, "whatsapp")
    assert [m["text"] for m in messages] == [
        "template 123: bodyField1 | bodyField2",
        "template 123",
        "template 123: auth_code",
    ]
    assert messages[0]["templateId"] == 123
    assert messages[0]["parameters"]["headerFields"] == ["headerField1"]
    assert messages[1]["parameters"]["location"]["name"] == "NRS-Group"
    assert messages[0]["from"] == "34666777555"


async def test_whatsapp_207_names_the_bad_message(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        WHATSAPP, json=whatsapp(messages=[{"to": GOOD}, {"to": "34"}, {"nope": 1}, "x"])
    )
    assert response.status_code == 207
    result = response.json()["result"]
    assert [r["accepted"] for r in result] == [True, False, False, False]
    assert result[1] == {
        "accepted": False,
        "to": "34",
        "error": {
            "code": 102,
            "description": "The messages.1.to field does not contain a valid phone number",
        },
    }
    assert result[2]["error"]["description"].startswith("The messages.2.to field")
    assert result[3]["to"] is None


@pytest.mark.parametrize(
    ("changes", "code", "description"),
    [
        ({"templateId": ...}, 140, "Template missing"),
        ({"templateId": None}, 140, "Template missing"),
        ({"templateId": "123"}, 140, "Invalid template"),
        ({"templateId": 0}, 140, "Invalid template"),
        ({"templateId": 1.5}, 140, "Invalid template"),
        ({"templateId": True}, 140, "Invalid template"),
        ({"from": ...}, 106, "Sender missing"),
        ({"from": ""}, 106, "Sender missing"),
        ({"messages": ...}, 102, "No valid recipients"),
        ({"messages": {"to": GOOD}}, 102, "No valid recipients"),
        ({"messages": [{"to": 34666555444}]}, 102, "No valid recipients"),
        ({"messages": [{}]}, 102, "No valid recipients"),
    ],
)
async def test_whatsapp_documented_error_codes(
    sandbox: httpx.AsyncClient, changes: dict[str, Any], code: int, description: str
) -> None:
    error = await assert_error(sandbox, WHATSAPP, whatsapp(**changes), code)
    assert error["description"] == description


def one_message(**fields: Any) -> dict[str, Any]:
    return whatsapp(messages=[{"to": OTHER}, {"to": GOOD, **fields}])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (whatsapp(**{"from": "TEST"}), "from"),
        (whatsapp(**{"from": 34666777555}), "from"),
        (whatsapp(**{"from": "+34666777555"}), "from"),
        (whatsapp(**{"from": "1234567890123456"}), "from"),
        (one_message(headerFields="h"), "messages.1.headerFields"),
        (one_message(bodyFields=[1, 2]), "messages.1.bodyFields"),
        (one_message(callToActionFields={"a": "b"}), "messages.1.callToActionFields"),
        (one_message(buttonAnswers=["ok", None]), "messages.1.buttonAnswers"),
        (one_message(defaultAnswer=5), "messages.1.defaultAnswer"),
        (one_message(location="39.9,-0.1"), "messages.1.location"),
        (one_message(location={"lat": 39.9, "long": "-0.1"}), "messages.1.location.lat"),
        (one_message(location={"lat": "91", "long": "0"}), "messages.1.location.lat"),
        (one_message(location={"lat": "north", "long": "0"}), "messages.1.location.lat"),
        (one_message(location={"lat": "39.9"}), "messages.1.location.long"),
        (one_message(location={"lat": "0", "long": "-180.5"}), "messages.1.location.long"),
        (one_message(location={"lat": "0", "long": "0", "name": 1}), "messages.1.location.name"),
    ],
)
async def test_whatsapp_rules_without_a_code_are_422(
    sandbox: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    await assert_fields(sandbox, WHATSAPP, body, field)


async def test_whatsapp_default_answer_may_be_an_array(sandbox: httpx.AsyncClient) -> None:
    # The table types defaultAnswer "array", its example sends a string: both are taken.
    response = await sandbox.post(WHATSAPP, json=one_message(defaultAnswer=["hi"]))
    assert response.status_code == 202, response.text


async def test_whatsapp_duplicates_need_the_same_parameters(sandbox: httpx.AsyncClient) -> None:
    await sandbox.post(WHATSAPP, json=whatsapp(messages=[{"to": GOOD, "bodyFields": ["a"]}]))
    await sandbox.post(WHATSAPP, json=whatsapp(messages=[{"to": GOOD, "bodyFields": ["b"]}]))
    await sandbox.post(WHATSAPP, json=whatsapp(messages=[{"to": "+" + GOOD, "bodyFields": ["b"]}]))
    # Same text in the messages view ("template 123: b"), other header: not a duplicate.
    header = {"to": GOOD, "bodyFields": ["b"], "headerFields": ["h"]}
    await sandbox.post(WHATSAPP, json=whatsapp(messages=[header]))
    await sandbox.post(WHATSAPP, json=whatsapp(templateId=124, messages=[{"to": GOOD}]))
    stats = await channel_stats(sandbox, "whatsapp")
    assert (stats["recipients"], stats["unique"], stats["duplicates"]) == (5, 4, 1)


async def test_stats_lists_every_channel(sandbox: httpx.AsyncClient) -> None:
    stats = (await sandbox.get("/_sandbox/stats")).json()
    assert set(stats["channels"]) == {"sms", "email", "voice", "voice-audio", "landing", "whatsapp"}
