"""Delivery notifications and event notifications, sent by the sandbox after the 202.

Sources: ``messaging-api.txt`` → "Delivery notifications" (a GET to the request's
``notificationUrl`` with ``%`` escapes, for SMS and landing SMS) and "Event
Notifications" (a form POST to the account's URL for every message of every channel,
"retried up to 5 times in case the client's server responds with an HTTP code other
than 200 OK", "the first retry … within 1 minute, the second after 2 minutes since the
previous retry, the third after 3 minutes, etc.").

What is sent, per accepted message (its fate is ``sandbox.outcomes``' decision, one
per message, so that its DLRs and its events agree):

* DLRs, when the recipient has a ``notificationUrl`` (the request's string, or its
  entry of the array): for each part ``n`` of 1..``parts`` an ``ACCEPTD``, then for each
  part its final status. The URL's escapes are replaced by URL-encoded values:

  ====  ===========================================================================
  %i    the message id the 202 gave that recipient
  %p    the sender (``from``)
  %P    the recipient's number, as kept (digits)
  %t    when it was accepted, ``YYYY-MM-DD HH:MM`` (UTC)
  %c    the cost of the part, ``0.05``
  %s    ``ACCEPTD``, then ``DELIVRD`` / ``UNDELIV`` / ``EXPIRED`` / ``REJECTD``
  %m    the operator's MNC, e.g. ``01``
  %y    when the DLR was made, ``YYYY-MM-DD HH:MM`` (UTC)
  %n    the part number, 1..parts
  %C    the campaign id: 0 when the request named no ``campaignName``
  %S    the sending id
  ====  ===========================================================================

  Any other ``%`` is left as written, and so is ``%c`` / ``%C`` followed by a hex
  digit (``%C3%A9``: a percent-encoded byte of the URL, not an escape).

* events, when ``events_url`` is configured: a POST,
  ``application/x-www-form-urlencoded``, of ``id``, ``channel`` (sms, mailing, landing,
  text2speech: voice and voice-audio), ``contactId``, ``campaignId`` (0 without a
  campaign name), ``campaignName`` (empty without one), ``formId`` (empty), ``event``,
  ``extra`` (``{"url": "<url-encoded>"}`` for ``clicked``, else empty),
  ``smtpResponse`` (only for an email's ``delivered``, ``hard_bounced`` and
  ``soft_bounced``) and ``eventDate`` (``2021-07-19T15:00:33+00:00``): "sent", then
  the decision's events (``sandbox.outcomes.Decision.events``).

A message's notifications go one after another, in that order (the "sent" event, the
ACCEPTDs, the final DLRs, the other events): each is sent once the one before it had
its first answer, the first ``delay_s`` after the 202. For ``reorder`` of the messages
the order is reversed (``DELIVRD`` before ``ACCEPTD``, "opened" before "delivered");
each notification is sent again, as a copy placed at a random later place in the
message's sequence, for ``duplicates`` of them — and a copy may get a copy, up to
``MAX_COPIES``. Retries do not hold the sequence up: an answer other than 200, a
connection that fails or no answer within ``timeout_s`` is retried ``k`` ×
``minute_s`` after the ``k``-th failure, up to 5 retries, then given up. These draws
come from ``random.Random(f"{seed}:{message id}:delivery")``.

Configuration, ``POST /_sandbox/notifications`` with a JSON object that replaces it
all (every key optional, null = the default; a bad one → 400 naming the key, the old
one stays; ``POST /_sandbox/reset`` restores the defaults with a new random seed)::

    events_url  null       str: where events are POSTed (null: no events)
    enabled     true       false: accepted messages get no notifications at all
    delay_s     0.02       before a message's first notification
    minute_s    0.05       the doc's "minute" of the retry schedule
    timeout_s   5          a notification not answered by then has failed
    duplicates  0          share of notifications sent again
    reorder     0          share of messages whose notifications go in reverse order
    seed        random     decisions and draws: the same for one seed and message id
    undelivered 0.1, expired 0, rejected 0, email_bounce 0.05, email_soft_bounce 0.05,
    email_open 0.5, email_click 0.2, email_unsubscribe 0.05, email_complaint 0,
    landing_unsubscribe 0.05      the shares of sandbox.outcomes.Rates

So by default DLRs go to every ``notificationUrl`` requests give, as the doc says,
and events nowhere. A message gets a decision only when it has something to notify
(a ``notificationUrl``, or ``events_url`` set when it was accepted); its decision adds
the recipient to the blacklist (``sandbox.blacklist``) for the facts that do. The
configuration in force when a request is accepted is the one its messages follow.

Inspection::

    GET  /_sandbox/notifications   {"config": {...every key above...}, "pending": n,
                                    "sent": n, "delivered": n, "retries": n,
                                    "given_up": n, "duplicates": n}
    POST /_sandbox/notifications   the same, after replacing the configuration
    GET  /_sandbox/notifications/decisions
                                   {"<message id>": {"channel", "to", "sending",
                                    "delivery", "facts": [...]}, ...}

``pending``: notifications not yet answered 200 nor given up (waiting, retrying or
on the wire); ``sent``: requests made, retries and copies included; ``delivered``:
answered 200; ``retries``: retry requests made; ``given_up``: notifications that
failed their 5th retry; ``duplicates``: copies made. ``/_sandbox/stats`` shows the same
counters under ``notifications``.

How: an accepted request is queued as it is (``sandbox.state.Accepted``), so that the
answer waits for nothing; a background task decides and plans ``EXPAND_CHUNK``
messages at a time, one task hands due notifications out of a time heap, and
``CONCURRENCY`` tasks send them with one ``httpx.AsyncClient``. Reading the inspection
routes plans what is still queued first, so what they show is complete. A reset
cancels every task (notifications on the wire are dropped) and forgets it all; the
app's shutdown cancels them and closes the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import math
import random
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final
from urllib.parse import quote

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response

from sandbox.blacklist import Blacklist
from sandbox.outcomes import (
    BLACKLIST_TYPES,
    CLICKED_URL,
    COST_PER_PART,
    DLR_CHANNELS,
    EVENT_CHANNELS,
    SMTP_RESPONSES,
    Decision,
    Rates,
    contact_id,
    decide,
)
from sandbox.state import Accepted, Message

CONCURRENCY: Final = 64  # notifications on the wire at once
EXPAND_CHUNK: Final = 100  # messages planned before the loop gets a turn (~2 ms)
MAX_RETRIES: Final = 5  # "Notifications will be retried up to 5 times"
MAX_COPIES: Final = 3  # copies of one notification at most
DELIVERED: Final = 200  # "… other than 200 OK" is a failure, 204 included

# ``%`` + letter → the escape's name; ``%c`` / ``%C`` before a hex digit is a
# percent-encoded byte of the URL ("Delivery notifications").
ESCAPE: Final = re.compile(r"%(?:[cC](?![0-9A-Fa-f])|[ipPtsmynS])")


class ConfigError(ValueError):
    """A bad configuration; the message starts with the key."""


@dataclass(frozen=True, slots=True)
class Config:
    """The configuration in force (see the module's table)."""

    seed: int
    events_url: str | None = None
    enabled: bool = True
    delay_s: float = 0.02
    minute_s: float = 0.05
    timeout_s: float = 5.0
    duplicates: float = 0.0
    reorder: float = 0.0
    rates: Rates = field(default_factory=Rates)

    def as_json(self) -> dict[str, Any]:
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rates"}
        return {**shown, **{f.name: getattr(self.rates, f.name) for f in fields(Rates)}}


# JSON key → its kind: "share" (0 to 1), "seconds" (>= 0), or the Python type.
KEYS: Final[dict[str, str]] = {
    "events_url": "url",
    "enabled": "bool",
    "delay_s": "seconds",
    "minute_s": "seconds",
    "timeout_s": "seconds",
    "duplicates": "share",
    "reorder": "share",
    "seed": "int",
    **{f.name: "share" for f in fields(Rates)},
}


def _value(key: str, kind: str, value: object) -> object:
    if kind == "url":
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise ConfigError(f"{key}: must be an http(s) URL")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be a boolean")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: must be an integer")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key}: must be a number")
    if value < 0 or (kind == "share" and value > 1):
        raise ConfigError(
            f"{key}: must be from 0 to 1" if kind == "share" else f"{key}: must be >= 0"
        )
    return float(value)


