"""What operators and their tools poll: liveness, readiness and metrics.

``/healthz`` says only that the process answers (restart it if not);
``/readyz`` that it can do its work — Redis answers, and its maxmemory-policy
never evicts a key (``jobs.redis_safety``) — so a load balancer sends it nothing
while Redis is away or would lose work (the process starts without Redis for
that reason, and a Redis that comes up evicting is found here, each time).
``/metrics`` is rendered by ``web.metrics`` (Prometheus text, read from Redis,
so every replica answers the same); it is imported when first asked for, and
until that module exists the route says so with a 503.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from typing import Any, Final

from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from jobs import connection, redis_safety
from jobs.errors import UnsafeRedis
from jobs.settings import Settings
from web import context
from web.errors import error_response
from web.openapi import ApiRoute, Content, Doc

__all__ = ["routes"]

READY_TIMEOUT_S: Final = 2.0
METRICS_MODULE: Final = "web.metrics"

Render = Callable[[Any, Settings], Awaitable[tuple[bytes, str]]]


class Health(BaseModel):
    status: str


async def healthz(request: Request) -> Response:
    return JSONResponse(Health(status="ok").model_dump())


async def readyz(request: Request) -> Response:
    """Ready: Redis answers ``INFO memory`` (one round trip, as PING was) with a policy
    that keeps every key; 503 with the reason otherwise."""
    redis = context.producer(request).redis
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            memory = await redis_safety.read_memory(redis)
            if memory is None:  # INFO not permitted: that it answers is all we can know
                await redis.ping()
    except (RedisError, TimeoutError, OSError):
        return error_response(RedisConnectionError())
    where = connection.display(context.settings(request).redis_url)
    problem = redis_safety.eviction_problem(memory, where) if memory is not None else None
    if problem is not None:
        return error_response(UnsafeRedis(problem))
    return JSONResponse(Health(status="ready").model_dump())


def _renderer() -> Render | None:
    try:
        module = importlib.import_module(METRICS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != METRICS_MODULE:
            raise  # the module is there and broken: a 500 with its traceback in the log
        return None
    render: Render = module.render
    return render


async def metrics(request: Request) -> Response:
    render = _renderer()
    if render is None:
        return PlainTextResponse("metrics not built\n", status_code=503)
    body, content_type = await render(context.producer(request).redis, context.settings(request))
    return Response(body, headers={"Content-Type": content_type})


def routes(settings: Settings) -> list[ApiRoute]:
    health = Content("application/json", Health)
    return [
        ApiRoute(
            "/healthz",
            healthz,
            methods=["GET"],
            name="healthz",
            doc=Doc(
                summary="Liveness: the process answers", answer="up", content=health, public=True
            ),
        ),
        ApiRoute(
            "/readyz",
            readyz,
            methods=["GET"],
            name="readyz",
            doc=Doc(
                summary="Readiness: Redis answers, and never evicts a key (maxmemory-policy)",
                answer="ready",
                content=health,
                errors=(503,),
                public=True,
            ),
        ),
        ApiRoute(
            "/metrics",
            metrics,
            methods=["GET"],
            name="metrics",
            doc=Doc(
                summary="Prometheus metrics, the cluster-wide view (read from Redis); no token "
                "with BULKSEND_METRICS_PUBLIC",
                answer="Prometheus text format",
                content=Content("text/plain", {"type": "string"}),
                public=settings.metrics_public,
            ),
        ),
    ]
