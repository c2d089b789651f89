"""``/api/rest/v2/blacklist/{type}`` — "Blacklist" of ``messaging-api.txt``.

Why: an unsubscribe, a complaint or a hard bounce puts a recipient on the account's
blacklist; a client keeps its own suppression list in step with it, and a test must
be able to see both sides. The sandbox's own events add entries too
(``sandbox.outcomes``: ``hard_bounced`` and ``complaint`` as definitive,
``unsubscribed`` and ``unsubscribed_landing`` not).

Routes (Basic auth; counted under ``channels`` as ``blacklist``, faults apply)::

    GET    /api/rest/v2/blacklist/{type}   200 {"data": [entry, ...], "meta": {"pagination": {
                                             "total", "count", "per_page", "current_page",
                                             "total_pages", "links": {"next": url}}}}
    PUT    /api/rest/v2/blacklist/{type}   200 {"data": {"type", "recipient", "isDefinitive",
             {"recipient": "..."}                       "campaignName", "createdAt"}}
    DELETE /api/rest/v2/blacklist/{type}   204, no body
             {"recipient": "..."}

An entry is the doc's ``{"type", "recipient", "isDefinitive", "sendingId",
"campaignName", "createdAt"}`` (``createdAt`` as ``2020-01-01T00:00:00+00:00``;
``sendingId`` and ``campaignName`` null for one added by PUT). The answer to PUT is
the doc's, which shows no ``sendingId``; a recipient already listed is answered with
its entry as it is (200, nothing changes).

``type`` is ``sms``, ``mailing`` or ``voice``; another one is not a route: 404
``{"error": {"code": 404, "description": "Resource not found"}}``, as the sandbox
answers anything unknown. Recipients are kept normalized as the sending channels read
them: a phone's digits (``+`` and spaces dropped) for sms and voice, an address with
its domain lower-cased for mailing.

Refusals are the contacts routes' (Laravel's, ``sandbox.contacts``): 422 ``{"error":
{"code": 422, "description": "..."}}`` with one description —
"The recipient field is required.", "The recipient must be a string.", "The recipient
format is invalid." (not a number / address of that type); for GET, "The limit must
be an integer.", "The limit must be at least 1.", "The limit must not be greater than
1000.", "The sending id must be an integer.". A PUT or DELETE body that is not a JSON
object → 400 / 125 as on every route; DELETE of a recipient not listed → 404
"Resource not found".

GET filters (all those given must match): ``recipient`` (normalized as above; one
that cannot be is matched as given), ``sendingId``. ``limit``: 1 to 1000, default 100;
``page`` from 1 (not a positive integer → 1; past the last page → no data). Entries
are listed oldest first. ``links`` has ``next`` (the request's URL with the next
``page``) when there is a next page, else it is ``{}`` — the doc shows only ``next``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from sandbox.common import email, phone
from sandbox.contacts import Call, invalid, pagination, paging
from sandbox.errors import NOT_FOUND, HttpError

NAME: Final = "blacklist"  # stats and faults name
PATH: Final = "/api/rest/v2/blacklist"


# "Blacklist type: sms, mailing, voice." → how its recipients are normalized.
TYPES: Final[dict[str, Callable[[object], str | None]]] = {
    "sms": phone,
    "mailing": email,
    "voice": phone,
}


def _now() -> str:
    return datetime.fromtimestamp(int(time.time()), UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _not_found() -> HttpError:
    return HttpError(*NOT_FOUND)


class Blacklist:
    """The blacklists of one sandbox, all types (a ``sandbox.state.Store``)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # (type, recipient) → entry, in the order added.
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}
        self.added = self.removed = self.from_events = 0

    def stats_json(self) -> dict[str, Any]:
        return {
            "entries": len(self.entries),
            "added": self.added,
            "removed": self.removed,
            "from_events": self.from_events,
        }

    def all_json(self) -> dict[str, Any]:
        """``GET /_sandbox/blacklist``: every entry, all types, oldest first."""
        return {"count": len(self.entries), "data": list(self.entries.values())}

    def add(
        self,
        kind: str,
        recipient: str,
        *,
        definitive: bool = False,
        sending_id: int | None = None,
        campaign_name: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The entry of ``recipient`` (normalized) and whether it is new."""
        key = (kind, recipient)
        found = self.entries.get(key)
        if found is not None:
            return found, False
        entry = self.entries[key] = {
            "type": kind,
            "recipient": recipient,
            "isDefinitive": definitive,
            "sendingId": sending_id,
            "campaignName": campaign_name,
            "createdAt": _now(),
        }
        return entry, True

    def from_event(
        self, kind: str, recipient: str, definitive: bool, sending_id: int, campaign: str | None
    ) -> None:
        """What the sandbox's own events add (``sandbox.outcomes``)."""
        _, new = self.add(
            kind, recipient, definitive=definitive, sending_id=sending_id, campaign_name=campaign
        )
        self.from_events += new

    def put(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        entry, new = self.add(kind, _recipient(kind, body))
        self.added += new
        return {"data": {key: value for key, value in entry.items() if key != "sendingId"}}

    def delete(self, kind: str, body: dict[str, Any]) -> None:
        if self.entries.pop((kind, _recipient(kind, body)), None) is None:
            raise _not_found()
        self.removed += 1

    def list_json(self, kind: str, call: Call) -> dict[str, Any]:
        limit, page = paging(call, refuse_over=True)
        wanted = call.param("recipient")
        if wanted is not None:
            wanted = TYPES[kind](wanted) or wanted.strip()
        sending = _sending_id(call.param("sendingId"))
        found = [
            entry
            for (of, recipient), entry in self.entries.items()
            if of == kind
            and (wanted is None or recipient == wanted)
            and (sending is None or entry["sendingId"] == sending)
        ]
        data = found[(page - 1) * limit : page * limit]
        meta = pagination(
            call, f"{PATH}/{kind}", len(found), len(data), limit, page, previous=False
        )
        return {"data": data, "meta": meta}


def _recipient(kind: str, body: dict[str, Any]) -> str:
    """The body's ``recipient``, normalized for ``kind``; 422 when missing or bad."""
    value = body.get("recipient")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise invalid("The recipient field is required.")
    if not isinstance(value, str):
        raise invalid("The recipient must be a string.")
    normalized = TYPES[kind](value)
    if normalized is None:
        raise invalid("The recipient format is invalid.")
    return normalized


def _sending_id(raw: str | None) -> int | None:
    if raw is None or not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        raise invalid("The sending id must be an integer.") from None


def handle(call: Call, store: Blacklist) -> tuple[int, dict[str, Any] | None]:
    """One request to ``/api/rest/v2/blacklist/{type}``: (status, JSON body or None)."""
    kind = call.item
    if kind not in TYPES:
        raise _not_found()
    if call.method == "PUT":
        assert call.body is not None
        return 200, store.put(kind, call.body)
    if call.method == "DELETE":
        assert call.body is not None
        store.delete(kind, call.body)
        return 204, None
    return 200, store.list_json(kind, call)
