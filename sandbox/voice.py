"""``POST /api/rest/voice`` — "Send Voice message" of ``messaging-api.txt``.

What the sandbox checks, in the order of the doc's parameters table; the first
documented code found wins (same answer shapes as ``sandbox.sms``):

====================  =====================================================
``message``           missing, not a string or blank → 104; more than 500
                      characters → 105
``to``                not an array, or no entry is a valid number → 102
``language``          missing or not one of the documented options → 130
``gender``            missing or not ``F`` / ``M`` → 131; ``M`` with a
                      language "available only in female gender" → 131
``callers`` …         the call options, see ``sandbox.common.call_options``:
``expirationDate``    132, 108, 190 / 176 / 177, 119
``campaignName``      given but blank → 126
====================  =====================================================

Then, as one 422 with ``fields``: ``campaignName`` / ``tags`` types and tags
without ``campaignName``; ``amd`` not a boolean; ``sub`` not one object per
entry of ``to``.

Then each entry of ``to``, in order: not a number → 102 for it; else the
message rendered with its ``sub`` object (unknown variables stay as written; a
bad filter use → 422 with ``fields.message`` for it), and more than 500
characters once rendered → 105 for it. Result entries are ``accepted``, ``to``,
``id``, ``scheduledAt``, ``expiresAt``. A duplicate is the same number and
rendered text.
"""

from __future__ import annotations

from typing import Any

from jobs.voice import FEMALE_ONLY_LANGUAGES, MAX_VOICE_MESSAGE, VOICE_LANGUAGES
from sandbox.common import Results, booleans, call_options, campaign, phone, recipients, sub
from sandbox.errors import ApiError, error_detail, validation_error
from sandbox.state import SandboxState

NAME = "voice"
PATH = "/api/rest/voice"

GENDERS = ("F", "M")
_ERR_105 = error_detail(105)


def handle(body: dict[str, Any], state: SandboxState) -> tuple[int, dict[str, Any]]:
    """Validate one request; the HTTP status and JSON body to answer with."""
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        raise ApiError(104)
    if len(message) > MAX_VOICE_MESSAGE:
        raise ApiError(105)

    phones = recipients(body.get("to"), phone)
    to: list[object] = body["to"]

    language = body.get("language")
    if not isinstance(language, str) or language not in VOICE_LANGUAGES:
        raise ApiError(130)
    gender = body.get("gender")
    if gender not in GENDERS or (gender == "M" and language in FEMALE_ONLY_LANGUAGES):
        raise ApiError(131)

    options = call_options(body)

    fields: dict[str, str] = {}
    campaign_name = campaign(body, fields)
    booleans(body, ("amd",), fields)
    values = sub(body, len(to), fields)
    if fields:
        raise validation_error(fields)

    details = {"language": language, "gender": gender, "retries": options.retries}
    entry = {"scheduledAt": options.scheduled_at, "expiresAt": options.expires_at}
    results = Results(state, NAME, campaign_name)
    for raw, number, text, _ in results.rendered(to, phones, message, values, {}, "message"):
        if len(text) > MAX_VOICE_MESSAGE:
            results.refuse(raw, _ERR_105)
        else:
            results.accept(raw, number, text, sender=None, details=details, entry=entry)
    return results.answer()
