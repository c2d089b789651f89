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

Each accepted recipient with a ``notificationUrl`` (the string, or its entry of the
array) later gets its delivery notifications: ``sandbox.notifications``.

``send`` serves the landing SMS endpoint too (``sandbox.landing``): a ``Variant``
says what differs (parts limit, which parameters exist, the page checks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from jobs.fields import (
    available_times_problem,
    is_int,
    notification_url_problem,
    sender_problem,
)
from jobs.gsm import MAX_PARTS_SMS, Encoding, SmsTextError, analyze, transliterate
from jobs.templating import OTP_CODE, UNSUB_URL, short_link
from sandbox.common import Results, booleans, campaign, dates, otp_code, phone, recipients, sub
from sandbox.errors import ApiError, error_detail, validation_error
from sandbox.state import SandboxState

NAME = "sms"
PATH = "/api/rest/sms"

ENCODINGS = get_args(Encoding)  # "Possible values are 'gsm', 'gsm-pt' and 'utf-16'"
DEFAULT_ENCODING = "gsm"
DEFAULT_PARTS = 1

# (text as sent, details shown by /_sandbox/messages, parts) or an error detail.
_Analysis = tuple[str, dict[str, Any], int] | dict[str, Any]


@dataclass(frozen=True, slots=True)
class Variant:
    """What the SMS and the landing SMS endpoints do differently."""

    name: str  # the channel
    max_parts: int  # ``parts`` above it → 110
    url_per_recipient: bool = True  # ``notificationUrl`` may be an array, one per recipient
    available_times: bool = True  # ``availableTimes`` is a parameter
    otp: bool = True  # ``otpConfig`` is a parameter and ``{OTP_CODE}`` is filled in
    # Placeholders the provider fills in beyond ``{UNSUB_URL}`` (and ``{OTP_CODE}``).
    fixed: Mapping[str, str] = field(default_factory=dict)
    # Checks of the parameters only this endpoint has (raise ApiError, record 422
    # problems in ``fields``); returns what, besides the text, tells two sends apart.
    extra: Callable[[dict[str, Any], str, dict[str, str]], str] | None = None


SMS = Variant(NAME, MAX_PARTS_SMS)


def _check_notification_url(urls: object, count: int, per_recipient: bool) -> None:
    if urls is None:
        return
    if (isinstance(urls, list) and not per_recipient) or notification_url_problem(urls, count):
        raise ApiError(109)


def _check_available_times(value: object) -> None:
    if problem := available_times_problem(value):
        raise ApiError(problem[0])


def handle(body: dict[str, Any], state: SandboxState) -> tuple[int, dict[str, Any]]:
    """Validate one request; the HTTP status and JSON body to answer with."""
    return send(body, state, SMS)


def send(body: dict[str, Any], state: SandboxState, variant: Variant) -> tuple[int, dict[str, Any]]:
    """``handle`` for the SMS-like endpoint ``variant``."""
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        raise ApiError(104)

    phones = recipients(body.get("to"), phone)
    to: list[object] = body["to"]

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

    scheduled_at, expires_at = dates(body)

    max_parts = body.get("parts")
    if max_parts is None:
        max_parts = DEFAULT_PARTS
    elif not is_int(max_parts) or not 1 <= max_parts <= variant.max_parts:
        raise ApiError(110)

    _check_notification_url(body.get("notificationUrl"), len(to), variant.url_per_recipient)

    fields: dict[str, str] = {}
    campaign_name = campaign(body, fields)

    if variant.available_times and "availableTimes" in body:
        _check_available_times(body["availableTimes"])

    page = variant.extra(body, message, fields) if variant.extra is not None else None

    trans = body.get("trans")
    if trans is None:
        trans = False
    elif trans in (0, 1) and (is_int(trans) or isinstance(trans, bool)):
        trans = bool(trans)
    else:
        fields["trans"] = "must be 0 or 1"
    booleans(body, ("certified", "splitParts", "flash"), fields)
    values = sub(body, len(to), fields)
    fixed = {UNSUB_URL: short_link(), **variant.fixed}
    if variant.otp:
        fixed[OTP_CODE] = otp_code(body.get("otpConfig"), fields)
    if fields:
        raise validation_error(fields)

    urls = body.get("notificationUrl")
    results = Results(state, variant.name, campaign_name)
    # Texts repeat across recipients (no sub, or shared values): analyse each once.
    analysed: dict[str, _Analysis] = {}
    for raw, number, text, _ in results.rendered(to, phones, message, values, fixed, "message"):
        outcome = analysed.get(text)
        if outcome is None:
            outcome = analysed[text] = _analyse(text, encoding, trans, max_parts)
        if isinstance(outcome, dict):
            results.refuse(raw, outcome)
            continue
        sent_text, details, parts = outcome
        notify = urls[results.position] if isinstance(urls, list) else urls
        results.accept(
            raw,
            number,
            sent_text,
            sender=sender,
            details=details,
            entry={"parts": parts, "scheduledAt": scheduled_at, "expiresAt": expires_at},
            content=None if page is None else f"{sent_text}\x00{page}",
            notify=notify,
        )
    return results.answer()


def _analyse(text: str, encoding: str, trans: bool, max_parts: int) -> _Analysis:
    """(text as sent, its details, parts), or the per-recipient error detail (105 / 113)."""
    if trans:
        text = transliterate(text)
    try:
        info = analyze(text, encoding, max_parts=max_parts)
    except SmsTextError as exc:
        return error_detail(exc.code)
    return text, {"encoding": info.encoding, "parts": info.parts}, info.parts
