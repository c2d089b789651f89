"""The error family: what callers catch, and what each error says about the input."""

from __future__ import annotations

import pytest

from jobs import (
    BulksendError,
    ConfigurationError,
    IdempotencyConflict,
    InvalidJob,
    Producer,
    SendingNotFound,
    Settings,
    Sms,
)
from jobs.base import build


def test_invalid_job_names_the_field_the_reason_and_the_provider_code() -> None:
    with pytest.raises(InvalidJob) as err:
        build(Sms, {"to": ["34666555444"], "from": "WAYTOOLONGSENDER", "message": "hi"})
    assert (err.value.field, err.value.code) == ("from", 107)
    assert err.value.reason.startswith("Sender too long")
    assert isinstance(err.value, BulksendError) and isinstance(err.value, ValueError)


def test_a_message_without_a_field_keeps_its_whole_text_as_the_reason() -> None:
    err = InvalidJob("something is off with this file")
    assert (err.field, err.reason, err.code) == ("", "something is off with this file", None)


async def test_producer_errors_are_of_the_family(settings: Settings) -> None:
    producer = await Producer.connect(settings)
    try:
        with pytest.raises(SendingNotFound) as missing:
            await producer.cancel("s-nope")
        assert isinstance(missing.value, KeyError) and str(missing.value) == "no sending 's-nope'"
        job = Sms.model_validate({"to": ["34666555444"], "from": "T", "message": "hi"})
        await producer.submit(job, idempotency_key="k")
        other = Sms.model_validate({"to": ["34666555444"], "from": "T", "message": "ho"})
        with pytest.raises(IdempotencyConflict):
            await producer.submit(other, idempotency_key="k")
    finally:
        await producer.close()
    with pytest.raises(ConfigurationError, match="redis_url"):
        await Producer.connect(settings.model_copy(update={"redis_url": None}))
