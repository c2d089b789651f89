"""What the dashboard's pages show, read from Redis and shaped for the templates.

Every page costs a fixed number of round trips whatever the history: the
overview reads the cluster snapshot that ``/metrics`` renders, the newest ten
sendings, the workers' beats and the account's stops; a sending's page reads its
status, its breakdown (kept by the result store as recipients move, never
counted here) and one page of recipients. Searching recipients is a bounded scan
that goes on from a cursor — an index of every address would cost more memory
than the search is worth.

The overview is cached for ``OVERVIEW_TTL_S`` per process: ten tabs polling it
cost one reading a second, not ten.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Final

from jobs.accounts import Stop, account_id, read_stops
from jobs.errors import SendingNotFound
from jobs.producer import Producer
from jobs.results import Breakdown, Record
from jobs.settings import Settings
from sandbox.errors import ERRORS  # the doc's "Errors" table, kept once
from web.metrics import Cluster, snapshot
from worker.error_policy import classify
from worker.metrics import WorkerBeat, read_series, workers_of

__all__ = [
    "CodeRow",
    "Overview",
    "RecipientsPage",
    "SendingView",
    "code_rows",
    "forget",
    "overview",
    "recipients",
    "sending_view",
]

OVERVIEW_TTL_S: Final = 1.0
LATEST: Final = 10
RECIPIENTS_PAGE: Final = 50
SERIES_S: Final = 3600


@dataclass
class Overview:
    latest: list[dict[str, Any]]
    cluster: Cluster
    workers: list[WorkerBeat]
    stops: list[Stop]
    at: float


@dataclass
class CodeRow:
    """Recipients that ended with one provider code, and what the policy does with it."""

    code: str
    count: int
    action: str
    why: str
    description: str


@dataclass
class SendingView:
    status: dict[str, Any]
    breakdown: Breakdown
    codes: list[CodeRow]
    stops: list[Stop]


@dataclass
class RecipientsPage:
    rows: list[tuple[int, Record]]
    start: int = 0  # unfiltered: the first index shown
    cursor: int = 0  # filtered: where the scan goes on (0: it is finished)
    filtered: bool = False
    total: int = 0
    extra: dict[str, str] = field(default_factory=dict)


_cache: dict[int, tuple[float, Overview]] = {}
_lock = asyncio.Lock()


async def overview(producer: Producer, settings: Settings) -> Overview:
    """The overview, at most ``OVERVIEW_TTL_S`` old, read by one request at a time."""
    key = id(producer)
    async with _lock:
        cached = _cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < OVERVIEW_TTL_S:
            return cached[1]
        redis = producer.redis
        cluster = await snapshot(redis, settings)
        latest, _ = await producer.sendings(LATEST)
        found = Overview(
            latest=latest,
            cluster=cluster,
            workers=workers_of(cluster.beats, cluster.at),  # the snapshot read them
            stops=await read_stops(redis, account_id(settings)),
            at=cluster.at,
        )
        _cache[key] = (time.monotonic(), found)
        return found


def forget() -> None:
    """Drop the cached overview: after an action, the next page shows its effect."""
    _cache.clear()


async def series(producer: Producer) -> dict[str, list[float]]:
    """Recipients accepted and provider errors per second, 10 s buckets, the last hour
    (what the overview's chart draws: uPlot takes columns)."""
    rows = await read_series(producer.redis, time.time(), SERIES_S)
    return {
        "t": [float(t) for t, _, _ in rows],
        "accepted": [a for _, a, _ in rows],
        "errors": [e for _, _, e in rows],
    }


def code_rows(codes: dict[str, int]) -> list[CodeRow]:
    """Each code with its count, the policy's action and the doc's description, the
    most frequent first. Our own codes: -1 the outcome is unknown, -2 internal."""
    rows = []
    for code, count in codes.items():
        number = int(code) if code.lstrip("-").isdigit() else None
        if number is not None and number in ERRORS:
            http_status, description = ERRORS[number]
            action, why = classify(number, http_status)
            rows.append(CodeRow(code, count, action.value, why, description))
        else:
            description = {
                "-1": "no certain answer (timeout after sending, undocumented reply)",
                "-2": "an error on our side",
            }.get(code, "no provider code")
            rows.append(CodeRow(code, count, "—", "", description))
    return sorted(rows, key=lambda r: (-r.count, r.code))


async def sending_view(producer: Producer, settings: Settings, sending_id: str) -> SendingView:
    status = await producer.status(sending_id)
    if status is None:
        raise SendingNotFound(sending_id)
    breakdown = await producer.store.breakdown(sending_id)
    return SendingView(
        status=status,
        breakdown=breakdown,
        codes=code_rows(breakdown.codes),
        stops=await read_stops(producer.redis, account_id(settings)),
    )


async def recipients(
    producer: Producer,
    sending_id: str,
    *,
    total: int,
    text: str | None,
    status: str | None,
    start: int,
    cursor: int,
) -> RecipientsPage:
    """A page of recipients: by index when nothing is asked for, else the next matches
    of a bounded scan (``cursor`` says where it goes on)."""
    if text is None and status is None:
        start = max(0, min(start, max(total - 1, 0)))
        rows = await producer.store.page(sending_id, start, RECIPIENTS_PAGE)
        return RecipientsPage(rows=rows, start=start, total=total)
    rows, after = await producer.store.scan(
        sending_id, text=text, status=status, cursor=cursor, limit=RECIPIENTS_PAGE
    )
    return RecipientsPage(rows=rows, cursor=after, filtered=True, total=total)
