"""The sandbox's HTTP app: provider API routes plus ``/_sandbox/*`` inspection.

Provider API (``messaging-api.txt``)::

    POST /api/rest/sms          sandbox.sms (one module per channel)
    POST /api/rest/mailing      sandbox.mailing
    POST /api/rest/voice        sandbox.voice
    POST /api/rest/voiceAudio   sandbox.voice_audio
    POST /api/rest/landingsms   sandbox.landing
    POST /api/rest/whatsapp     sandbox.whatsapp
    GET, POST /api/rest/contacts, GET, PUT, DELETE /api/rest/contacts/<ID>,
    GET, POST /api/rest/groups, GET, PUT, DELETE /api/rest/groups/<ID>
                                sandbox.contacts ("Databases")
    GET, PUT, DELETE /api/rest/v2/blacklist/<type>
                                sandbox.blacklist ("Blacklist")
    *    /api/...             anything else: 404 {"error": {"code": 404, ...}}
                              (405 for a known path with the wrong method, with
                              its ``Allow``, ``POST`` for a channel); both bare, in
                              plain text, under the faults' ``bare_unrouted``

Mail marketing API (``mail-api-4-contacts.txt``), under ``/mail/api/`` so that the
sandbox's URL plus that is a ``BULKSEND_MAIL_API_URL``::

    POST /mail/api/contacts/upload-csv   sandbox.mail_contacts
    GET  /mail/api/contacts/list         sandbox.mail_contacts
    *    /mail/api/...        anything else: 404 / 405 in that API's shape,
                              ``{"status": "failed", "errors": "Not Found"}``

    *    anything else        Starlette's bare 404 "Not Found" (not counted)

Inspection (a contract tests and benchmarks rely on: README → "Sandbox")::

    GET  /_sandbox/stats                         counters, see sandbox.state
    POST /_sandbox/reset                         {"ok": true}
    GET  /_sandbox/messages?channel=sms&limit=N  {"channel", "count", "messages": [...]}
    GET  /_sandbox/arrivals?channel=sms&window=W {"channel", "count", "recipients",
                                                 "largest", "arrivals": [[t, n], ...]}: each
                                                 accepting request's arrival time and
                                                 recipients; with ``window`` (seconds) also
                                                 "busiest": {"seconds", "recipients", "start"},
                                                 see sandbox.state
    GET  /_sandbox/faults                        fault injection, see sandbox.faults
    POST /_sandbox/faults                        replace it ({} clears; reset clears too)
    GET  /_sandbox/notifications                 DLRs and events sent after the 202, see
    POST /_sandbox/notifications                 sandbox.notifications (reset: defaults)
    GET  /_sandbox/notifications/decisions       each notified message's decided fate
    GET  /_sandbox/blacklist                     {"count", "data": [every entry, all types]}

Channel names (stats keys, ``channel=``): sms, email, voice, voice-audio,
landing, whatsapp. What several channels check lives in ``sandbox.common``. The
contacts databases' routes are counted and given faults the same way, under the
names contacts, groups, blacklist and mail-contacts (see ``sandbox.state`` for when
they show).

What follows an accepted request — its delivery notifications and events, sent by
background tasks so that no answer waits for them — is ``sandbox.notifications``:
``SandboxState.after_accept`` hands it each request's accepted messages, and the
app's shutdown cancels what is still pending.

A request to a channel goes through, outermost first:

1. counting (every request counts, whatever the answer) and its arrival time;
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

The databases' routes go through the same steps, with their own: the contacts and
groups routes read a JSON object only for POST and PUT, the blacklist's for PUT and
DELETE, and the mail API's check its ``PublicKey`` / ``SecretKey`` headers instead of
Basic auth and read a form.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from jobs.settings import Settings, get_settings
from sandbox import (
    blacklist,
    contacts,
    landing,
    mail_contacts,
    mailing,
    sms,
    voice,
    voice_audio,
    whatsapp,
)
from sandbox.blacklist import Blacklist
from sandbox.contacts import Call, ContactBook
from sandbox.errors import METHOD_NOT_ALLOWED, NOT_FOUND, ApiError
from sandbox.faults import Faults
from sandbox.mail_contacts import MailBook, MailFailure
from sandbox.notifications import Notifier
from sandbox.state import MAX_MESSAGES, SandboxState

Handler = Callable[[Request], Awaitable[Response]]
ChannelHandle = Callable[[dict[str, Any], SandboxState], tuple[int, dict[str, Any]]]
DatabaseHandle = Callable[[Call, ContactBook], tuple[int, dict[str, Any] | None]]
StoreT = TypeVar("StoreT")


@dataclass(frozen=True, slots=True)
class Resource:
    """Routes counted, and given faults, under one name."""

    name: str  # key under "channels" in /_sandbox/stats, a name for the faults' "channels"
    path: str  # the API route (of a collection: its items are path/<ID>)


@dataclass(frozen=True, slots=True)
class Channel(Resource):
    handle: ChannelHandle


Layer = Callable[[Resource, Handler], Handler]

CHANNELS: tuple[Channel, ...] = tuple(
    Channel(module.NAME, module.PATH, module.handle)
    for module in (sms, mailing, voice, voice_audio, landing, whatsapp)
)

# The contacts databases of messaging-api.txt: (resource, its handle).
DATABASES: tuple[tuple[Resource, DatabaseHandle], ...] = (
    (Resource(contacts.CONTACTS, contacts.CONTACTS_PATH), contacts.handle_contacts),
    (Resource(contacts.GROUPS, contacts.GROUPS_PATH), contacts.handle_groups),
)
MAIL = Resource(mail_contacts.NAME, mail_contacts.PREFIX)
BLACKLIST = Resource(blacklist.NAME, blacklist.PATH)

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
        stats = state.channels[channel.name]
        before = stats.recipients
        try:
            status, payload = channel.handle(body, state)  # synchronous: nothing interleaves
        except ApiError as error:
            return json_response(error.body, error.status)
        if stats.recipients > before:
            stats.arrived(request.state.arrived_at, stats.recipients - before)
        return json_response(payload, status)

    return handler


def _database_handler(
    handle: Callable[[Call, StoreT], tuple[int, dict[str, Any] | None]],
    book: StoreT,
    with_body: Collection[str] = ("POST", "PUT"),
) -> Handler:
    """A contacts, groups or blacklist route: JSON object bodies for the methods
    ``with_body`` (400 / 125); the route's one path parameter is ``Call.item``."""

    async def handler(request: Request) -> Response:
        body = None
        if request.method in with_body:
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                body = None
            if not isinstance(body, dict):
                error = ApiError(125)
                return json_response(error.body, error.status)
        host = str(request.base_url).rstrip("/")
        item = next(iter(request.path_params.values()), None)
        call = Call(request.method, item, request.query_params.multi_items(), body, host)
        try:
            status, payload = handle(call, book)
        except ApiError as error:
            return json_response(error.body, error.status)
        if payload is None:
            return Response(status_code=status)
        return json_response(payload, status)

    return handler