def parse_config(raw: object) -> Config:
    """The configuration posted as ``raw``; ``ConfigError`` names the first bad key."""
    if not isinstance(raw, dict):
        raise ConfigError("the notifications configuration must be a JSON object")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in KEYS:
            raise ConfigError(f"{key}: unknown key (known: {', '.join(KEYS)})")
        if value is not None:
            values[key] = _value(key, KEYS[key], value)
    rate_names = {f.name for f in fields(Rates)}
    rates = Rates(**{k: v for k, v in values.items() if k in rate_names})
    if rates.undelivered + rates.expired + rates.rejected > 1:
        raise ConfigError("undelivered: undelivered + expired + rejected must be at most 1")
    values = {k: v for k, v in values.items() if k not in rate_names}
    values.setdefault("seed", random.SystemRandom().randrange(2**32))
    return Config(rates=rates, **values)


class Note:
    """One notification: a request to make until answered 200 or given up."""

    __slots__ = ("config", "failures", "form", "next", "url")

    def __init__(self, config: Config, url: str, form: dict[str, str] | None) -> None:
        self.config = config
        self.url = url
        self.form = form  # None: a DLR's GET; else an event's form POST
        self.failures = 0
        self.next: Note | None = None  # the message's next one, sent after our first answer

    def copy(self) -> Note:
        return Note(self.config, self.url, self.form)


