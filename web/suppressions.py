"""``/v1/suppressions``: the addresses never to be sent to again, one list per channel.

A list is one of the provider's blacklist types — ``sms`` (SMS, landing SMS,
WhatsApp), ``voice`` (voice, voice-audio), ``mailing`` (email) — and everything
here is ``jobs.suppression``'s; this module reads the request and shapes the
answer. Listings page with the list's own HSCAN cursor, so a page costs the same
with ten entries or ten million. Reads need a token, writes the API token
(``web.auth`` decides by method); with ``BULKSEND_BLACKLIST_SYNC`` on, what is
added or removed here also goes to the provider's blacklist at the next sync.
"""

from __future__ import annotations

import io
from typing import Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobs import suppression
from jobs.errors import InvalidJob
from jobs.results import now_iso
from web import context
from web.enqueue import json_object
from web.errors import BadRequest, ErrorBody, ErrorDetail
from web.openapi import ApiRoute, Content, Doc, Param

__all__ = ["NewSuppression", "Refused", "Suppression", "SuppressionsImported", "routes"]

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 1000
TEXT_TYPES: Final = ("text/plain", "text/csv")

ListName = Literal["sms", "voice", "mailing"]


class Suppression(BaseModel):
    """One address on a list, as it was first added."""

    channel: ListName
    address: str = Field(description="normalized: an email lower-cased, a phone its digits")
    reason: str
    at: str = Field(description="when it was added (ISO 8601)")
    source: Literal["manual", "import", "event", "provider"]
    sending: str | None = Field(description="the sending it came from (an event), if any")


class SuppressionsPage(BaseModel):
    data: list[Suppression]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null at the end (a page may hold "
        "more or fewer entries than limit)"
    )


