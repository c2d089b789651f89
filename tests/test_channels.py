"""Every channel end to end: producer → Redis → worker → sandbox over HTTP → results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from jobs.base import SendJob
from jobs.email import Attachment, Email
from jobs.fields import format_api_date
from jobs.landing import Landing
from jobs.producer import Producer
from jobs.results import now_iso
from jobs.settings import Settings
from jobs.sms import Sms
from jobs.voice import Voice, VoiceAudio
from jobs.whatsapp import WhatsApp
from tests.helpers import drain, enqueue_entries, numbers, sandbox_stats


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(settings)
    yield p
    await p.close()


async def run(producer: Producer, settings: Settings, job: SendJob) -> list[dict[str, Any]]:
    sending_id = await producer.submit(job)
    await drain(settings)
    status = await producer.status(sending_id)
    assert status is not None and status["final"], status
    return [r async for r in producer.store.iter_results(sending_id)]


def sent(sandbox_url: str, channel: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{sandbox_url}/_sandbox/messages", params={"channel": channel}).json()
    return list(answer["messages"])


async def test_email_with_attachment_and_an_invalid_address(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    to = ["ana@example.com", "not-an-address", "luis@example.org"]
    job = Email.model_validate(
        {
            "to": to,
            "fromEmail": "news@example.com",
            "replyTo": "help@example.com",
            "subject": "Receipt",
            "body": "<p>Hi {name}</p>",
            "sub": [{"name": "Ana"}, {"name": "?"}, {"name": "Luis"}],
            "attachments": [Attachment.from_bytes("r.txt", b"thanks")],
        }
    )
    results = await run(producer, settings, job)
    assert [(r["to"], r["status"], r.get("code")) for r in results] == [
        ("ana@example.com", "accepted", None),
        ("not-an-address", "rejected", 102),
        ("luis@example.org", "accepted", None),
    ]
    stats = sandbox_stats(sandbox_url, "email")
    assert stats["recipients"] == 2 and stats["duplicates"] == 0 and stats["requests"] == 1


async def test_voice_and_voice_audio(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    to = [*numbers(3), "12"]
    voice = Voice.model_validate(
        {
            "to": to,
            "message": "Hello {name}",
            "language": "es_ES",
            "gender": "M",
            "sub": [{"name": n} for n in ("Ana", "Luis", "Eva", "x")],
        }
    )
    results = await run(producer, settings, voice)
    assert [r["status"] for r in results] == ["accepted"] * 3 + ["rejected"]
    assert sorted(m["text"] for m in sent(sandbox_url, "voice")) == [
        "Hello Ana",
        "Hello Eva",
        "Hello Luis",
    ]
    audio = VoiceAudio.model_validate({"to": numbers(2), "audioUrl": "https://x.example/a.mp3"})
    results = await run(producer, settings, audio)
    assert [r["status"] for r in results] == ["accepted"] * 2
    assert sandbox_stats(sandbox_url, "voice-audio")["recipients"] == 2


async def test_landing_sms_counts_parts_with_the_landing_link(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    job = Landing.model_validate(
        {
            "to": numbers(2),
            "from": "SHOP",
            "message": "x" * 140 + " {LAND_URL}",  # 140 + 1 + 21 = 162 septets: 2 parts
            "parts": 2,  # without it the provider allows one (its default)
            "templateBody": "<h1>Sale</h1>",
        }
    )
    results = await run(producer, settings, job)
    assert {(r["status"], r["encoding"], r["parts"]) for r in results} == {("accepted", "gsm", 2)}
    assert sandbox_stats(sandbox_url, "landing")["recipients"] == 2


async def test_whatsapp_messages_are_recipients(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    to = [*numbers(2), "34"]
    job = WhatsApp.model_validate(
        {
            "templateId": 7,
            "from": "34666777555",
            "messages": [{"to": n, "bodyFields": [f"b{i}"]} for i, n in enumerate(to)],
        }
    )
    results = await run(producer, settings, job)
    assert [(r["status"], r.get("code")) for r in results] == [
        ("accepted", None),
        ("accepted", None),
        ("rejected", 102),
    ]
    assert len({r["id"] for r in results[:2]}) == 2
    assert sandbox_stats(sandbox_url, "whatsapp")["recipients"] == 2


@pytest.mark.parametrize("channel", ["email", "whatsapp", "sms"])
async def test_worker_handles_a_207_from_the_provider(
    producer: Producer, settings: Settings, sandbox_url: str, channel: str
) -> None:
    """A recipient only the provider refuses (here: one our producer would have caught,
    enqueued by hand) is recorded from the 207 without affecting the others."""
    good, bad = ("a@example.com", "b@example") if channel == "email" else ("34666555444", "34")
    job: SendJob
    if channel == "email":
        job = Email.model_validate(
            {"to": [good], "fromEmail": "n@example.com", "replyTo": "n@example.com",
             "subject": "s", "body": "b"}
        )  # fmt: skip
    elif channel == "whatsapp":
        job = WhatsApp.model_validate(
            {"templateId": 1, "from": "34666", "messages": [{"to": good}]}
        )
    else:
        job = Sms.model_validate({"to": [good], "from": "T", "message": "hi"})
    sending_id = await producer.submit(job)
    await producer.store.add_recipients(
        sending_id, [(1, {"to": bad, "status": "queued", "attempts": 0, "queued_at": now_iso()})]
    )
    await enqueue_entries(producer.redis, sending_id, "99", [(1, bad, {})])
    await drain(settings)
    results = [r async for r in producer.store.iter_results(sending_id)]
    assert [(r["to"], r["status"], r.get("code")) for r in results] == [
        (good, "accepted", None),
        (bad, "rejected", 102),
    ]


async def test_schedule_date_is_passed_to_the_provider(
    producer: Producer, settings: Settings
) -> None:
    when = datetime.now(UTC) + timedelta(days=2)
    job = Sms.model_validate(
        {"to": numbers(1), "from": "T", "message": "later", "scheduleDate": format_api_date(when)}
    )
    [result] = await run(producer, settings, job)
    assert result["status"] == "accepted"
    assert result["scheduled_at"].startswith(when.strftime("%Y-%m-%d %H:%M"))


async def test_job_reaching_the_worker_after_expiration_is_expired_and_never_sent(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    job = Voice.model_validate(
        {"to": numbers(3), "message": "hi", "language": "en_GB", "gender": "F",
         "expirationDate": format_api_date(soon)}
    )  # fmt: skip
    sending_id = await producer.submit(job)
    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 1.1)
    await drain(settings)
    results = [r async for r in producer.store.iter_results(sending_id)]
    assert {(r["status"], r["code"]) for r in results} == {("expired", 119)}
    status = await producer.status(sending_id)
    assert status is not None and status["counts"]["expired"] == 3 and status["final"]
    assert sandbox_stats(sandbox_url, "voice")["requests"] == 0