def _mail_authenticated(keys: tuple[str, str], handler: Handler) -> Handler:
    async def checked(request: Request) -> Response:
        headers = request.headers
        try:
            mail_contacts.authenticate(headers.get("publickey"), headers.get("secretkey"), keys)
        except MailFailure as failure:
            return json_response(failure.body, failure.status)
        return await handler(request)

    return checked


def _mail_upload(book: MailBook) -> Handler:
    """``POST contacts/upload-csv``: the form checked and parsed off the event loop."""

    async def upload(request: Request) -> Response:
        try:
            form = await request.form()
        except HTTPException:  # not a readable form: its fields are missing
            form = None
        file: tuple[str, bytes] | str | None = None
        contact_type_id: object = None
        if form is not None:
            contact_type_id = form.get("contact_type_id")
            raw = form.get("file")
            file = (raw.filename or "", await raw.read()) if isinstance(raw, UploadFile) else raw
            await form.close()
        try:
            checked = await asyncio.to_thread(mail_contacts.check_upload, contact_type_id, file)
        except MailFailure as failure:
            return json_response(failure.body, failure.status)
        return json_response(book.store(checked))

    return upload


def _mail_list(book: MailBook) -> Handler:
    async def listed(request: Request) -> Response:
        return json_response(book.list_json())

    return listed


