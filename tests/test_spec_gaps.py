"""Rules of messaging-api.txt the pipeline used to read wrongly, one group each.

- "Send SMS Message" → ``parts`` (and "Landing SMS" → ``parts``): "This variable
  is set to 1 by default", so a sending without ``parts`` may bill one part per
  recipient, not the 15 (8) it may declare at most.
- "Errors" → 106 "Sender missing": a sender of only spaces is no sender.
- "Errors" → 119 "Invalid expiration date": an ``expirationDate`` that is not
  after ``scheduleDate`` can never be met.
- Recipients files saved with a UTF-8 byte-order mark are read as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobs.base import InvalidJob, SendJob, build
from jobs.chunks import Entry
from jobs.email import Email
from jobs.fields import sender_problem
from jobs.landing import Landing
from jobs.planning import plan
from jobs.recipients_file import rows, scan
from jobs.settings import Settings
from jobs.sms import Sms
from jobs.templating import TextRules
from jobs.voice import Voice, VoiceAudio
from jobs.whatsapp import WhatsApp

TWO = ["34666555444", "34666555333"]
SMS: dict[str, Any] = {"to": TWO, "from": "TEST", "message": "Hello"}
LANDING: dict[str, Any] = {
    "to": TWO,
    "from": "LANDINGAPI",
    "message": "TEST API LANDING {LAND_URL}",
    "templateBody": "<h1>Sale</h1>",
}
VOICE: dict[str, Any] = {"to": TWO, "message": "Hello", "language": "es_ES", "gender": "F"}
VOICE_AUDIO: dict[str, Any] = {"to": TWO, "audioUrl": "https://example.com/a.mp3"}
WHATSAPP: dict[str, Any] = {"templateId": 1, "from": "34666777555", "messages": [{"to": TWO[0]}]}
EMAIL: dict[str, Any] = {
    "to": ["test@example.com"],
    "fromEmail": "info@sample.com",
    "replyTo": "replyto@example.com",
    "subject": "TEST",
    "body": "<p>Hi</p>",
}


def refused(model: type[SendJob], data: dict[str, Any]) -> str:
    with pytest.raises(InvalidJob) as caught:
        build(model, data)
    return str(caught.value)


def text_job(model: type[Sms], data: dict[str, Any]) -> Sms:
    job = build(model, data)
    assert isinstance(job, Sms)
    return job


def text_refused(model: type[Sms], data: dict[str, Any]) -> str:
    with pytest.raises(ValueError) as caught:
        text_job(model, data).check_text(TextRules())
    return str(caught.value)


# ------------------------------------------------------------ parts default


def test_a_text_over_one_part_without_parts_is_refused_at_submit() -> None:
    message = text_refused(Sms, {**SMS, "message": "a" * 161})
    assert message == (
        "message: text needs 2 parts, but without parts only 1 is allowed (the provider's"
        " default); set parts to 2 (at most 15) or shorten the text (provider code 105)"
    )
    text_job(Sms, {**SMS, "message": "a" * 160}).check_text(TextRules())
    text_job(Sms, {**SMS, "message": "a" * 161, "parts": 2}).check_text(TextRules())


def test_utf16_text_over_one_part_without_parts_is_refused() -> None:
    message = text_refused(Sms, {**SMS, "message": "ж" * 71})
    assert message.startswith("message: text needs 2 parts, but without parts")
    assert message.endswith("(provider code 105)")


def test_landing_text_over_one_part_without_parts_is_refused() -> None:
    # 140 + 1 + 21 (the short link {LAND_URL} becomes) = 162 septets: 2 parts.
    long = {**LANDING, "message": "x" * 140 + " {LAND_URL}"}
    message = text_refused(Landing, long)
    assert "set parts to 2 (at most 8)" in message and "105" in message
    text_job(Landing, {**long, "parts": 2}).check_text(TextRules())


def test_text_longer_than_any_parts_says_to_shorten() -> None:
    message = text_refused(Landing, {**LANDING, "message": "x" * (153 * 8) + " {LAND_URL}"})
    assert message == (
        "message: text needs 9 parts, more than the 8 that parts can allow;"
        " shorten the text (provider code 105)"
    )


def test_declared_parts_too_small_suggests_raising_it() -> None:
    message = text_refused(Sms, {**SMS, "message": "a" * 307, "parts": 2})
    assert message == (
        "message: text needs 3 parts, at most 2 are allowed;"
        " raise parts to 3 or shorten the text (provider code 105)"
    )


def _entries(names: list[str]) -> list[Entry]:
    return [Entry(i, f"3466655{i:04d}", {"sub": {"name": n}}) for i, n in enumerate(names)]


@pytest.mark.parametrize("kind", ["sms", "landing"])
def test_planner_bills_one_part_when_parts_is_absent(kind: str) -> None:
    payload = {"from": "TEST", "message": "Hello {name}"}
    calls, refusals = plan(kind, payload, _entries(["ana", "x" * 200]))
    assert [(c.encoding, c.parts, [e.index for e in c.entries]) for c in calls] == [("gsm", 1, [0])]
    assert calls[0].request_body()["parts"] == 1
    assert [(r.entry.index, r.code) for r in refusals] == [(1, 105)]
    assert "needs 2 parts, at most 1" in refusals[0].description


def test_planner_declares_the_parts_each_text_needs_up_to_parts() -> None:
    payload = {"from": "TEST", "message": "Hello {name}", "parts": 2}
    calls, refusals = plan("sms", payload, _entries(["ana", "x" * 200, "x" * 400]))
    assert sorted((c.parts, [e.index for e in c.entries]) for c in calls) == [(1, [0]), (2, [1])]
    assert [(r.entry.index, r.code) for r in refusals] == [(2, 105)]


def test_each_distinct_text_is_analyzed_once_per_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobs import gsm

    texts: list[str] = []
    real = gsm.analyze

    def counted(text: str, *args: Any, **kwargs: Any) -> gsm.SmsInfo:
        texts.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(gsm, "analyze", counted)
    payload = {"from": "TEST", "message": "Hello {name}"}
    names = ["ana", "ana", "luis", "Zoë", "ana", "Zoë", "x" * 200, "x" * 200]
    calls, _ = plan("sms", payload, _entries(names))
    # One-part texts of one-cost characters are priced from their lengths, never
    # analyzed (``planning._quick_pricing``); every other text once.
    assert sorted(texts) == sorted(["Hello Zoë", "Hello " + "x" * 200])
    assert sorted(len(c.entries) for c in calls) == [2, 4]  # the 200-x texts are refused (105)


async def test_producer_refuses_a_long_text_without_parts_before_queueing(
    settings: Settings,
) -> None:
    from jobs.producer import Producer

    producer = await Producer.connect(settings)
    try:
        with pytest.raises(InvalidJob, match=r"invalid sms sending: message: .*set parts to 2"):
            await producer.submit(Sms.model_validate({**SMS, "message": "a" * 200}))
        assert await producer.redis.dbsize() == 0
    finally:
        await producer.close()


# ------------------------------------------------------------ blank sender


@pytest.mark.parametrize("blank", ["", " ", "   ", "\t"])
def test_sender_of_only_spaces_is_sender_missing(blank: str) -> None:
    assert sender_problem(blank) == (106, "Sender missing")


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (Sms, SMS, "from"),
        (Landing, LANDING, "from"),
        (WhatsApp, WHATSAPP, "from"),
        (Email, EMAIL, "fromEmail"),
    ],
)
def test_blank_sender_is_refused_with_106(
    model: type[SendJob], data: dict[str, Any], field: str
) -> None:
    message = refused(model, {**data, field: "   "})
    assert f"{field}: " in message and "(provider code 106)" in message


def test_sender_with_inner_spaces_is_still_valid() -> None:
    assert sender_problem("MY SHOP") is None
    assert isinstance(build(Sms, {**SMS, "from": "MY SHOP"}), Sms)


# ------------------------------------------------------------ expirationDate


@pytest.mark.parametrize(
    ("model", "data"),
    [(Sms, SMS), (Landing, LANDING), (Voice, VOICE), (VoiceAudio, VOICE_AUDIO)],
)
@pytest.mark.parametrize("expiration", ["20300101100000", "20300101095959"])
def test_expiration_not_after_schedule_is_119(
    model: type[SendJob], data: dict[str, Any], expiration: str
) -> None:
    dates = {"scheduleDate": "20300101100000", "expirationDate": expiration}
    message = refused(model, {**data, **dates})
    assert (
        f"expirationDate: {expiration} is not after scheduleDate 20300101100000 (provider code 119)"
    ) in message


@pytest.mark.parametrize(
    ("model", "data"),
    [(Sms, SMS), (Landing, LANDING), (Voice, VOICE), (VoiceAudio, VOICE_AUDIO)],
)
def test_expiration_after_schedule_or_alone_is_valid(
    model: type[SendJob], data: dict[str, Any]
) -> None:
    later = {"scheduleDate": "20300101100000", "expirationDate": "20300101100001"}
    assert isinstance(build(model, {**data, **later}), model)
    assert isinstance(build(model, {**data, "expirationDate": "20300101100000"}), model)


# ------------------------------------------------------------ byte-order mark


def _digits(to: str) -> str | None:
    return to if to.isdigit() else None


def test_csv_with_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"\xef\xbb\xbfto,name\r\n34666555444,Ana\r\n34666555333,Jos\xc3\xa9\r\n")
    assert list(rows(path)) == [
        ("34666555444", {"sub": {"name": "Ana"}}),
        ("34666555333", {"sub": {"name": "José"}}),
    ]
    summary = scan(path, _digits)
    assert (summary.count, summary.first_valid) == (2, "34666555444")


def test_csv_with_bom_and_to_not_first(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"\xef\xbb\xbfname,to\nAna,34666555444\n")
    assert list(rows(path)) == [("34666555444", {"sub": {"name": "Ana"}})]


def test_jsonl_with_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"to": "34666555444", "sub": {"name": "Ana"}}\n{"to": "34666555333"}\n'
    )
    assert list(rows(path)) == [("34666555444", {"sub": {"name": "Ana"}}), ("34666555333", {})]
    assert scan(path, _digits).count == 2
