"""``POST /api/rest/whatsapp`` — "Send WhatsApp template" of ``messaging-api.txt``.

What the sandbox checks; the first documented code found wins (same answer
shapes as ``sandbox.sms``, except where this section shows its own texts):

====================  =====================================================
``templateId``        missing or null → 140 "Template missing" (the "Errors"
                      table); not a positive integer → 140 "Invalid template"
                      (the section's example)
``from``              missing, null or blank → 106
``messages``          not an array, or no entry has a ``to`` that is a valid
                      number → 102 "No valid recipients"
``campaignName``      given but blank → 126
====================  =====================================================

Then, as one 422 with ``fields``: ``from`` not a string of 1 to 15 digits (the
job model's reading: WhatsApp senders are phone numbers; every such number
counts as registered);
``campaignName`` / ``tags`` types and tags without ``campaignName``; for each
message N, ``messages.N.headerFields`` / ``bodyFields`` /
``callToActionFields`` / ``buttonAnswers`` not arrays of strings,
``messages.N.defaultAnswer`` not a string (the example's form) or an array of
strings (the table's type), ``messages.N.location`` not an object with string
``lat`` (-90..90) and ``long`` (-180..180) and optional string ``name`` /
``address``.

Then each message, in order: ``to`` missing, not a string or not a number →
``accepted: false`` with 102 "The messages.N.to field does not contain a valid
phone number" (N from 0, as the doc's example). Result entries are
``accepted``, ``to``, ``id`` (a UUID). Whether the fields fit the template is
not checked (the sandbox has no templates). A duplicate is the same number,
template and message parameters.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from jobs.fields import is_int, normalize_phone, sender_problem
from sandbox.common import Results, campaign, is_blank, recipients
from sandbox.errors import ApiError, error_detail, validation_error
from sandbox.state import SandboxState

NAME = "whatsapp"
PATH = "/api/rest/whatsapp"

STRING_ARRAYS = ("headerFields", "bodyFields", "callToActionFields", "buttonAnswers")
COORDINATES = (("lat", 90.0), ("long", 180.0))


def _to(message: object) -> str | None:
    if not isinstance(message, dict) or not isinstance(message.get("to"), str):
        return None
    return normalize_phone(message["to"])


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _coordinate(value: object, limit: float) -> bool:
    if not isinstance(value, str):
        return False
    try:
        number = float(value)
    except ValueError:
        return False
    return -limit <= number <= limit  # False for nan


def _check_location(value: object, where: str, fields: dict[str, str]) -> None:
    if not isinstance(value, dict):
        fields[where] = "must be an object with lat and long"
        return
    for name, limit in COORDINATES:
        if not _coordinate(value.get(name), limit):
            fields[f"{where}.{name}"] = f"is required: a number from -{limit:g} to {limit:g}"
    for name in ("name", "address"):
        if value.get(name) is not None and not isinstance(value[name], str):
            fields[f"{where}.{name}"] = "must be a string"


def _check_message(message: dict[str, Any], i: int, fields: dict[str, str]) -> None:
    where = f"messages.{i}"
    for name in STRING_ARRAYS:
        if message.get(name) is not None and not _strings(message[name]):
            fields[f"{where}.{name}"] = "must be an array of strings"
    answer = message.get("defaultAnswer")
    if answer is not None and not (isinstance(answer, str) or _strings(answer)):
        fields[f"{where}.defaultAnswer"] = "must be a string"
    if message.get("location") is not None:
        _check_location(message["location"], f"{where}.location", fields)


def _summary(template_id: int, message: dict[str, Any]) -> str:
    """The ``text`` of /_sandbox/messages: the template and its body fields."""
    body_fields = message.get("bodyFields") or []
    return f"template {template_id}" + (f": {' | '.join(body_fields)}" if body_fields else "")


def _new_id() -> str:
    return str(uuid.uuid4())


def handle(body: dict[str, Any], state: SandboxState) -> tuple[int, dict[str, Any]]:
    """Validate one request; the HTTP status and JSON body to answer with."""
    template_id = body.get("templateId")
    if template_id is None:
        raise ApiError(140)
    if not is_int(template_id) or template_id < 1:
        raise ApiError(140, description="Invalid template")

    sender = body.get("from")
    if is_blank(sender):
        raise ApiError(106)

    phones = recipients(body.get("messages"), _to)
    messages: list[object] = body["messages"]

    fields: dict[str, str] = {}
    campaign_name = campaign(body, fields)
    if not isinstance(sender, str) or sender_problem(sender) or not sender.isdigit():
        fields["from"] = "must be the registered sender's phone number: at most 15 digits"
    for i, message in enumerate(messages):
        if isinstance(message, dict):
            _check_message(message, i, fields)
    if fields:
        raise validation_error(fields)
    assert isinstance(sender, str)

    results = Results(state, NAME, campaign_name, new_id=_new_id)
    for i, message in enumerate(messages):
        number = phones[i]
        raw = message.get("to") if isinstance(message, dict) else None
        if number is None or not isinstance(message, dict):
            description = f"The messages.{i}.to field does not contain a valid phone number"
            results.invalid(raw, error_detail(102, description=description))
            continue
        params = {key: value for key, value in message.items() if key != "to"}
        results.accept(
            raw,
            number,
            _summary(template_id, message),
            sender=sender,
            details={"templateId": template_id, "parameters": params},
            entry={},
            content=orjson.dumps([template_id, params], option=orjson.OPT_SORT_KEYS).decode(),
        )
    return results.answer()