def _counted(channel: Resource, state: SandboxState, handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        # First thing, before auth, fault latency and the body: the door's clock.
        request.state.arrived_at = time.time()
        stats = state.channels[channel.name]
        stats.requests += 1
        response = await handler(request)
        if response.status_code >= 400:
            stats.rejected += 1
        return response

    return endpoint


def create_app(settings: Settings | None = None, *, layers: Sequence[Layer] = ()) -> Starlette:
    settings = settings or get_settings()
    databases = [resource.name for resource, _ in DATABASES] + [BLACKLIST.name, MAIL.name]
    state = SandboxState([channel.name for channel in CHANNELS], listed_when_used=databases)
    book, mail, blocked = ContactBook(), MailBook(), Blacklist()
    notifier = Notifier(blocked)
    state.stores.update(contacts=book, mail=mail, blacklist=blocked, notifications=notifier)
    state.after_accept = notifier.accepted
    authorized = basic_auth_checker(
        settings.sandbox_username, settings.sandbox_api_password.get_secret_value()
    )
    faults = Faults(
        [*(channel.name for channel in CHANNELS), *databases],
        refusals={MAIL.name: mail_contacts.refusal},
    )
    state.before_accept = faults.charge
    state.verify_sender = faults.verify
    book.allow_duplicates = faults.allows_duplicates
    mail_keys = (
        settings.mail_public_key.get_secret_value(),
        settings.mail_secret_key.get_secret_value(),
    )

    routes: list[Route] = []
    allowed: list[tuple[Route, str]] = []  # each API route and its Allow, for 405s

    def add(
        resource: Resource,
        path: str,
        methods: list[str],
        handler: Handler,
        authenticate: Callable[[Handler], Handler],
    ) -> None:
        for layer in reversed((faults.layer, *layers)):
            handler = layer(resource, handler)
        route = Route(path, _counted(resource, state, authenticate(handler)), methods=methods)
        routes.append(route)
        allowed.append((route, ", ".join(methods)))

    def basic(handler: Handler) -> Handler:
        return _authenticated(authorized, handler)

    def keys(handler: Handler) -> Handler:
        return _mail_authenticated(mail_keys, handler)

    for channel in CHANNELS:
        add(channel, channel.path, ["POST"], _channel_handler(channel, state), basic)
    for resource, handle in DATABASES:
        handler = _database_handler(handle, book)
        add(resource, resource.path, ["GET", "POST"], handler, basic)
        add(resource, resource.path + "/{id}", ["GET", "PUT", "DELETE"], handler, basic)
    add(
        BLACKLIST,
        BLACKLIST.path + "/{type}",
        ["GET", "PUT", "DELETE"],
        _database_handler(blacklist.handle, blocked, ("PUT", "DELETE")),
        basic,
    )
    add(MAIL, mail_contacts.UPLOAD_PATH, ["POST"], _mail_upload(mail), keys)
    add(MAIL, mail_contacts.LIST_PATH, ["GET"], _mail_list(mail), keys)

    async def unrouted(request: Request) -> Response:
        state.unrouted += 1
        (status, description), headers = NOT_FOUND, {}
        for route, allow in allowed:
            if route.matches(request.scope)[0] is Match.PARTIAL:  # the path, not the method
                (status, description), headers = METHOD_NOT_ALLOWED, {"Allow": allow}
                break
        bare = faults.bare(status, headers)
        if bare is not None:
            return bare
        if request.url.path.startswith(mail_contacts.PREFIX + "/"):
            phrase = "Not Found" if status == 404 else "Method Not Allowed"
            response = json_response({"status": "failed", "errors": phrase}, status)
        else:
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

    async def arrivals(request: Request) -> Response:
        channel = request.query_params.get("channel", sms.NAME)
        if channel not in state.channels:
            return _error(404, 404, f"unknown channel {channel!r}")
        stats = state.channels[channel]
        found = stats.arrivals_json()
        body: dict[str, Any] = {
            "channel": channel,
            "count": len(found),
            "recipients": sum(stats.arrived_recipients),
            "largest": max(stats.arrived_recipients, default=0),
            "arrivals": found,
        }
        raw = request.query_params.get("window")
        if raw is not None:
            try:
                seconds = float(raw)
            except ValueError:
                seconds = 0.0
            if not 0 < seconds < float("inf"):
                return _error(400, 400, "window must be a positive number of seconds")
            recipients, start = stats.busiest(seconds)
            body["busiest"] = {"seconds": seconds, "recipients": recipients, "start": start}
        return json_response(body)

    async def blacklisted(request: Request) -> Response:
        notifier.flush()  # the entries the queued messages' decisions add
        return json_response(blocked.all_json())

    routes += [
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/messages", messages, methods=["GET"]),
        Route("/_sandbox/arrivals", arrivals, methods=["GET"]),
        Route("/_sandbox/faults", faults.endpoint, methods=["GET", "POST"]),
        Route("/_sandbox/notifications", notifier.endpoint, methods=["GET", "POST"]),
        Route("/_sandbox/notifications/decisions", notifier.decisions_endpoint, methods=["GET"]),
        Route("/_sandbox/blacklist", blacklisted, methods=["GET"]),
        Route("/api/{rest:path}", unrouted, methods=ALL_METHODS),
        Route(mail_contacts.PREFIX + "/{rest:path}", unrouted, methods=ALL_METHODS),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:  # notifications still pending are dropped: shutting down must not wait
            await notifier.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = state
    app.state.faults = faults
    app.state.contacts = book
    app.state.mail = mail
    app.state.blacklist = blocked
    app.state.notifications = notifier
    return app
