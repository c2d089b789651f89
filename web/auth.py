"""Bearer tokens: who may call what.

Two tokens, both from settings and nowhere else: ``BULKSEND_API_TOKEN`` may call
everything, ``BULKSEND_READONLY_TOKEN`` (optional) only reads (GET and HEAD) —
for dashboards and scrapers that should never enqueue or cancel. A few paths
are public (health probes, the API's own documentation, ``/metrics`` when
``BULKSEND_METRICS_PUBLIC``); the app says which. The dashboard's paths are
delegated to the dashboard, which guards them with its own session (a browser
cannot send a bearer token with a link).

A middleware rather than a check in each handler, so that a route added later
is protected without anyone remembering to; tokens are compared with
``hmac.compare_digest`` (no timing hint of how much matched) and never logged
or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from jobs.errors import ConfigurationError
from jobs.settings import Settings
from web.errors import Forbidden, Refused, Unauthorized, error_response

__all__ = ["READ_METHODS", "TokenAuth", "require_token"]

READ_METHODS = frozenset({"GET", "HEAD"})


def require_token(settings: Settings) -> str:
    """The API token; a service that anyone could call is refused, not started."""
    if settings.api_token is None or not settings.api_token.get_secret_value():
        raise ConfigurationError(
            "api_token: bulksend serve needs BULKSEND_API_TOKEN, a secret of your own "
            "(e.g. from `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
        )
    return settings.api_token.get_secret_value()


def _same(given: bytes, token: bytes | None) -> bool:
    return token is not None and hmac.compare_digest(given, token)


class TokenAuth:
    """Refuse (401, or 403 for the read-only token on a write) before the app runs."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_token: str,
        readonly_token: str | None = None,
        public: Collection[str] = (),
        delegated: Callable[[str], bool] = lambda path: False,
    ) -> None:
        self.app = app
        self.delegated = delegated
        self.api_token = api_token.encode()
        self.readonly_token = readonly_token.encode() if readonly_token else None
        self.public = frozenset(public)

    def _refusal(self, scope: Scope) -> Refused | None:
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return Unauthorized("Authorization", "a bearer token is required")
        token = given.strip().encode()
        full, readonly = _same(token, self.api_token), _same(token, self.readonly_token)
        if full:
            return None
        if not readonly:
            return Unauthorized("Authorization", "the bearer token is not valid")
        if scope["method"] not in READ_METHODS:
            return Forbidden("Authorization", "the read-only token may only read (GET)")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] not in self.public
            and not self.delegated(scope["path"])
        ):
            refusal = self._refusal(scope)
            if refusal is not None:
                await error_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)
