"""What the sandbox remembers, in memory: counters, ids, the last accepted messages.

Stats semantics (``GET /_sandbox/stats``):

- ``requests``: every request that reached a channel's API route, whatever the
  answer (auth failures, bad JSON and validation errors included);
- ``rejected``: those of them answered with an error status (4xx/5xx);
- ``recipients``: recipients *accepted* (202, or the accepted entries of a 207);
- ``unique``: distinct accepted recipients, a recipient being
  (channel, normalized phone or address, rendered content);
- ``duplicates``: accepted recipients that repeat an earlier one, so
  ``recipients == unique + duplicates`` (the same recipient sent 3 times counts 2);
- ``duplicate_samples``: the first 20 repeats seen, to debug.

Messages (``GET /_sandbox/messages``, the last ``MAX_MESSAGES`` per channel) carry
``receivedAt``, the ``time.time()`` at which the sandbox accepted them, and
``requestNo``, which request of the channel accepted them (1, 2, … counting only
requests that accepted someone, from the last ``reset``), so that a test can check
what the provider saw across all workers, e.g. a rate limit: in any window of W
seconds, at most R × W recipients plus one call. The recipients of one request
share one time and one number.

Arrivals (``GET /_sandbox/arrivals?channel=sms``): per channel, one ``[t, n]`` for
each request that accepted someone, in ``requestNo`` order (entry ``i`` is request
``i + 1``): ``t`` the ``time.time()`` at which the request reached the channel's
route — before authentication, fault latency and reading its body, the moment a
provider's front door would count it for its rate limit — and ``n`` the recipients
it had accepted. Kept for every request (16 bytes each, in two arrays) rather than
sampled from the bounded message list, so that a benchmark of millions of
recipients can still check a rate limit over its whole run. With ``window=W`` the
route also says the most recipients that arrived in any W seconds (``busiest``):
a limit of R per second allows R × W plus one call, and the sandbox's one clock
makes that a count, not a timing.

Identity is kept as a 64-bit hash of (recipient, content) to bound memory at millions of
recipients; a false duplicate needs a hash collision (negligible below ~10^8).
Ids (message, campaign, sending) are never reused in one process, even across
``reset``, so records kept by a client across tests cannot collide.

Besides the sending channels, ``stores`` hold what other routes keep (the contacts
databases: ``sandbox.contacts``, ``sandbox.mail_contacts``; ``sandbox.blacklist``;
the notifications sent after the 202, ``sandbox.notifications``, which get each
request's accepted recipients through ``after_accept``); each is reset with the
rest and shows its own counters at the top level of the stats, under its name. Their
routes are counted like channels, under ``channels``, but only from their first
request after a reset on (``listed_when_used``), so that a sandbox nobody imported
contacts into lists the sending channels alone, as it always did.
"""

from __future__ import annotations

import itertools
import secrets
from array import array
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson

MAX_MESSAGES = 200_000  # per channel, for /_sandbox/messages
MAX_DUPLICATE_SAMPLES = 20
FIRST_ID = 100_000  # "campaignId" : 100000 in the doc's example


class Message(NamedTuple):
    """One accepted recipient as it would be delivered."""

    id: str
    to: str  # normalized phone or email address
    sender: str | None  # ``from`` / ``fromEmail``; None where a channel has none (voice)
    text: str  # what was sent, in short: the rendered SMS or voice text, an email's
    # subject, a voice-audio URL, a WhatsApp template id with its body fields
    sending_id: int
    details: dict[str, Any]  # what else the channel shows, e.g. SMS encoding and parts
    received_at: float  # time.time() when accepted; one float object per request
    request_no: int  # the channel's accepting request, see ChannelStats.requests_accepting

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "to": self.to,
            "from": self.sender,
            "text": self.text,
            **self.details,
            "sendingId": self.sending_id,
            "receivedAt": self.received_at,
            "requestNo": self.request_no,
        }


class Accepted(NamedTuple):
    """The recipients one request had accepted, for what follows the answer
    (``SandboxState.after_accept``: ``sandbox.notifications``)."""

    channel: str  # stats name
    campaign_id: int
    campaign_name: str | None  # None when the request named no campaign
    messages: list[Message]
    urls: list[str | None] | None  # ``notificationUrl`` of each message; None: none given


@dataclass(slots=True)
class ChannelStats:
    requests: int = 0
    rejected: int = 0
    recipients: int = 0
    duplicates: int = 0
    seen: set[int] = field(default_factory=set)
    duplicate_samples: list[dict[str, Any]] = field(default_factory=list)
    messages: deque[Message] = field(default_factory=lambda: deque(maxlen=MAX_MESSAGES))
    requests_accepting: int = 0  # requests that accepted recipients: the last requestNo
    # One entry per accepting request (see "Arrivals" above): when it arrived, how many.
    arrived_at: array[float] = field(default_factory=lambda: array("d"))
    arrived_recipients: array[int] = field(default_factory=lambda: array("q"))

    def accept(self, message: Message, content: str | None = None) -> None:
        """Count one accepted recipient (hot path: keep it small).

        ``content`` is what makes two sends to one recipient the same message when
        ``text`` alone does not say it all (an email's body, a landing page).
        """
        self.recipients += 1
        key = hash((message.to, message.text if content is None else content))
        if key in self.seen:
            self.duplicates += 1
            if len(self.duplicate_samples) < MAX_DUPLICATE_SAMPLES:
                self.duplicate_samples.append(
                    {"to": message.to, "text": message.text, "id": message.id}
                )
        else:
            self.seen.add(key)
        self.messages.append(message)

    def arrived(self, at: float, recipients: int) -> None:
        """Log one accepting request: when it reached the route, how many it accepted."""
        self.arrived_at.append(at)
        self.arrived_recipients.append(recipients)

    def arrivals_json(self) -> list[list[float | int]]:
        """Every ``[t, n]`` logged, oldest first."""
        return [[t, n] for t, n in zip(self.arrived_at, self.arrived_recipients, strict=True)]

    def busiest(self, seconds: float) -> tuple[int, float | None]:
        """The most recipients that arrived within any ``seconds`` (a window
        ``[t, t + seconds)``) and that window's ``t``; ``(0, None)`` when none arrived.

        A window holding the most starts at an arrival, so trying each arrival as a
        start, with a running sum, finds it in one pass over the sorted log.
        """
        calls = sorted(zip(self.arrived_at, self.arrived_recipients, strict=True))
        best, best_start, inside, end = 0, None, 0, 0
        for start, recipients in calls:
            while end < len(calls) and calls[end][0] < start + seconds:
                inside += calls[end][1]
                end += 1
            if inside > best:
                best, best_start = inside, start
            inside -= recipients
        return best, best_start

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rejected": self.rejected,
            "recipients": self.recipients,
            "unique": len(self.seen),
            "duplicates": self.duplicates,
            "duplicate_samples": list(self.duplicate_samples),
        }


