"""``POST /api/rest/voiceAudio`` — "Send Voice message with an audio file" of
``messaging-api.txt``.

What the sandbox checks, in the order of the doc's parameters table; the first
documented code found wins (same answer shapes as ``sandbox.sms``):

====================  =====================================================
``to``                not an array, or no entry is a valid number → 102
``audioUrl``          missing, not a string, not an absolute http(s) URL → 133;
                      a file name without a supported extension
                      (``jobs.fields.AUDIO_EXTENSIONS``: the doc shows only
                      ``.mp3``) → 134
``callers`` …         the call options, see ``sandbox.common.call_options``:
``expirationDate``    132, 108, 190 / 176 / 177, 119
``campaignName``      given but blank → 126
====================  =====================================================

Then, as one 422 with ``fields``: ``campaignName`` / ``tags`` types and tags
without ``campaignName``; ``amd`` not a boolean. ``sub`` is not a parameter of
this endpoint and is ignored.

The doc shows only a 202 for this endpoint; an invalid number among valid ones
gets the same 207 as every other channel (102 for that entry). Result entries
are ``accepted``, ``to``, ``id``, ``scheduledAt``, ``expiresAt``. A duplicate is
the same number and audio URL.
"""

from __future__ import annotations

from typing import Any

from jobs.fields import audio_url_problem
from sandbox.common import Results, booleans, call_options, campaign, phone, recipients
from sandbox.errors import ApiError, validation_error
from sandbox.state import SandboxState

NAME = "voice-audio"
PATH = "/api/rest/voiceAudio"


def _audio_url(value: object) -> str:
    if problem := audio_url_problem(value):
        raise ApiError(problem[0])  # 133, 134
    assert isinstance(value, str)
    return value


def handle(body: dict[str, Any], state: SandboxState) -> tuple[int, dict[str, Any]]:
    """Validate one request; the HTTP status and JSON body to answer with."""
    phones = recipients(body.get("to"), phone)
    to: list[object] = body["to"]
    audio_url = _audio_url(body.get("audioUrl"))
    options = call_options(body)

    fields: dict[str, str] = {}
    campaign_name = campaign(body, fields)
    booleans(body, ("amd",), fields)
    if fields:
        raise validation_error(fields)

    details = {"retries": options.retries}
    entry = {"scheduledAt": options.scheduled_at, "expiresAt": options.expires_at}
    results = Results(state, NAME, campaign_name)
    for raw, number in zip(to, phones, strict=True):
        if number is None:
            results.invalid(raw)
        else:
            results.accept(raw, number, audio_url, sender=None, details=details, entry=entry)
    return results.answer()
