"""``POST /api/rest/mailing`` — "Send Email message" of ``messaging-api.txt``.

What the sandbox checks; the first documented code found wins (same answer
shapes as ``sandbox.sms``):

=========================  ================================================
``body`` / ``templateId``  none of ``body``, ``templateId``, ``templateV2Id``
/ ``templateV2Id``         given (a blank ``body`` counts as not given) → 140
``to``                     not an array, or no entry is an address per
                           ``jobs.email.normalize_email`` → 102
``fromEmail``              missing or blank → 106
``subject``                missing, not a string, blank, or with a line
                           break → 114
``replyTo``                missing or not an address → 116
unverified ``fromEmail``   listed in the faults' ``unverified`` (see
/ ``replyTo``              ``sandbox.faults``; case-insensitive): the sender
                           → 115, else the reply-to address → 117
``scheduleDate``           not a real ``YYYYmmddHHiiss`` date → 108
``campaignName``           given but blank → 126
=========================  ================================================

Then the rules without a code, reported together as one 422 with ``fields``:
``fromEmail`` not an address (the doc has no code for a malformed sender, and such
a sender is never checked for 115); ``fromName`` not a one-line string;
``cc`` / ``bcc`` not arrays of addresses; ``body`` not a string;
``templateId`` / ``templateV2Id`` not positive integers; ``campaignName`` /
``tags`` types and tags without ``campaignName``; ``certified`` /
``trackOpens`` / ``trackClicks`` not booleans; ``sub`` not one object per
entry of ``to``; ``attachments`` not an array of objects with a ``name``, a
base64 ``content`` and a ``contentType`` (fields ``attachments.N.name`` …);
``otpConfig`` outside its documented ranges. More than one of ``body`` /
``templateId`` / ``templateV2Id`` is accepted (the doc forbids nothing).

Then each entry of ``to``, in order: not an address → 102 for it; else ``body``
rendered with its ``sub`` object (``{OTP_CODE}`` filled in, unknown variables
and ``[unsubscribe_link]`` left as written; a bad filter use → 422 with
``fields.body`` for it). Result entries are ``accepted``, ``to``, ``id``,
``scheduledAt``; ``cc`` / ``bcc`` are not recipients in the result or stats.
A duplicate is the same address, subject and rendered body (or template id and
``sub`` values, which the provider would render).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeGuard

import orjson

from jobs.templating import OTP_CODE
from sandbox.common import (
    Results,
    api_date,
    booleans,
    campaign,
    content_source,
    digest,
    email,
    is_blank,
    otp_code,
    recipients,
    sub,
)
from sandbox.errors import ApiError, validation_error
from sandbox.state import SandboxState

NAME = "email"
PATH = "/api/rest/mailing"

CONTENT_SOURCES = ("body", "templateId", "templateV2Id")


def _one_line(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and "\r" not in value and "\n" not in value


def _check_addresses(body: dict[str, Any], name: str, fields: dict[str, str]) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        fields[name] = "must be an array of email addresses"
        return []
    bad = [raw for raw in value if email(raw) is None]
    if bad:
        fields[name] = f"not valid email addresses: {bad!r}"
    return value


def _is_base64(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _check_attachments(value: object, fields: dict[str, str]) -> list[str]:
    """The attachments' names; their problems into ``fields``."""
    if value is None:
        return []
    if not isinstance(value, list):
        fields["attachments"] = "must be an array of {name, content, contentType} objects"
        return []
    names: list[str] = []
    for i, item in enumerate(value):
        where = f"attachments.{i}"
        if not isinstance(item, dict):
            fields[where] = "must be an object with name, content and contentType"
            continue
        name = item.get("name")
        if is_blank(name) or not _one_line(name):
            fields[f"{where}.name"] = "is required: the file name"
        else:
            names.append(name)
        if not _is_base64(item.get("content")):
            fields[f"{where}.content"] = "must be the file content in base64"
        content_type = item.get("contentType")
        if not _one_line(content_type) or "/" not in content_type:
            fields[f"{where}.contentType"] = "is required: a MIME type like 'text/plain'"
    return names


def handle(body: dict[str, Any], state: SandboxState) -> tuple[int, dict[str, Any]]:
    """Validate one request; the HTTP status and JSON body to answer with."""
    fields: dict[str, str] = {}
    sources = content_source(body, CONTENT_SOURCES, fields)

    addresses = recipients(body.get("to"), email)
    to: list[object] = body["to"]

    sender = body.get("fromEmail")
    if is_blank(sender):
        raise ApiError(106)

    subject = body.get("subject")
    if is_blank(subject) or not _one_line(subject):
        raise ApiError(114)
    assert isinstance(subject, str)

    reply_to = email(body.get("replyTo"))
    if reply_to is None:
        raise ApiError(116)

    from_email = email(sender)
    if from_email is not None and state.verify_sender is not None:
        state.verify_sender(NAME, from_email, reply_to)  # 115 / 117

    scheduled_at = api_date(body.get("scheduleDate"), 108)

    campaign_name = campaign(body, fields)

    if from_email is None:
        fields["fromEmail"] = "is not a valid email address"
    from_name = body.get("fromName")
    if from_name is not None and not _one_line(from_name):
        fields["fromName"] = "must be a one-line string"
    cc = _check_addresses(body, "cc", fields)
    bcc = _check_addresses(body, "bcc", fields)
    booleans(body, ("certified", "trackOpens", "trackClicks"), fields)
    values = sub(body, len(to), fields)
    attachments = _check_attachments(body.get("attachments"), fields)
    fixed = {OTP_CODE: otp_code(body.get("otpConfig"), fields)}
    if fields:
        raise validation_error(fields)
    assert from_email is not None

    html = body["body"] if "body" in sources else ""
    templates = [f"{name}={body[name]}" for name in sources if name != "body"]
    details = {
        "fromName": from_name,
        "replyTo": reply_to,
        "cc": cc,
        "bcc": bcc,
        "attachments": attachments,
        "scheduledAt": scheduled_at,
    }
    results = Results(state, NAME, campaign_name)
    for raw, address, text, own in results.rendered(to, addresses, html, values, fixed, "body"):
        # A template is rendered by the provider: its id and the values tell it apart.
        identity = orjson.dumps(own, option=orjson.OPT_SORT_KEYS).decode() if templates else ""
        results.accept(
            raw,
            address,
            subject,
            sender=from_email,
            details=details,
            entry={"scheduledAt": scheduled_at},
            content=digest(subject, text, identity, *templates),
        )
    return results.answer()
