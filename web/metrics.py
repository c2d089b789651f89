"""``GET /metrics``: the cluster-wide view in Prometheus' text format, read from Redis.

Nothing is counted in this process: every number comes from Redis, so every
replica of the web service answers the same, and a restart loses nothing. The
counters are the workers' (``worker.metrics``: per provider call) and the result
store's (``jobs.results``: recipients, moved with each sending's own counters);
the gauges are read from the queue, the sendings and the account as they are now.

A scrape costs a few round trips whatever the history: one hash of counters,
the front of arq's queue (at most ``QUEUE_SCAN`` due jobs, to tell the waiting
from the running), the sendings not yet done, and one hash per stop scope.

=============================================  =====================================
``bulksend_recipients_total{kind,status}``     recipients that reached a final status
``bulksend_recipients_pending{kind,status}``   recipients queued or sending now
``bulksend_provider_requests_total``           provider calls by ``endpoint`` and
                                               ``code`` (error code, ``0`` for 2xx,
                                               ``http_<status>``, ``ambiguous``,
                                               ``not_sent``)
``bulksend_provider_request_duration_seconds`` their durations, by ``endpoint``
``bulksend_parts_billed_total{encoding}``      SMS parts the provider accepted
``bulksend_queue_depth``                       due chunk jobs not running yet
``bulksend_jobs_in_progress``                  chunk jobs running now
``bulksend_jobs_deferred``                     chunk jobs due later (retries, waits)
``bulksend_oldest_job_age_seconds``            how long the oldest waiting job has been due
``bulksend_workers_alive``                     workers that beat within ``ALIVE_S``
``bulksend_account_state{scope,state}``        1 per hold or halt of the account
``bulksend_sendings{state}``                   sendings enqueuing, running, done
=============================================  =====================================
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from jobs import keys
from jobs.accounts import account_id, stop_scopes
from jobs.results import PENDING
from jobs.settings import Settings
from worker.metrics import BUCKETS, INF, alive, le

__all__ = ["Cluster", "render", "snapshot"]

QUEUE_SCAN = 10_000  # due jobs looked at to find the running ones (arq runs the oldest)
BATCH = 1000  # commands per pipeline when reading many sendings
SENDING_STATES = ("enqueuing", "running", "done")


async def render(redis: Any, settings: Settings) -> tuple[bytes, str]:
    """The body of ``GET /metrics`` and its content type."""
    families = await collect(redis, settings)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Families:
    """A collector of families read already (``prometheus_client.registry.Collector``)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


@dataclass
class Counters:
    """``keys.METRICS``, taken apart."""

    reached: dict[tuple[str, str], float] = field(default_factory=dict)
    pending: dict[tuple[str, str], float] = field(default_factory=dict)
    requests: dict[tuple[str, str], float] = field(default_factory=dict)
    buckets: dict[str, dict[str, float]] = field(default_factory=dict)  # endpoint → le → n
    seconds: dict[str, float] = field(default_factory=dict)  # endpoint → sum
    parts: dict[str, float] = field(default_factory=dict)
    delivery: dict[tuple[str, str], float] = field(default_factory=dict)  # (kind, state) → n
    delivery_latency: dict[str, float] = field(default_factory=dict)  # le → n
    hooks: dict[str, float] = field(default_factory=dict)  # outcome → n
    delivery_seconds: float = 0.0

    @classmethod
    def parse(cls, raw: dict[bytes, bytes]) -> Counters:
        out = cls()
        for name, value in raw.items():
            try:
                out._add(name.decode(), float(value))
            except ValueError:  # not a field this version knows: leave it out
                continue
        return out

    def _add(self, name: str, n: float) -> None:
        what, _, rest = name.partition(keys.metrics_field("", ""))
        if what == keys.METRICS_RECIPIENTS:
            kind, status = keys.metrics_field_parts(rest, 2)
            (self.pending if status in PENDING else self.reached)[kind, status] = n
        elif what == keys.METRICS_REQUESTS:
            code, endpoint = keys.metrics_field_parts(rest, 2)
            self.requests[endpoint, code] = n
        elif what == keys.METRICS_LATENCY:
            bound, endpoint = keys.metrics_field_parts(rest, 2)
            float(bound)  # a bound, or "+Inf"
            self.buckets.setdefault(endpoint, {})[bound] = n
        elif what == keys.METRICS_LATENCY_SUM:
            self.seconds[rest] = n
        elif what == keys.METRICS_PARTS:
            self.parts[rest] = n
        elif what == keys.METRICS_DELIVERY:
            kind, state = keys.metrics_field_parts(rest, 2)
            self.delivery[kind, state] = n
        elif what == keys.METRICS_DELIVERY_LATENCY:
            float(rest)  # a bound, or "+Inf"
            self.delivery_latency[rest] = n
        elif what == keys.METRICS_HOOKS:
            self.hooks[rest] = n
        elif name == keys.METRICS_DELIVERY_LATENCY_SUM:
            self.delivery_seconds = n


