"""Fault injection for chaos tests of the pipeline's delivery semantics
(``DESIGN.md`` → "Sandbox inspection").

``POST /_sandbox/faults`` with a JSON object replaces the whole configuration and
zeroes the counters (``{}`` clears it, as does ``POST /_sandbox/reset``); a bad one
is answered 400 naming its key and leaves the old one in force. ``GET`` (and the
answer to ``POST``) shows::

    {"config": <as posted>, "seed": 42, "credits_left": null, "burst_429_left": 0,
     "injected": {"burst_429": 0, "status": 0, "error": 0, "drop": 0,
                  "latency": 0, "credits": 0, "ambiguous": 0}}

``injected`` counts the requests each kind of fault hit. Every key is optional, a
null value is the same as leaving the key out, and a ``rate`` is a probability
from 0 to 1 (default 1):

================  ===============================================================
``seed``          an int: faults are drawn from ``random.Random(seed)`` when each
                  request arrives, so one sequence of requests gets the same faults
                  again (default: a random seed, shown as ``seed``)
``channels``      stats names (sms, email, voice, voice-audio, landing, whatsapp):
                  only these channels get faults (default: all)
``burst_429``     ``{"requests": N, "retry_after": 1}``: the next N requests get
                  429 with ``Retry-After`` and a plain-text body
``status``        ``{"status": 503, "rate"}`` or a list of them: a bare HTTP failure
                  (4xx/5xx, plain-text body, no error code), like a load balancer's
``error``         ``{"code": 101, "rate"}`` or a list of them: a documented error,
                  with the status and body of ``sandbox.errors`` (101 → 500 …)
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
================  ===============================================================

Faults apply to authenticated requests only: a bad ``Authorization`` is answered
401 / 103 first, so an auth bug never hides behind a fault nor uses one up. Then, in
order, at most one of burst_429, status, error (in list order) and drop-before-
processing answers instead of the channel; else the request waits ``latency_ms``,
is processed (the credits check is part of it, atomic with the counting), and may
then be answered late (ambiguous) or cut (drop after processing).

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
from collections.abc import Callable, Collection
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, NoReturn

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sandbox.common import is_int
from sandbox.errors import ERRORS, ApiError

if TYPE_CHECKING:
    from sandbox.app import Channel, Handler

KINDS: Final = ("burst_429", "status", "error", "drop", "latency", "credits", "ambiguous")
FAILURE_STATUSES: Final = frozenset(s.value for s in HTTPStatus if s.value >= 400)
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


def _error(key: str, value: object) -> ErrorFault:
    fields = _fields(key, value, {"code": REQUIRED, "rate": 1.0})
    if not is_int(fields["code"]) or fields["code"] not in ERROR_CODES:
        _fail(f"{key}.code", "must be a documented error code (sandbox.errors, not 0)")
    return ErrorFault(fields["code"], _number(f"{key}.rate", fields["rate"], 0, 1))


def _status(key: str, value: object) -> StatusFault:
    fields = _fields(key, value, {"status": REQUIRED, "rate": 1.0})
    if not is_int(fields["status"]) or fields["status"] not in FAILURE_STATUSES:
        _fail(f"{key}.status", "must be an HTTP error status (400 to 599)")
    return StatusFault(fields["status"], _number(f"{key}.rate", fields["rate"], 0, 1))


def _drop(key: str, value: object) -> Drop:
    fields = _fields(key, value, {"rate": 1.0, "after_processing": False})
    if not isinstance(fields["after_processing"], bool):
        _fail(f"{key}.after_processing", "must be a boolean")
    return Drop(_number(f"{key}.rate", fields["rate"], 0, 1), fields["after_processing"])


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


def _plain(status: int, headers: dict[str, str] | None = None) -> Response:
    """A bare HTTP failure, as a proxy in front of the API would answer it."""
    text = f"{status} {HTTPStatus(status).phrase}\n"
    return Response(text, status, headers, media_type="text/plain")


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

    def __init__(self, channels: Collection[str]) -> None:
        self._channels = tuple(channels)
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

    def layer(self, channel: Channel, handler: Handler) -> Handler:
        """The ``sandbox.app`` layer that injects the faults into ``channel``."""

        async def faulted(request: Request) -> Response:
            if channel.name not in self.config.channels:
                return await handler(request)
            # Everything is drawn now, in arrival order, so that a seed replays a run.
            answer = self._answer_instead()
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
            return response

        return faulted

    def _hit(self, rate: float) -> bool:
        return self._rng.random() < rate

    def _count(self, kind: str, response: Response) -> Response:
        self.injected[kind] += 1
        return response

    def _answer_instead(self) -> Response | None:
        """burst_429, status, error or drop before processing: the first that hits."""
        config = self.config
        if config.burst_429 is not None and self.burst_left > 0:
            self.burst_left -= 1
            retry_after = {"Retry-After": str(config.burst_429.retry_after)}
            return self._count("burst_429", _plain(429, retry_after))
        for status in config.status:
            if self._hit(status.rate):
                return self._count("status", _plain(status.status))
        for error in config.error:
            if self._hit(error.rate):
                refusal = ApiError(error.code)
                return self._count("error", _json(refusal.body, refusal.status))
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

    def _draw_after(self) -> Drop | Ambiguous | None:
        """ambiguous or drop after processing: the first that hits."""
        ambiguous, drop = self.config.ambiguous, self.config.drop
        if ambiguous is not None and self._hit(ambiguous.rate):
            return ambiguous
        if drop is not None and drop.after_processing and self._hit(drop.rate):
            return drop
        return None
