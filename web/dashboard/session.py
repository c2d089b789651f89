"""Signing in to the dashboard: a session cookie made from the API tokens, and CSRF.

A browser cannot send a bearer token with a link, so the dashboard has its own
door: a form takes the API token or the read-only token once and answers with a
signed cookie (HttpOnly, so no script reads it; SameSite=Strict, so no other
site's page sends it). The signing key is derived from the API token, so every
replica accepts the same cookie without sharing state, and changing the token
signs everyone out. The cookie also carries a fingerprint of the token it was
made from: a read-only session ends when that token is changed.

Every form that acts carries a CSRF token bound to the session (``csrf_token``),
checked in constant time besides SameSite — belt and braces for old browsers.
The ``SessionGate`` middleware lets nothing but the sign-in page and the static
files through without a session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote

import orjson
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["COOKIE", "Keys", "Session", "SessionGate", "session_of"]

COOKIE: Final = "bulksend_session"
LIFETIME_S: Final = 12 * 3600
SIGN_IN: Final = "/ui/signin"
OPEN_PATHS: Final = (SIGN_IN, "/ui/static/")  # reachable without a session

Kind = Literal["api", "readonly"]


@dataclass(frozen=True)
class Session:
    kind: Kind
    expires: float
    nonce: str
    csrf: str

    @property
    def may_act(self) -> bool:
        """Only the API token's sessions cancel, requeue, retry and resume."""
        return self.kind == "api"


class Keys:
    """The tokens and what is derived from them: who a token is, cookies, CSRF tokens."""

    def __init__(self, api_token: str, readonly_token: str | None) -> None:
        self._tokens: dict[Kind, bytes] = {"api": api_token.encode()}
        if readonly_token:
            self._tokens["readonly"] = readonly_token.encode()
        self._key = hmac.new(api_token.encode(), b"bulksend dashboard session", "sha256").digest()

    def _mac(self, *parts: str | bytes) -> str:
        message = b"\x00".join(p.encode() if isinstance(p, str) else p for p in parts)
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def kind_of(self, given: str) -> Kind | None:
        """Which token ``given`` is, compared in constant time; None: neither."""
        found: Kind | None = None
        for kind, token in self._tokens.items():
            if hmac.compare_digest(given.encode(), token):
                found = kind
        return found

    def _fingerprint(self, kind: Kind) -> str | None:
        token = self._tokens.get(kind)
        return self._mac("token", token)[:16] if token is not None else None

    def cookie(self, kind: Kind, now: float | None = None) -> str:
        """A new session's cookie value: its payload and the payload's MAC."""
        payload = {
            "k": kind,
            "e": int((now or time.time()) + LIFETIME_S),
            "n": secrets.token_urlsafe(12),
            "f": self._fingerprint(kind),
        }
        body = base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")
        return f"{body}.{self._mac('cookie', body)}"

    def session(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie stands for, or None: forged, expired, or its token changed."""
        if not cookie or "." not in cookie:
            return None
        body, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac("cookie", body)):
            return None
        try:
            payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            kind, expires, nonce = payload["k"], float(payload["e"]), str(payload["n"])
        except (ValueError, KeyError, TypeError):
            return None
        if kind not in self._tokens or expires < (now or time.time()):
            return None
        fingerprint = self._fingerprint(kind)
        if fingerprint is None or not hmac.compare_digest(str(payload.get("f")), fingerprint):
            return None
        return Session(kind=kind, expires=expires, nonce=nonce, csrf=self._mac("csrf", nonce))

    def csrf_ok(self, session: Session, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given, session.csrf)


def session_of(scope: Scope) -> Session:
    """The session ``SessionGate`` found for this request (it lets none through without)."""
    found: Session = scope["state"]["session"]
    return found


class SessionGate:
    """Nothing of the dashboard without a session: a page redirects to the sign-in form
    (htmx is told to go there instead of swapping it in), anything else is a 401."""

    def __init__(self, app: ASGIApp, *, keys: Keys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        session = self.keys.session(_cookie(headers.get("cookie", "")))
        if session is None:
            await _to_sign_in(scope, headers)(scope, receive, send)
            return
        scope.setdefault("state", {})["session"] = session
        await self.app(scope, receive, send)


def _cookie(header: str) -> str | None:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def _to_sign_in(scope: Scope, headers: Headers) -> Response:
    target = f"{SIGN_IN}?next={quote(scope['path'])}"
    if headers.get("hx-request"):
        return PlainTextResponse("sign in first", status_code=401, headers={"HX-Redirect": target})
    if scope["method"] in ("GET", "HEAD"):
        return RedirectResponse(target, status_code=303)
    return PlainTextResponse("sign in first", status_code=401)