@dataclass
class QueueNow:
    due: int
    deferred: int
    running: int
    oldest_age: float

    @property
    def waiting(self) -> int:
        return max(self.due - self.running, 0)


@dataclass
class Cluster:
    """What Redis says of the whole cluster now: the counters, the queue, the workers'
    beats, sendings by state, and each scope's stop (None: none). ``/metrics`` and the
    dashboard's overview are two renderings of it."""

    counters: Counters
    queue: QueueNow
    beats: dict[bytes, bytes]
    sendings: dict[str, int]
    stops: list[tuple[str, str | None]]
    at: float

    @property
    def workers_alive(self) -> int:
        return alive(self.beats, self.at)


async def snapshot(redis: Any, settings: Settings) -> Cluster:
    """One reading of everything ``Cluster`` holds: a few pipelined round trips."""
    now = time.time()
    queue = settings.queue_name
    account = account_id(settings)
    scopes = stop_scopes()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.METRICS)
        pipe.hgetall(keys.workers(queue))
        pipe.zcount(queue, "-inf", now * 1000)
        pipe.zcount(queue, f"({now * 1000!r}", "+inf")
        pipe.zrangebyscore(queue, "-inf", now * 1000, start=0, num=QUEUE_SCAN, withscores=True)
        pipe.zcard(keys.SENDINGS)
        pipe.smembers(keys.ACTIVE)
        for scope in scopes:
            pipe.hget(keys.stop(account, scope), "state")
        raw, beats, due, deferred, front, listed, active, *stops = await pipe.execute()
    return Cluster(
        counters=Counters.parse(raw),
        queue=await _queue(redis, now, int(due), int(deferred), front),
        beats=beats,
        sendings=await _sendings(redis, [m.decode() for m in active], int(listed)),
        stops=[(scope, s.decode() if s else None) for scope, s in zip(scopes, stops, strict=True)],
        at=now,
    )


async def collect(redis: Any, settings: Settings) -> list[Metric]:
    """Every family, from what Redis holds now."""
    cluster = await snapshot(redis, settings)
    counters = cluster.counters
    families = _recipients(counters) + _provider(counters) + _delivery(counters)
    families += _gauges(cluster.queue, cluster.workers_alive, cluster.sendings)
    state = GaugeMetricFamily(
        "bulksend_account_state",
        "1 for each hold or halt of the provider account, by scope (* or a channel)",
        labels=["scope", "state"],
    )
    for scope, stop in cluster.stops:
        if stop is not None:
            state.add_metric([scope, stop], 1)
    return [*families, state]


async def _queue(
    redis: Any, now: float, due: int, deferred: int, front: Sequence[tuple[bytes, float]]
) -> QueueNow:
    """arq keeps a running job in its queue until it ends: the due jobs with an
    in-progress key are running, the others waiting."""
    async with redis.pipeline(transaction=False) as pipe:
        for job_id, _ in front:
            pipe.exists(keys.arq_in_progress(job_id.decode()))
        running = [bool(n) for n in await pipe.execute()] if front else []
    waiting = [score for (_, score), busy in zip(front, running, strict=True) if not busy]
    oldest = max(now - min(waiting) / 1000, 0.0) if waiting else 0.0
    return QueueNow(due, deferred, sum(running), oldest)


async def _sendings(redis: Any, active: list[str], listed: int) -> dict[str, int]:
    """Sendings by state: the active ones as their records say, every other one listed
    is done (its records kept or expired)."""
    counts = dict.fromkeys(SENDING_STATES, 0)
    for start in range(0, len(active), BATCH):
        async with redis.pipeline(transaction=False) as pipe:
            for sending_id in active[start : start + BATCH]:
                pipe.hget(keys.sending(sending_id), "state")
            for state in await pipe.execute():
                if state is not None and state.decode() in counts:
                    counts[state.decode()] += 1
    counts["done"] += max(listed - len(active), 0)
    return counts


