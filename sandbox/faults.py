"""Fault injection for chaos tests of the pipeline's delivery semantics
(a contract tests and benchmarks rely on: README → "Sandbox").

``POST /_sandbox/faults`` with a JSON object replaces the whole configuration and
zeroes the counters (``{}`` clears it, as does ``POST /_sandbox/reset``); a bad one
is answered 400 naming its key and leaves the old one in force. ``GET`` (and the
answer to ``POST``) shows::

    {"config": <as posted>, "seed": 42, "credits_left": null, "burst_429_left": 0,
     "injected": {"burst_429": 0, "status": 0, "error": 0, "drop": 0,
                  "latency": 0, "credits": 0, "ambiguous": 0, "empty_body": 0,
                  "unverified": 0, "bare_unrouted": 0}}

``injected`` counts the requests each kind of fault hit. Every key is optional, a
null value is the same as leaving the key out, and a ``rate`` is a probability
from 0 to 1 (default 1):

================  ===============================================================
``seed``          an int: faults are drawn from ``random.Random(seed)`` when each
                  request arrives, so one sequence of requests gets the same faults
                  again (default: a random seed, shown as ``seed``)
``channels``      stats names (sms, email, voice, voice-audio, landing, whatsapp,
                  and the contacts databases' contacts, groups, mail-contacts):
                  only these get faults (default: all)
``burst_429``     ``{"requests": N, "retry_after": 1}``: the next N requests get
                  429 with ``Retry-After`` and a plain-text body
``status``        ``{"status": 503, "rate", "after_processing": false}`` or a list
                  of them: a bare HTTP failure (4xx/5xx, plain-text body, no error
                  code), like a load balancer's; after processing, the request was
                  handled first (recipients accepted and counted, credits spent, ids
                  issued, messages kept), like a gateway that timed out (502, 504)
                  after the provider accepted it
``error``         ``{"code": 101, "rate"}`` or a list of them: a documented error,
                  with the status and body of ``sandbox.errors`` (101 → 500 …; 422
                  → 422 ``{"error": {"code": 422, "description": "Input validation
                  error"}}``); on the mail API's routes (mail-contacts), which have no
                  codes, the same status with that API's documented failure body,
                  ``{"status": "failed", "errors": "<description>"}``
``drop``          ``{"rate", "after_processing": false}``: the connection closes in
                  the middle of the response; after processing, the recipients were
                  accepted and counted first
``latency_ms``    ``50`` or ``{"min": 10, "max": 80}``: added before processing
``credits``       an int: accepted recipients the account can still send; a request
                  whose accepted recipients exceed what is left is refused whole with
                  402 / 111 (null: unlimited, and how tests refill)
``ambiguous``     ``{"rate", "delay_s": 30}``: processed (accepted, counted, ids
                  issued) but answered only ``delay_s`` later, past the client's
                  timeout
``empty_body``    ``{"rate", "status": 202, "body": ""}``: processed (accepted,
                  counted, ids issued), then answered with ``status`` (2xx) and
                  ``body`` instead of the channel's answer: by default an empty body
                  (no ``Content-Type``), else that text as ``text/html``, e.g.
                  ``"<html>oops</html>"`` (204 and 205 take no body)
``unverified``    ``{"senders": ["a@b.com"], "reply_to": ["x@y.com"]}`` (each list
                  optional): email senders and reply-to addresses the account has not
                  verified. A ``/api/rest/mailing`` request whose ``fromEmail`` is
                  listed is refused whole with 400 / 115 "Sender is not verified",
                  else one whose ``replyTo`` is listed with 400 / 117 "ReplyTo is not
                  verified" (compared case-insensitively; where in the checks: see
                  ``sandbox.mailing``); nothing is accepted. Other channels have no
                  such check
``bare_unrouted`` ``true`` (default false): a request under ``/api/`` (or the mail
                  API's ``/mail/api/``) that matches no route is answered a bare
                  404, and a wrong method on a known route a bare 405 (with its
                  ``Allow``, ``POST`` for a channel) — plain text, no error code, as
                  a proxy or a wrong base URL would answer — instead of the JSON
                  ``{"error": {"code": 404, ...}}`` of ``sandbox.app``. Any
                  request counts, authenticated or not; ``channels`` does not apply
================  ===============================================================

One more key, ``allow_duplicates``: ``true`` (default false) makes the contacts
databases take a contact whose email or phone another one has, and a group whose
name another one has, instead of refusing them 422 "… has already been taken", as a
provider that does not check would. It applies to the contacts and groups channels
(``channels`` applies) and is counted in ``/_sandbox/stats`` → ``contacts``
(``duplicates_allowed``, ``created_twice``), not in ``injected``, whose keys stay
those of the faults above.

Faults apply to authenticated requests only (except ``bare_unrouted``): a bad
``Authorization`` is answered 401 / 103 first, so an auth bug never hides behind a
fault nor uses one up. Then, in order, at most one of burst_429, status before
processing, error (each list in its order) and drop before processing answers
instead of the channel; else the request waits ``latency_ms``, is processed (the
``unverified`` check is part of the channel's validation; the credits check is part
of it too, atomic with the counting), and then at most one of ambiguous (answered
late), drop after processing (cut), status after processing (in list order) and
empty_body replaces or delays the answer, whatever the channel answered. A rate is
drawn for a fault only when the faults before it did not hit, so a configuration
without the newer keys draws as it did before them. ``rejected`` in the stats counts
by the status finally answered: a 504 after processing is rejected though its
recipients were accepted; an ``empty_body`` 202 is not, even when the channel had
refused the request.

A dropped connection: ASGI cannot close a connection without answering, so the
response's status line, headers and half its body are sent and the app returns;
uvicorn then closes the connection ("ASGI callable returned without completing
response", a log line this module filters out so that long chaos runs do not fill
a stderr pipe) and an httpx client raises ``httpx.RemoteProtocolError`` (or, should
the kernel reset the connection, ``httpx.ReadError``). The head is the real
answer's after processing, else a 502's; ``rejected`` in the stats counts the
request when that status is an error.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, NoReturn

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from jobs.fields import is_int
from sandbox.errors import ERRORS, ApiError

if TYPE_CHECKING:
    from sandbox.app import Handler, Resource

# A channel's rendering of a documented error: (HTTP status, JSON body).
Refusal = Callable[[ApiError], tuple[int, Any]]

KINDS: Final = (
    "burst_429",
    "status",
    "error",
    "drop",
    "latency",
    "credits",
    "ambiguous",
    "empty_body",
    "unverified",
    "bare_unrouted",
)
FAILURE_STATUSES: Final = frozenset(s.value for s in HTTPStatus if s.value >= 400)
SUCCESS_STATUSES: Final = frozenset(s.value for s in HTTPStatus if 200 <= s.value < 300)
NO_CONTENT: Final = frozenset({204, 205})  # answers that must not carry a body
ERROR_CODES: Final = frozenset(code for code, (status, _) in ERRORS.items() if status >= 400)
INCOMPLETE: Final = "ASGI callable returned without completing response."
REQUIRED: Final = object()


class ConfigError(ValueError):
    """A bad fault configuration; the message starts with the key."""


def _fail(key: str, problem: str) -> NoReturn:
    raise ConfigError(f"{key}: {problem}")


def _number(key: str, value: object, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(key, "must be a number")
    if value < low or (high is not None and value > high):
        _fail(key, f"must be from {low} to {high}" if high is not None else f"must be >= {low}")
    return float(value)


def _integer(key: str, value: object, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(key, "must be an integer")
    if low is not None and value < low:
        _fail(key, f"must be an integer >= {low}")
    return value


def _fields(key: str, value: object, defaults: dict[str, object]) -> dict[str, Any]:
    """``value`` as an object with the keys of ``defaults`` (``REQUIRED``: no default)."""
    if not isinstance(value, dict):
        _fail(key, "must be an object")
    for name in value:
        if name not in defaults:
            _fail(f"{key}.{name}", f"unknown key (known: {', '.join(defaults)})")
    for name, default in defaults.items():
        if default is REQUIRED and name not in value:
            _fail(f"{key}.{name}", "is required")
    return {**defaults, **value}


@dataclass(frozen=True, slots=True)
class ErrorFault:
    code: int
    rate: float


@dataclass(frozen=True, slots=True)
class StatusFault:
    status: int
    rate: float
    after_processing: bool


@dataclass(frozen=True, slots=True)
class Drop:
    rate: float
    after_processing: bool


@dataclass(frozen=True, slots=True)
class Ambiguous:
    rate: float
    delay_s: float


@dataclass(frozen=True, slots=True)
class Burst:
    requests: int
    retry_after: int


@dataclass(frozen=True, slots=True)
class EmptyBody:
    rate: float
    status: int
    body: str


@dataclass(frozen=True, slots=True)
class Unverified:
    senders: frozenset[str]  # case-folded
    reply_to: frozenset[str]


def _error(key: str, value: object) -> ErrorFault:
    fields = _fields(key, value, {"code": REQUIRED, "rate": 1.0})
    if not is_int(fields["code"]) or fields["code"] not in ERROR_CODES:
        _fail(f"{key}.code", "must be a documented error code (sandbox.errors, not 0)")
    return ErrorFault(fields["code"], _number(f"{key}.rate", fields["rate"], 0, 1))


def _boolean(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        _fail(key, "must be a boolean")
    return value


def _status(key: str, value: object) -> StatusFault:
    fields = _fields(key, value, {"status": REQUIRED, "rate": 1.0, "after_processing": False})
    if not is_int(fields["status"]) or fields["status"] not in FAILURE_STATUSES:
        _fail(f"{key}.status", "must be an HTTP error status (400 to 599)")
    rate = _number(f"{key}.rate", fields["rate"], 0, 1)
    after = _boolean(f"{key}.after_processing", fields["after_processing"])
    return StatusFault(fields["status"], rate, after)


def _drop(key: str, value: object) -> Drop:
    fields = _fields(key, value, {"rate": 1.0, "after_processing": False})
    after = _boolean(f"{key}.after_processing", fields["after_processing"])
    return Drop(_number(f"{key}.rate", fields["rate"], 0, 1), after)


def _empty_body(key: str, value: object) -> EmptyBody:
    fields = _fields(key, value, {"rate": 1.0, "status": 202, "body": ""})
    rate = _number(f"{key}.rate", fields["rate"], 0, 1)
    status, body = fields["status"], fields["body"]
    if not is_int(status) or status not in SUCCESS_STATUSES:
        _fail(f"{key}.status", "must be an HTTP success status (200 to 299)")
    if not isinstance(body, str):
        _fail(f"{key}.body", "must be a string")
    if body and status in NO_CONTENT:
        _fail(f"{key}.body", f"must be empty with status {status}")
    return EmptyBody(rate, status, body)


def _addresses(key: str, value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        _fail(key, "must be a list of email addresses")
    return frozenset(item.strip().casefold() for item in value)


def _unverified(key: str, value: object) -> Unverified:
    fields = _fields(key, value, {"senders": [], "reply_to": []})
    senders = _addresses(f"{key}.senders", fields["senders"])
    return Unverified(senders, _addresses(f"{key}.reply_to", fields["reply_to"]))


def _ambiguous(key: str, value: object) -> Ambiguous:
    fields = _fields(key, value, {"rate": 1.0, "delay_s": 30})
    rate = _number(f"{key}.rate", fields["rate"], 0, 1)
    return Ambiguous(rate, _number(f"{key}.delay_s", fields["delay_s"], 0))


def _burst(key: str, value: object) -> Burst:
    fields = _fields(key, value, {"requests": REQUIRED, "retry_after": 1})
    requests = _integer(f"{key}.requests", fields["requests"], 0)
    return Burst(requests, _integer(f"{key}.retry_after", fields["retry_after"], 0))


def _latency(key: str, value: object) -> tuple[float, float]:
    """(min, max) in milliseconds."""
    if not isinstance(value, dict):
        fixed = _number(key, value, 0)
        return fixed, fixed
    fields = _fields(key, value, {"min": REQUIRED, "max": REQUIRED})
    low = _number(f"{key}.min", fields["min"], 0)
    return low, _number(f"{key}.max", fields["max"], low)


def _many(parse: Callable[[str, object], Any]) -> Callable[[str, object], tuple[Any, ...]]:
    """One object, or a list of them."""

    def parse_many(key: str, value: object) -> tuple[Any, ...]:
        if isinstance(value, list):
            return tuple(parse(f"{key}[{i}]", item) for i, item in enumerate(value))
        return (parse(key, value),)

    return parse_many


def _channels(key: str, value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        _fail(key, "must be a list of channel names")
    return frozenset(value)


# JSON key → its parser (key, value) → the Config field of the same name.
PARSERS: Final[dict[str, Callable[[str, object], Any]]] = {
    "seed": _integer,
    "channels": _channels,
    "burst_429": _burst,
    "status": _many(_status),
    "error": _many(_error),
    "drop": _drop,
    "latency_ms": _latency,
    "credits": lambda key, value: _integer(key, value, 0),
    "ambiguous": _ambiguous,
    "empty_body": _empty_body,
    "unverified": _unverified,
    "bare_unrouted": _boolean,
    "allow_duplicates": _boolean,
}


@dataclass(frozen=True, slots=True)
class Config:
    seed: int
    channels: frozenset[str]
    burst_429: Burst | None = None
    status: tuple[StatusFault, ...] = ()
    error: tuple[ErrorFault, ...] = ()
    drop: Drop | None = None
    latency_ms: tuple[float, float] | None = None
    credits: int | None = None
    ambiguous: Ambiguous | None = None
    empty_body: EmptyBody | None = None
    unverified: Unverified | None = None
    bare_unrouted: bool = False
    allow_duplicates: bool = False


def parse_config(raw: object, channels: Collection[str]) -> Config:
    """The configuration posted as ``raw``; ``ConfigError`` names the first bad key."""
    if not isinstance(raw, dict):
        raise ConfigError("the fault configuration must be a JSON object")
    for key in raw:
        if key not in PARSERS:
            _fail(key, f"unknown key (known: {', '.join(PARSERS)})")
    values = {key: PARSERS[key](key, value) for key, value in raw.items() if value is not None}
    unknown = sorted(values.get("channels", frozenset()) - set(channels))
    if unknown:
        _fail("channels", f"unknown channel {unknown[0]!r} (known: {', '.join(channels)})")
    values.setdefault("seed", random.SystemRandom().randrange(2**32))
    values.setdefault("channels", frozenset(channels))
    return Config(**values)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _api_refusal(error: ApiError) -> tuple[int, Any]:
    """The messaging API's ``{"error": {"code", "description"}}``."""
    return error.status, error.body


