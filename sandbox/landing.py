"""``POST /api/rest/landingsms`` — "Landing SMS" of ``messaging-api.txt``.

Every rule of ``sandbox.sms`` (same codes, same order, same 202/207/400), with
what the landing section changes:

====================  =====================================================
``parts``             not an integer in 1..8 → 110 ("The maximum number of
                      parts allowed is 8")
``notificationUrl``   one URL: an array → 109 (the section types it ``string``)
``templateBody``      with ``templateId`` / ``templateV2Id``: none of them
                      given (a blank ``templateBody`` counts as not given) → 140
``message``           without ``{LAND_URL}`` → 141
====================  =====================================================

checked after ``campaignName`` (126) and before the 422 rules, which add:
``templateBody`` not a string, ``templateId`` / ``templateV2Id`` not positive
integers. More than one of the three is accepted (the doc forbids nothing).

``availableTimes`` and ``otpConfig`` are not parameters of this endpoint: they
are ignored, and ``{OTP_CODE}`` stays in the text as written. ``{LAND_URL}`` is
rendered as a provider short link of realistic length (``short_link()``), so
the parts count is the one the recipient's phone gets. A duplicate is the same
number, text and landing page.
"""

from __future__ import annotations

from typing import Any

from jobs.gsm import MAX_PARTS_LANDING
from jobs.landing import LANDING_PLACEHOLDER
from jobs.templating import short_link
from sandbox import sms
from sandbox.common import content_source, digest
from sandbox.errors import ApiError
from sandbox.state import SandboxState

NAME = "landing"
PATH = "/api/rest/landingsms"

PAGE_SOURCES = ("templateBody", "templateId", "templateV2Id")


def _landing_page(body: dict[str, Any], message: str, fields: dict[str, str]) -> str:
    """140 / 141, 422 problems into ``fields``; the page, as what tells sends apart."""
    given = content_source(body, PAGE_SOURCES, fields)
    if LANDING_PLACEHOLDER not in message:
        raise ApiError(141)
    return digest(*(f"{name}={body[name]}" for name in given))


LANDING = sms.Variant(
    NAME,
    MAX_PARTS_LANDING,
    url_per_recipient=False,
    available_times=False,
    otp=False,
    fixed={LANDING_PLACEHOLDER.strip("{}"): short_link()},
    extra=_landing_page,
)


def handle(body: dict[str, Any], state: SandboxState) -> tuple[int, dict[str, Any]]:
    """Validate one request; the HTTP status and JSON body to answer with."""
    return sms.send(body, state, LANDING)