F = TypeVar("F", CounterMetricFamily, GaugeMetricFamily)


def _filled(family: F, values: Mapping[Any, float]) -> F:
    """``family`` with a sample per entry of ``values`` (labels: a tuple, or one string)."""
    for labels, n in sorted(values.items()):
        family.add_metric(list(labels) if isinstance(labels, tuple) else [labels], n)
    return family


def _recipients(c: Counters) -> list[Metric]:
    reached = CounterMetricFamily(
        "bulksend_recipients",
        "Recipients that reached a final status, by kind (a recipient recorded unknown "
        "and answered later, or requeued, counts again in its new status)",
        labels=["kind", "status"],
    )
    pending = GaugeMetricFamily(
        "bulksend_recipients_pending",
        "Recipients queued or being sent now, by kind",
        labels=["kind", "status"],
    )
    return [_filled(reached, c.reached), _filled(pending, c.pending)]


def _provider(c: Counters) -> list[Metric]:
    requests = CounterMetricFamily(
        "bulksend_provider_requests",
        "Provider calls by endpoint and outcome code (the provider's error code, 0 for a "
        "2xx answer, http_<status> without a code, ambiguous, not_sent)",
        labels=["endpoint", "code"],
    )
    duration = HistogramMetricFamily(
        "bulksend_provider_request_duration_seconds",
        "How long provider calls took, by endpoint",
        labels=["endpoint"],
    )
    for endpoint, by_le in sorted(c.buckets.items()):
        duration.add_metric([endpoint], _histogram(by_le), sum_value=c.seconds.get(endpoint, 0.0))
    parts = CounterMetricFamily(
        "bulksend_parts_billed",
        "SMS parts the provider accepted, by encoding",
        labels=["encoding"],
    )
    return [_filled(requests, c.requests), duration, _filled(parts, c.parts)]


def _histogram(by_le: dict[str, float]) -> list[tuple[str, float]]:
    """Cumulative buckets from per-bucket counts: every bound on every scrape, empty or
    not (and any a former version wrote)."""
    bounds = {*by_le, *(le(b) for b in BUCKETS)} - {INF}
    cumulative, total = [], 0.0
    for bound in sorted(bounds, key=float):
        total += by_le.get(bound, 0.0)
        cumulative.append((repr(float(bound)), total))
    cumulative.append((INF, total + by_le.get(INF, 0.0)))
    return cumulative


def _delivery(c: Counters) -> list[Metric]:
    delivery = CounterMetricFamily(
        "bulksend_delivery",
        "Recipients that reached a delivery state after accepted (delivered, undelivered, "
        "rejected, expired), by kind, from the provider's notifications",
        labels=["kind", "state"],
    )
    latency = HistogramMetricFamily(
        "bulksend_delivery_latency_seconds",
        "Time from accepted to the notification that it was delivered",
    )
    latency.add_metric([], _histogram(c.delivery_latency), sum_value=c.delivery_seconds)
    hooks = CounterMetricFamily(
        "bulksend_notifications",
        "Delivery and event notifications received, by outcome (applied, delivered, "
        "duplicate, parked until their message id is recorded, unknown, malformed)",
        labels=["outcome"],
    )
    return [_filled(delivery, c.delivery), latency, _filled(hooks, c.hooks)]


def _gauges(queue: QueueNow, workers: int, sendings: dict[str, int]) -> list[Metric]:
    def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, value=value)

    by_state = GaugeMetricFamily("bulksend_sendings", "Sendings by state", labels=["state"])
    for state in SENDING_STATES:
        by_state.add_metric([state], sendings[state])
    return [
        gauge("bulksend_queue_depth", "Chunk jobs due and not running yet", queue.waiting),
        gauge("bulksend_jobs_in_progress", "Chunk jobs running now", queue.running),
        gauge("bulksend_jobs_deferred", "Chunk jobs due later (retries, waits)", queue.deferred),
        gauge(
            "bulksend_oldest_job_age_seconds",
            "How long the oldest waiting chunk job has been due (0: none waits)",
            queue.oldest_age,
        ),
        gauge("bulksend_workers_alive", "Workers that sent a heartbeat lately", workers),
        by_state,
    ]
