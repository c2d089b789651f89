"""Pipeline throughput, latency and memory, measured side by side in one run.

Everything runs on this machine against a fresh embedded Redis (temp dir) and
the sandbox provider as a subprocess; all traffic stays on 127.0.0.1.

1. pipeline: a 100,000-recipient SMS sending with ``sub`` variables, submitted
   with ``Producer.submit``, through 1 and then 2 ``bulksend worker``
   processes; recipients/s from submit start to the sending being final, and
   the CPU the workers and Redis spent per recipient (from ``/proc``).
2. naive (``bench/naive.py``): one arq job and one single-recipient HTTP call
   per recipient, 2 arq workers with max_jobs 10; recipients/s on 10,000.
3. limit: a bare ``httpx.AsyncClient`` posting pre-built 1,000-recipient
   batches straight to the sandbox, 16 at a time: the machine's ceiling.
   The 2-worker pipeline and the limit run in turns, ``--repeat`` (3) times each,
   and their medians are kept: one run of either varies by a tenth here.
4. ratios: pipeline (2 workers) / naive and / limit.
5. latency: 2,000 single-recipient sendings submitted at 200/s with 2 workers;
   submit-to-accepted p50/p99 (the record's ``updated_at`` minus the submit
   time) and how many provider requests they took (micro-batching).
6. big (unless --skip-big): 1,000,000 recipients streamed from a JSONL file by
   ``bulksend send sms --recipients-file`` in a subprocess, then 2 workers:
   producer and worker peak RSS, Redis memory peak and per pending recipient,
   end-to-end rate.

Every phase checks that the sandbox accepted each recipient exactly once and
says so loudly when not (exit status 1).

Run: python bench/throughput.py [--recipients 100000] [--big 1000000] [--skip-big] [--repeat 3]
(the last line is machine-readable: RESULT key=value ...)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import httpx
import naive  # bench/naive.py, next to this file
import orjson
import redis

from bulksend.redis_server import RedisServer
from bulksend.stack import WORKER, SandboxProcess, WorkerProcesses, stop_processes
from jobs import keys
from jobs.producer import Producer
from jobs.settings import Settings, get_settings
from jobs.sms import Sms

MESSAGE = "Hello {name}, your code is {code}."
SENDER = "BENCH"
NAMES = ["ana", "luis", "marta", "peter", "sven", "amira", "kenji", "omar", "julia", "mateo"]
NAIVE_SCRIPT = Path(__file__).with_name("naive.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1

Recipient = tuple[str, dict[str, str]]


def log(message: str) -> None:
    print(message, flush=True)


def people(n: int, start: int = 0) -> list[Recipient]:
    """``n`` valid Spanish mobile numbers, each with its ``name`` and ``code``."""
    return [
        (f"3466{i:07d}", {"name": NAMES[i % len(NAMES)], "code": f"{i:06d}"})
        for i in range(start, start + n)
    ]


def sms_job(recipients: list[Recipient]) -> Sms:
    return Sms.model_validate(
        {
            "to": [to for to, _ in recipients],
            "from": SENDER,
            "message": MESSAGE,
            "sub": [sub for _, sub in recipients],
        }
    )


def write_recipients_file(path: Path, n: int, block: int = 10_000) -> None:
    """One JSON line per recipient: {"to": ..., "sub": {"name": ..., "code": ...}}."""
    with path.open("w") as out:
        for start in range(0, n, block):
            out.write(
                "".join(
                    f'{{"to": "3466{i:07d}", "sub": {{"name": "{NAMES[i % len(NAMES)]}", '
                    f'"code": "{i:06d}"}}}}\n'
                    for i in range(start, min(start + block, n))
                )
            )


def deadline(n: int, floor_rate: float) -> float:
    """Seconds to give ``n`` recipients before calling a phase stuck."""
    return 60 + n / floor_rate


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# --- processes ----------------------------------------------------------------------


def _die_with_parent() -> None:
    """Runs in each child before exec: SIGTERM it if this bench dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _proc_status(pid: int, key: str) -> int:
    """A kB field of /proc/<pid>/status (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def peak_rss_mb(pid: int) -> float:
    """The process's resident-set high-water mark so far (VmHWM), in MB."""
    return _proc_status(pid, "VmHWM") / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


