"""Scaling out: 1, 2 and 4 worker processes, the account's rate limit across all of
them, and workers joining and leaving in the middle of a sending.

Everything runs on this machine, as ``bench/throughput.py`` does (its ``Rig``: a
fresh embedded Redis, the sandbox as a subprocess, ``bulksend worker`` processes);
the sandbox answers every call after 50 ms (``latency_ms``), a provider's usual
round trip.

Why each worker is throttled: a worker left to call as fast as its CPU allows
saturates this 2-core machine alone (``bench/throughput.py``: 24k recipients/s with
one worker, 28k with two), and adding processes would then measure the host, not
the design. A real worker's throughput is bounded by its connection budget and
the provider's latency instead: k concurrent calls of c recipients taking L
seconds carry at most k·c/L recipients/s. Here k = 1
(``BULKSEND_PROVIDER_MAX_CONNECTIONS``), c = 100 (``BULKSEND_CHUNK_SIZE``, one call
per chunk) and L = 50 ms: at most 2,000/s per worker, so 4 workers need about
8,000/s, well inside what the machine does (the CPU shares are printed), and what
the figures show is how the pipeline shares work — one queue, one Redis, one rate
limit — not how the host runs out of cores. ``BULKSEND_WORKER_MAX_JOBS=5`` keeps
the defaults' ratio of jobs to connections (100 to 20): a worker holds a few chunks,
not hundreds, so one that joins finds work and one that leaves drains in a moment.

Why one connection with calls of 100 rather than two with calls of 50 (the same
2,000/s): phase B checks the limit where a provider counts, at its door, and the
time from a worker's turn to its call's arrival varies (the claim in Redis, the
body, both event loops on 2 shared cores), which moves calls closer together there.
The limiter spaces calls c/R apart (34 ms for 100 at 3,000/s), so a 1-second window
at the door holds more than the limit plus one call only if that jitter takes
some 55 ms out of it; with calls of 50 some 37 ms would do. The check is then about
the limiter, not the scheduler's noise.

A. scaling: one sending of N SMS with ``sub`` (default 20,000) through 1, 2 and 4
   workers, each on a fresh queue, no rate limit; recipients/s from submit to
   final, and the ratios 2w/1w and 4w/1w.
B. rate limit: the same with ``BULKSEND_RATE_MESSAGES_PER_SECOND`` (default
   3,000): above one worker's rate (~1,750/s here), below two workers' (~3,350/s).
   Messages per second, not requests, because that is what a provider account is
   sold and throttled by. The rate rises with workers until the limit, then holds
   there. From the sandbox's
   arrival log (``GET /_sandbox/arrivals``: when each call reached the provider's
   door and its recipients, on the sandbox's one clock) the most recipients in any
   1-second window: the limiter (GCRA, ``worker/rate_limit.py``) promises at most
   the limit plus one call, and that is checked (PASS/FAIL).
C. join and leave: one sending with 1 worker; at 15% accepted 2 more join; at 45%
   the first gets SIGTERM, at 70% a second one: every recipient accepted exactly
   once (the sandbox's counts), the sending all accepted, none unknown or failed,
   the stopped workers drained (exit status 0), and every worker took part (its
   log's chunk lines). The provider-side rate between those moments shows the fleet
   growing and shrinking.

Any failed check prints ``!!! FAIL`` at once and in the summary, and the exit status
is 1. Run: python bench/scale.py [--recipients 20000] [--limit 3000]
[--join-recipients 30000] (the last line is machine-readable: RESULT key=value ...)
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import throughput  # bench/throughput.py, next to this file
from throughput import Checks, Rig, deadline, describe_cpu, log

from bulksend.stack import Process, WorkerProcesses
from jobs.producer import Producer
from jobs.settings import Settings
from worker.metrics import read_workers

CHUNK = 100  # recipients per chunk job, and so per provider call
CONNECTIONS = 1  # concurrent provider calls per worker
JOBS_PER_CONNECTION = 5  # chunk jobs a worker holds at once, per connection (100 / 20)
LATENCY_MS = 50  # the sandbox's answer time
WINDOW_S = 1.0  # the rate limit's check window
FLEETS = (1, 2, 4)
# What a worker logs when a chunk job ends (worker/tasks.py): its recipients.
CHUNK_LINE = re.compile(rb"chunk \S+: (\d+) recipients in \d+ calls")


class ScaleRig(Rig):
    """The throughput bench's rig, with this bench's worker settings in every child's
    environment (``worker_env``, changed between phases)."""

    def __init__(self, tmp: Path, chunk: int, connections: int) -> None:
        super().__init__(tmp)
        self.chunk = chunk
        self.connections = connections
        self.worker_env: dict[str, str] = {}

    def env(self, queue: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return super().env(queue, {**self.worker_env, **(extra or {})})

    def producer_settings(self, queue: str) -> Settings:
        return self.settings(queue).model_copy(update={"chunk_size": self.chunk})

    def prepare_sandbox(self) -> None:
        """Counters and the arrival log zeroed, then the provider's latency."""
        self.reset_sandbox()
        faults = {"latency_ms": LATENCY_MS}
        httpx.post(
            f"{self.sandbox_url}/_sandbox/faults", json=faults, timeout=30
        ).raise_for_status()

    def arrivals(self) -> dict[str, Any]:
        """The SMS arrival log and its busiest ``WINDOW_S`` (see sandbox.state)."""
        response = httpx.get(
            f"{self.sandbox_url}/_sandbox/arrivals",
            params={"channel": "sms", "window": WINDOW_S},
            timeout=60,
        )
        response.raise_for_status()
        return dict(response.json())

    def use_fleet(self, limit: float | None = None) -> None:
        """Workers started from now on: this bench's throttle, and ``limit`` if any."""
        self.worker_env = {
            "BULKSEND_CHUNK_SIZE": str(self.chunk),
            "BULKSEND_PROVIDER_MAX_CONNECTIONS": str(self.connections),
            "BULKSEND_WORKER_MAX_JOBS": str(JOBS_PER_CONNECTION * self.connections),
        }
        if limit:
            self.worker_env["BULKSEND_RATE_MESSAGES_PER_SECOND"] = f"{limit:g}"