def _plain(status: int, headers: dict[str, str] | None = None) -> Response:
    """A bare HTTP failure, as a proxy in front of the API would answer it."""
    text = f"{status} {HTTPStatus(status).phrase}\n"
    return Response(text, status, headers, media_type="text/plain")


def _replacement(fault: EmptyBody) -> Response:
    """``empty_body``'s answer: nothing at all, or a page that is not JSON."""
    return Response(fault.body, fault.status, media_type="text/html" if fault.body else None)


class Dropped(Response):
    """``response`` cut short: its head and half its body, then the connection closes."""

    def __init__(self, response: Response) -> None:
        self.status_code = response.status_code
        self.raw_headers = response.raw_headers
        self.body = response.body  # never empty: a JSON or plain-text answer
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = {"type": "http.response.start", "status": self.status_code}
        await send({**head, "headers": self.raw_headers})
        half = bytes(self.body[: len(self.body) // 2])
        await send({"type": "http.response.body", "body": half, "more_body": True})
        # Returning now makes uvicorn close the connection without the rest.


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != INCOMPLETE


class Faults:
    """The configuration in force and what it injected (one event loop: no locks)."""

    def __init__(
        self, channels: Collection[str], refusals: Mapping[str, Refusal] | None = None
    ) -> None:
        self._channels = tuple(channels)
        self._refusals = dict(refusals or {})  # channel → its error body, if not the default
        self.configure({})
        logging.getLogger("uvicorn.error").addFilter(_QuietDrops())

    def configure(self, raw: object) -> None:
        """Replace the configuration and zero the counters (not on ``ConfigError``)."""
        self.config = parse_config(raw, self._channels)
        self.raw = raw
        self._rng = random.Random(self.config.seed)
        self.credits_left = self.config.credits
        self.burst_left = self.config.burst_429.requests if self.config.burst_429 else 0
        self.injected = dict.fromkeys(KINDS, 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "config": self.raw,
            "seed": self.config.seed,
            "credits_left": self.credits_left,
            "burst_429_left": self.burst_left,
            "injected": self.injected,
        }

    async def endpoint(self, request: Request) -> Response:
        """``GET`` / ``POST /_sandbox/faults``."""
        if request.method == "POST":
            try:
                self.configure(orjson.loads(await request.body()))
            except orjson.JSONDecodeError:
                return _json({"error": {"code": 400, "description": "invalid JSON"}}, 400)
            except ConfigError as exc:
                return _json({"error": {"code": 400, "description": str(exc)}}, 400)
        return _json(self.as_json())

    def charge(self, channel: str, recipients: int) -> None:
        """``SandboxState.before_accept``: 402 / 111 when the credits left are too few."""
        if self.credits_left is None or channel not in self.config.channels:
            return
        if recipients > self.credits_left:
            self.injected["credits"] += 1
            raise ApiError(111)
        self.credits_left -= recipients

    def verify(self, channel: str, sender: str, reply_to: str) -> None:
        """``SandboxState.verify_sender``: 400 / 115 or 117 for an unverified address."""
        unverified = self.config.unverified
        if unverified is None or channel not in self.config.channels:
            return
        if sender.strip().casefold() in unverified.senders:
            code = 115
        elif reply_to.strip().casefold() in unverified.reply_to:
            code = 117
        else:
            return
        self.injected["unverified"] += 1
        raise ApiError(code)

    def allows_duplicates(self, channel: str) -> bool:
        """``allow_duplicates`` for ``channel`` (a contacts database's)."""
        return self.config.allow_duplicates and channel in self.config.channels

    def bare(self, status: int, headers: dict[str, str] | None = None) -> Response | None:
        """``bare_unrouted``: the plain-text answer to an unrouted ``/api/`` request, or
        None to answer it as ``sandbox.app`` does (JSON)."""
        if not self.config.bare_unrouted:
            return None
        return self._count("bare_unrouted", _plain(status, headers))

    def layer(self, channel: Resource, handler: Handler) -> Handler:
        """The ``sandbox.app`` layer that injects the faults into ``channel``."""

        async def faulted(request: Request) -> Response:
            if channel.name not in self.config.channels:
                return await handler(request)
            # Everything is drawn now, in arrival order, so that a seed replays a run.
            answer = self._answer_instead(channel.name)
            if answer is not None:
                if isinstance(answer, Dropped):
                    await request.body()  # read it all, so that closing sends no TCP reset
                return answer
            delay, after = self._draw_delay(), self._draw_after()
            if delay:
                await asyncio.sleep(delay)
            response = await handler(request)
            if isinstance(after, Drop):
                return self._count("drop", Dropped(response))
            if isinstance(after, Ambiguous):
                self._count("ambiguous", response)
                await asyncio.sleep(after.delay_s)
            if isinstance(after, StatusFault):
                return self._count("status", _plain(after.status))
            if isinstance(after, EmptyBody):
                return self._count("empty_body", _replacement(after))
            return response

        return faulted

    def _hit(self, rate: float) -> bool:
        return self._rng.random() < rate

    def _count(self, kind: str, response: Response) -> Response:
        self.injected[kind] += 1
        return response

    def _answer_instead(self, channel: str) -> Response | None:
        """burst_429, status, error or drop before processing: the first that hits."""
        config = self.config
        if config.burst_429 is not None and self.burst_left > 0:
            self.burst_left -= 1
            retry_after = {"Retry-After": str(config.burst_429.retry_after)}
            return self._count("burst_429", _plain(429, retry_after))
        for status in config.status:
            if not status.after_processing and self._hit(status.rate):
                return self._count("status", _plain(status.status))
        for error in config.error:
            if self._hit(error.rate):
                render = self._refusals.get(channel, _api_refusal)
                refused, body = render(ApiError(error.code))
                return self._count("error", _json(body, refused))
        drop = config.drop
        if drop is not None and not drop.after_processing and self._hit(drop.rate):
            return self._count("drop", Dropped(_plain(502)))
        return None

    def _draw_delay(self) -> float:
        """The added latency, in seconds."""
        if self.config.latency_ms is None:
            return 0.0
        self.injected["latency"] += 1
        return self._rng.uniform(*self.config.latency_ms) / 1000

    def _draw_after(self) -> Drop | Ambiguous | StatusFault | EmptyBody | None:
        """ambiguous, drop, status after processing or empty_body: the first that hits."""
        ambiguous, drop = self.config.ambiguous, self.config.drop
        if ambiguous is not None and self._hit(ambiguous.rate):
            return ambiguous
        if drop is not None and drop.after_processing and self._hit(drop.rate):
            return drop
        for status in self.config.status:
            if status.after_processing and self._hit(status.rate):
                return status
        empty_body = self.config.empty_body
        if empty_body is not None and self._hit(empty_body.rate):
            return empty_body
        return None
