"""``/hooks/dlr/{secret}`` and ``/hooks/events/{secret}``: the provider's notifications.

Sources: ``messaging-api.txt`` → "Delivery notifications" (a GET per message and
part to the ``notificationUrl`` our workers add, ``jobs.events.dlr_url``) and
"Event Notifications" (an ``application/x-www-form-urlencoded`` POST per event to
the URL configured on the account). The secret in the path is the credential
(the provider sends no other), compared in constant time; a wrong one is a 404
and records nothing.

A notification is answered 200 only once it is recorded in Redis (whose AOF has
it before the reply is sent), so the provider's 5 progressive retries cover our
outages: while Redis is away the answer is 503 and the provider tries again. A
malformed notification is logged, counted and answered 200: retrying it cannot
help.

Requests arriving together are applied together: ``EventSink`` gathers them
into one Lua call (``jobs.events.LUA_INGEST``) and answers each when that call
has returned — one round trip for many events, which is what lets one process
ingest thousands a second. Counting for ``/metrics`` follows each batch and
never holds an answer back.

The path holds the secret and the query a phone number, so the access log shows
these routes as ``/hooks/dlr/…`` (``RedactHooks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from jobs import keys
from jobs.events import LUA_INGEST, Event, Malformed, from_dlr, from_event, ingest_args
from jobs.settings import Settings
from web import context
from web.openapi import ApiRoute, Content, Doc, Param
from worker.metrics import bucket_of

__all__ = ["PREFIX", "EventSink", "RedactHooks", "announce_forever", "routes"]

PREFIX: Final = "/hooks/"
MAX_BATCH: Final = 500
COUNT_TIMEOUT_S: Final = 0.5
log = logging.getLogger("bulksend.hooks")

_OK: Final = PlainTextResponse("ok")


class EventSink:
    """Applies events in batches: each ``put`` returns its event's outcome once recorded."""

    def __init__(self, redis: Any, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.script = redis.register_script(LUA_INGEST)
        self.pending: list[tuple[Event, asyncio.Future[str]]] = []
        self.task: asyncio.Task[None] | None = None

    async def put(self, event: Event) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending.append((event, future))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._drain())
        return await future

    async def close(self) -> None:
        """Wait for the batch in hand (and its counting) to be done."""
        if self.task is not None:
            await self.task

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # requests that arrived with this one join its batch
        while self.pending:
            batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
            try:
                raw = await self.script(args=ingest_args([e for e, _ in batch], self.ttl_s))
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            outcomes = [o.decode() if isinstance(o, bytes) else str(o) for o in raw]
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
            await self._count(outcomes)

    async def _count(self, outcomes: list[str]) -> None:
        counts: dict[str, float] = {}
        now = time.time()
        for outcome in outcomes:
            name, _, accepted_at = outcome.partition(" ")
            counts[_hook(name)] = counts.get(_hook(name), 0) + 1
            if name == "delivered" and accepted_at:
                with contextlib.suppress(ValueError):
                    seconds = max(now - datetime.fromisoformat(accepted_at).timestamp(), 0.0)
                    field = keys.metrics_field(keys.METRICS_DELIVERY_LATENCY, bucket_of(seconds))
                    counts[field] = counts.get(field, 0) + 1
                    total = keys.metrics_field(keys.METRICS_DELIVERY_LATENCY_SUM)
                    counts[total] = counts.get(total, 0) + seconds
        await count(self.redis, counts)


async def count(redis: Any, counts: dict[str, float]) -> None:
    """Add to ``/metrics``' counters; bounded in time, never raises."""
    try:
        async with asyncio.timeout(COUNT_TIMEOUT_S), redis.pipeline(transaction=False) as pipe:
            for name, n in counts.items():
                if isinstance(n, int):
                    pipe.hincrby(keys.METRICS, name, n)
                else:
                    pipe.hincrbyfloat(keys.METRICS, name, n)
            await pipe.execute()
    except Exception as exc:
        log.warning("counting notifications for /metrics failed: %s", exc)


ANNOUNCE_S: Final = 3600.0
ANNOUNCE_TTL_S: Final = 86400