class Store(Protocol):
    """What a route family keeps besides counters (see ``SandboxState.stores``)."""

    def reset(self) -> None: ...

    def stats_json(self) -> dict[str, Any]: ...


def pack(record: list[Any]) -> bytes:
    """A record kept as compact JSON. orjson's result keeps its 4 KiB write buffer
    (a million records would take 4 GB); a copy is its own size."""
    return bytes(memoryview(orjson.dumps(record)))


class HashIndex:
    """A string's 64-bit hash → the ids holding it: an int, or a list when several do.

    About 80 bytes an entry where a dict of the strings themselves would take twice
    that; a hash shared by two values (a collision, or a value two records hold) keeps
    both ids, so callers compare the real values of what ``ids`` returns.
    """

    __slots__ = ("_ids",)

    def __init__(self) -> None:
        self._ids: dict[int, int | list[int]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, value: str, id_: int) -> None:
        key = hash(value)
        found = self._ids.get(key)
        if found is None:
            self._ids[key] = id_
        elif isinstance(found, int):
            self._ids[key] = [found, id_]
        else:
            found.append(id_)

    def remove(self, value: str, id_: int) -> None:
        key = hash(value)
        found = self._ids.get(key)
        if found == id_:
            del self._ids[key]
        elif isinstance(found, list) and id_ in found:
            found.remove(id_)
            if len(found) == 1:
                self._ids[key] = found[0]

    def ids(self, value: str) -> list[int]:
        """Ids that may hold ``value``, in the order they were added."""
        found = self._ids.get(hash(value))
        if found is None:
            return []
        return [found] if isinstance(found, int) else list(found)


class SandboxState:
    """All mutable state of one sandbox process (single event loop: no locks)."""

    def __init__(self, channels: list[str], *, listed_when_used: Collection[str] = ()) -> None:
        self._names = [*channels, *listed_when_used]
        self._listed_when_used = frozenset(listed_when_used)
        self.stores: dict[str, Store] = {}
        self.channels: dict[str, ChannelStats] = {}
        self.unrouted = 0  # requests under /api/ that matched no route
        self.campaigns: dict[str, int] = {}
        # Message ids: 13 hex characters, a per-process random prefix then a counter.
        self._id_prefix = secrets.token_hex(2)
        self._message_counter = itertools.count(1)
        self._numeric_ids = itertools.count(FIRST_ID)
        # Called with (channel, accepted recipients) just before a request's recipients are
        # counted; it may raise ApiError to refuse the whole request (sandbox.faults: credits).
        self.before_accept: Callable[[str, int], None] | None = None
        # Called by the email channel with (channel, fromEmail, replyTo), both well-formed;
        # it may raise ApiError 115 / 117 (sandbox.faults: unverified).
        self.verify_sender: Callable[[str, str, str], None] | None = None
        # Called with each request's accepted recipients once they are counted; it must
        # return at once (sandbox.notifications queues them for the background).
        self.after_accept: Callable[[Accepted], None] | None = None
        self.reset()

    def reset(self) -> None:
        self.channels = {name: ChannelStats() for name in self._names}
        self.unrouted = 0
        self.campaigns = {}
        for store in self.stores.values():
            store.reset()

    def message_id(self) -> str:
        return f"{self._id_prefix}{next(self._message_counter):09x}"

    def new_id(self) -> int:
        """A fresh campaign or sending id."""
        return next(self._numeric_ids)

    def campaign_id(self, name: str | None) -> int:
        """The campaign of ``campaignName`` (created on first use), or a new one."""
        if name is None:
            return self.new_id()
        found = self.campaigns.get(name)
        if found is None:
            found = self.campaigns[name] = self.new_id()
        return found

    @property
    def total_requests(self) -> int:
        return self.unrouted + sum(c.requests for c in self.channels.values())

    def stats_json(self) -> dict[str, Any]:
        return {
            "requests": self.total_requests,
            "unrouted": self.unrouted,
            "channels": {
                name: stats.as_json()
                for name, stats in self.channels.items()
                if stats.requests or name not in self._listed_when_used
            },
            **{name: store.stats_json() for name, store in self.stores.items()},
        }

    def messages_json(self, channel: str, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` accepted messages of ``channel``, oldest first."""
        newest = itertools.islice(reversed(self.channels[channel].messages), limit)
        return [m.as_json() for m in reversed(list(newest))]