def logged_recipients(workers: WorkerProcesses) -> list[int]:
    """Recipients each worker's log says its chunk jobs sent."""
    counts = []
    for i in range(len(workers)):
        path = workers.log(i)
        text = path.read_bytes() if path and path.exists() else b""
        counts.append(sum(int(n) for n in CHUNK_LINE.findall(text)))
    return counts


def provider_rate(arrivals: list[list[float]], start: float, end: float) -> float:
    """Recipients/s that arrived at the sandbox in ``[start, end)`` (epoch seconds)."""
    inside = sum(n for t, n in arrivals if start <= t < end)
    return inside / (end - start) if end > start else float("nan")


def steady_rate(arrivals: list[list[float]]) -> float:
    """Recipients/s at the provider from the first call's arrival to the last's (the
    last call's recipients not counted: they arrived at the end of the span)."""
    if len(arrivals) < 2:
        return float("nan")
    times = sorted(arrivals)
    return sum(n for _, n in times[:-1]) / (times[-1][0] - times[0][0])


# --- A and B: one sending through a fleet of a given size ------------------------------


@dataclass
class Sending:
    phase: str
    workers: int
    recipients: int
    seconds: float  # submit to final
    at_provider: float  # recipients/s between the first and the last arrival
    busiest: int  # most recipients in any WINDOW_S at the sandbox
    largest: int  # the largest call's recipients
    limit: float | None
    cores: dict[str, float]  # CPU cores each component used, submit to final

    @property
    def rate(self) -> float:
        return self.recipients / self.seconds

    @property
    def allowed(self) -> float:
        """The most any window may hold: the limit's share of it plus one call."""
        return (self.limit or float("inf")) * WINDOW_S + self.largest


