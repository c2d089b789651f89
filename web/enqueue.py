"""``POST /v1/{kind}``: a sending in the provider's own JSON, for every channel the registry offers.

The body is exactly what the provider documents for that channel (its API
names, email attachments base64), validated by the same model that validates
``bulksend send`` and ``Producer.submit`` (``jobs.base.build``), then submitted
with the producer's own checks: one path into the queue whatever the door. The
routes are made from the registry (``Channel.sendable``), so a new channel gets
its route, its schema and its documentation without a line here.

``Idempotency-Key`` is the producer's idempotency key: the sending id derives
from it, so the same key with the same body answers the same id and enqueues
nothing new, and the same key with another body is a 409.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobs import channels
from jobs.base import build
from jobs.channels import Channel
from jobs.errors import InvalidJob
from web import context
from web.errors import BadRequest
from web.openapi import ApiRoute, Content, Doc, Param

__all__ = ["IDEMPOTENCY_KEY", "Accepted", "accepted", "idempotency_key", "json_object", "routes"]

MAX_KEY_LENGTH: Final = 255

IDEMPOTENCY_KEY: Final = Param(
    "Idempotency-Key",
    "header",
    "same key and same body: the same id, nothing enqueued again; same key, another body: 409",
    {"type": "string", "maxLength": MAX_KEY_LENGTH},
)


class Accepted(BaseModel):
    id: str = Field(description="the sending's id; follow it at /v1/sendings/{id}")


def accepted(sending_id: str) -> Response:
    """202 with the id, and where to follow it."""
    return JSONResponse(
        Accepted(id=sending_id).model_dump(),
        status_code=202,
        headers={"Location": f"/v1/sendings/{sending_id}"},
    )


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not (0 < len(key.strip()) <= MAX_KEY_LENGTH):
        raise InvalidJob(
            "Idempotency-Key: 1 to 255 characters",
            field="Idempotency-Key",
            reason=f"must be 1 to {MAX_KEY_LENGTH} characters",
        )
    return key


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or 400."""
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"body: not JSON ({exc})", field="body", reason=f"not JSON: {exc}"
        ) from None
    if not isinstance(data, dict):
        reason = f"a JSON object is expected, not {type(data).__name__}"
        raise BadRequest(f"body: {reason}", field="body", reason=reason)
    return data


def _route(channel: Channel) -> ApiRoute:
    async def enqueue(request: Request) -> Response:
        data = await json_object(request)
        key = idempotency_key(request)
        job = build(channel.model, data)
        return accepted(await context.producer(request).submit(job, key))

    doc = Doc(
        summary=f"Enqueue a sending: {channel.summary}",
        answer="accepted: every recipient is recorded and its chunks are queued",
        status=202,
        content=Content("application/json", Accepted),
        body=Content("application/json", channel.model),
        params=(IDEMPOTENCY_KEY,),
        errors=(400, 409, 413, 422, 507),
        headers={"Location": "/v1/sendings/{id}"},
    )
    path = f"/v1/{channel.kind}"
    return ApiRoute(path, enqueue, methods=["POST"], doc=doc, name=f"enqueue_{channel.kind}")


def routes() -> list[ApiRoute]:
    """One route per sendable channel of the registry."""
    return [_route(channel) for channel in channels.all_channels() if channel.sendable]