class CpuMeter:
    """Cores used per component between construction and ``cores()``."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.start = time.monotonic()
        self.used = {name: sum(cpu_seconds(p) for p in pids) for name, pids in groups.items()}

    def seconds(self) -> dict[str, float]:
        """CPU seconds each component used since construction."""
        return {
            name: sum(cpu_seconds(p) for p in pids) - self.used[name]
            for name, pids in self.groups.items()
        }

    def cores(self) -> dict[str, float]:
        wall = time.monotonic() - self.start
        return {name: used / wall for name, used in self.seconds().items()}


def describe_cpu(cores: dict[str, float]) -> str:
    return "cpu " + " ".join(f"{name} {value:.2f}" for name, value in cores.items())


class Rig:
    """Redis, the sandbox and every child process of the run; ``close`` ends them all."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.base = get_settings()
        self.redis: RedisServer | None = None
        self.sandbox: SandboxProcess | None = None
        self.children: list[subprocess.Popen[bytes]] = []
        self.redis_generation = 0

    # Redis ---------------------------------------------------------------------------

    def start_redis(self) -> None:
        """A fresh, empty redis-server (the previous one, if any, is stopped)."""
        if self.redis is not None:
            self.redis.stop()
        self.redis_generation += 1
        self.redis = RedisServer(self.tmp / f"redis-{self.redis_generation}")
        self.redis.start()

    @property
    def redis_url(self) -> str:
        assert self.redis is not None
        return self.redis.url

    @property
    def redis_pid(self) -> int:
        assert self.redis is not None and self.redis.process is not None
        return self.redis.process.pid

    def redis_memory(self) -> dict[str, Any]:
        client = redis.Redis.from_url(self.redis_url, socket_timeout=10)
        try:
            info = cast(dict[str, Any], client.info("memory"))  # a sync client: a dict
        finally:
            client.close()
        return info

    # sandbox -------------------------------------------------------------------------

    def start_sandbox(self) -> None:
        log = self.tmp / "sandbox.log"
        self.sandbox = SandboxProcess(log=log, timeout=30, preexec_fn=_die_with_parent)

    @property
    def sandbox_url(self) -> str:
        assert self.sandbox is not None
        return self.sandbox.url

    def reset_sandbox(self) -> None:
        httpx.post(f"{self.sandbox_url}/_sandbox/reset", timeout=30).raise_for_status()

    def sms_stats(self) -> dict[str, Any]:
        stats = httpx.get(f"{self.sandbox_url}/_sandbox/stats", timeout=30).json()
        return dict(stats["channels"]["sms"])

    @property
    def sandbox_pid(self) -> int:
        assert self.sandbox is not None
        return self.sandbox.pid

    # workers and other children --------------------------------------------------------

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str], *, stdout: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """A child process logging to ``<tmp>/<name>.log``, stopped by ``close``."""
        with (self.tmp / f"{name}.log").open("ab") as err:
            out = stdout.open("wb") if stdout else err
            try:
                proc = subprocess.Popen(
                    argv, env=env, stdout=out, stderr=err, preexec_fn=_die_with_parent
                )
            finally:
                if stdout:
                    out.close()
        self.children.append(proc)
        return proc

    def env(self, queue: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of `bulksend` children: this run's Redis, queue and sandbox."""
        return {
            **os.environ,
            "BULKSEND_REDIS_URL": self.redis_url,
            "BULKSEND_QUEUE_NAME": queue,
            "BULKSEND_PROVIDER_URL": self.sandbox_url,
            "BULKSEND_PROVIDER_USERNAME": self.base.sandbox_username,
            "BULKSEND_PROVIDER_API_PASSWORD": self.base.sandbox_api_password.get_secret_value(),
            **(extra or {}),
        }

    def settings(self, queue: str) -> Settings:
        return self.base.model_copy(update={"redis_url": self.redis_url, "queue_name": queue})

    async def start_workers(
        self, kind: Literal["pipeline", "naive"], count: int, queue: str
    ) -> WorkerProcesses:
        """``count`` worker processes on ``queue``, returned once all of them poll it."""
        argv: Sequence[str] = WORKER
        if kind == "naive":
            poll_delay = getattr(self.base, "worker_poll_delay", 0.05)
            argv = [
                sys.executable, str(NAIVE_SCRIPT), "worker",
                "--redis-url", self.redis_url, "--queue", queue,
                "--provider-url", self.sandbox_url, "--poll-delay", str(poll_delay),
            ]  # fmt: skip
        # Each logs a line once started: ours, or arq's own for the naive worker.
        marker = b"worker started" if kind == "pipeline" else b"Starting worker"
        workers = WorkerProcesses(
            self.env(queue),
            argv=argv,
            log_dir=self.tmp,
            name=queue.replace(":", "-"),
            preexec_fn=_die_with_parent,
        )
        procs = workers.start(count)
        self.children += procs
        logs = [path for i in range(count) if (path := workers.log(i))]
        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            async with asyncio.timeout(60):
                while True:
                    for proc, path in zip(procs, logs, strict=True):
                        if proc.poll() is not None:
                            raise RuntimeError(f"worker exited early; see {path}")
                    started = all(marker in path.read_bytes() for path in logs)
                    if started and client.exists(keys.health_check(queue)):
                        break
                    await asyncio.sleep(0.05)
        finally:
            client.close()
        await asyncio.sleep(0.3)  # the last one's first poll
        return workers

    def close(self) -> None:
        stop_processes(reversed(self.children), grace=10)
        if self.sandbox is not None:
            self.sandbox.stop(grace=10)
        if self.redis is not None:
            self.redis.stop()


async def reap(
    proc: subprocess.Popen[bytes], timeout: float
) -> tuple[resource.struct_rusage, float]:
    """Wait for ``proc`` to exit; its own resource usage and its peak RSS in MB.

    The peak is the program's own (``VmHWM``, read while it runs), not ``ru_maxrss``:
    Linux carries that over ``exec`` from the image forked off this bench, which is
    as big as the bench by then (62–99 MB in our runs, for a producer of 53–58)."""
    peak = 0.0
    async with asyncio.timeout(timeout):
        while True:
            peak = max(peak, peak_rss_mb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return usage, peak
            await asyncio.sleep(0.02)


# --- results ----------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    recipients: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    worker_rss_mb: float | None = None  # max VmHWM of the phase's workers
    producer_rss_mb: float | None = None
    cpu_us_per_recipient: float | None = None  # workers + Redis

    @property
    def rate(self) -> float:
        return self.recipients / self.seconds


PhaseT = TypeVar("PhaseT")


class Checks:
    """Accounting checks of every phase; failures are printed at once and at the end."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)
            log(f"!!! FAIL: {what}")

    def exactly_once(self, phase: str, stats: dict[str, Any], n: int) -> None:
        self.expect(
            stats["recipients"] == n and stats["duplicates"] == 0,
            f"{phase}: sandbox accepted {stats['recipients']:,} recipients for {n:,} "
            f"({stats['duplicates']} duplicates; samples {stats.get('duplicate_samples', [])[:3]})",
        )

    async def phase(self, what: str, coro: Awaitable[PhaseT]) -> PhaseT | None:
        """``coro``'s result; None, and a failure, if it broke off (a timeout, a worker
        that exited, the sandbox or Redis failing): the other phases still run."""
        try:
            return await coro
        except (TimeoutError, RuntimeError, httpx.HTTPError, redis.RedisError) as exc:
            self.expect(False, f"{what}: {type(exc).__name__}: {exc}")
            return None

    def sending(self, phase: str, status: dict[str, Any], n: int) -> None:
        counts = status["counts"]
        self.expect(
            status["final"] and counts["total"] == counts["accepted"] == n,
            f"{phase}: sending {status['id']} state {status['state']} counts {counts}",
        )


# --- phases -------------------------------------------------------------------------


@dataclass
class Sent:
    """One sending submitted in this process and waited for until final."""

    status: dict[str, Any]
    submitted: float  # seconds the submit took
    seconds: float  # from the submit's start until the sending was final
    producer_rss_mb: float  # this process's peak RSS once the submit returned
    cores: dict[str, float]  # cores each group of ``cpu_groups`` used meanwhile
    used: dict[str, float]  # CPU seconds each group used meanwhile


async def send_timed(
    rig: Rig, settings: Settings, job: Sms, workers: Iterable[subprocess.Popen[bytes]],
    timeout: float,
) -> Sent:  # fmt: skip
    """Submit ``job`` with ``settings`` and wait until it is final, metering the CPU of
    the sandbox, the ``workers``, Redis and this process from the submit on."""
    producer = await Producer.connect(settings)
    try:
        meter = CpuMeter(cpu_groups(rig, workers))
        started, started_at = time.monotonic(), time.time()
        sending_id = await producer.submit(job)
        submitted = time.monotonic() - started
        producer_rss = peak_rss_mb(os.getpid())
        status = await producer.wait(sending_id, timeout=timeout, poll=0.05)
        # Until the moment the sending became final (its ``finished_at``, to the
        # millisecond), not until a poll saw it: that came up to 50 ms later.
        finished = status.get("finished_at")
        seconds = (
            datetime.fromisoformat(finished).timestamp() - started_at
            if finished
            else time.monotonic() - started
        )
        return Sent(status, submitted, seconds, producer_rss, meter.cores(), meter.seconds())
    finally:
        await producer.close()


async def pipeline_phase(rig: Rig, checks: Checks, n: int, workers: int) -> Figure:
    """One ``n``-recipient sending through ``workers`` fresh worker processes."""
    name = f"pipeline, {workers} worker{'s' if workers > 1 else ''}"
    log(f"[{name}] {n:,} recipients ...")
    rig.reset_sandbox()
    queue = f"bench:pipeline{workers}:{uuid.uuid4().hex[:6]}"
    job = sms_job(people(n))
    procs = await rig.start_workers("pipeline", workers, queue)
    with procs:
        sent = await send_timed(rig, rig.settings(queue), job, procs, deadline(n, 500))
        worker_rss = max(peak_rss_mb(p.pid) for p in procs)
    stats = rig.sms_stats()
    checks.sending(name, sent.status, n)
    checks.exactly_once(name, stats, n)
    figure = Figure(
        name, n, sent.seconds, worker_rss_mb=worker_rss, producer_rss_mb=sent.producer_rss_mb
    )
    # The pipeline's own CPU per recipient: its workers and Redis (not the sandbox, not
    # the in-process producer of this bench).
    figure.cpu_us_per_recipient = (sent.used["workers"] + sent.used["redis"]) / n * 1e6
    figure.notes += [
        f"submit {sent.submitted:.1f}s, final {sent.seconds - sent.submitted:.1f}s after it",
        f"{stats['requests']:,} provider requests",
        f"worker peak RSS {worker_rss:.0f} MB",
        f"bench (in-process producer) peak RSS {sent.producer_rss_mb:.0f} MB",
        describe_cpu(sent.cores),
        f"workers + Redis {figure.cpu_us_per_recipient:.0f} µs of CPU per recipient",
    ]
    log(f"[{name}] {figure.rate:,.0f} recipients/s in {sent.seconds:.1f}s")
    return figure


def cpu_groups(rig: Rig, workers: Iterable[subprocess.Popen[bytes]]) -> dict[str, list[int]]:
    return {
        "sandbox": [rig.sandbox_pid],
        "workers": [p.pid for p in workers],
        "redis": [rig.redis_pid],
        "bench": [os.getpid()],
    }


async def naive_phase(rig: Rig, checks: Checks, n: int, workers: int) -> Figure:
    """One arq job per recipient, one HTTP call per job (``bench/naive.py``)."""
    name = f"naive, {workers} arq workers"
    log(f"[{name}] {n:,} recipients, one job each ...")
    rig.reset_sandbox()
    queue = f"bench:naive:{uuid.uuid4().hex[:6]}"
    recipients = people(n)
    procs = await rig.start_workers("naive", workers, queue)
    with procs:
        meter = CpuMeter(cpu_groups(rig, procs))
        started = time.monotonic()
        enqueued_after = 0.0

        async def enqueue() -> None:  # while the workers are already taking jobs
            nonlocal enqueued_after
            await naive.enqueue(rig.redis_url, queue, SENDER, MESSAGE, recipients)
            enqueued_after = time.monotonic() - started

        producer = asyncio.create_task(enqueue())
        stats: dict[str, Any] = {"recipients": 0}
        try:
            async with (
                asyncio.timeout(deadline(n, 50)),
                httpx.AsyncClient(base_url=rig.sandbox_url, timeout=30) as client,
            ):
                while stats["recipients"] < n:  # done when the provider has them all
                    await asyncio.sleep(0.05)
                    response = await client.get("/_sandbox/stats")
                    stats = response.json()["channels"]["sms"]
                seconds = time.monotonic() - started
                await producer
        finally:
            producer.cancel()
        cores = meter.cores()
        worker_rss = max(peak_rss_mb(p.pid) for p in procs)
    checks.exactly_once(name, rig.sms_stats(), n)
    figure = Figure(name, n, seconds, worker_rss_mb=worker_rss)
    figure.notes += [
        f"{n:,} jobs enqueued one by one in {enqueued_after:.1f}s",
        f"{stats['requests']:,} provider requests",
        f"worker peak RSS {worker_rss:.0f} MB",
        describe_cpu(cores),
    ]
    log(f"[{name}] {figure.rate:,.0f} recipients/s in {seconds:.1f}s")
    return figure


async def limit_phase(rig: Rig, checks: Checks, n: int, concurrency: int) -> Figure:
    """Pre-built 1,000-recipient requests straight to the sandbox: the ceiling."""
    name = f"limit, bare httpx x{concurrency}"
    batch = 1000
    log(f"[{name}] {n:,} recipients in batches of {batch:,} ...")
    rig.reset_sandbox()
    recipients = people(n)
    bodies = [
        orjson.dumps(
            {
                "to": [to for to, _ in recipients[start : start + batch]],
                "from": SENDER,
                "message": MESSAGE,
                "sub": [sub for _, sub in recipients[start : start + batch]],
            }
        )
        for start in range(0, n, batch)
    ]
    answers: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    meter = CpuMeter(cpu_groups(rig, []))
    async with httpx.AsyncClient(
        base_url=rig.sandbox_url,
        auth=(rig.base.sandbox_username, rig.base.sandbox_api_password.get_secret_value()),
        headers={"Content-Type": "application/json"},
        limits=limits,
        timeout=60,
    ) as client:
        pending = iter(bodies)

        async def lane() -> None:
            for body in pending:  # the lanes share one iterator: each takes the next body
                response = await client.post("/api/rest/sms", content=body)
                answers[response.status_code] += 1

        started = time.monotonic()
        async with asyncio.timeout(deadline(n, 500)):
            await asyncio.gather(*(lane() for _ in range(concurrency)))
        seconds = time.monotonic() - started
    cores = meter.cores()
    checks.expect(answers == {202: len(bodies)}, f"{name}: answers {dict(answers)}")
    checks.exactly_once(name, rig.sms_stats(), n)
    figure = Figure(name, n, seconds)
    figure.notes += [f"{len(bodies):,} requests", describe_cpu(cores)]
    log(f"[{name}] {figure.rate:,.0f} recipients/s in {seconds:.1f}s")
    return figure


@dataclass
class Latency:
    jobs: int
    submit_rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    linger_ms: float | None


async def latency_phase(rig: Rig, checks: Checks, jobs: int, rate: float) -> Latency:
    """Single-recipient sendings at a steady rate; submit-to-accepted latency."""
    name = "latency"
    log(f"[{name}] {jobs:,} one-recipient sendings at {rate:.0f}/s, 2 workers ...")
    rig.reset_sandbox()
    queue = f"bench:latency:{uuid.uuid4().hex[:6]}"
    singles = [sms_job([recipient]) for recipient in people(jobs)]
    submitted: list[tuple[str, datetime]] = []
    procs = await rig.start_workers("pipeline", 2, queue)
    with procs:
        producer = await Producer.connect(rig.settings(queue))
        try:

            async def submit(job: Sms) -> None:
                at = datetime.now(UTC)
                submitted.append((await producer.submit(job), at))

            loop = asyncio.get_running_loop()
            started = loop.time()
            tasks = []
            async with asyncio.timeout(deadline(jobs, 20)):
                for i, job in enumerate(singles):  # paced: job i starts at i / rate
                    await asyncio.sleep(max(0.0, started + i / rate - loop.time()))
                    tasks.append(asyncio.create_task(submit(job)))
                paced = (jobs - 1) / max(loop.time() - started, 1e-9)  # starts per second
                await asyncio.gather(*tasks)
                for sending_id, _ in submitted:
                    await producer.wait(sending_id, poll=0.05)
            latencies: list[float] = []
            statuses: Counter[str] = Counter()
            for sending_id, at in submitted:
                async for record in producer.store.iter_results(sending_id):
                    statuses[record["status"]] += 1
                    if record["status"] == "accepted":
                        accepted = datetime.fromisoformat(record["updated_at"])
                        latencies.append((accepted - at).total_seconds() * 1000)
        finally:
            await producer.close()
    stats = rig.sms_stats()
    checks.expect(statuses == {"accepted": jobs}, f"{name}: recipient statuses {dict(statuses)}")
    checks.exactly_once(name, stats, jobs)
    linger = getattr(rig.base, "linger_ms", None)
    result = Latency(
        jobs,
        paced,
        percentile(latencies, 50) if latencies else float("nan"),
        percentile(latencies, 99) if latencies else float("nan"),
        max(latencies, default=float("nan")),
        stats["requests"],
        float(linger) if linger is not None else None,
    )
    log(
        f"[{name}] p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
        f"{result.requests:,} provider requests for {jobs:,} sendings"
    )
    return result


@dataclass
class Big:
    figure: Figure
    producer_rss_mb: float
    worker_rss_mb: float
    redis_peak_mb: float
    redis_bytes_per_pending: float
    redis_bytes_per_final: float
    submit_seconds: float


async def big_phase(rig: Rig, checks: Checks, n: int) -> Big:
    """A file-streamed sending: submitted by `bulksend send` first, then 2 workers."""
    name = f"big, {n:,} from a file, 2 workers"
    log(f"[{name}] writing the recipients file ...")
    path = rig.tmp / "recipients.jsonl"
    write_recipients_file(path, n)
    log(f"[{name}] {path.stat().st_size / 2**20:.0f} MB; fresh Redis; submitting ...")
    rig.start_redis()  # fresh: its memory peak is this sending's alone
    rig.reset_sandbox()
    queue = f"bench:big:{uuid.uuid4().hex[:6]}"
    baseline = rig.redis_memory()["used_memory"]
    argv = [
        sys.executable, "-m", "bulksend", "send", "sms", "--from", SENDER,
        "--message", MESSAGE, "--recipients-file", str(path), "--json",
    ]  # fmt: skip
    out = rig.tmp / "producer.out"
    started = time.monotonic()
    producer_proc = rig.spawn("producer", argv, rig.env(queue), stdout=out)
    usage, producer_rss = await reap(producer_proc, deadline(n, 500))
    submitted = time.monotonic() - started
    if producer_proc.returncode != 0:
        raise RuntimeError(
            f"bulksend send exited {producer_proc.returncode}: "
            f"{(rig.tmp / 'producer.log').read_text()[-2000:]}"
        )
    sending_id = orjson.loads(out.read_bytes())["id"]
    pending = rig.redis_memory()["used_memory"] - baseline
    log(f"[{name}] submitted in {submitted:.1f}s; starting workers ...")
    procs = await rig.start_workers("pipeline", 2, queue)
    with procs:
        producer = await Producer.connect(rig.settings(queue))
        try:
            meter = CpuMeter(cpu_groups(rig, procs))
            status = await producer.wait(sending_id, timeout=deadline(n, 500), poll=0.2)
            seconds = time.monotonic() - started
            cores = meter.cores()
        finally:
            await producer.close()
        worker_rss = max(peak_rss_mb(p.pid) for p in procs)
    memory = rig.redis_memory()
    final = memory["used_memory"] - baseline  # the records (and their links) once done
    stats = rig.sms_stats()
    checks.sending(name, status, n)
    checks.exactly_once(name, stats, n)
    figure = Figure(name, n, seconds, worker_rss_mb=worker_rss)
    big = Big(
        figure,
        producer_rss_mb=producer_rss,
        worker_rss_mb=worker_rss,
        redis_peak_mb=memory["used_memory_peak"] / 2**20,
        redis_bytes_per_pending=pending / n,
        redis_bytes_per_final=final / n,
        submit_seconds=submitted,
    )
    producer_cpu = usage.ru_utime + usage.ru_stime
    figure.notes += [
        f"submit {submitted:.1f}s (producer cpu {producer_cpu:.1f}s)",
        f"workers {seconds - submitted:.1f}s",
        f"{stats['requests']:,} provider requests",
        describe_cpu(cores) + " (workers' stage)",
    ]
    log(f"[{name}] {figure.rate:,.0f} recipients/s end to end in {seconds:.1f}s")
    return big


# --- the run --------------------------------------------------------------------------


@dataclass
class Run:
    pipeline: dict[int, Figure] = field(default_factory=dict)
    naive: Figure | None = None
    limit: Figure | None = None
    latency: Latency | None = None
    big: Big | None = None
    notes: list[str] = field(default_factory=list)


def median_of(figures: list[Figure]) -> Figure:
    """The run of median rate, with the median CPU per recipient of all the runs, and a
    note of every run's rate."""
    ranked = sorted(figures, key=lambda f: f.rate)
    figure = ranked[len(ranked) // 2]
    cpus = sorted(f.cpu_us_per_recipient for f in figures if f.cpu_us_per_recipient)
    if cpus:
        figure.cpu_us_per_recipient = cpus[len(cpus) // 2]
    if len(figures) > 1:
        rates = ", ".join(f"{f.rate:,.0f}" for f in figures)
        figure.notes.insert(0, f"median of {len(figures)} runs ({rates} recipients/s)")
        if cpus:
            figure.notes.append(
                "µs of CPU per recipient by run, sorted: " + ", ".join(f"{c:.0f}" for c in cpus)
            )
    return figure


def available(flag: str) -> bool:
    """Whether ``bulksend send sms`` has ``flag`` (the interfaces are being added)."""
    shown = subprocess.run(
        [sys.executable, "-m", "bulksend", "send", "sms", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return flag in shown


async def measure(rig: Rig, checks: Checks, args: argparse.Namespace) -> Run:
    run = Run()
    if "linger_ms" not in Settings.model_fields:
        run.notes.append("BULKSEND_LINGER_MS does not exist (yet): latency without micro-batching")

    one = await checks.phase("pipeline 1w", pipeline_phase(rig, checks, args.recipients, 1))
    if one is not None:
        run.pipeline[1] = one
    # The two figures the ratio divides, taken in turns, ``--repeat`` times each: on a
    # machine this size one run of either varies by a tenth, and the medians do not.
    twos: list[Figure] = []
    limits: list[Figure] = []
    for _ in range(args.repeat):
        two = await checks.phase("pipeline 2w", pipeline_phase(rig, checks, args.recipients, 2))
        limit = await checks.phase(
            "limit", limit_phase(rig, checks, args.recipients, args.limit_concurrency)
        )
        twos += [two] if two is not None else []
        limits += [limit] if limit is not None else []
    if twos:
        run.pipeline[2] = median_of(twos)
    run.limit = median_of(limits) if limits else None
    run.naive = await checks.phase("naive", naive_phase(rig, checks, args.naive_recipients, 2))
    run.latency = await checks.phase(
        "latency", latency_phase(rig, checks, args.latency_jobs, args.latency_rate)
    )
    if args.skip_big:
        run.notes.append("big sending skipped (--skip-big)")
    elif not available("--recipients-file"):
        checks.expect(False, "big: `bulksend send sms` has no --recipients-file (not added yet)")
    else:
        run.big = await checks.phase("big", big_phase(rig, checks, args.big))
    return run


def report(run: Run) -> tuple[str, list[str]]:
    """The human-readable table and the RESULT line."""
    rows: list[tuple[str, str, str, str, str]] = []
    figures = [*run.pipeline.values(), run.naive, run.limit, run.big and run.big.figure]
    for figure in figures:
        if figure:
            rows.append(
                (
                    figure.name,
                    f"{figure.recipients:,}",
                    f"{figure.seconds:.1f}",
                    f"{figure.rate:,.0f}",
                    "; ".join(figure.notes),
                )
            )
    width = max(len(r[0]) for r in rows) if rows else 20
    lines = [
        f"{'figure':<{width}}  {'recipients':>10}  {'seconds':>8}  {'recipients/s':>12}  notes",
        *(f"{a:<{width}}  {b:>10}  {c:>8}  {d:>12}  {e}" for a, b, c, d, e in rows),
        "",
    ]
    two = run.pipeline.get(2)
    vs_naive = two.rate / run.naive.rate if two and run.naive else float("nan")
    vs_limit = two.rate / run.limit.rate if two and run.limit else float("nan")
    lines.append(f"ratio pipeline(2 workers) / naive : {vs_naive:.2f}")
    lines.append(f"ratio pipeline(2 workers) / limit : {vs_limit:.2f}")
    p99 = float("nan")
    if run.latency:
        lat = run.latency
        p99 = lat.p99_ms
        linger = f"linger {lat.linger_ms:g} ms" if lat.linger_ms is not None else "no linger"
        lines.append(
            f"latency, {lat.jobs:,} one-recipient sendings at {lat.submit_rate:.0f}/s "
            f"(2 workers, {linger}): submit-to-accepted p50 {lat.p50_ms:.1f} ms, "
            f"p99 {lat.p99_ms:.1f} ms, max {lat.max_ms:.1f} ms; "
            f"{lat.requests:,} provider requests"
        )
    if run.big:
        big = run.big
        lines.append(
            f"big sending: producer peak RSS {big.producer_rss_mb:.0f} MB, "
            f"worker peak RSS {big.worker_rss_mb:.0f} MB (max of 2), "
            f"Redis used_memory_peak {big.redis_peak_mb:.0f} MB, "
            f"{big.redis_bytes_per_pending:.0f} B of Redis per pending recipient, "
            f"{big.redis_bytes_per_final:.0f} B per final one, "
            f"{big.figure.rate:,.0f} recipients/s end to end "
            f"(submit {big.submit_seconds:.1f}s)"
        )
        worker_rss, producer_rss, source = big.worker_rss_mb, big.producer_rss_mb, "big"
    else:
        worker_rss, producer_rss, source = rss_from_pipeline(run)
        lines.append(
            f"RSS below from the {source} run instead of the big sending: worker = "
            "max VmHWM of the 2 workers, producer = this bench process (in-process submit)"
        )
    lines += [f"note: {note}" for note in run.notes]
    cpu = two.cpu_us_per_recipient if two and two.cpu_us_per_recipient else float("nan")
    pending = run.big.redis_bytes_per_pending if run.big else float("nan")
    final = run.big.redis_bytes_per_final if run.big else float("nan")
    result = (
        f"RESULT pipeline_vs_naive={vs_naive:.2f} pipeline_vs_limit={vs_limit:.2f} "
        f"p99_ms={p99:.1f} worker_rss_mb={worker_rss:.1f} producer_rss_mb={producer_rss:.1f} "
        f"cpu_us_per_recipient={cpu:.1f} redis_bytes_per_pending={pending:.0f} "
        f"redis_bytes_per_final={final:.0f}"
    )
    if source != "big":
        result += f" rss_source={source}"
    return result, lines


def rss_from_pipeline(run: Run) -> tuple[float, float, str]:
    figure = run.pipeline.get(2)
    if figure is None or figure.worker_rss_mb is None or figure.producer_rss_mb is None:
        return float("nan"), float("nan"), "none"
    return figure.worker_rss_mb, figure.producer_rss_mb, f"pipeline_{figure.recipients // 1000}k"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/throughput.py", description=__doc__)
    parser.add_argument("--recipients", type=int, default=100_000, help="pipeline and limit N")
    parser.add_argument("--big", type=int, default=1_000_000, help="big sending N")
    parser.add_argument("--skip-big", action="store_true", help="skip the big sending")
    parser.add_argument("--naive-recipients", type=int, default=10_000)
    parser.add_argument("--limit-concurrency", type=int, default=16)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of pipeline (2 workers) and limit, in turns"
    )
    parser.add_argument("--latency-jobs", type=int, default=2000)
    parser.add_argument("--latency-rate", type=float, default=200.0, help="sendings/s")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with fresh_rig("bulksend-bench-", Rig) as (rig, checks):
        run = asyncio.run(measure(rig, checks, args))
    return conclude(*report(run), checks)


RigT = TypeVar("RigT", bound=Rig)


@contextlib.contextmanager
def fresh_rig(
    prefix: str, make: Callable[[Path], RigT], about: str = ""
) -> Iterator[tuple[RigT, Checks]]:
    """A rig with Redis and the sandbox started in a temp dir, and the checks of the run;
    everything is stopped on the way out, a SIGTERM to the bench included."""

    def terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # run the finally blocks: children are stopped

    signal.signal(signal.SIGTERM, terminated)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        rig = make(Path(tmp))
        try:
            rig.start_redis()
            rig.start_sandbox()
            log(f"redis {rig.redis_url} · sandbox {rig.sandbox_url}{about} · logs in {tmp}")
            yield rig, Checks()
        finally:
            rig.close()


def conclude(result: str, lines: list[str], checks: Checks) -> int:
    """Print the report, every failed check loudly, then the RESULT line; the exit
    status (1 when a check failed)."""
    print()
    print("\n".join(lines))
    if checks.failures:
        print(f"\n!!! {len(checks.failures)} CHECK(S) FAILED:")
        for failure in checks.failures:
            print(f"!!!   {failure}")
    print(result)
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(main())