async def one_sending(
    rig: ScaleRig, checks: Checks, n: int, workers: int, limit: float | None
) -> Sending:
    phase = "B" if limit else "A"
    name = f"{phase} {workers}w" + (f" limit {limit:,.0f}/s" if limit else "")
    log(f"[{name}] {n:,} recipients ...")
    rig.use_fleet(limit)
    rig.prepare_sandbox()
    queue = f"bench:scale{phase}{workers}:{uuid.uuid4().hex[:6]}"
    job = throughput.sms_job(throughput.people(n))
    procs = await rig.start_workers("pipeline", workers, queue)
    with procs:
        sent = await throughput.send_timed(
            rig, rig.producer_settings(queue), job, procs, deadline(n, 200)
        )
    status, seconds, cores = sent.status, sent.seconds, sent.cores
    checks.sending(name, status, n)
    checks.exactly_once(name, rig.sms_stats(), n)
    arrivals = rig.arrivals()
    sending = Sending(
        phase,
        workers,
        n,
        seconds,
        steady_rate(arrivals["arrivals"]),
        arrivals["busiest"]["recipients"],
        arrivals["largest"],
        limit,
        cores,
    )
    if limit:
        checks.expect(
            sending.busiest <= sending.allowed,
            f"{name}: {sending.busiest:,} recipients arrived within {WINDOW_S:g} s, more "
            f"than the limit plus one call ({sending.allowed:,.0f})",
        )
    log(
        f"[{name}] {sending.rate:,.0f} recipients/s in {seconds:.1f}s; at the provider "
        f"{sending.at_provider:,.0f}/s, busiest {WINDOW_S:g} s {sending.busiest:,}; "
        f"{describe_cpu(cores)}"
    )
    return sending


# --- C: workers joining and leaving ----------------------------------------------------


@dataclass
class JoinLeave:
    recipients: int
    seconds: float
    events: list[tuple[float, str, int]] = field(default_factory=list)  # epoch, what, accepted
    segments: list[tuple[str, float]] = field(default_factory=list)  # fleet, recipients/s
    per_worker: list[int] = field(default_factory=list)
    exit_codes: list[int | None] = field(default_factory=list)
    ok: bool = False


