"""Job models of the email, voice, voice-audio, landing and contact-import channels.

Every refusal is checked through ``jobs.base.build`` (or ``build_import``) because
that one-line message is what a producer sees: it must name the field by its
API name and say why, with the provider's code where the doc has one.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.base import InvalidJob, SendJob, build
from jobs.contacts import ContactImport, neutralise_cell
from jobs.email import Attachment, Email, normalize_email
from jobs.fields import normalize_phone
from jobs.landing import Landing
from jobs.producer import content_digest
from jobs.results import digest
from jobs.settings import Settings
from jobs.sms import Sms
from jobs.voice import FEMALE_ONLY_LANGUAGES, VOICE_LANGUAGES, Voice, VoiceAudio


def refused(model: type[SendJob], data: dict[str, Any]) -> str:
    with pytest.raises(InvalidJob) as caught:
        build(model, data)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"invalid {model.kind} sending: ")
    return message


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


# --------------------------------------------------------------------- email

EMAIL: dict[str, Any] = {
    "to": ["test@example.com"],
    "fromName": "Info",
    "fromEmail": "info@sample.com",
    "body": "<html><body><a href='https://example.com'>link</a></body></html>",
    "replyTo": "replyto@example.com",
    "subject": "TEST",
}


def test_email_doc_example_is_valid() -> None:
    job = build(Email, EMAIL)
    assert isinstance(job, Email)
    assert job.kind == "email" and job.endpoint == "/api/rest/mailing"
    assert job.api_payload() == without(EMAIL, "to")


def test_email_all_fields_use_api_names() -> None:
    data = {
        **without(EMAIL, "body"),
        "to": ["a@example.com", "b@example.com"],
        "cc": ["c@example.com"],
        "bcc": ["d@example.com"],
        "templateV2Id": 7,
        "sub": [{"name": "A"}, {"name": "B"}],
        "attachments": [{"name": "a.txt", "content": b64(b"hi"), "contentType": "text/plain"}],
        "trackOpens": False,
        "trackClicks": True,
        "scheduleDate": "20300215142000",
        "certified": True,
        "campaignName": "launch",
        "tags": ["t1"],
    }
    job = build(Email, data)
    assert isinstance(job, Email)
    assert job.template_v2_id == 7
    payload = job.api_payload()
    assert "sub" not in payload and "to" not in payload
    assert payload["templateV2Id"] == 7
    assert payload["attachments"] == data["attachments"]
    assert list(job.recipient_rows())[1][1] == {"sub": {"name": "B"}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a@example.com", "a@example.com"),
        ("  John.Doe+tag@Example.COM ", "John.Doe+tag@example.com"),
        ("x@sub.xn--p1ai", "x@sub.xn--p1ai"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("plainaddress", None),
        ("a@b", None),
        ("a@@example.com", None),
        ("a@example", None),
        (".a@example.com", None),
        ("a..b@example.com", None),
        ("a@-example.com", None),
        ("a@example.c", None),
        ("a b@example.com", None),
        ("Name <a@example.com>", None),
        ("ñ@example.com", None),
        ("a" * 65 + "@example.com", None),
        ("a@" + "b" * 250 + ".com", None),
    ],
)
def test_normalize_email(raw: str, expected: str | None) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize("field", ["to", "fromEmail", "replyTo", "subject"])
def test_email_required_fields(field: str) -> None:
    assert f"{field}: Field required" in refused(Email, without(EMAIL, field))


def test_email_to_must_be_a_non_empty_list() -> None:
    assert "to: List should have at least 1 item" in refused(Email, {**EMAIL, "to": []})
    assert "to: Input should be a valid list" in refused(Email, {**EMAIL, "to": "a@b.com"})


def test_email_some_invalid_recipients_are_accepted() -> None:
    job = build(Email, {**EMAIL, "to": ["ok@example.com", "not-an-address", "x@y"]})
    assert isinstance(job, Email)
    assert job.to == ["ok@example.com", "not-an-address", "x@y"]


def test_email_all_invalid_recipients_are_refused() -> None:
    message = refused(Email, {**EMAIL, "to": ["not-an-address", "x@y"]})
    assert "to: no valid recipients (provider code 102)" in message


def test_email_sender_and_reply_to_are_normalized() -> None:
    job = build(Email, {**EMAIL, "fromEmail": "Info@Sample.COM", "replyTo": " r@EXAMPLE.com"})
    assert isinstance(job, Email)
    assert (job.from_email, job.reply_to) == ("Info@sample.com", "r@example.com")


def test_email_invalid_sender() -> None:
    message = refused(Email, {**EMAIL, "fromEmail": "info at sample"})
    assert "fromEmail: 'info at sample' is not a valid email address" in message
    assert "fromEmail: sender address missing (provider code 106)" in refused(
        Email, {**EMAIL, "fromEmail": " "}
    )


def test_email_invalid_reply_to() -> None:
    message = refused(Email, {**EMAIL, "replyTo": "nope"})
    assert "replyTo: 'nope' is not a valid email address (provider code 116)" in message


@pytest.mark.parametrize("field", ["cc", "bcc"])
def test_email_invalid_copy_address(field: str) -> None:
    message = refused(Email, {**EMAIL, field: ["ok@example.com", "bad@"]})
    assert f"{field}: 'bad@' is not a valid email address" in message


@pytest.mark.parametrize(
    ("subject", "reason"),
    [("", "is blank"), ("   ", "is blank"), ("a\r\nBcc: x@y.com", "must be one line")],
)
def test_email_invalid_subject(subject: str, reason: str) -> None:
    assert f"subject: {reason} (provider code 114)" in refused(Email, {**EMAIL, "subject": subject})


def test_email_from_name_one_line() -> None:
    assert "fromName: must be one line" in refused(Email, {**EMAIL, "fromName": "a\nb"})


@pytest.mark.parametrize("body", [None, "", "  "])
def test_email_needs_body_or_template(body: str | None) -> None:
    message = refused(Email, {**EMAIL, "body": body})
    assert "body: body, templateId or templateV2Id is required (provider code 140)" in message


@pytest.mark.parametrize("template", [{"templateId": 3}, {"templateV2Id": 4}])
def test_email_template_instead_of_body(template: dict[str, int]) -> None:
    assert isinstance(build(Email, {**without(EMAIL, "body"), **template}), Email)


def test_email_body_and_template_together_refused() -> None:
    message = refused(Email, {**EMAIL, "templateId": 3})
    assert "body: give only one of body, templateId, templateV2Id" in message


def test_email_template_id_type() -> None:
    message = refused(Email, {**without(EMAIL, "body"), "templateV2Id": "abc"})
    assert "templateV2Id: Input should be a valid integer" in message
    message = refused(Email, {**without(EMAIL, "body"), "templateId": 0})
    assert "templateId: Input should be greater than or equal to 1" in message


def test_email_sub_needs_one_object_per_recipient() -> None:
    message = refused(Email, {**EMAIL, "sub": [{"name": "a"}, {"name": "b"}]})
    assert "sub: has 2 objects for 1 recipients; needs one each" in message


def test_email_schedule_date_and_tags() -> None:
    assert "scheduleDate: '2030-01-01' is not a date in the form YYYYmmddHHiiss" in refused(
        Email, {**EMAIL, "scheduleDate": "2030-01-01"}
    )
    assert "tags: campaignName is required" in refused(Email, {**EMAIL, "tags": ["x"]})


def test_email_wrong_types_and_unknown_fields() -> None:
    assert "trackOpens: Input should be a valid boolean" in refused(
        Email, {**EMAIL, "trackOpens": "maybe"}
    )
    assert "otherField: Extra inputs are not permitted" in refused(
        Email, {**EMAIL, "otherField": 1}
    )


# ------------------------------------------------------------- attachments


def attach(**fields: Any) -> dict[str, Any]:
    return {**EMAIL, "attachments": [{"name": "a.txt", "content": b64(b"hello"), **fields}]}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "application/pdf"),
        ("notes.txt", "text/plain"),
        ("data.unknownext", "application/octet-stream"),
        ("README", "application/octet-stream"),
    ],
)
def test_attachment_content_type_guessed_from_name(name: str, expected: str) -> None:
    job = build(Email, attach(name=name))
    assert isinstance(job, Email) and job.attachments
    assert job.attachments[0].content_type == expected
    assert job.api_payload()["attachments"][0]["contentType"] == expected


def test_attachment_content_type_given_is_kept() -> None:
    job = build(Email, attach(contentType="text/csv; charset=utf-8"))
    assert isinstance(job, Email) and job.attachments
    assert job.attachments[0].content_type == "text/csv; charset=utf-8"


def test_attachment_bad_content_type() -> None:
    message = refused(Email, attach(contentType="text plain"))
    assert "attachments.0.contentType: 'text plain' is not a MIME type" in message


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "file name must not be empty"),
        ("../etc/passwd", "must be a file name, not a path"),
        ("dir\\a.txt", "must be a file name, not a path"),
        ("..", "must be a file name, not a path"),
        ("a\r\n.txt", "contains control characters"),
    ],
)
def test_attachment_bad_name(name: str, reason: str) -> None:
    message = refused(Email, attach(name=name))
    assert "attachments.0.name: " in message and reason in message


@pytest.mark.parametrize("content", ["not base64!", "aGVsbG8", "aGVs\nbG8=", "é"])
def test_attachment_bad_base64(content: str) -> None:
    message = refused(Email, attach(content=content))
    assert "attachments.0.content: 'a.txt': content is not valid base64" in message


def test_attachment_missing_content() -> None:
    assert "attachments.0.content: Field required" in refused(
        Email, {**EMAIL, "attachments": [{"name": "a.txt"}]}
    )


# The limits are settings, checked with the settings of whoever submits
# (``Email.check_settings``), never with the process's global ones.
DEFAULTS = Settings.model_construct()  # the defaults, whatever the environment says
MAX_ATTACHMENT_BYTES = DEFAULTS.max_attachment_bytes
MAX_MESSAGE_ATTACHMENT_BYTES = DEFAULTS.max_message_attachments_bytes


def within_limits(data: dict[str, Any], settings: Settings = DEFAULTS) -> Email:
    job = build(Email, data)
    assert isinstance(job, Email)
    job.check_settings(settings)
    return job


def over_limit(data: dict[str, Any], settings: Settings = DEFAULTS) -> str:
    """The model takes any size; the limits of ``settings`` refuse it, naming the field."""
    job = build(Email, data)
    assert isinstance(job, Email)
    with pytest.raises(ValueError) as caught:
        job.check_settings(settings)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("attachments")
    return message


def test_attachment_file_limit() -> None:
    at_limit = within_limits(attach(content=b64(bytes(MAX_ATTACHMENT_BYTES))))
    assert isinstance(at_limit, Email) and at_limit.attachments
    assert at_limit.attachments[0].size == MAX_ATTACHMENT_BYTES
    message = over_limit(attach(name="big.bin", content=b64(bytes(MAX_ATTACHMENT_BYTES + 1))))
    assert "attachments.0.content: 'big.bin' is 10.0 MiB (10485761 bytes)" in message
    assert "at most 10 MiB per file" in message


def test_attachment_message_limit() -> None:
    full = b64(bytes(MAX_ATTACHMENT_BYTES))
    files = [{"name": "a.bin", "content": full}, {"name": "b.bin", "content": full}]
    assert isinstance(within_limits({**EMAIL, "attachments": files}), Email)
    files.append({"name": "c.txt", "content": b64(b"x")})
    message = over_limit({**EMAIL, "attachments": files})
    assert f"({MAX_MESSAGE_ATTACHMENT_BYTES + 1} bytes)" in message
    assert message.endswith(
        "attachments: 'a.bin', 'b.bin', 'c.txt' together are 20.0 MiB (20971521 bytes);"
        " at most 20 MiB per message"
    )


def test_attachment_from_bytes_and_path(tmp_path: Path) -> None:
    made = Attachment.from_bytes("a.pdf", b"%PDF-1.4")
    assert (made.name, made.content_type, made.size) == ("a.pdf", "application/pdf", 8)
    assert base64.b64decode(made.content) == b"%PDF-1.4"
    file = tmp_path / "notes.txt"
    file.write_bytes(b"hello")
    loaded = Attachment.from_path(file, content_type="text/markdown")
    assert (loaded.name, loaded.content_type, loaded.size) == ("notes.txt", "text/markdown", 5)
    with pytest.raises(ValueError, match="must be a file name, not a path"):
        Attachment.from_bytes("a/b.txt", b"x")


def test_attachment_from_path_too_big_is_not_read(tmp_path: Path) -> None:
    big = tmp_path / "big.iso"
    with big.open("wb") as handle:
        handle.truncate(MAX_ATTACHMENT_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(ValueError, match=r"'big.iso' is 10.0 MiB \(10485761 bytes\)"):
        Attachment.from_path(big, max_bytes=MAX_ATTACHMENT_BYTES)


# --------------------------------------------------------------------- voice

VOICE: dict[str, Any] = {
    "to": ["34666666666"],
    "message": "Esto es un test de mensaje de voz",
    "gender": "F",
    "language": "es_ES",
}


def test_voice_doc_example_is_valid() -> None:
    job = build(Voice, VOICE)
    assert job.kind == "voice" and job.endpoint == "/api/rest/voice"
    assert job.api_payload() == without(VOICE, "to")


def test_voice_all_fields() -> None:
    data = {
        **VOICE,
        "to": ["34666666666", "+34 666 666 667"],
        "callers": {"ES": "6123456789", "PT": "6987654321"},
        "scheduleDate": "20300215142000",
        "retries": 5,
        "expirationDate": "20300216142000",
        "amd": True,
        "sub": [{"name": "a"}, {"name": "b"}],
        "campaignName": "calls",
        "tags": ["x"],
    }
    job = build(Voice, data)
    assert isinstance(job, Voice)
    payload = job.api_payload()
    assert payload["callers"] == data["callers"]
    assert payload["expirationDate"] == "20300216142000"
    assert "sub" not in payload
    assert next(job.recipient_rows())[1] == {"sub": {"name": "a"}}


@pytest.mark.parametrize("field", ["to", "message", "language", "gender"])
def test_voice_required_fields(field: str) -> None:
    assert f"{field}: Field required" in refused(Voice, without(VOICE, field))


def test_voice_message_length() -> None:
    assert isinstance(build(Voice, {**VOICE, "message": "a" * 500}), Voice)
    message = refused(Voice, {**VOICE, "message": "a" * 501})
    assert "message: has 501 characters, at most 500 (provider code 105)" in message
    assert "message: text message missing (provider code 104)" in refused(
        Voice, {**VOICE, "message": "  "}
    )
    assert "message: Input should be a valid string" in refused(Voice, {**VOICE, "message": 5})


def test_voice_languages() -> None:
    for language in VOICE_LANGUAGES:
        assert isinstance(build(Voice, {**VOICE, "language": language}), Voice)
    message = refused(Voice, {**VOICE, "language": "es"})
    assert "language: 'es' is not one of arb, cmn_CN" in message
    assert "(provider code 130)" in message


@pytest.mark.parametrize("gender", ["f", "X", "", None, 1])
def test_voice_bad_gender(gender: object) -> None:
    message = refused(Voice, {**VOICE, "gender": gender})
    assert f"gender: {gender!r} is not 'F' or 'M' (provider code 131)" in message


@pytest.mark.parametrize("language", sorted(FEMALE_ONLY_LANGUAGES))
def test_voice_female_only_languages(language: str) -> None:
    assert isinstance(build(Voice, {**VOICE, "language": language}), Voice)
    message = refused(Voice, {**VOICE, "language": language, "gender": "M"})
    assert f"gender: {language} has only a female voice; use 'F' (provider code 131)" in message


def test_voice_male_voice_where_available() -> None:
    assert isinstance(build(Voice, {**VOICE, "gender": "M"}), Voice)


@pytest.mark.parametrize(
    ("retries", "reason"),
    [
        (6, "must be 0 to 5, not 6 (provider code 177)"),
        (-1, "must be 0 to 5, not -1 (provider code 177)"),
        ("3", "'3' is not an integer (provider code 176)"),
        (2.0, "2.0 is not an integer (provider code 176)"),
        (True, "True is not an integer (provider code 176)"),
        ("", "is given but empty (provider code 190)"),
    ],
)
def test_voice_bad_retries(retries: object, reason: str) -> None:
    assert f"retries: {reason}" in refused(Voice, {**VOICE, "retries": retries})


@pytest.mark.parametrize("retries", [0, 5, None])
def test_voice_retries_in_range(retries: int | None) -> None:
    assert isinstance(build(Voice, {**VOICE, "retries": retries}), Voice)


@pytest.mark.parametrize(
    ("callers", "reason"),
    [
        ({"es": "6123456789"}, "'es' is not a two-letter country code"),
        ({"ESP": "6123456789"}, "'ESP' is not a two-letter country code"),
        ({"ES": "+34 612"}, "ES: '+34 612' is not a caller number of at most 15 digits"),
        ({"ES": "1" * 16}, f"ES: {'1' * 16!r} is not a caller number of at most 15 digits"),
    ],
)
def test_voice_bad_callers(callers: dict[str, str], reason: str) -> None:
    message = refused(Voice, {**VOICE, "callers": callers})
    assert f"callers: {reason}" in message and "(provider code 132)" in message


def test_voice_callers_is_an_object_not_a_list() -> None:
    message = refused(Voice, {**VOICE, "callers": ["6123456789"]})
    assert "callers: Input should be a valid dictionary" in message


def test_voice_recipients() -> None:
    assert isinstance(build(Voice, {**VOICE, "to": ["34666666666", "34", "abc"]}), Voice)
    message = refused(Voice, {**VOICE, "to": ["34", "abc"]})
    assert "to: no valid recipients (provider code 102)" in message


def test_voice_dates_and_sub() -> None:
    assert "expirationDate: '20301340000000' is not a real date" in refused(
        Voice, {**VOICE, "expirationDate": "20301340000000"}
    )
    assert "sub: has 0 objects for 1 recipients" in refused(Voice, {**VOICE, "sub": []})
    assert "amd: Input should be a valid boolean" in refused(Voice, {**VOICE, "amd": "sure"})


# --------------------------------------------------------------- voice audio

AUDIO: dict[str, Any] = {"to": ["34666666666"], "audioUrl": "https://example.com/audio.mp3"}


def test_voice_audio_doc_example_is_valid() -> None:
    job = build(VoiceAudio, AUDIO)
    assert job.kind == "voice-audio" and job.endpoint == "/api/rest/voiceAudio"
    assert job.api_payload() == {"audioUrl": "https://example.com/audio.mp3"}


def test_voice_audio_all_fields() -> None:
    data = {
        **AUDIO,
        "audioUrl": "http://cdn.example.com/a/Greeting.MP3?v=2#t",
        "callers": {"ES": "6123456789"},
        "retries": 2,
        "scheduleDate": "20300215142000",
        "expirationDate": "20300216142000",
        "amd": False,
    }
    job = build(VoiceAudio, data)
    assert isinstance(job, VoiceAudio)
    assert job.api_payload() == without(data, "to")
    assert next(job.recipient_rows())[1] == {}


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.mp3", "example.com/a.mp3", "https:///a.mp3", "http://[::1/a.mp3"]
)
def test_voice_audio_url_must_be_http(url: str) -> None:
    message = refused(VoiceAudio, {**AUDIO, "audioUrl": url})
    assert "audioUrl: " in message and "(provider code 133)" in message


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/audio.ogg",
        "https://example.com/audio",
        "https://example.com/mp3",
        "https://example.com/a.mp3/",
        "https://example.com/play?file=a.mp3",
    ],
)
def test_voice_audio_unsupported_format(url: str) -> None:
    message = refused(VoiceAudio, {**AUDIO, "audioUrl": url})
    assert f"audioUrl: {url!r} is not a supported audio file (.mp3) (provider code 134)" in message


def test_voice_audio_required_and_unknown_fields() -> None:
    assert "audioUrl: Field required" in refused(VoiceAudio, without(AUDIO, "audioUrl"))
    assert "message: Extra inputs are not permitted" in refused(
        VoiceAudio, {**AUDIO, "message": "hi"}
    )
    assert "sub: Extra inputs are not permitted" in refused(VoiceAudio, {**AUDIO, "sub": [{}]})


def test_voice_audio_retries_and_recipients() -> None:
    assert "retries: must be 0 to 5, not 9 (provider code 177)" in refused(
        VoiceAudio, {**AUDIO, "retries": 9}
    )
    assert isinstance(build(VoiceAudio, {**AUDIO, "to": ["34666666666", "0"]}), VoiceAudio)
    assert "to: no valid recipients (provider code 102)" in refused(
        VoiceAudio, {**AUDIO, "to": ["0"]}
    )


# ------------------------------------------------------------------- landing

LANDING: dict[str, Any] = {
    "to": ["34666555444"],
    "message": "TEST API LANDING {LAND_URL}",
    "from": "LANDINGAPI",
    "templateBody": "<html><head><title>LANDING TEST</title></head><body>HI</body></html>",
}


def test_landing_doc_example_is_valid() -> None:
    job = build(Landing, LANDING)
    assert job.kind == "landing" and job.endpoint == "/api/rest/landingsms"
    payload = job.api_payload()
    assert payload["templateBody"] == LANDING["templateBody"]
    assert payload["from"] == "LANDINGAPI"


@pytest.mark.parametrize("template", [{"templateId": 1}, {"templateV2Id": 2}])
def test_landing_template_id_instead_of_body(template: dict[str, int]) -> None:
    job = build(Landing, {**without(LANDING, "templateBody"), **template})
    assert isinstance(job, Landing)
    assert set(template) <= set(job.api_payload())


@pytest.mark.parametrize("body", [None, "", " "])
def test_landing_needs_a_page(body: str | None) -> None:
    message = refused(Landing, {**LANDING, "templateBody": body})
    assert (
        "templateBody: templateBody, templateId or templateV2Id is required (provider code 140)"
        in message
    )


def test_landing_two_pages_refused() -> None:
    message = refused(Landing, {**LANDING, "templateV2Id": 3})
    assert "templateBody: give only one of templateBody, templateId, templateV2Id" in message


def test_landing_needs_placeholder() -> None:
    message = refused(Landing, {**LANDING, "message": "TEST API LANDING {LAND_URL"})
    assert "message: has no {LAND_URL} where the landing link goes (provider code 141)" in message


def test_landing_parts_limit_is_eight() -> None:
    assert isinstance(build(Landing, {**LANDING, "parts": 8}), Landing)
    message = refused(Landing, {**LANDING, "parts": 9})
    assert "parts: at most 8 parts are allowed (provider code 110)" in message


def test_landing_inherits_sms_rules() -> None:
    assert "message: text message missing (provider code 104)" in refused(
        Landing, {**LANDING, "message": " "}
    )
    assert "from: " in refused(Landing, {**LANDING, "from": "TOO LONG SENDER"})
    assert "to: no valid recipients (provider code 102)" in refused(
        Landing, {**LANDING, "to": ["12"]}
    )
    assert "templateId: Input should be a valid integer" in refused(
        Landing, {**without(LANDING, "templateBody"), "templateId": "x"}
    )


def test_landing_refuses_sms_only_parameters() -> None:
    message = refused(Landing, {**LANDING, "notificationUrl": ["https://example.com/n"]})
    assert "notificationUrl: landing SMS takes one URL, not one per recipient" in message
    message = refused(Landing, {**LANDING, "availableTimes": [{"from": "09:00", "to": "21:00"}]})
    assert "availableTimes: not a landing SMS parameter" in message
    assert isinstance(
        build(Landing, {**LANDING, "notificationUrl": "https://example.com/n"}), Landing
    )


# ------------------------------------------------------------------ contacts


def import_refused(data: dict[str, Any]) -> str:
    with pytest.raises(InvalidJob) as caught:
        build(ContactImport, data)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("invalid contacts sending: ")
    return message


def test_contact_import_is_a_sending_of_kind_contacts() -> None:
    job = build(ContactImport, {"group": "  Customers ", "country": "es"})
    assert (job.kind, job.group, job.target, job.country) == (
        "contacts",
        "Customers",
        "messaging",
        "ES",
    )
    assert job.endpoint == "/api/rest/contacts"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({}, "group: Field required"),
        ({"group": "   "}, "group: Value error, must not be blank"),
        ({"group": "x", "country": "Spain"}, "country: Value error, 'Spain' is not a two-letter"),
        ({"group": "x", "target": "crm"}, "target: Input should be 'messaging' or 'mail'"),
        ({"group": "Friends", "target": "mail"}, "group: with --target mail it is the mail API's"),
        ({"group": "x", "listIds": [1]}, "listIds: Extra inputs are not permitted"),
    ],
)
def test_contact_import_refusals(data: dict[str, Any], reason: str) -> None:
    assert reason.replace("Value error, ", "") in import_refused(data)


def test_contact_import_into_the_mail_api_takes_a_contact_type_id() -> None:
    job = build(ContactImport, {"group": "3", "target": "mail"})
    assert job.options().target == "mail"


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+34666666666", "'+34666666666"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Alex", "Alex"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_neutralise_cell(cell: str, safe: str) -> None:
    assert neutralise_cell(cell) == safe


def test_attachment_limits_are_settings() -> None:
    data = attach(name="a.bin", content=b64(bytes(2000)))
    within_limits(data)
    small = DEFAULTS.model_copy(update={"max_attachment_mb": 0.001})  # about 1 KB
    message = over_limit(data, small)
    assert "a.bin" in message and "0.001 MiB per file" in message
    assert "BULKSEND_MAX_ATTACHMENT_MB" in message
    total = DEFAULTS.model_copy(update={"max_message_attachments_mb": 0.001})
    assert "at most 0.001 MiB per message" in over_limit(data, total)


# --------------------------------------------------------------------- digests


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (Email, {**EMAIL, "attachments": [{"name": "a.txt", "content": b64("é€ 😀".encode())}]}),
        (Voice, VOICE),
        (
            Sms,
            {
                "to": ["34666555444", "+34 666 555 333"],
                "from": "TEST",
                "message": "Olá {name}, ¿qué tal? {n} € 😀",
                "sub": [{"name": 'Zoë "q" \\ \n', "n": "1.5"}, {"name": "日本", "n": "-0"}],
                "parts": 3,
                "encoding": "utf-16",
            },
        ),
    ],
)
def test_content_digest_is_the_digest_of_the_dumped_job(
    model: type[SendJob], data: dict[str, Any]
) -> None:
    """A resubmission made before ``content_digest`` (pydantic's own JSON) must still
    match: same bytes as the old ``digest(model_dump(mode="json"))``, unicode included."""
    job = build(model, data)
    old = digest(job.model_dump(by_alias=True, mode="json", exclude_none=True))
    assert content_digest(job) == old


@given(st.text(alphabet="0123456789 +x\t", max_size=18))
def test_normalize_phone_quick_path_agrees_with_the_pattern(raw: str) -> None:
    """The quick return for a number already bare gives what the full rule gives."""
    candidate = raw.strip().replace(" ", "").removeprefix("+")
    expected = candidate if re.fullmatch(r"[1-9][0-9]{6,14}", candidate) else None
    assert normalize_phone(raw) == expected
