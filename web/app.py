"""The web service's app, put together from small parts: ``create_app(settings)``.

Routes come from their modules (enqueue per channel, imports, sendings, the
account, probes and metrics, the API's own documentation, and the dashboard at
``/`` and ``/ui/``, which guards itself with a session); around them two
middlewares, outermost first — ``TokenAuth`` (who may call what), then
``BodyLimit`` (how much is read) — so that an unauthenticated request is refused
before a byte of its body is read. Errors become answers in ``web.errors`` and
nowhere else. The lifespan opens one producer (one Redis pool) per process;
it does not wait for Redis, so the process comes up and ``/readyz`` says 503
until Redis answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

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


def create_app(settings: Settings) -> Starlette:
    """The app for ``settings``; ``ConfigurationError`` without ``BULKSEND_API_TOKEN``."""
    token = require_token(settings)
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
