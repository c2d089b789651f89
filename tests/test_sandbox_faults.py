"""Fault injection in the sandbox (``sandbox.faults``), each kind seen over real HTTP.

No test measures time: latency is checked through the config and counters, and
the ambiguous and drop faults through what the client gets and what the sandbox
counted.
"""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

SMS = "/api/rest/sms"
FAULTS = "/_sandbox/faults"
GOOD, OTHER = "34666555444", "34666555333"

# A valid request to each channel, by stats name.
BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "sms": (SMS, {"to": [GOOD], "from": "TEST", "message": "SMS text message"}),
    "email": (
        "/api/rest/mailing",
        {
            "to": ["ann@example.com"],
            "fromName": "Info",
            "fromEmail": "info@sample.com",
            "body": "<html><body><a href='https://example.com'>link</a></body></html>",
            "replyTo": "replyto@example.com",
            "subject": "TEST",
        },
    ),
    "voice": (
        "/api/rest/voice",
        {"to": [GOOD], "message": "Test", "gender": "F", "language": "es_ES"},
    ),
    "voice-audio": (
        "/api/rest/voiceAudio",
        {"to": [GOOD], "audioUrl": "https://example.com/audio.mp3"},
    ),
    "landing": (
        "/api/rest/landingsms",
        {
            "to": [GOOD],
            "message": "Landing {LAND_URL}",
            "from": "LANDINGAPI",
            "templateBody": "<html><body>Hi</body></html>",
        },
    ),
    "whatsapp": (
        "/api/rest/whatsapp",
        {"templateId": 123, "from": "34666777555", "messages": [{"to": GOOD}]},
    ),
}


def sms(*to: str) -> dict[str, Any]:
    return {"to": list(to or [GOOD]), "from": "TEST", "message": "SMS text message"}


