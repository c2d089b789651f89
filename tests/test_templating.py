"""Rendering ``{var}`` / ``{var|filter}`` as the provider documents it."""

from __future__ import annotations

import pytest

from jobs.base import InvalidJob
from jobs.sms import Sms
from jobs.templating import (
    TemplateError,
    TextRules,
    UnknownVariable,
    filters,
    render,
    stand_ins,
)


@pytest.mark.parametrize(
    ("template", "values", "out"),
    [
        ("{name|lower}", {"name": "My Name"}, "my name"),  # the doc's examples
        ("{name|upper}", {"name": "my name"}, "MY NAME"),
        ("{name|capitalize}", {"name": "my name"}, "My name"),
        ("{name|capitalizeAll}", {"name": "my name"}, "My Name"),
        ("{number|formatDotComma}", {"number": "1234.56"}, "1.234,56"),
        ("{number|formatCommaDot}", {"number": "1234.56"}, "1,234.56"),
        ("{number|formatDotComma}", {"number": 1234567}, "1.234.567"),
        ("{url|shorten}", {"url": "https://example.com/a/long/path"}, "https://sms.tl/xxxxxx"),
        ("Hi {name}, {n} items", {"name": "Ana", "n": 3}, "Hi Ana, 3 items"),
        ("{UNSUB_URL} {OTP_CODE}", {}, "https://sms.tl/xxxxxx 0000"),
    ],
)
def test_documented_filters(template: str, values: dict[str, object], out: str) -> None:
    assert render(template, values, fixed=stand_ins()) == out


def test_shorten_and_placeholders_count_at_configured_lengths() -> None:
    text = render("{u|shorten}", {"u": "http://a.example"}, filter_table=filters(30))
    assert len(text) == 30
    fixed = stand_ins(short_link_length=25, otp_length=8)
    assert {k: len(v) for k, v in fixed.items()} == {"UNSUB_URL": 25, "LAND_URL": 25, "OTP_CODE": 8}


def test_unknown_variable_strict_and_lenient() -> None:
    with pytest.raises(UnknownVariable, match="name"):
        render("Hi {name}", {})
    assert render("Hi {name}", {}, strict=False) == "Hi {name}"


def test_bad_filter_values() -> None:
    with pytest.raises(TemplateError, match="not a number"):
        render("{n|formatDotComma}", {"n": "abc"})
    with pytest.raises(TemplateError, match="valid url"):
        render("{u|shorten}", {"u": "not a url"})


def sms(**extra: object) -> Sms:
    data = {"to": ["34666555444", "34666555333"], "from": "TEST", **extra}
    return Sms.model_validate(data)


def test_submit_check_refuses_unknown_variables_naming_the_recipient() -> None:
    job = sms(message="Hi {name}", sub=[{"name": "a"}, {"nom": "b"}])
    with pytest.raises(ValueError, match=r"sub\.1: no value for \{name\}"):
        job.check_text(TextRules())
    job.check_text(TextRules(allow_unknown=True))  # the contact's fields may fill it


def test_submit_check_refuses_unknown_filter() -> None:
    with pytest.raises(ValueError, match=r"message: \{name\|title\}: unknown filter"):
        sms(message="Hi {name|title}", sub=[{"name": "a"}] * 2).check_text(TextRules())


def test_submit_check_refuses_a_fixed_text_that_no_recipient_could_receive() -> None:
    with pytest.raises(ValueError, match=r"needs 16 parts, more than the 15.*105"):
        sms(message="a" * (153 * 15 + 1), parts=15).check_text(TextRules())
    with pytest.raises(ValueError, match=r"needs 3 parts, at most 2.*105"):
        sms(message="a" * 307, parts=2).check_text(TextRules())
    # No parts: the provider's default of one part ("parts ... is set to 1 by default").
    with pytest.raises(ValueError, match=r"message: text needs 2 parts, but without parts.*105"):
        sms(message="a" * 161).check_text(TextRules())
    with pytest.raises(ValueError, match="113"):
        sms(message="😀", encoding="gsm").check_text(TextRules())
    sms(message="{UNSUB_URL} " + "a" * 100).check_text(TextRules())
    sms(message="a" * 160).check_text(TextRules())
    sms(message="a" * (153 * 15), parts=15).check_text(TextRules())


async def test_producer_refuses_before_queueing(settings) -> None:  # type: ignore[no-untyped-def]
    from jobs.producer import Producer

    producer = await Producer.connect(settings)
    try:
        with pytest.raises(InvalidJob, match=r"invalid sms sending: sub\.0"):
            await producer.submit(sms(message="Hi {name}"))
        assert await producer.redis.dbsize() == 0
    finally:
        await producer.close()


def test_submit_check_names_the_first_recipient_short_and_its_first_missing_name() -> None:
    """Recipients in order first, then the names in the text's order."""
    job = sms(message="{a} {b}", sub=[{"a": "1", "b": "2"}, {"a": "1"}])
    with pytest.raises(ValueError, match=r"sub\.1: no value for \{b\}"):
        job.check_text(TextRules())
    job = sms(message="{a} {b}", sub=[{"b": "2"}, {"a": "1"}])
    with pytest.raises(ValueError, match=r"sub\.0: no value for \{a\}"):
        job.check_text(TextRules())