@dataclass(slots=True)
class Counters:
    pending: int = 0
    sent: int = 0
    delivered: int = 0
    retries: int = 0
    given_up: int = 0
    duplicates: int = 0

    def as_json(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Run:
    """What one generation of background work holds; a reset starts another.

    Its HTTP client is its own too: a reset cancels senders in the middle of their
    requests, and whatever that leaves in a connection pool (a connection still counted
    as in use, idle ones to receivers long gone) must not take a place among the next
    generation's ``CONCURRENCY`` connections. (Seen: a full test run's bound test found
    one sender of 64 waiting for a connection for minutes, while the pool was shared.)
    """

    def __init__(self) -> None:
        self.counters = Counters()
        # (request accepted, its configuration, monotonic time of the 202) to be planned
        self.batches: deque[tuple[Accepted, Config, float]] = deque()
        self.cursor = 0  # messages of batches[0] already planned
        self.heap: list[tuple[float, int, Note]] = []  # (due monotonic time, tie-break, note)
        self.order = itertools.count()
        self.ready: asyncio.Queue[Note] = asyncio.Queue()
        self.wake = asyncio.Event()  # a note was pushed on the heap
        self.planned = asyncio.Event()  # a batch was queued
        self.tasks: list[asyncio.Task[None]] = []
        self.client: httpx.AsyncClient | None = None

    def push(self, due: float, note: Note) -> None:
        heapq.heappush(self.heap, (due, next(self.order), note))
        self.wake.set()

    def cancel(self) -> None:
        """Cancel every task; the client is closed once they are done (in the background:
        a reset answers at once)."""
        for task in self.tasks:
            task.cancel()
        if self.client is not None:
            closing = asyncio.ensure_future(self.close(self.tasks, self.client))
            _CLOSING.add(closing)
            closing.add_done_callback(_CLOSING.discard)
            self.client = None

    @staticmethod
    async def close(tasks: list[asyncio.Task[None]], client: httpx.AsyncClient) -> None:
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()


_CLOSING: set[asyncio.Future[None]] = set()  # runs' clients being closed (kept referenced)


def _minute(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds))


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


@functools.lru_cache(maxsize=1024)
def _split(template: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the literal pieces, the escape letters between them) of a URL template."""
    pieces = ESCAPE.split(template)
    return tuple(pieces), tuple(match[0][1] for match in ESCAPE.finditer(template))


@functools.lru_cache(maxsize=4096)
def _quoted(value: str) -> str:
    return quote(value, safe="")


def encoded(value: str) -> str:
    """``value`` URL-encoded (ids and numbers, the most of them, as they are)."""
    return value if value.isalnum() and value.isascii() else _quoted(value)


def dlr_url(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each escape replaced by its value, URL-encoded."""
    return fill(template, {letter: encoded(value) for letter, value in values.items()})


def fill(template: str, encoded_values: Mapping[str, str]) -> str:
    """``template`` with each escape replaced by its value, already URL-encoded."""
    pieces, letters = _split(template)
    out = [pieces[0]]
    for letter, piece in zip(letters, pieces[1:], strict=True):
        out += (encoded_values[letter], piece)
    return "".join(out)


