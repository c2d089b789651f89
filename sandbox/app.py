"""The sandbox's HTTP app: provider API routes plus ``/_sandbox/*`` inspection.

Provider API (``messaging-api.txt``)::

    POST /api/rest/sms          sandbox.sms (one module per channel)
    POST /api/rest/mailing      sandbox.mailing
    POST /api/rest/voice        sandbox.voice
    POST /api/rest/voiceAudio   sandbox.voice_audio
    POST /api/rest/landingsms   sandbox.landing
    POST /api/rest/whatsapp     sandbox.whatsapp
    *    /api/...             anything else: 404 {"error": {"code": 404, ...}}
                              (405 for a known path with the wrong method, with
                              ``Allow: POST``); both bare, in plain text, under
                              the faults' ``bare_unrouted``
    *    anything else        Starlette's bare 404 "Not Found" (not counted)

Inspection (a contract tests and benchmarks rely on: README → "Sandbox")::

    GET  /_sandbox/stats                         counters, see sandbox.state
    POST /_sandbox/reset                         {"ok": true}
    GET  /_sandbox/messages?channel=sms&limit=N  {"channel", "count", "messages": [...]}
    GET  /_sandbox/faults                        fault injection, see sandbox.faults
    POST /_sandbox/faults                        replace it ({} clears; reset clears too)

Channel names (stats keys, ``channel=``): sms, email, voice, voice-audio,
landing, whatsapp. What several channels check lives in ``sandbox.common``.

A request to a channel goes through, outermost first:

1. counting (every request counts, whatever the answer);
2. Basic auth (401 / 103), so that faults only ever hit authenticated requests;
3. ``layers`` — wrappers of the async handler below, in order: first fault
   injection (``sandbox.faults``), then any given to ``create_app``. A ``Layer``
   gets the channel and the next handler and returns a handler that may delay,
   fail, drop or pass the request on;
4. JSON object body (400 / 125);
5. the channel's ``handle(body, state) -> (status, body)``, which raises
   ``ApiError`` to refuse the whole request.

Adding a channel is one module with ``NAME``, ``PATH`` and ``handle`` and one
entry in ``CHANNELS``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobs.settings import Settings, get_settings
from sandbox import landing, mailing, sms, voice, voice_audio, whatsapp
from sandbox.errors import METHOD_NOT_ALLOWED, NOT_FOUND, ApiError
from sandbox.faults import Faults
from sandbox.state import MAX_MESSAGES, SandboxState

Handler = Callable[[Request], Awaitable[Response]]
ChannelHandle = Callable[[dict[str, Any], SandboxState], tuple[int, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Channel:
    name: str  # key under "channels" in /_sandbox/stats
    path: str  # the API route
    handle: ChannelHandle


Layer = Callable[[Channel, Handler], Handler]

CHANNELS: tuple[Channel, ...] = tuple(
    Channel(module.NAME, module.PATH, module.handle)
    for module in (sms, mailing, voice, voice_audio, landing, whatsapp)
)

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def _error(status: int, code: int, description: str) -> Response:
    return json_response({"error": {"code": code, "description": description}}, status)


def basic_auth_checker(username: str, password: str) -> Callable[[str | None], bool]:
    """A check of an ``Authorization`` header against ``username:apiPassword``."""
    credentials = f"{username}:{password}".encode()
    expected = "Basic " + base64.b64encode(credentials).decode()

    def check(header: str | None) -> bool:
        if header is None:
            return False
        if header == expected:  # the usual case, no decoding
            return True
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, credentials)

    return check


def _authenticated(authorized: Callable[[str | None], bool], handler: Handler) -> Handler:
    async def checked(request: Request) -> Response:
        if not authorized(request.headers.get("authorization")):
            error = ApiError(103)
            return json_response(error.body, error.status, {"WWW-Authenticate": "Basic"})
        return await handler(request)

    return checked


def _channel_handler(channel: Channel, state: SandboxState) -> Handler:
    async def handler(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            error = ApiError(125)
            return json_response(error.body, error.status)
        try:
            status, payload = channel.handle(body, state)
        except ApiError as error:
            return json_response(error.body, error.status)
        return json_response(payload, status)

    return handler


def _counted(channel: Channel, state: SandboxState, handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        stats = state.channels[channel.name]
        stats.requests += 1
        response = await handler(request)
        if response.status_code >= 400:
            stats.rejected += 1
        return response

    return endpoint


def create_app(settings: Settings | None = None, *, layers: Sequence[Layer] = ()) -> Starlette:
    settings = settings or get_settings()
    state = SandboxState([channel.name for channel in CHANNELS])
    authorized = basic_auth_checker(
        settings.sandbox_username, settings.sandbox_api_password.get_secret_value()
    )
    known_paths = {channel.path for channel in CHANNELS}
    faults = Faults([channel.name for channel in CHANNELS])
    state.before_accept = faults.charge
    state.verify_sender = faults.verify

    routes = []
    for channel in CHANNELS:
        handler = _channel_handler(channel, state)
        for layer in reversed((faults.layer, *layers)):
            handler = layer(channel, handler)
        handler = _authenticated(authorized, handler)
        routes.append(Route(channel.path, _counted(channel, state, handler), methods=["POST"]))

    async def unrouted(request: Request) -> Response:
        state.unrouted += 1
        if request.url.path in known_paths:
            status, description = METHOD_NOT_ALLOWED
            headers = {"Allow": "POST"}
        else:
            (status, description), headers = NOT_FOUND, {}
        bare = faults.bare(status, headers)
        if bare is not None:
            return bare
        response = _error(status, status, description)
        response.headers.update(headers)
        return response

    async def stats(request: Request) -> Response:
        return json_response(state.stats_json())

    async def reset(request: Request) -> Response:
        state.reset()
        faults.configure({})
        return json_response({"ok": True})

    async def messages(request: Request) -> Response:
        channel = request.query_params.get("channel", sms.NAME)
        if channel not in state.channels:
            return _error(404, 404, f"unknown channel {channel!r}")
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            limit = -1
        if limit < 0:
            return _error(400, 400, "limit must be a non-negative integer")
        found = state.messages_json(channel, min(limit, MAX_MESSAGES))
        return json_response({"channel": channel, "count": len(found), "messages": found})

    routes += [
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/messages", messages, methods=["GET"]),
        Route("/_sandbox/faults", faults.endpoint, methods=["GET", "POST"]),
        Route("/api/{rest:path}", unrouted, methods=ALL_METHODS),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = state
    app.state.faults = faults
    return app
