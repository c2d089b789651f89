"""``POST /api/rest/sms`` — "Send SMS Message" of ``messaging-api.txt``.

What the sandbox checks, in the order of the doc's parameters table; the first
documented code found wins (``{"error": {"code", "description"}}`` with the
HTTP status of the doc's "Errors" table, see ``sandbox.errors``):

====================  =====================================================
``message``           missing, not a string or blank → 104
``to``                not an array, empty, or no entry is a valid number → 102
``from``              missing/empty → 106; not 15 digits / 11 alphanumerics → 107
``encoding``          not ``gsm`` / ``gsm-pt`` / ``utf-16`` → 113 (default ``gsm``)
``scheduleDate``      not a real ``YYYYmmddHHiiss`` date → 108
``expirationDate``    not a real ``YYYYmmddHHiiss`` date, or not after
                      ``scheduleDate`` → 119
``parts``             not an integer in 1..15 → 110 (default 1)
``notificationUrl``   not an http(s) URL, or an array whose length differs from
                      ``to``'s or with a bad URL in it → 109
``campaignName``      given but blank → 126
``availableTimes``    given as null/[]/"" → 194; not an array → 183; an entry not
                      an object or without ``from``/``to`` → 189; ``day`` not an
                      integer → 184, not 1..7 → 185; ``from``/``to`` not ``HH:MM``
                      → 186/187; ``from`` after ``to`` → 188; equal → 196
====================  =====================================================

Then the problems the doc states as rules without a code, all reported together
as HTTP 422::

    {"error": {"code": 422, "description": "Input validation error",
               "fields": {"<parameter>": "<reason>", ...}}}

``trans`` not 0/1 (``true``/``false`` also accepted); ``campaignName`` or ``tags``
of the wrong type; ``tags`` given (even ``[]``) without ``campaignName``;
``certified``/``flash``/``splitParts`` not booleans; ``sub`` not an array of
objects with exactly one object per entry of ``to`` (invalid numbers included);
``otpConfig`` outside the documented ranges (field names ``otpConfig.length`` …).
JSON ``null`` counts as "not given" for every optional parameter except
``availableTimes`` ("specified but its value is empty", 194).

Then each entry of ``to``, in order (the result list has one entry per ``to``
entry, ``"to"`` echoed exactly as sent):

1. not a number per ``jobs.fields.normalize_phone`` → ``accepted: false``, 102;
2. text = ``render(message, sub[i], strict=False)`` with ``{UNSUB_URL}`` and
   ``{OTP_CODE}`` replaced by stand-ins of realistic length (unknown variables
   stay as written, as the provider sends them); a bad filter use → 422 for
   that recipient with ``fields.message``;
3. with ``trans`` 1 the text is transliterated first, then
   ``jobs.gsm.analyze(text, encoding)``: characters the encoding cannot carry
   → 113; more parts than ``parts`` → 105. Accepted entries carry the real
   ``parts`` count.

All entries accepted → 202; some → 207; none → the whole request fails with 102
when no number was valid, else with the first valid recipient's error (400 105,
400 113 or 422).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from jobs.fields import is_hhmm, normalize_phone, parse_api_date, sender_problem
from jobs.gsm import MAX_PARTS_SMS, SmsTextError, analyze, transliterate
from jobs.templating import OTP_CODE, OTP_LENGTH, UNSUB_URL, TemplateError, render, short_link
from sandbox.errors import VALIDATION, ApiError, error_detail, validation_error
from sandbox.state import Message, SandboxState

NAME = "sms"
PATH = "/api/rest/sms"

ENCODINGS = ("gsm", "gsm-pt", "utf-16")
DEFAULT_ENCODING = "gsm"
DEFAULT_PARTS = 1
# Stand-ins for what the provider fills in itself: an unsubscribe short link as
# long as a ``{url|shorten}`` link, and an OTP code of ``otpConfig.length``.
OTP_RANGES = {"length": (3, 10), "maxAttempts": (1, 10), "maxSecondsValidity": (30, 600)}

_NO_VALUES: dict[str, Any] = {}
_ERR_102 = error_detail(102)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _api_date(value: object, code: int) -> str | None:
    """``YYYYmmddHHiiss`` → ``YYYY-mm-dd HH:ii:ss`` (None when not given)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(code)
    try:
        return parse_api_date(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ApiError(code) from None


def _phone(raw: object) -> str | None:
    if isinstance(raw, str):
        return normalize_phone(raw)
    if _is_int(raw):
        return normalize_phone(str(raw))
    return None


def _check_available_times(value: object) -> None:
    if value is None or value == [] or value == "":
        raise ApiError(194)
    if not isinstance(value, list):
        raise ApiError(183)
    for window in value:
        if not isinstance(window, dict) or "from" not in window or "to" not in window:
            raise ApiError(189)
        if "day" in window and window["day"] is not None:
            if not _is_int(window["day"]):
                raise ApiError(184)
            if not 1 <= window["day"] <= 7:
                raise ApiError(185)
        start, end = window["from"], window["to"]
        if not isinstance(start, str) or not is_hhmm(start):
            raise ApiError(186)
        if not isinstance(end, str) or not is_hhmm(end):
            raise ApiError(187)
        if start > end:
            raise ApiError(188)
        if start == end:
            raise ApiError(196)


def _check_otp_config(value: object, fields: dict[str, str]) -> str:
    """Record problems of ``otpConfig`` in ``fields``; a stand-in OTP code it describes."""
    if value is None:
        return "0" * OTP_LENGTH
    if not isinstance(value, dict):
        fields["otpConfig"] = "must be an object"
        return "0" * OTP_LENGTH
    for name, (low, high) in OTP_RANGES.items():
        if name in value and not (_is_int(value[name]) and low <= value[name] <= high):
            fields[f"otpConfig.{name}"] = f"must be an integer from {low} to {high}"
    for name in ("alpha", "rejectIfPendingCode"):
        if name in value and not isinstance(value[name], bool):
            fields[f"otpConfig.{name}"] = "must be a boolean"
    if "appId" in value and not isinstance(value["appId"], str):
        fields["otpConfig.appId"] = "must be a string"
    length: int = OTP_LENGTH
    if "otpConfig.length" not in fields:
        length = value.get("length", OTP_LENGTH)
    return ("A" if value.get("alpha") is True else "0") * length


def _check_sub(sub: object, count: int) -> str | None:
    if not isinstance(sub, list):
        return "must be an array of objects, one per recipient"
    if len(sub) != count:
        return f"has {len(sub)} objects for {count} recipients; needs exactly one per recipient"
    for i, values in enumerate(sub):
        if not isinstance(values, dict):
            return f"entry {i} is not an object"
    return None


def handle(body: dict[str, Any], state: SandboxState) -> tuple[int, dict[str, Any]]:
    """Validate one request; the HTTP status and JSON body to answer with."""
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        raise ApiError(104)

    to = body.get("to")
    if not isinstance(to, list):
        raise ApiError(102)
    phones = [_phone(raw) for raw in to]
    if not any(phones):
        raise ApiError(102)

    sender = body.get("from")
    if sender is not None and not isinstance(sender, str):
        raise ApiError(107)
    problem = sender_problem(sender)
    if problem is not None:
        raise ApiError(problem[0])
    assert sender is not None

    encoding = body.get("encoding")
    if encoding is None:
        encoding = DEFAULT_ENCODING
    elif encoding not in ENCODINGS:
        raise ApiError(113)

    scheduled_at = _api_date(body.get("scheduleDate"), 108)
    expires_at = _api_date(body.get("expirationDate"), 119)
    if scheduled_at is not None and expires_at is not None and expires_at <= scheduled_at:
        raise ApiError(119)

    max_parts = body.get("parts")
    if max_parts is None:
        max_parts = DEFAULT_PARTS
    elif not _is_int(max_parts) or not 1 <= max_parts <= MAX_PARTS_SMS:
        raise ApiError(110)

    urls = body.get("notificationUrl")
    if urls is not None:
        if isinstance(urls, list):
            if len(urls) != len(to) or not all(_is_url(u) for u in urls):
                raise ApiError(109)
        elif not _is_url(urls):
            raise ApiError(109)

    campaign = body.get("campaignName")
    if isinstance(campaign, str) and not campaign.strip():
        raise ApiError(126)

    if "availableTimes" in body:
        _check_available_times(body["availableTimes"])

    fields: dict[str, str] = {}
    trans = body.get("trans")
    if trans is None:
        trans = False
    elif trans in (0, 1) and (_is_int(trans) or isinstance(trans, bool)):
        trans = bool(trans)
    else:
        fields["trans"] = "must be 0 or 1"
    if campaign is not None and not isinstance(campaign, str):
        fields["campaignName"] = "must be a string"
    tags = body.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            fields["tags"] = "must be an array of strings"
        elif campaign is None:
            fields["tags"] = "campaignName is required when tags are given"
    for name in ("certified", "splitParts", "flash"):
        if body.get(name) is not None and not isinstance(body[name], bool):
            fields[name] = "must be a boolean"
    sub = body.get("sub")
    if sub is not None:
        sub_problem = _check_sub(sub, len(to))
        if sub_problem is not None:
            fields["sub"] = sub_problem
    otp_code = _check_otp_config(body.get("otpConfig"), fields)
    if fields:
        raise validation_error(fields)

    fixed = {UNSUB_URL: short_link(), OTP_CODE: otp_code}
    templated = "{" in message

    stats = state.channels[NAME]
    campaign_id = sending_id = 0  # allocated with the first accepted recipient
    # Texts repeat across recipients (no sub, or shared values): analyse each once.
    analysed: dict[str, tuple[str, str, int] | dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    accepted: list[Message] = []
    first_error: dict[str, Any] | None = None
    for i, raw in enumerate(to):
        phone = phones[i]
        if phone is None:
            results.append({"accepted": False, "to": raw, "error": _ERR_102})
            continue
        text = message
        outcome: tuple[str, str, int] | dict[str, Any] | None = None
        if templated:
            values = sub[i] if sub is not None else _NO_VALUES
            try:
                text = render(message, values, strict=False, fixed=fixed)
            except TemplateError as exc:
                outcome = error_detail(VALIDATION, {"message": str(exc)})
        if outcome is None:
            outcome = analysed.get(text)
            if outcome is None:
                outcome = analysed[text] = _analyse(text, encoding, trans, max_parts)
        if isinstance(outcome, dict):
            results.append({"accepted": False, "to": raw, "error": outcome})
            first_error = first_error or outcome
            continue
        sent_text, used_encoding, parts = outcome
        if not sending_id:
            campaign_id = state.campaign_id(campaign)
            sending_id = state.new_id()
        message_id = state.message_id()
        accepted.append(
            Message(message_id, phone, sender, sent_text, used_encoding, parts, sending_id)
        )
        results.append(
            {
                "accepted": True,
                "to": raw,
                "id": message_id,
                "parts": parts,
                "scheduledAt": scheduled_at,
                "expiresAt": expires_at,
            }
        )

    if not accepted:
        assert first_error is not None  # some number was valid, so it failed this way
        raise ApiError(first_error["code"], first_error.get("fields"))
    for accepted_message in accepted:
        stats.accept(accepted_message)
    return (202 if len(accepted) == len(to) else 207), {
        "campaignId": campaign_id,
        "sendingId": sending_id,
        "result": results,
    }


def _analyse(
    text: str, encoding: str, trans: bool, max_parts: int
) -> tuple[str, str, int] | dict[str, Any]:
    """(text as sent, encoding, parts), or the per-recipient error detail (105 / 113)."""
    if trans:
        text = transliterate(text)
    try:
        info = analyze(text, encoding, max_parts=max_parts)
    except SmsTextError as exc:
        return error_detail(exc.code)
    return text, info.encoding, info.parts
