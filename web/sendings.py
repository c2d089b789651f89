"""``/v1/sendings``: list sendings, follow one, read its results, cancel it, requeue it.

Everything here is the producer's (``Producer.status``, ``cancel``,
``requeue``, ``report``, ``ResultStore.iter_results``); this module only
reads the request and shapes the answer. Listings page by position in
``bs:sendings`` (creation time, id) so that a page costs the same with ten
sendings or a million; results and reports are streamed a batch of records at
a time, so memory stays flat for any number of recipients.

The models below describe the answers for the OpenAPI document; a test holds
them to the objects the producer really returns.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from jobs import channels
from jobs.errors import InvalidJob, SendingNotFound
from jobs.producer import Producer
from jobs.results import REQUEUEABLE, STATUSES, Position, Record
from web import context
from web.errors import BadRequest
from web.openapi import ApiRoute, Content, Doc, Param

__all__ = [
    "AccountStop",
    "Counts",
    "Delivery",
    "ResultLine",
    "SendingStatus",
    "SendingsPage",
    "choice",
    "routes",
]

STATES: Final = ("enqueuing", "running", "done")
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 1000
STREAM_BATCH: Final = 1000  # records per chunk of a streamed answer


class Counts(BaseModel):
    """Recipients by status; they always add up to ``total``."""

    total: int
    queued: int
    sending: int
    accepted: int
    rejected: int
    failed: int
    unknown: int
    expired: int
    cancelled: int
    suppressed: int


class Delivery(BaseModel):
    """What the provider's notifications said after accepted (recipients; a fact counts
    once per recipient). ``pending``: accepted, no final delivery state yet."""

    delivered: int
    undelivered: int
    rejected: int
    expired: int
    pending: int
    opened: int
    clicked: int
    bounced: int
    unsubscribed: int


class AccountStop(BaseModel):
    state: Literal["held", "halted"]
    code: int | None
    reason: str
    since: str
    scope: str = Field(description="'*' (the whole account) or a channel")


class SendingStatus(BaseModel):
    """The status object (the same as `bulksend status --json`); more keys may come."""

    model_config = ConfigDict(extra="allow")

    id: str
    kind: str
    state: Literal["enqueuing", "running", "done"]
    final: bool
    counts: Counts
    chunks: int | None
    created_at: str | None
    finished_at: str | None
    cancelled_at: str | None = None
    interrupted: str | None = None
    first_call_at: str | None = Field(None, description="when its first provider call went out")
    campaign: str | None = Field(None, description="its campaignName, when it has one")
    delivery: Delivery
    account: AccountStop | None = Field(
        None, description="the provider account's hold or halt that concerns this sending"
    )


class SendingsPage(BaseModel):
    data: list[SendingStatus]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null at the end (a filtered page "
        "may be short and still have one)"
    )


class ResultLine(Record):
    index: int  # the recipient's position in the sending, from 0


class Requeued(BaseModel):
    requeued: int = Field(description="recipients (unknown, or failed) queued again")


STATUS_PARAM: Final = Param(
    "status", "query", "only recipients in this state", {"type": "string", "enum": list(STATUSES)}
)


def _query(request: Request, name: str) -> str | None:
    """A query parameter; empty is the same as not given."""
    return request.query_params.get(name) or None


def choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    """A query parameter that must be one of ``allowed`` (422 naming it otherwise)."""
    value = _query(request, name)
    if value is not None and value not in allowed:
        raise InvalidJob(f"{name}: {value!r} is not one of {', '.join(allowed)}", field=name)
    return value


def _limit(request: Request) -> int:
    raw = _query(request, "limit") or str(DEFAULT_LIMIT)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidJob(f"limit: {raw!r} is not a number from 1 to {MAX_LIMIT}", field="limit")
    return int(raw)


def _since(request: Request) -> float | None:
    raw = _query(request, "created_after")
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidJob(
            f"created_after: {raw!r} is not an ISO 8601 date or time", field="created_after"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def encode_cursor(position: Position) -> str:
    """Opaque to clients, URL-safe: the last position of a page (creation epoch, id)."""
    created, sending_id = position
    return base64.urlsafe_b64encode(f"{created!r} {sending_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, sending_id = raw.decode().split(" ")
        if math.isfinite(float(created)):
            return float(created), sending_id
    except (binascii.Error, UnicodeError, ValueError):
        pass
    raise InvalidJob("cursor: not a cursor this API gave", field="cursor")


async def list_sendings(request: Request) -> Response:
    cursor = _query(request, "cursor")
    page, last = await context.producer(request).sendings(
        _limit(request),
        after=decode_cursor(cursor) if cursor else None,
        since=_since(request),
        state=choice(request, "state", STATES),
        kind=choice(request, "kind", tuple(c.kind for c in channels.all_channels())),
    )
    return JSONResponse({"data": page, "next_cursor": encode_cursor(last) if last else None})


async def _known(producer: Producer, sending_id: str) -> None:
    if await producer.status(sending_id) is None:
        raise SendingNotFound(sending_id)


async def get_sending(request: Request) -> Response:
    sending_id = request.path_params["id"]
    status = await context.producer(request).status(sending_id)
    if status is None:
        raise SendingNotFound(sending_id)
    return JSONResponse(status)


async def _lines(producer: Producer, sending_id: str, status: str | None) -> AsyncIterator[bytes]:
    batch: list[bytes] = []
    async for record in producer.store.iter_results(sending_id, batch=STREAM_BATCH):
        if status is None or record["status"] == status:
            batch.append(orjson.dumps(record))
            if len(batch) == STREAM_BATCH:
                yield b"\n".join(batch) + b"\n"
                batch = []
    if batch:
        yield b"\n".join(batch) + b"\n"


async def results(request: Request) -> Response:
    producer, sending_id = context.producer(request), request.path_params["id"]
    status = choice(request, "status", STATUSES)
    await _known(producer, sending_id)
    return StreamingResponse(
        _lines(producer, sending_id, status), media_type="application/x-ndjson"
    )


async def report(request: Request) -> Response:
    producer, sending_id = context.producer(request), request.path_params["id"]
    rows = producer.report(sending_id, choice(request, "status", STATUSES))
    header = await anext(rows)  # an unknown id is a 404 here, before the answer starts

    async def csv_text() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        n = 0
        async for row in rows:
            writer.writerow(row)
            n += 1
            if n % STREAM_BATCH == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    disposition = f'attachment; filename="{sending_id}.csv"'
    return StreamingResponse(
        csv_text(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition},
    )


async def cancel(request: Request) -> Response:
    return JSONResponse(await context.producer(request).cancel(request.path_params["id"]))


async def requeue(request: Request) -> Response:
    asked = [s for s in REQUEUEABLE if request.query_params.get(s) in ("1", "true")]
    if len(asked) != 1:
        reason = (
            "say what to requeue, exactly one of: ?unknown=1 (recipients whose outcome is "
            "unknown), ?failed=1 (recipients that failed)"
        )
        name = asked[-1] if asked else "unknown"  # both given: the second is too many
        raise BadRequest(f"{name}: {reason}", field=name, reason=reason)
    moved = await context.producer(request).requeue(request.path_params["id"], asked[0])
    return JSONResponse(Requeued(requeued=moved).model_dump())


_JSON_STATUS: Final = Content("application/json", SendingStatus)

routes: Final = [
    ApiRoute(
        "/v1/sendings",
        list_sendings,
        methods=["GET"],
        name="list_sendings",
        doc=Doc(
            summary="List sendings (and imports), newest first",
            answer="a page of status objects",
            content=Content("application/json", SendingsPage),
            params=(
                Param("state", "query", "only sendings in this state", {"enum": list(STATES)}),
                Param("kind", "query", "only sendings of this kind (a channel, or contacts)"),
                Param(
                    "created_after",
                    "query",
                    "only sendings created after this ISO 8601 date or time (UTC if no offset)",
                ),
                Param(
                    "limit",
                    "query",
                    f"page size, 1 to {MAX_LIMIT}",
                    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
                ),
                Param("cursor", "query", "next_cursor of the previous page"),
            ),
            errors=(422,),
        ),
    ),
    ApiRoute(
        "/v1/sendings/{id}",
        get_sending,
        methods=["GET"],
        name="get_sending",
        doc=Doc(
            summary="A sending's status object",
            answer="its state and counts",
            content=_JSON_STATUS,
            errors=(404,),
        ),
    ),
    ApiRoute(
        "/v1/sendings/{id}/results",
        results,
        methods=["GET"],
        name="sending_results",
        doc=Doc(
            summary="Every recipient's record, one JSON object a line, in the order handed in",
            answer="JSON lines, streamed",
            content=Content("application/x-ndjson", ResultLine),
            params=(STATUS_PARAM,),
            errors=(404, 422),
        ),
    ),
    ApiRoute(
        "/v1/sendings/{id}/report",
        report,
        methods=["GET"],
        name="sending_report",
        doc=Doc(
            summary="The recipients as CSV, every cell formula-neutralised (an import's: its "
            "rows as in the file, plus row and reason)",
            answer="CSV, streamed",
            content=Content("text/csv", {"type": "string"}),
            params=(STATUS_PARAM,),
            errors=(404, 422),
        ),
    ),
    ApiRoute(
        "/v1/sendings/{id}/cancel",
        cancel,
        methods=["POST"],
        name="cancel_sending",
        doc=Doc(
            summary="Cancel: recipients not yet sent are recorded cancelled and never sent",
            answer="the status object after cancelling",
            content=_JSON_STATUS,
            errors=(404,),
        ),
    ),
    ApiRoute(
        "/v1/sendings/{id}/requeue",
        requeue,
        methods=["POST"],
        name="requeue_sending",
        doc=Doc(
            summary="Send again, on purpose, the recipients whose outcome is unknown (they "
            "may have been received) or that failed (their attempts or age ran out)",
            answer="how many were queued again",
            content=Content("application/json", Requeued),
            params=(
                Param(
                    "unknown",
                    "query",
                    "1: requeue the recipients recorded unknown (give exactly one of unknown, "
                    "failed)",
                    {"type": "string", "enum": ["1"]},
                ),
                Param(
                    "failed",
                    "query",
                    "1: requeue the recipients recorded failed, their attempts counted afresh "
                    "(give exactly one of unknown, failed)",
                    {"type": "string", "enum": ["1"]},
                ),
            ),
            errors=(400, 404),
        ),
    ),
]