async def configure(client: httpx.AsyncClient, config: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(FAULTS, json=config)
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


async def faults(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get(FAULTS)
    assert response.status_code == 200
    state: dict[str, Any] = response.json()
    return state


async def stats(client: httpx.AsyncClient, channel: str = "sms") -> dict[str, Any]:
    response = await client.get("/_sandbox/stats")
    channel_stats: dict[str, Any] = response.json()["channels"][channel]
    return channel_stats


async def test_no_faults_by_default(sandbox: httpx.AsyncClient) -> None:
    state = await faults(sandbox)
    assert state["config"] == {}
    assert isinstance(state["seed"], int)
    assert state["credits_left"] is None
    assert state["burst_429_left"] == 0
    assert set(state["injected"]) == {
        "burst_429",
        "status",
        "error",
        "drop",
        "latency",
        "credits",
        "ambiguous",
        "empty_body",
        "unverified",
        "bare_unrouted",
    }
    assert not any(state["injected"].values())


@pytest.mark.parametrize("channel", list(BODIES))
async def test_every_channel_gets_faults(sandbox: httpx.AsyncClient, channel: str) -> None:
    path, body = BODIES[channel]
    assert (await sandbox.post(path, json=body)).status_code == 202
    await configure(sandbox, {"error": {"code": 101, "rate": 1.0}})
    response = await sandbox.post(path, json=body)
    assert response.status_code == 500
    assert response.json() == {"error": {"code": 101, "description": "Internal Database error"}}
    counted = await stats(sandbox, channel)
    assert (counted["requests"], counted["rejected"], counted["recipients"]) == (2, 1, 1)


@pytest.mark.parametrize(
    ("code", "status", "description"),
    [
        (101, 500, "Internal Database error"),
        (111, 402, "Not enough credits"),
        (103, 401, "Username or password unknown"),
        (102, 400, "No valid recipients"),
    ],
)
async def test_error_at_rate_one(
    sandbox: httpx.AsyncClient, code: int, status: int, description: str
) -> None:
    await configure(sandbox, {"error": {"code": code, "rate": 1.0}})
    for _ in range(3):
        response = await sandbox.post(SMS, json=sms())
        assert response.status_code == status
        assert response.json() == {"error": {"code": code, "description": description}}
    assert (await faults(sandbox))["injected"]["error"] == 3
    counted = await stats(sandbox)
    assert (counted["requests"], counted["rejected"], counted["recipients"]) == (3, 3, 0)


async def test_error_at_rate_zero_never(sandbox: httpx.AsyncClient) -> None:
    await configure(sandbox, {"error": {"code": 101, "rate": 0.0}})
    for _ in range(20):
        assert (await sandbox.post(SMS, json=sms())).status_code == 202
    assert not any((await faults(sandbox))["injected"].values())
    assert (await stats(sandbox))["recipients"] == 20


async def test_error_list_first_hit_wins(sandbox: httpx.AsyncClient) -> None:
    config = {"error": [{"code": 101, "rate": 0.0}, {"code": 111}, {"code": 102}]}
    await configure(sandbox, config)
    response = await sandbox.post(SMS, json=sms())
    assert response.status_code == 402
    assert response.json()["error"]["code"] == 111


async def test_seeded_rate_is_reproducible(sandbox: httpx.AsyncClient) -> None:
    config = {"seed": 7, "error": {"code": 101, "rate": 0.5}}

    async def run() -> list[int]:
        state = await configure(sandbox, config)
        assert state["seed"] == 7
        return [(await sandbox.post(SMS, json=sms())).status_code for _ in range(30)]

    first = await run()
    assert set(first) == {202, 500}
    assert await run() == first
    # One draw per request from random.Random(seed), as documented.
    rng = random.Random(7)
    assert first == [500 if rng.random() < 0.5 else 202 for _ in range(30)]
    assert (await faults(sandbox))["injected"]["error"] == first.count(500)
    counted = await stats(sandbox)
    assert counted["requests"] == 60
    assert counted["rejected"] == 2 * first.count(500)
    assert counted["recipients"] == 2 * first.count(202)


@pytest.mark.parametrize("status", [503, 429, 502])
async def test_bare_status(sandbox: httpx.AsyncClient, status: int) -> None:
    await configure(sandbox, {"status": {"status": status, "rate": 1.0}})
    response = await sandbox.post(SMS, json=sms())
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith(str(status))
    assert "code" not in response.text
    assert (await faults(sandbox))["injected"]["status"] == 1
    assert (await stats(sandbox))["recipients"] == 0


async def messages(client: httpx.AsyncClient, channel: str = "sms") -> list[dict[str, Any]]:
    response = await client.get("/_sandbox/messages", params={"channel": channel})
    found: list[dict[str, Any]] = response.json()["messages"]
    return found


@pytest.mark.parametrize("status", [502, 504])
async def test_bare_status_after_processing(sandbox: httpx.AsyncClient, status: int) -> None:
    after = {"status": status, "after_processing": True}
    await configure(sandbox, {"credits": 5, "status": [{"status": 503, "rate": 0.0}, after]})
    response = await sandbox.post(SMS, json=sms(GOOD, OTHER))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith(str(status))
    assert "code" not in response.text
    # Processed first: accepted, counted, credits spent, ids issued, messages kept.
    counted = await stats(sandbox)
    assert (counted["requests"], counted["rejected"], counted["recipients"]) == (1, 1, 2)
    kept = await messages(sandbox)
    assert [m["to"] for m in kept] == [GOOD, OTHER]
    assert all(m["id"] for m in kept)
    state = await faults(sandbox)
    assert (state["credits_left"], state["injected"]["status"]) == (3, 1)
    # Whatever the channel answered is replaced: a refusal is processed (nothing accepted).
    refused = await sandbox.post(SMS, json=sms("nope"))
    assert refused.status_code == status
    assert refused.headers["content-type"].startswith("text/plain")
    assert (await stats(sandbox))["recipients"] == 2
    assert (await faults(sandbox))["injected"]["status"] == 2


async def test_status_after_processing_draws_once_per_request(sandbox: httpx.AsyncClient) -> None:
    config = {"seed": 7, "status": {"status": 504, "rate": 0.5, "after_processing": True}}
    await configure(sandbox, config)
    answered = [(await sandbox.post(SMS, json=sms())).status_code for _ in range(30)]
    rng = random.Random(7)
    assert answered == [504 if rng.random() < 0.5 else 202 for _ in range(30)]
    counted = await stats(sandbox)
    assert (counted["recipients"], counted["rejected"]) == (30, answered.count(504))


@pytest.mark.parametrize(
    ("config", "status", "content", "content_type"),
    [
        ({}, 202, b"", None),
        ({"status": 200, "body": "<html>oops</html>"}, 200, b"<html>oops</html>", "text/html"),
    ],
)
async def test_empty_body_after_processing(
    sandbox: httpx.AsyncClient,
    config: dict[str, Any],
    status: int,
    content: bytes,
    content_type: str | None,
) -> None:
    state = await configure(sandbox, {"credits": 5, "empty_body": {"rate": 1.0, **config}})
    assert state["config"]["empty_body"] == {"rate": 1.0, **config}
    response = await sandbox.post(SMS, json=sms(GOOD, OTHER))
    assert response.status_code == status
    assert response.content == content
    if content_type is None:
        assert "content-type" not in response.headers
    else:
        assert response.headers["content-type"].startswith(content_type)
    with pytest.raises(ValueError):
        response.json()
    counted = await stats(sandbox)
    assert (counted["requests"], counted["rejected"], counted["recipients"]) == (1, 0, 2)
    kept = await messages(sandbox)
    assert [m["to"] for m in kept] == [GOOD, OTHER]
    assert all(m["id"] for m in kept)
    state = await faults(sandbox)
    assert (state["credits_left"], state["injected"]["empty_body"]) == (3, 1)


async def test_empty_body_at_rate_zero_never(sandbox: httpx.AsyncClient) -> None:
    await configure(sandbox, {"empty_body": {"rate": 0.0}})
    for _ in range(5):
        response = await sandbox.post(SMS, json=sms())
        assert response.status_code == 202
        assert response.json()["result"][0]["accepted"] is True
    assert (await faults(sandbox))["injected"]["empty_body"] == 0


@pytest.mark.parametrize("path", [path for path, _ in BODIES.values()])
async def test_bare_unrouted(sandbox_url: str, sandbox: httpx.AsyncClient, path: str) -> None:
    # By default: the doc's JSON error body, 404 for an unknown path, 405 for a wrong method.
    missing = await sandbox.post("/api/rest/nothing-here", json={})
    assert missing.json() == {"error": {"code": 404, "description": "Resource not found"}}
    wrong = await sandbox.get(path)
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert wrong.json() == {"error": {"code": 405, "description": "Method not allowed"}}

    await configure(sandbox, {"bare_unrouted": True})
    answers = [
        await sandbox.post("/api/rest/nothing-here", json=BODIES["sms"][1]),
        await sandbox.post("/api/rest/sms/extra", json=BODIES["sms"][1]),
        httpx.post(f"{sandbox_url}/api/rest/nothing-here", json={}),  # no auth: still bare
        await sandbox.get(path),
    ]
    for response, status in zip(answers, [404, 404, 404, 405], strict=True):
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text.startswith(str(status))
        with pytest.raises(ValueError):
            response.json()
    assert answers[-1].headers["allow"] == "POST"
    assert (await faults(sandbox))["injected"]["bare_unrouted"] == 4
    counts = (await sandbox.get("/_sandbox/stats")).json()
    assert counts["unrouted"] == 6
    assert all(channel["requests"] == 0 for channel in counts["channels"].values())


async def test_wrong_base_url_is_always_bare_404(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post("/v2/api/rest/sms", json=sms())  # outside /api/
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    with pytest.raises(ValueError):
        response.json()


async def test_latency_config_and_counters(sandbox: httpx.AsyncClient) -> None:
    state = await configure(sandbox, {"latency_ms": {"min": 1, "max": 5}})
    assert state["config"] == {"latency_ms": {"min": 1, "max": 5}}
    for _ in range(4):
        assert (await sandbox.post(SMS, json=sms())).status_code == 202
    await sandbox.post(SMS, json={"to": ["nope"], "from": "TEST", "message": "x"})  # still delayed
    state = await faults(sandbox)
    assert state["injected"]["latency"] == 5
    assert (await stats(sandbox))["recipients"] == 4
    await configure(sandbox, {"latency_ms": 2})
    assert (await sandbox.post(SMS, json=sms())).status_code == 202
    assert (await faults(sandbox))["injected"]["latency"] == 1


async def test_arrival_is_logged_before_the_added_latency(sandbox: httpx.AsyncClient) -> None:
    """The arrivals log has when a request reached the door, the messages when it was
    accepted: the latency lies between them (a lower bound, the sandbox's own clock)."""
    await configure(sandbox, {"latency_ms": 300})
    assert (await sandbox.post(SMS, json=sms(GOOD, OTHER))).status_code == 202
    logged = (await sandbox.get("/_sandbox/arrivals")).json()  # sms unless told
    assert logged["channel"] == "sms"
    [[arrived, recipients]] = logged["arrivals"]
    assert recipients == 2
    received = {m["receivedAt"] for m in await messages(sandbox)}
    assert len(received) == 1
    assert received.pop() - arrived >= 0.25


async def test_ambiguous_is_accepted_but_answered_too_late(
    sandbox_url: str, sandbox: httpx.AsyncClient
) -> None:
    await configure(sandbox, {"ambiguous": {"rate": 1.0, "delay_s": 2}})
    async with httpx.AsyncClient(
        base_url=sandbox_url, auth=sandbox.auth, timeout=httpx.Timeout(0.5)
    ) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post(SMS, json=sms(GOOD, OTHER))
    counted = await stats(sandbox)
    assert (counted["requests"], counted["recipients"]) == (1, 2)
    messages = (await sandbox.get("/_sandbox/messages")).json()["messages"]
    assert [m["to"] for m in messages] == [GOOD, OTHER]
    assert all(m["id"] for m in messages)
    assert (await faults(sandbox))["injected"]["ambiguous"] == 1


@pytest.mark.parametrize(("after_processing", "accepted"), [(False, 0), (True, 2)])
async def test_drop_is_a_transport_error(
    sandbox: httpx.AsyncClient, after_processing: bool, accepted: int
) -> None:
    await configure(sandbox, {"drop": {"rate": 1.0, "after_processing": after_processing}})
    for _ in range(2):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await sandbox.post(SMS, json=sms(GOOD, OTHER))
    counted = await stats(sandbox)
    assert (counted["requests"], counted["recipients"]) == (2, 2 * accepted)
    assert counted["unique"] == accepted
    assert (await faults(sandbox))["injected"]["drop"] == 2
    await configure(sandbox, {})  # the sandbox is still alive and answers normally
    assert (await sandbox.post(SMS, json=sms())).status_code == 202


async def test_credits(sandbox: httpx.AsyncClient) -> None:
    state = await configure(sandbox, {"credits": 3})
    assert state["credits_left"] == 3
    assert (await sandbox.post(SMS, json=sms(GOOD, OTHER))).status_code == 202
    assert (await faults(sandbox))["credits_left"] == 1

    response = await sandbox.post(SMS, json=sms(GOOD, OTHER))
    assert response.status_code == 402
    assert response.json() == {"error": {"code": 111, "description": "Not enough credits"}}
    # Only accepted recipients use credits: one valid of two still fits.
    response = await sandbox.post(SMS, json=sms(GOOD, "nope"))
    assert response.status_code == 207
    state = await faults(sandbox)
    assert (state["credits_left"], state["injected"]["credits"]) == (0, 1)
    assert (await stats(sandbox))["recipients"] == 3

    await configure(sandbox, {"credits": None})  # refill: unlimited
    assert (await sandbox.post(SMS, json=sms(GOOD, OTHER))).status_code == 202
    assert (await faults(sandbox))["credits_left"] is None
    assert (await stats(sandbox))["recipients"] == 5


async def test_burst_429(sandbox: httpx.AsyncClient) -> None:
    state = await configure(sandbox, {"burst_429": {"requests": 3, "retry_after": 2}})
    assert state["burst_429_left"] == 3
    for _ in range(3):
        response = await sandbox.post(SMS, json=sms())
        assert response.status_code == 429
        assert response.headers["retry-after"] == "2"
        assert response.headers["content-type"].startswith("text/plain")
    for _ in range(2):
        assert (await sandbox.post(SMS, json=sms())).status_code == 202
    state = await faults(sandbox)
    assert (state["burst_429_left"], state["injected"]["burst_429"]) == (0, 3)


async def test_channels_filter(sandbox: httpx.AsyncClient) -> None:
    await configure(
        sandbox,
        {"channels": ["email"], "error": {"code": 101}, "burst_429": {"requests": 1}},
    )
    assert (await sandbox.post(SMS, json=sms())).status_code == 202
    path, body = BODIES["email"]
    assert (await sandbox.post(path, json=body)).status_code == 429
    assert (await sandbox.post(path, json=body)).status_code == 500
    assert (await sandbox.post(SMS, json=sms())).status_code == 202
    assert (await faults(sandbox))["injected"] == {
        "burst_429": 1,
        "status": 0,
        "error": 1,
        "drop": 0,
        "latency": 0,
        "credits": 0,
        "ambiguous": 0,
        "empty_body": 0,
        "unverified": 0,
        "bare_unrouted": 0,
    }


async def test_auth_is_checked_before_faults(sandbox_url: str, sandbox: httpx.AsyncClient) -> None:
    await configure(sandbox, {"error": {"code": 101}, "burst_429": {"requests": 1}})
    response = httpx.post(f"{sandbox_url}{SMS}", json=sms(), auth=("sandbox", "wrong"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 103
    state = await faults(sandbox)
    assert (state["burst_429_left"], state["injected"]["error"]) == (1, 0)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"nope": 1}, "nope"),
        ({"seed": "x"}, "seed"),
        ({"seed": True}, "seed"),
        ({"channels": ["fax"]}, "channels"),
        ({"channels": "sms"}, "channels"),
        ({"error": {"code": 999}}, "error.code"),
        ({"error": {"code": 0}}, "error.code"),
        ({"error": {"rate": 0.5}}, "error.code"),
        ({"error": {"code": 101, "rate": 2}}, "error.rate"),
        ({"error": {"code": 101, "rate": "high"}}, "error.rate"),
        ({"error": [{"code": 101}, {"code": 101, "often": 1}]}, "error[1].often"),
        ({"status": {"status": 200}}, "status.status"),
        ({"status": 503}, "status"),
        ({"status": {"status": 504, "after_processing": 1}}, "status.after_processing"),
        ({"empty_body": {"status": 500}}, "empty_body.status"),
        ({"empty_body": {"status": "202"}}, "empty_body.status"),
        ({"empty_body": {"rate": 2}}, "empty_body.rate"),
        ({"empty_body": {"body": 1}}, "empty_body.body"),
        ({"empty_body": {"status": 204, "body": "x"}}, "empty_body.body"),
        ({"empty_body": {"often": 1}}, "empty_body.often"),
        ({"empty_body": True}, "empty_body"),
        ({"unverified": {"senders": "a@b.com"}}, "unverified.senders"),
        ({"unverified": {"reply_to": [1]}}, "unverified.reply_to"),
        ({"unverified": {"from": ["a@b.com"]}}, "unverified.from"),
        ({"unverified": ["a@b.com"]}, "unverified"),
        ({"bare_unrouted": "yes"}, "bare_unrouted"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": {"min": 50, "max": 10}}, "latency_ms.max"),
        ({"ambiguous": {"rate": 1, "delay_s": -1}}, "ambiguous.delay_s"),
        ({"drop": {"after_processing": "yes"}}, "drop.after_processing"),
        ({"credits": -1}, "credits"),
        ({"credits": 1.5}, "credits"),
        ({"burst_429": {}}, "burst_429.requests"),
        ({"burst_429": {"requests": 1, "retry_after": "soon"}}, "burst_429.retry_after"),
    ],
)
async def test_bad_config_names_the_key(
    sandbox: httpx.AsyncClient, config: dict[str, Any], key: str
) -> None:
    await configure(sandbox, {"credits": 10})
    response = await sandbox.post(FAULTS, json=config)
    assert response.status_code == 400
    description = response.json()["error"]["description"]
    assert description.startswith(f"{key}: "), description
    assert (await faults(sandbox))["config"] == {"credits": 10}  # the old one stays


@pytest.mark.parametrize("content", [b"[]", b"not json"])
async def test_config_must_be_an_object(sandbox: httpx.AsyncClient, content: bytes) -> None:
    response = await sandbox.post(FAULTS, content=content)
    assert response.status_code == 400
    assert response.json()["error"]["description"]


async def test_post_replaces_and_reset_clears(sandbox: httpx.AsyncClient) -> None:
    await configure(sandbox, {"error": {"code": 101}, "credits": 1})
    assert (await sandbox.post(SMS, json=sms())).status_code == 500
    state = await configure(sandbox, {"credits": 1})  # replaces: no error, counters zeroed
    assert state["config"] == {"credits": 1}
    assert not any(state["injected"].values())
    assert (await sandbox.post(SMS, json=sms())).status_code == 202

    await configure(sandbox, {"status": {"status": 503}})
    assert (await sandbox.post("/_sandbox/reset")).status_code == 200
    state = await faults(sandbox)
    assert (state["config"], state["credits_left"]) == ({}, None)
    assert not any(state["injected"].values())
    assert (await sandbox.post(SMS, json=sms())).status_code == 202
