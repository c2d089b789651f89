"""Sender verification of the email channel (115 "Sender is not verified", 117 "ReplyTo
is not verified"), simulated through the faults' ``unverified`` key, over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.test_sandbox_channels import email, error_of, sent
from tests.test_sandbox_faults import BODIES, configure, faults, stats

MAILING = "/api/rest/mailing"
SENDER, REPLY_TO = "info@sample.com", "replyto@example.com"  # those of email()
ERR_115 = {"error": {"code": 115, "description": "Sender is not verified"}}
ERR_117 = {"error": {"code": 117, "description": "ReplyTo is not verified"}}


async def assert_refused_whole(
    client: httpx.AsyncClient, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    response = await client.post(MAILING, json=body)
    assert response.status_code == 400, response.text
    assert response.json() == expected


@pytest.mark.parametrize(
    ("unverified", "expected"),
    [
        ({"senders": [SENDER]}, ERR_115),
        ({"senders": ["INFO@Sample.COM"]}, ERR_115),  # compared case-insensitively
        ({"reply_to": [" ReplyTo@EXAMPLE.com "]}, ERR_117),
        ({"senders": [SENDER], "reply_to": [REPLY_TO]}, ERR_115),  # the sender first
    ],
)
async def test_unverified_address_refuses_the_request_whole(
    sandbox: httpx.AsyncClient, unverified: dict[str, Any], expected: dict[str, Any]
) -> None:
    await configure(sandbox, {"unverified": unverified})
    await assert_refused_whole(sandbox, email(to=["ann@example.com", "bob@example.org"]), expected)
    # The request's own case does not matter either.
    await assert_refused_whole(
        sandbox, email(fromEmail="Info@SAMPLE.com", replyTo="REPLYTO@example.com"), expected
    )
    counted = await stats(sandbox, "email")
    assert (counted["requests"], counted["rejected"], counted["recipients"]) == (2, 2, 0)
    assert await sent(sandbox, "email") == []
    assert (await faults(sandbox))["injected"]["unverified"] == 2


async def test_other_addresses_stay_verified(sandbox: httpx.AsyncClient) -> None:
    await configure(
        sandbox, {"unverified": {"senders": ["other@sample.com"], "reply_to": ["no@example.com"]}}
    )
    response = await sandbox.post(MAILING, json=email())
    assert response.status_code == 202, response.text
    assert [m["from"] for m in await sent(sandbox, "email")] == [SENDER]
    assert (await faults(sandbox))["injected"]["unverified"] == 0


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"fromEmail": ...}, 106),  # before: the sender is missing
        ({"subject": ""}, 114),
        ({"replyTo": "not-an-address"}, 116),
        ({"scheduleDate": "nope"}, 115),  # 108 comes after
        ({"fromName": "two\nlines"}, 115),  # the 422 rules come later still
    ],
)
async def test_where_verification_sits_among_the_checks(
    sandbox: httpx.AsyncClient, changes: dict[str, Any], code: int
) -> None:
    await configure(sandbox, {"unverified": {"senders": [SENDER]}})
    response = await sandbox.post(MAILING, json=email(**changes))
    assert error_of(response)["code"] == code


async def test_a_malformed_sender_is_a_422_not_115(sandbox: httpx.AsyncClient) -> None:
    await configure(sandbox, {"unverified": {"senders": ["not-an-address"]}})
    response = await sandbox.post(MAILING, json=email(fromEmail="not-an-address"))
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"fromEmail"}


@pytest.mark.parametrize("channel", [name for name in BODIES if name != "email"])
async def test_other_channels_are_unaffected(sandbox: httpx.AsyncClient, channel: str) -> None:
    path, body = BODIES[channel]
    senders = [str(body.get("from", "")), SENDER, "TEST"]
    await configure(sandbox, {"unverified": {"senders": senders, "reply_to": [REPLY_TO]}})
    assert (await sandbox.post(path, json=body)).status_code == 202
    assert (await faults(sandbox))["injected"]["unverified"] == 0


async def test_channels_filter_and_auth_come_first(
    sandbox_url: str, sandbox: httpx.AsyncClient
) -> None:
    await configure(sandbox, {"channels": ["sms"], "unverified": {"senders": [SENDER]}})
    assert (await sandbox.post(MAILING, json=email())).status_code == 202

    await configure(sandbox, {"unverified": {"senders": [SENDER]}})
    response = httpx.post(f"{sandbox_url}{MAILING}", json=email(), auth=("sandbox", "wrong"))
    assert response.status_code == 401
    assert (await faults(sandbox))["injected"]["unverified"] == 0
    await assert_refused_whole(sandbox, email(), ERR_115)

    assert (await sandbox.post("/_sandbox/reset")).status_code == 200  # clears the lists
    assert (await sandbox.post(MAILING, json=email())).status_code == 202