async def join_and_leave(rig: ScaleRig, checks: Checks, n: int) -> JoinLeave:
    name = "C join/leave"
    log(f"[{name}] {n:,} recipients: 1 worker, 2 join at 15%, SIGTERM at 45% and 70% ...")
    failures = len(checks.failures)
    rig.use_fleet()
    rig.prepare_sandbox()
    queue = f"bench:scaleC:{uuid.uuid4().hex[:6]}"
    job = throughput.sms_job(throughput.people(n))
    fleet = await rig.start_workers("pipeline", 1, queue)
    run = JoinLeave(n, 0.0)
    with fleet:
        producer = await Producer.connect(rig.producer_settings(queue))
        try:

            async def accepted() -> tuple[int, bool]:
                status = await producer.status(sending_id)
                assert status is not None
                return int(status["counts"]["accepted"]), bool(status["final"])

            async def until(share: float) -> int:
                while True:
                    done, final = await accepted()
                    if done >= share * n or final:
                        return done
                    await asyncio.sleep(0.02)

            async def event(what: str) -> None:
                done = (await accepted())[0] if run.events else 0
                run.events.append((time.time(), what, done))
                log(f"[{name}] {what} at {done:,} accepted")

            async def alive(count: int) -> None:
                """Until ``count`` workers beat (each beats once started, leaves on exit)."""
                while True:
                    beats = await read_workers(producer.redis, queue, time.time())
                    if sum(beat.alive for beat in beats) >= count:
                        return
                    await asyncio.sleep(0.02)

            async with asyncio.timeout(deadline(n, 200)):
                started = time.monotonic()
                await event("submit")
                sending_id = await producer.submit(job)
                await until(0.15)
                await event("2 workers start")
                rig.children += fleet.start(2)
                await alive(3)
                await event("3 workers running")
                await until(0.45)
                leaving: list[Process] = [fleet[0]]
                fleet[0].send_signal(signal.SIGTERM)
                await event("SIGTERM worker 1 of 3")
                await until(0.70)
                leaving.append(fleet[1])
                fleet[1].send_signal(signal.SIGTERM)
                await event("SIGTERM worker 2 of 3")
                status = await producer.wait(sending_id, poll=0.05)
                run.seconds = time.monotonic() - started
                await event("final")
                for proc in leaving:
                    run.exit_codes.append(await asyncio.to_thread(proc.wait, 60))
        finally:
            await producer.close()
    run.per_worker = logged_recipients(fleet)
    for _, what, done in run.events[1:-1]:
        checks.expect(done < n, f"{name}: '{what}' came after the sending ended ({done:,})")
    counts = status["counts"]
    checks.sending(name, status, n)
    others = {k: v for k, v in counts.items() if k not in ("total", "accepted") and v}
    checks.expect(not others, f"{name}: recipients not accepted: {others}")
    checks.exactly_once(name, rig.sms_stats(), n)
    checks.expect(
        run.exit_codes == [0, 0], f"{name}: stopped workers exited {run.exit_codes}, not 0"
    )
    checks.expect(
        all(run.per_worker), f"{name}: a worker sent nothing (recipients {run.per_worker})"
    )
    arrivals = rig.arrivals()["arrivals"]
    fleets = ["1 worker", "1 worker, 2 starting", "3 workers", "2 workers (+1 draining)"]
    fleets.append("1 worker (+1 draining)")
    times = [at for at, _, _ in run.events]
    run.segments = [
        (fleets[i], provider_rate(arrivals, times[i], times[i + 1])) for i in range(len(times) - 1)
    ]
    run.ok = len(checks.failures) == failures
    log(
        f"[{name}] {'ok' if run.ok else 'FAILED'} in {run.seconds:.1f}s; at the provider: "
        + "; ".join(f"{fleet} {rate:,.0f}/s" for fleet, rate in run.segments)
        + f"; recipients by worker (their logs) {run.per_worker}"
    )
    return run


# --- the run --------------------------------------------------------------------------


@dataclass
class Run:
    scaling: dict[int, Sending] = field(default_factory=dict)
    limited: dict[int, Sending] = field(default_factory=dict)
    join_leave: JoinLeave | None = None
    limit: float = 0.0
    phases: str = "ABC"


async def measure(rig: ScaleRig, checks: Checks, args: argparse.Namespace) -> Run:
    run = Run(limit=args.limit, phases=args.phases)

    for workers in FLEETS if "A" in args.phases else ():
        found = await checks.phase(
            f"A {workers}w", one_sending(rig, checks, args.recipients, workers, None)
        )
        if found:
            run.scaling[workers] = found
    for workers in FLEETS if "B" in args.phases else ():
        found = await checks.phase(
            f"B {workers}w", one_sending(rig, checks, args.recipients, workers, args.limit)
        )
        if found:
            run.limited[workers] = found
    if "C" in args.phases:
        run.join_leave = await checks.phase("C", join_and_leave(rig, checks, args.join_recipients))
        if run.join_leave is None:
            checks.expect(False, "C join/leave did not finish")
    return run