class Notifier:
    """Decisions, the notifications they make and their sending (a
    ``sandbox.state.Store``; one event loop: no locks)."""

    def __init__(self, blacklist: Blacklist) -> None:
        self._blacklist = blacklist
        self._run = Run()
        self.reset()

    # --- the store ------------------------------------------------------------------

    def reset(self) -> None:
        """Defaults (a new seed), no decisions, nothing pending: every task cancelled."""
        self._run.cancel()
        self._run = Run()
        self.config = parse_config({})
        self.decisions: dict[str, Decision] = {}

    def stats_json(self) -> dict[str, Any]:
        self.flush()
        return {**self._run.counters.as_json(), "decided": len(self.decisions)}

    def as_json(self) -> dict[str, Any]:
        self.flush()
        return {"config": self.config.as_json(), **self._run.counters.as_json()}

    def decisions_json(self) -> dict[str, Any]:
        self.flush()
        return {message_id: d.as_json() for message_id, d in self.decisions.items()}

    # --- routes ---------------------------------------------------------------------

    async def endpoint(self, request: Request) -> Response:
        """``GET`` / ``POST /_sandbox/notifications``."""
        if request.method == "POST":
            try:
                self.config = parse_config(orjson.loads(await request.body()))
            except orjson.JSONDecodeError:
                return _json({"error": {"code": 400, "description": "invalid JSON"}}, 400)
            except ConfigError as exc:
                return _json({"error": {"code": 400, "description": str(exc)}}, 400)
        return _json(self.as_json())

    async def decisions_endpoint(self, request: Request) -> Response:
        """``GET /_sandbox/notifications/decisions``."""
        return _json(self.decisions_json())

    # --- accepting and planning -----------------------------------------------------

    def accepted(self, batch: Accepted) -> None:
        """``SandboxState.after_accept``: queue the request's messages, at once."""
        config = self.config
        if not config.enabled or batch.channel not in EVENT_CHANNELS:
            return
        if config.events_url is None and batch.urls is None:
            return
        run = self._run
        run.batches.append((batch, config, time.monotonic()))
        run.planned.set()
        if not run.tasks:
            self._start(run)

    def flush(self) -> None:
        """Plan every queued message now."""
        self._plan(self._run, None)

    def _plan(self, run: Run, limit: int | None) -> None:
        """Decide and plan up to ``limit`` queued messages (None: all of them)."""
        now, clock = time.time(), time.monotonic()
        done = 0
        while run.batches and (limit is None or done < limit):
            batch, config, accepted_at = run.batches[0]
            stop = len(batch.messages)
            if limit is not None:
                stop = min(stop, run.cursor + limit - done)
            for i in range(run.cursor, stop):
                url = batch.urls[i] if batch.urls is not None else None
                notes = self._notes(batch, batch.messages[i], url, config, now)
                if notes:
                    first = self._sequence(run, batch.messages[i].id, notes, config)
                    run.push(max(clock, accepted_at + config.delay_s), first)
            done += stop - run.cursor
            run.cursor = stop
            if run.cursor == len(batch.messages):
                run.batches.popleft()
                run.cursor = 0

    def _notes(
        self, batch: Accepted, message: Message, url: str | None, config: Config, now: float
    ) -> list[Note]:
        """The decision for ``message`` (kept, blacklisting) and its notifications."""
        channel = EVENT_CHANNELS[batch.channel]
        dlr = url if channel in DLR_CHANNELS else None
        if dlr is None and config.events_url is None:
            return []
        parts = int(message.details.get("parts", 1))
        decision = decide(
            config.seed,
            message.id,
            batch.channel,
            message.to,
            message.sending_id,
            parts,
            config.rates,
        )
        self.decisions[message.id] = decision
        definitive = decision.blacklisted()
        if definitive is not None:
            kind, sending = BLACKLIST_TYPES[channel], message.sending_id
            self._blacklist.from_event(kind, message.to, definitive, sending, batch.campaign_name)
        events = []
        if config.events_url is not None:
            events = [
                self._event(config, batch, message, decision, e, now) for e in decision.events()
            ]
        if dlr is None:
            return events
        values = {
            "i": encoded(message.id),
            "p": encoded(message.sender or ""),
            "P": encoded(message.to),
            "t": encoded(_minute(message.received_at)),
            "c": encoded(COST_PER_PART),
            "m": encoded(decision.mnc),
            "y": encoded(_minute(now)),
            "C": str(batch.campaign_id),
            "S": str(message.sending_id),
        }
        statuses = [decision.dlr_statuses(part) for part in range(1, parts + 1)]
        dlrs = [
            Note(config, fill(dlr, {**values, "n": str(part), "s": status[stage]}), None)
            for stage in (0, 1)
            for part, status in enumerate(statuses, 1)
        ]
        return [*events[:1], *dlrs, *events[1:]]

    @staticmethod
    def _event(
        config: Config,
        batch: Accepted,
        message: Message,
        decision: Decision,
        event: str,
        now: float,
    ) -> Note:
        assert config.events_url is not None
        extra = ""
        if event == "clicked":
            extra = orjson.dumps({"url": quote(CLICKED_URL, safe="")}).decode()
        form = {
            "id": message.id,
            "channel": decision.channel,
            "contactId": str(contact_id(decision.channel, message.to)),
            "campaignId": str(batch.campaign_id),
            "campaignName": batch.campaign_name or "",
            "formId": "",
            "event": event,
            "extra": extra,
            "eventDate": _iso(message.received_at if event == "sent" else now),
        }
        if decision.channel == "mailing" and event in SMTP_RESPONSES:
            form["smtpResponse"] = SMTP_RESPONSES[event].format(to=message.to)
        return Note(config, config.events_url, form)

    @staticmethod
    def _sequence(run: Run, message_id: str, notes: list[Note], config: Config) -> Note:
        """``notes`` reordered and copied as drawn, chained; the first of them."""
        rng = random.Random(f"{config.seed}:{message_id}:delivery")
        if rng.random() < config.reorder:
            notes.reverse()
        sequence = list(notes)
        for note in notes:
            copied = note
            for _ in range(MAX_COPIES):
                if rng.random() >= config.duplicates:
                    break
                copy = copied.copy()
                # after the one it copies: a copy may be sent right after it, or late
                at = next(i for i, n in enumerate(sequence) if n is copied)
                sequence.insert(rng.randint(at + 1, len(sequence)), copy)
                copied = copy
                run.counters.duplicates += 1
        for before, after in itertools.pairwise(sequence):
            before.next = after
        run.counters.pending += len(sequence)
        return sequence[0]

    # --- sending --------------------------------------------------------------------

    def _start(self, run: Run) -> None:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        client = run.client = httpx.AsyncClient(limits=limits, trust_env=False)
        run.tasks = [
            asyncio.create_task(self._planner(run)),
            asyncio.create_task(self._scheduler(run)),
            *(asyncio.create_task(self._sender(run, client)) for _ in range(CONCURRENCY)),
        ]

    async def _planner(self, run: Run) -> None:
        while True:
            if not run.batches:
                run.planned.clear()
                await run.planned.wait()
                continue
            self._plan(run, EXPAND_CHUNK)
            await asyncio.sleep(0)

    @staticmethod
    async def _scheduler(run: Run) -> None:
        """Hand each note to the senders when it is due."""
        while True:
            run.wake.clear()
            if not run.heap:
                await run.wake.wait()
                continue
            wait = run.heap[0][0] - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.wake.wait(), wait)
                continue
            now = time.monotonic()
            while run.heap and run.heap[0][0] <= now:
                run.ready.put_nowait(heapq.heappop(run.heap)[2])

    @staticmethod
    async def _sender(run: Run, client: httpx.AsyncClient) -> None:
        counters = run.counters
        while True:
            note = await run.ready.get()
            counters.sent += 1
            counters.retries += note.failures > 0
            try:
                if note.form is None:
                    response = await client.get(note.url, timeout=note.config.timeout_s)
                else:
                    response = await client.post(
                        note.url, data=note.form, timeout=note.config.timeout_s
                    )
                ok = response.status_code == DELIVERED
            except Exception:  # whatever it was, the notification was not delivered
                ok = False
            now = time.monotonic()
            if ok:
                counters.delivered += 1
                counters.pending -= 1
            elif note.failures < MAX_RETRIES:
                note.failures += 1
                run.push(now + note.failures * note.config.minute_s, note)
            else:
                counters.given_up += 1
                counters.pending -= 1
            if note.next is not None:  # its first answer: the message's next one goes
                run.push(now, note.next)
                note.next = None

    async def close(self) -> None:
        """The app's shutdown: cancel everything, close every client."""
        self._run.cancel()
        await asyncio.gather(*_CLOSING, return_exceptions=True)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")