class NewSuppression(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: ListName = Field(
        description="sms (also landing, whatsapp), voice (also voice-audio), mailing (email)"
    )
    address: str = Field(
        min_length=1,
        max_length=320,
        description="a phone (at least 6 digits) or an email address",
    )
    reason: str | None = Field(
        None, max_length=suppression.MAX_REASON, description="why; default: added by hand"
    )


class Refused(BaseModel):
    line: int = Field(description="the line's number in the body, from 1")
    reason: str


class SuppressionsImported(BaseModel):
    added: int = Field(description="addresses new on the list (those already on it are not)")
    refused: list[Refused]


def _query(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


def _list(request: Request) -> str:
    return suppression.check_list(_query(request, "channel"))


def _limit(request: Request) -> int:
    raw = _query(request, "limit") or str(DEFAULT_LIMIT)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidJob(f"limit: {raw!r} is not a number from 1 to {MAX_LIMIT}", field="limit")
    return int(raw)


def _cursor(request: Request) -> int:
    raw = _query(request, "cursor") or "0"
    if not raw.isdigit() or len(raw) > 20:
        raise InvalidJob("cursor: not a cursor this API gave", field="cursor")
    return int(raw)


async def list_suppressions(request: Request) -> Response:
    list_name, limit, cursor = _list(request), _limit(request), _cursor(request)
    redis = context.producer(request).redis
    entries, after = await suppression.page(redis, list_name, cursor, limit)
    return JSONResponse({"data": entries, "next_cursor": str(after) if after else None})


def _new(data: dict[str, object]) -> NewSuppression:
    try:
        return NewSuppression.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "body"
        raise InvalidJob(f"{field}: {error['msg']}", field=field, reason=error["msg"]) from None


async def add_suppression(request: Request) -> Response:
    new = _new(await json_object(request))
    redis, settings = context.producer(request).redis, context.settings(request)
    added = await suppression.add(
        redis,
        new.channel,
        new.address,
        new.reason or suppression.DEFAULT_REASON,
        push=settings.blacklist_sync,
    )
    entry = await suppression.get(redis, new.channel, new.address) or suppression.Entry(
        reason=new.reason or suppression.DEFAULT_REASON, at=now_iso(), source="manual", sending=None
    )  # (removed again in between: what was added)
    shown = suppression.listed(new.channel, suppression.normalize(new.channel, new.address), entry)
    return JSONResponse(shown, status_code=201 if added else 200)


async def remove_suppression(request: Request) -> Response:
    list_name = suppression.check_list(request.path_params["channel"])
    address = request.path_params["address"]
    settings = context.settings(request)
    redis = context.producer(request).redis
    if await suppression.remove(redis, list_name, address, push=settings.blacklist_sync):
        return Response(status_code=204)
    shown = suppression.normalize(list_name, address)
    detail = ErrorDetail(
        field="address", reason=f"{shown!r} is not on the {list_name} list", code=None
    )
    return JSONResponse(ErrorBody(error=detail).model_dump(mode="json"), status_code=404)


async def import_suppressions(request: Request) -> Response:
    list_name = _list(request)
    media = request.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
    if media not in TEXT_TYPES:
        reason = "a text/csv or text/plain body is expected: one address a line, or a CSV"
        raise BadRequest(f"body: {reason}", field="body", reason=reason)
    try:
        text = (await request.body()).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidJob("body: not UTF-8 text", field="body") from None
    if not text.strip():
        raise InvalidJob("body: no address in it (one a line, or a CSV)", field="body")
    reason = _query(request, "reason") or "imported over the API"
    added, refused = await suppression.import_lines(
        context.producer(request).redis,
        list_name,
        io.StringIO(text, newline=""),
        reason,
        push=context.settings(request).blacklist_sync,
    )
    answer = {"added": added, "refused": [{"line": n, "reason": why} for n, why in refused]}
    return Response(orjson.dumps(answer), media_type="application/json")


CHANNEL_PARAM: Final = Param(
    "channel",
    "query",
    "the list: sms (also landing, whatsapp), voice (also voice-audio), mailing (email)",
    {"type": "string", "enum": list(suppression.LISTS)},
    required=True,
)

routes: Final = [
    ApiRoute(
        "/v1/suppressions",
        list_suppressions,
        methods=["GET"],
        name="list_suppressions",
        doc=Doc(
            summary="The addresses on a suppression list, a page at a time (in no order)",
            answer="a page of entries",
            content=Content("application/json", SuppressionsPage),
            params=(
                CHANNEL_PARAM,
                Param(
                    "limit",
                    "query",
                    f"about this many entries a page, 1 to {MAX_LIMIT}",
                    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
                ),
                Param("cursor", "query", "next_cursor of the previous page"),
            ),
            errors=(422,),
        ),
    ),
    ApiRoute(
        "/v1/suppressions",
        add_suppression,
        methods=["POST"],
        name="add_suppression",
        doc=Doc(
            summary="Suppress an address: never sent to again on that channel (201; 200 with "
            "its first entry, unchanged, when it was already)",
            answer="its entry",
            status=201,
            content=Content("application/json", Suppression),
            body=Content("application/json", NewSuppression),
            errors=(400, 413, 422),
        ),
    ),
    ApiRoute(
        "/v1/suppressions/import",
        import_suppressions,
        methods=["POST"],
        name="import_suppressions",
        doc=Doc(
            summary="Suppress every address of a text body: one a line, or a CSV (its address, "
            "phone or email column, else its first); bad lines are refused, the rest added",
            answer="how many were added, and the refused lines",
            content=Content("application/json", SuppressionsImported),
            body=Content("text/csv", {"type": "string"}),
            params=(
                CHANNEL_PARAM,
                Param("reason", "query", "why, for every address (default: imported over the API)"),
            ),
            errors=(400, 413, 422),
        ),
    ),
    ApiRoute(
        "/v1/suppressions/{channel}/{address}",
        remove_suppression,
        methods=["DELETE"],
        name="remove_suppression",
        doc=Doc(
            summary="Take an address off a list: it may be sent to again",
            answer="removed",
            status=204,
            errors=(404, 422),
        ),
    ),
]