def report(run: Run) -> tuple[str, list[str]]:
    """The human-readable table and the RESULT line."""
    header = (
        f"{'sending':<26} {'recipients':>10} {'seconds':>8} {'recipients/s':>12} "
        f"{'at provider/s':>13} {'busiest 1 s':>11}  cpu (cores)"
    )
    lines = [header]
    for sending in [*run.scaling.values(), *run.limited.values()]:
        what = f"{sending.phase}: {sending.workers} worker{'s' if sending.workers > 1 else ''}"
        if sending.limit:
            what += f", limit {sending.limit:,.0f}/s"
        lines.append(
            f"{what:<26} {sending.recipients:>10,} {sending.seconds:>8.1f} {sending.rate:>12,.0f} "
            f"{sending.at_provider:>13,.0f} {sending.busiest:>11,}  "
            + " ".join(f"{name} {used:.2f}" for name, used in sending.cores.items())
        )
    lines.append("")
    one = run.scaling.get(1)

    def ratio(workers: int, of: dict[int, Sending]) -> float:
        found = of.get(workers)
        return found.rate / one.rate if found and one else float("nan")

    scale_2w, scale_4w = ratio(2, run.scaling), ratio(4, run.scaling)
    lines.append(f"scaling, no limit: 2w/1w = {scale_2w:.2f}, 4w/1w = {scale_4w:.2f}")
    limited = run.limited.get(4)
    limited_rate = limited.at_provider if limited else float("nan")
    if run.limited:
        rates = ", ".join(f"{w}w {s.at_provider:,.0f}/s" for w, s in run.limited.items())
        lines.append(f"rate limit {run.limit:,.0f} recipients/s, at the provider: {rates}")
    max_window = max((s.busiest for s in run.limited.values()), default=0)
    for workers, sending in run.limited.items():
        verdict = "PASS" if sending.busiest <= sending.allowed else "FAIL"
        lines.append(
            f"  {workers}w: busiest {WINDOW_S:g} s window {sending.busiest:,} recipients "
            f"<= limit {run.limit:,.0f} + one call {sending.largest} = {sending.allowed:,.0f}: "
            f"{verdict}"
        )
    join = run.join_leave
    if join:
        lines.append(
            f"join/leave, {join.recipients:,} recipients in {join.seconds:.1f}s: "
            f"{'ok' if join.ok else 'FAILED'}; stopped workers exited {join.exit_codes}; "
            f"recipients by worker {join.per_worker}"
        )
        for (_, what, done), (fleet, rate) in zip(join.events, join.segments, strict=False):
            lines.append(f"  from '{what}' ({done:,} accepted): {fleet}, {rate:,.0f}/s")
    one_call = max((s.largest for s in run.limited.values()), default=0)
    joined = "skipped" if "C" not in run.phases else "ok" if join and join.ok else "FAILED"
    result = (
        f"RESULT scale_2w={scale_2w:.2f} scale_4w={scale_4w:.2f} "
        f"limited_rate={limited_rate:.0f} limit={run.limit:.0f} max_window={max_window} "
        f"join_leave={joined} "
        f"rate_1w={one.rate if one else float('nan'):.0f} one_call={one_call}"
    )
    return result, lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/scale.py", description=__doc__)
    parser.add_argument("--recipients", type=int, default=20_000, help="N of phases A and B")
    parser.add_argument(
        "--limit", type=float, default=3000.0, help="phase B: recipients per second (account)"
    )
    parser.add_argument("--join-recipients", type=int, default=30_000, help="N of phase C")
    parser.add_argument("--chunk", type=int, default=CHUNK, help="recipients per chunk and call")
    parser.add_argument(
        "--connections", type=int, default=CONNECTIONS, help="concurrent calls per worker"
    )
    parser.add_argument("--phases", default="ABC", help="which phases to run (default all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    about = (
        f" (latency {LATENCY_MS} ms) · workers: chunks of {args.chunk}, "
        f"{args.connections} connection(s), {JOBS_PER_CONNECTION * args.connections} jobs"
    )

    def make(tmp: Path) -> ScaleRig:
        return ScaleRig(tmp, args.chunk, args.connections)

    with throughput.fresh_rig("bulksend-scale-", make, about) as (rig, checks):
        run = asyncio.run(measure(rig, checks, args))
    return throughput.conclude(*report(run), checks)


if __name__ == "__main__":
    sys.exit(main())
