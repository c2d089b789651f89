"""The web service's app, put together from small parts: ``create_app(settings)``.

Routes come from their modules (enqueue per channel, imports, sendings, the
account, probes and metrics, the API's own documentation, and the dashboard at
``/`` and ``/ui/``, which guards itself with a session); around them two
middlewares, outermost first — ``TokenAuth`` (who may call what), then
``BodyLimit`` (how much is read) — so that an unauthenticated request is refused
before a byte of its body is read. Errors become answers in ``web.errors`` and
nowhere else. The lifespan opens one producer (one Redis pool) per process;
it does not wait for Redis, so the process comes up and ``/readyz`` says 503
until Redis answers. A Redis that answers at start and evicts keys is refused
before that (``_refuse_unsafe_redis``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette
from starlette.middleware import Middleware

from jobs import connection, redis_safety
from jobs.producer import Producer
from jobs.settings import Settings
from web import account, dashboard, enqueue, hooks, imports, ops, sendings, suppressions
from web.auth import TokenAuth, require_token
from web.docs import docs_page
from web.errors import EXCEPTION_HANDLERS
from web.limits import BodyLimit
from web.openapi import ApiRoute, Doc, openapi_json

__all__ = ["create_app"]


def _documentation() -> list[ApiRoute]:
    return [
        ApiRoute(
            "/openapi.json",
            openapi_json,
            methods=["GET"],
            name="openapi",
            doc=Doc(summary="This API's OpenAPI document", answer="OpenAPI 3.1", public=True),
        ),
        ApiRoute(
            "/docs",
            docs_page,
            methods=["GET"],
            name="docs",
            doc=Doc(summary="This API's documentation, as HTML", answer="a page", public=True),
        ),
    ]


def _guards_itself(path: str) -> bool:
    """Paths with a door of their own: the dashboard's session, the hooks' secret."""
    return dashboard.owns(path) or path.startswith(hooks.PREFIX)


def _refuse_unsafe_redis(settings: Settings) -> None:
    """``serve``'s start: a Redis that answers and evicts keys is refused here with one
    line (``UnsafeRedis``, a ``ConfigurationError``: the CLI's exit 78), before uvicorn
    runs, whose lifespan failures come out as tracebacks. One that does not answer is
    not waited for: the process comes up, and ``/readyz`` checks the policy each time
    it is asked. A synchronous client with short timeouts, once, before any loop."""
    if not settings.redis_url:
        return
    client = connection.sync_client(settings.redis_url)
    try:
        redis_safety.check_sync(client, connection.display(settings.redis_url))
    except (RedisConnectionError, RedisTimeoutError, OSError):
        return
    finally:
        client.close()


def create_app(settings: Settings) -> Starlette:
    """The app for ``settings``; ``ConfigurationError`` without ``BULKSEND_API_TOKEN``,
    and ``UnsafeRedis`` when Redis answers and evicts keys."""
    token = require_token(settings)
    _refuse_unsafe_redis(settings)
    routes: list[ApiRoute] = [
        *enqueue.routes(),
        *hooks.routes,
        imports.route,
        *sendings.routes,
        *suppressions.routes,
        account.route,
        *ops.routes(settings),
        *_documentation(),
    ]
    readonly = settings.readonly_token.get_secret_value() if settings.readonly_token else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        producer = await Producer.connect(settings, wait=False)
        app.state.producer = producer
        announcing = (
            asyncio.create_task(hooks.announce_forever(producer.redis))
            if settings.hook_secret is not None
            else None
        )
        try:
            yield
        finally:
            if announcing is not None:
                announcing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await announcing
            sink: hooks.EventSink | None = getattr(app.state, "event_sink", None)
            if sink is not None:  # its last batch's counting (/metrics) is not cut off
                await sink.close()
            await producer.close()

    app = Starlette(
        routes=[*routes, *dashboard.routes(token, readonly)],
        middleware=[
            Middleware(
                TokenAuth,
                api_token=token,
                readonly_token=readonly,
                public=[route.path for route in routes if route.doc.public],
                delegated=_guards_itself,
            ),
            Middleware(BodyLimit, max_bytes=settings.api_max_body_bytes),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    logging.getLogger("uvicorn.access").addFilter(hooks.RedactHooks())
    return app
