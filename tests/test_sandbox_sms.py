"""The sandbox's ``POST /api/rest/sms`` over real HTTP, against messaging-api.txt."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import SANDBOX_AUTH

SMS = "/api/rest/sms"
GOOD = "34666555444"
OTHER = "34666555333"


def body(**changes: Any) -> dict[str, Any]:
    """A valid request with ``changes`` applied (a value of ``...`` removes the key)."""
    out: dict[str, Any] = {"to": [GOOD], "from": "TEST", "message": "SMS text message"}
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def error_of(response: httpx.Response) -> dict[str, Any]:
    detail: dict[str, Any] = response.json()["error"]
    return detail


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/_sandbox/stats")
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


# --- authentication and body ------------------------------------------------------


async def test_no_auth_is_401_103(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        response = await client.post(SMS, json=body())
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": 103, "description": "Username or password unknown"}
    }


async def test_wrong_password_is_401_103(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url, auth=(SANDBOX_AUTH[0], "nope")) as client:
        response = await client.post(SMS, json=body())
    assert response.status_code == 401
    assert error_of(response)["code"] == 103


async def test_wrong_username_is_401_103(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url, auth=("other", SANDBOX_AUTH[1])) as client:
        response = await client.post(SMS, json=body())
    assert response.status_code == 401
    assert error_of(response)["code"] == 103


@pytest.mark.parametrize("raw", [b"not json", b"", b'{"to": [', b"[1, 2]", b'"text"'])
async def test_body_not_a_json_object_is_125(sandbox: httpx.AsyncClient, raw: bytes) -> None:
    response = await sandbox.post(SMS, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error": {"code": 125, "description": "Invalid JSON"}}


async def test_unknown_api_route_is_404(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post("/api/rest/nothing-here", json={})
    assert response.status_code == 404
    assert response.json() == {"error": {"code": 404, "description": "Resource not found"}}


# --- request-level validation -----------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"message": ...}, 104),
        ({"message": ""}, 104),
        ({"message": "   "}, 104),
        ({"message": 42}, 104),
        ({"to": ...}, 102),
        ({"to": []}, 102),
        ({"to": GOOD}, 102),
        ({"to": ["34", "abc", "+0034666"]}, 102),
        ({"from": ...}, 106),
        ({"from": ""}, 106),
        ({"from": "TWELVECHARSX"}, 107),
        ({"from": "1234567890123456"}, 107),
        ({"from": "BAD-SENDER"}, 107),
        ({"encoding": "latin1"}, 113),
        ({"encoding": "auto"}, 113),
        ({"scheduleDate": "2030-01-01 10:00"}, 108),
        ({"scheduleDate": "20301301100000"}, 108),
        ({"scheduleDate": 20300101100000}, 108),
        ({"expirationDate": "tomorrow"}, 119),
        ({"expirationDate": "20300230100000"}, 119),
        ({"scheduleDate": "20300101100000", "expirationDate": "20300101090000"}, 119),
        ({"parts": 0}, 110),
        ({"parts": 16}, 110),
        ({"parts": "2"}, 110),
        ({"parts": 1.5}, 110),
        ({"notificationUrl": "ftp://example.com/n"}, 109),
        ({"notificationUrl": "example.com/n"}, 109),
        ({"notificationUrl": ["https://example.com/a", "https://example.com/b"]}, 109),
        ({"notificationUrl": ["not a url"]}, 109),
        ({"campaignName": "  "}, 126),
        ({"availableTimes": None}, 194),
        ({"availableTimes": []}, 194),
        ({"availableTimes": {"from": "09:00", "to": "21:00"}}, 183),
        ({"availableTimes": [{"from": "09:00"}]}, 189),
        ({"availableTimes": ["09:00-21:00"]}, 189),
        ({"availableTimes": [{"day": "mon", "from": "09:00", "to": "21:00"}]}, 184),
        ({"availableTimes": [{"day": 8, "from": "09:00", "to": "21:00"}]}, 185),
        ({"availableTimes": [{"day": 0, "from": "09:00", "to": "21:00"}]}, 185),
        ({"availableTimes": [{"from": "9am", "to": "21:00"}]}, 186),
        ({"availableTimes": [{"from": "09:00", "to": "24:00"}]}, 187),
        ({"availableTimes": [{"from": "21:00", "to": "09:00"}]}, 188),
        ({"availableTimes": [{"from": "09:00", "to": "09:00"}]}, 196),
    ],
)
async def test_documented_error_codes(
    sandbox: httpx.AsyncClient, changes: dict[str, Any], code: int
) -> None:
    response = await sandbox.post(SMS, json=body(**changes))
    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == code
    assert isinstance(error_of(response)["description"], str)


async def test_valid_optional_parameters_are_accepted(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        SMS,
        json=body(
            to=[GOOD, OTHER],
            encoding="gsm-pt",
            parts=15,
            notificationUrl=["https://example.com/a?s=%s", "http://example.com/b"],
            trans=0,
            campaignName="spring",
            tags=["promo"],
            certified=False,
            flash=True,
            splitParts=False,
            availableTimes=[
                {"day": 1, "from": "09:00", "to": "21:00"},
                {"from": "10:00", "to": "11:00"},
            ],
            otpConfig={"alpha": True, "length": 10, "maxAttempts": 3, "maxSecondsValidity": 600},
        ),
    )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tags": ["promo"]}, "tags"),
        ({"tags": []}, "tags"),
        ({"tags": "promo", "campaignName": "c"}, "tags"),
        ({"campaignName": 7}, "campaignName"),
        ({"trans": 2}, "trans"),
        ({"trans": "1"}, "trans"),
        ({"flash": "yes"}, "flash"),
        ({"sub": [{"name": "a"}, {"name": "b"}]}, "sub"),
        ({"sub": []}, "sub"),
        ({"sub": {"name": "a"}}, "sub"),
        ({"sub": ["a"]}, "sub"),
        ({"otpConfig": {"length": 2}}, "otpConfig.length"),
        ({"otpConfig": {"maxSecondsValidity": 601}}, "otpConfig.maxSecondsValidity"),
        ({"otpConfig": 5}, "otpConfig"),
    ],
)
async def test_rules_without_a_code_are_422_with_fields(
    sandbox: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    response = await sandbox.post(SMS, json=body(**changes))
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == 422
    assert error["description"] == "Input validation error"
    assert set(error["fields"]) == {field}
    assert error["fields"][field]


async def test_422_reports_every_bad_field_at_once(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(SMS, json=body(tags=["x"], trans=5, sub=[]))
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"tags", "trans", "sub"}


# --- recipients: 202, 207, 400 ----------------------------------------------------


async def test_all_accepted_is_202_with_documented_shape(sandbox: httpx.AsyncClient) -> None:
    numbers = [GOOD, OTHER, "+34 666 555 222"]
    response = await sandbox.post(
        SMS,
        json=body(to=numbers, scheduleDate="20300215142000", expirationDate="20300216000000"),
    )
    assert response.status_code == 202
    data = response.json()
    assert set(data) == {"campaignId", "sendingId", "result"}
    assert isinstance(data["campaignId"], int) and isinstance(data["sendingId"], int)
    assert [r["to"] for r in data["result"]] == numbers
    for result in data["result"]:
        assert set(result) == {"accepted", "to", "id", "parts", "scheduledAt", "expiresAt"}
        assert result["accepted"] is True
        assert isinstance(result["id"], str) and len(result["id"]) == 13
        assert result["parts"] == 1
        assert result["scheduledAt"] == "2030-02-15 14:20:00"
        assert result["expiresAt"] == "2030-02-16 00:00:00"
    assert len({r["id"] for r in data["result"]}) == 3


async def test_ids_are_unique_across_requests(sandbox: httpx.AsyncClient) -> None:
    first = (await sandbox.post(SMS, json=body(to=[GOOD] * 50))).json()
    second = (await sandbox.post(SMS, json=body(to=[GOOD] * 50))).json()
    ids = [r["id"] for r in first["result"] + second["result"]]
    assert len(set(ids)) == 100
    assert first["sendingId"] != second["sendingId"]
    assert first["result"][0]["scheduledAt"] is None
    assert first["result"][0]["expiresAt"] is None


async def test_same_campaign_name_keeps_its_campaign_id(sandbox: httpx.AsyncClient) -> None:
    first = (await sandbox.post(SMS, json=body(campaignName="spring"))).json()
    second = (await sandbox.post(SMS, json=body(campaignName="spring"))).json()
    third = (await sandbox.post(SMS, json=body(campaignName="autumn"))).json()
    assert first["campaignId"] == second["campaignId"] != third["campaignId"]


async def test_mixed_recipients_are_207_in_order(sandbox: httpx.AsyncClient) -> None:
    numbers = ["34", GOOD, "not a phone", OTHER, 34666555111]
    response = await sandbox.post(SMS, json=body(to=numbers))
    assert response.status_code == 207
    result = response.json()["result"]
    assert [r["to"] for r in result] == numbers
    assert [r["accepted"] for r in result] == [False, True, False, True, True]
    for bad in (result[0], result[2]):
        assert bad == {
            "accepted": False,
            "to": bad["to"],
            "error": {"code": 102, "description": "No valid recipients"},
        }
    assert all(len(r["id"]) == 13 for r in result if r["accepted"])


# --- parts and encoding per recipient ---------------------------------------------


async def test_text_longer_than_parts_is_105(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(SMS, json=body(message="a" * 161))
    assert response.status_code == 400
    assert error_of(response) == {"code": 105, "description": "Text message too long"}


async def test_enough_parts_is_accepted_with_real_part_count(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(SMS, json=body(message="a" * 307, parts=5))
    assert response.status_code == 202
    assert response.json()["result"][0]["parts"] == 3  # 153 + 153 + 1
    exact = await sandbox.post(SMS, json=body(message="a" * 160))
    assert exact.status_code == 202
    assert exact.json()["result"][0]["parts"] == 1


async def test_utf16_parts_use_70_and_67(sandbox: httpx.AsyncClient) -> None:
    fits = await sandbox.post(SMS, json=body(message="ж" * 70, encoding="utf-16"))
    assert fits.status_code == 202
    two = await sandbox.post(SMS, json=body(message="ж" * 71, encoding="utf-16", parts=2))
    assert two.json()["result"][0]["parts"] == 2
    one = await sandbox.post(SMS, json=body(message="ж" * 71, encoding="utf-16"))
    assert error_of(one)["code"] == 105


async def test_105_per_recipient_is_207(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        SMS,
        json=body(
            to=[GOOD, OTHER], message="Hi {name}", sub=[{"name": "Ann"}, {"name": "x" * 200}]
        ),
    )
    assert response.status_code == 207
    first, second = response.json()["result"]
    assert first["accepted"] is True and first["parts"] == 1
    assert second == {
        "accepted": False,
        "to": OTHER,
        "error": {"code": 105, "description": "Text message too long"},
    }


async def test_invalid_number_plus_too_long_text_is_400_105(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(SMS, json=body(to=["34", GOOD], message="a" * 200))
    assert response.status_code == 400
    assert error_of(response)["code"] == 105


async def test_gsm_with_emoji_is_113(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(SMS, json=body(message="Hello 🙂"))
    assert response.status_code == 400
    assert error_of(response) == {"code": 113, "description": "Invalid coding"}


async def test_default_encoding_is_gsm(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(SMS, json=body(message="Привет", encoding=...))
    assert error_of(response)["code"] == 113


async def test_utf16_carries_emoji(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(SMS, json=body(message="Hello 🙂", encoding="utf-16"))
    assert response.status_code == 202
    messages = (await sandbox.get("/_sandbox/messages")).json()["messages"]
    assert messages[-1]["encoding"] == "utf-16"
    assert messages[-1]["text"] == "Hello 🙂"


async def test_113_per_recipient_is_207(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        SMS, json=body(to=[GOOD, OTHER], message="{word}", sub=[{"word": "ok"}, {"word": "🙂"}])
    )
    assert response.status_code == 207
    assert [r["accepted"] for r in response.json()["result"]] == [True, False]
    assert response.json()["result"][1]["error"]["code"] == 113


async def test_trans_1_makes_portuguese_text_gsm(sandbox: httpx.AsyncClient) -> None:
    refused = await sandbox.post(SMS, json=body(message="ção"))
    assert refused.status_code == 400
    assert error_of(refused)["code"] == 113
    accepted = await sandbox.post(SMS, json=body(message="ção", trans=1))
    assert accepted.status_code == 202
    messages = (await sandbox.get("/_sandbox/messages")).json()["messages"]
    assert messages[-1]["text"] == "Çao"  # 'ç' => 'Ç', 'ã' => 'a' per the doc's table
    assert messages[-1]["encoding"] == "gsm"


async def test_gsm_pt_carries_portuguese_text(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(SMS, json=body(message="ção", encoding="gsm-pt"))
    assert response.status_code == 202


async def test_substitution_and_provider_placeholders(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        SMS,
        json=body(
            to=[GOOD, OTHER],
            message="Hi {name|capitalize}, code {OTP_CODE} {missing} {UNSUB_URL}",
            sub=[{"name": "ANN"}, {"name": "bob"}],
            otpConfig={"length": 6},
        ),
    )
    assert response.status_code == 202
    texts = [m["text"] for m in (await sandbox.get("/_sandbox/messages")).json()["messages"]]
    assert texts[0].startswith("Hi Ann, code ") and texts[1].startswith("Hi Bob, code ")
    code = texts[0].split()[3]
    assert len(code) == 6
    assert "{missing}" in texts[0]  # unknown variables stay as written
    assert "https://" in texts[0] and "{UNSUB_URL}" not in texts[0]


async def test_bad_filter_value_fails_that_recipient(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        SMS,
        json=body(
            to=[GOOD, OTHER], message="Total {n|formatDotComma}", sub=[{"n": "1234.5"}, {"n": "x"}]
        ),
    )
    assert response.status_code == 207
    ok, bad = response.json()["result"]
    assert ok["accepted"] is True
    assert bad["error"]["code"] == 422 and "message" in bad["error"]["fields"]


# --- inspection ---------------------------------------------------------------------


async def test_stats_count_requests_recipients_and_duplicates(sandbox: httpx.AsyncClient) -> None:
    before = await stats(sandbox)
    assert before["requests"] == 0
    assert before["channels"]["sms"]["recipients"] == 0

    await sandbox.post(SMS, json=body(to=[GOOD, "34"]))  # 207: one accepted
    await sandbox.post(SMS, json=body(to=[GOOD]))  # same recipient, same text
    await sandbox.post(SMS, json=body(to=[GOOD], message="other text"))  # not a duplicate
    await sandbox.post(SMS, json=body(message=...))  # rejected, still a request
    async with httpx.AsyncClient(base_url=sandbox.base_url) as anonymous:
        await anonymous.post(SMS, json=body())  # 401, still a request

    after = await stats(sandbox)
    sms = after["channels"]["sms"]
    assert after["requests"] == 5
    assert sms["requests"] == 5
    assert sms["rejected"] == 2
    assert sms["recipients"] == 3
    assert sms["unique"] == 2
    assert sms["duplicates"] == 1
    assert sms["duplicate_samples"][0]["to"] == GOOD
    assert sms["duplicate_samples"][0]["text"] == "SMS text message"


async def test_same_number_in_two_forms_is_a_duplicate(sandbox: httpx.AsyncClient) -> None:
    await sandbox.post(SMS, json=body(to=[GOOD, "+34 666 555 444"]))
    assert (await stats(sandbox))["channels"]["sms"]["duplicates"] == 1


async def test_reset_clears_everything(sandbox: httpx.AsyncClient) -> None:
    await sandbox.post(SMS, json=body(to=[GOOD]))
    await sandbox.post(SMS, json=body(to=[GOOD]))
    assert (await stats(sandbox))["channels"]["sms"]["duplicates"] == 1

    response = await sandbox.post("/_sandbox/reset")
    assert response.json() == {"ok": True}
    cleared = await stats(sandbox)
    assert cleared["requests"] == 0
    assert cleared["channels"]["sms"] == {
        "requests": 0,
        "rejected": 0,
        "recipients": 0,
        "unique": 0,
        "duplicates": 0,
        "duplicate_samples": [],
    }
    assert (await sandbox.get("/_sandbox/messages")).json()["messages"] == []
    await sandbox.post(SMS, json=body(to=[GOOD]))
    assert (await stats(sandbox))["channels"]["sms"]["duplicates"] == 0


async def test_messages_returns_the_last_accepted_oldest_first(sandbox: httpx.AsyncClient) -> None:
    sent = await sandbox.post(SMS, json=body(to=[GOOD, "34", OTHER], message="one"))
    await sandbox.post(SMS, json=body(to=[GOOD], message="two"))
    data = (await sandbox.get("/_sandbox/messages", params={"channel": "sms", "limit": 2})).json()
    assert data["count"] == 2
    assert [(m["to"], m["text"]) for m in data["messages"]] == [(OTHER, "one"), (GOOD, "two")]
    assert data["messages"][0]["id"] == sent.json()["result"][2]["id"]
    assert data["messages"][0]["parts"] == 1
    bad = await sandbox.get("/_sandbox/messages", params={"channel": "pigeon"})
    assert bad.status_code == 404