async def announce_forever(redis: Any) -> None:
    """Say that notifications are received here (``keys.HOOKS``), so that workers link
    each accepted message id to its recipient; renewed hourly, kept a day past the last
    renewal so that a restart loses no link."""
    while True:
        try:
            await redis.set(keys.HOOKS, "1", ex=ANNOUNCE_TTL_S)
            await asyncio.sleep(ANNOUNCE_S)
        except Exception as exc:  # Redis away: try again soon
            log.warning("announcing the hooks failed: %s", exc)
            await asyncio.sleep(1.0)


def _sink(request: Request) -> EventSink:
    sink: EventSink | None = getattr(request.app.state, "event_sink", None)
    if sink is None:
        settings = context.settings(request)
        sink = EventSink(context.producer(request).redis, settings.result_ttl_days * 86400)
        request.app.state.event_sink = sink
    return sink


def _secret_ok(settings: Settings, given: str) -> bool:
    secret = settings.hook_secret
    expected = secret.get_secret_value().encode() if secret is not None else b""
    return bool(expected) and hmac.compare_digest(given.encode(), expected)


async def _record(request: Request, parse: Any, fields: dict[str, str]) -> Response:
    try:
        event = parse(fields)
    except Malformed as exc:
        log.warning("a malformed notification was ignored: %s", exc)
        await count(context.producer(request).redis, {_hook("malformed"): 1})
        return _OK
    try:
        outcome = await _sink(request).put(event)
    except Exception as exc:  # Redis away: the provider retries
        log.warning("a notification could not be recorded, answered 503: %s", exc)
        return PlainTextResponse("not recorded, retry later", status_code=503)
    if outcome == "unknown":
        log.info("a notification for message %s names no recipient of ours", event.message_id)
    return _OK


def _hook(outcome: str) -> str:
    return keys.metrics_field(keys.METRICS_HOOKS, outcome)


async def dlr(request: Request) -> Response:
    if not _secret_ok(context.settings(request), request.path_params["secret"]):
        raise HTTPException(404)  # the API's error shape, as any unknown path
    return await _record(request, from_dlr, dict(request.query_params))


async def event(request: Request) -> Response:
    if not _secret_ok(context.settings(request), request.path_params["secret"]):
        raise HTTPException(404)  # the API's error shape, as any unknown path
    body = (await request.body()).decode("utf-8", errors="replace")
    return await _record(request, from_event, dict(parse_qsl(body, keep_blank_values=True)))


_DLR_PARAMS: Final = tuple(
    Param(name, "query", what)
    for name, what in [
        ("i", "%i: the message id"), ("st", "%s: the status (DELIVRD, UNDELIV, …)"),
        ("n", "%n: the part number"), ("y", "%y: the DLR date"), ("t", "%t: the date sent"),
        ("s", "the sending (our own URL's)"), ("r", "the recipient's index (our own URL's)"),
        ("P", "%P: the phone"), ("p", "%p: the sender"), ("S", "%S: the sending id"),
        ("C", "%C: the campaign id"), ("c", "%c: the cost"),
    ]
)  # fmt: skip

routes: Final = [
    ApiRoute(
        "/hooks/dlr/{secret}",
        dlr,
        methods=["GET"],
        name="hook_dlr",
        doc=Doc(
            summary="The provider's delivery notification (messaging-api.txt → Delivery "
            "notifications), to the notificationUrl workers add; the secret is the credential",
            answer="ok: recorded (or malformed, which retrying cannot help)",
            content=Content("text/plain", {"type": "string"}),
            params=_DLR_PARAMS,
            errors=(404,),
            public=True,
        ),
    ),
    ApiRoute(
        "/hooks/events/{secret}",
        event,
        methods=["POST"],
        name="hook_events",
        doc=Doc(
            summary="The provider's event notification (messaging-api.txt → Event "
            "Notifications), a form POST; the secret is the credential",
            answer="ok: recorded (or malformed, which retrying cannot help)",
            content=Content("text/plain", {"type": "string"}),
            body=Content(
                "application/x-www-form-urlencoded",
                {
                    "type": "object",
                    "properties": {
                        k: {"type": "string"}
                        for k in ("id", "channel", "event", "eventDate", "extra", "smtpResponse")
                    },
                },
            ),
            errors=(404,),
            public=True,
        ),
    ),
]


class RedactHooks(logging.Filter):
    """Uvicorn's access log line for a hook shows neither the secret nor the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and str(args[2]).startswith(PREFIX):
            path = str(args[2])
            kind = path[len(PREFIX) :].split("/", 1)[0]
            record.args = (*args[:2], f"{PREFIX}{kind}/…", *args[3:])
        return True
