"""Redis work per recipient: commands, CPU and memory of one sending, for capacity planning.

One Redis holds every queue, sending and record, and its main thread runs every
command: what a recipient costs that thread says how many recipients per second
one Redis can carry. Measured on this machine with real parts, all on 127.0.0.1:
a fresh embedded Redis (AOF on, as in production), the sandbox provider, and
``--workers`` ``bulksend worker`` processes.

1. idle: the workers run with nothing to do for ``--idle`` seconds: the Redis
   commands and CPU their polling, heartbeats and sweeps cost per second (a cost
   per worker and second, not per recipient).
2. sending: ``CONFIG RESETSTAT``; a ``--recipients`` SMS sending with ``sub`` is
   submitted (``Producer.submit``, chunks of ``BULKSEND_CHUNK_SIZE``) and sent to
   the end. Then from ``INFO commandstats`` the calls per recipient by command
   (calls a Lua script makes are counted under their own command as well as in
   the ``evalsha`` that made them), from ``INFO cpu`` Redis's CPU per recipient
   (the main thread's when Redis reports it, 6.2 and later; the whole process's
   otherwise), with the idle cost of the same span taken off, and from
   ``INFO memory`` the bytes a finished recipient keeps.

The ceiling of one Redis core follows: recipients/s ≈ 1e6 / (CPU µs per recipient).
Every run checks that the sandbox accepted each recipient exactly once.

Run: python bench/redis_ops.py [--recipients 10000] [--workers 2] [--idle 5]
(the last line is machine-readable: RESULT key=value ...)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from bulksend.redis_server import RedisServer
from bulksend.stack import SandboxProcess, WorkerProcesses
from jobs import keys
from jobs.producer import Producer
from jobs.settings import Settings
from jobs.sms import Sms

NAMES = ["ana", "luis", "marta", "peter", "sven", "amira", "kenji", "omar", "julia", "mateo"]
SHOWN = 12  # commands shown by name; the rest are summed as "other"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_seconds(db: Any) -> float:
    """Redis's CPU so far: its main thread's where Redis says (6.2+), else the process's."""
    cpu = db.info("cpu")
    if "used_cpu_sys_main_thread" in cpu:
        return float(cpu["used_cpu_sys_main_thread"]) + float(cpu["used_cpu_user_main_thread"])
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def command_calls(db: Any) -> dict[str, int]:
    """``INFO commandstats``: calls by command since the last ``CONFIG RESETSTAT``."""
    stats = db.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def sms(n: int) -> Sms:
    to = [f"3466{i:07d}" for i in range(n)]
    subs = [{"name": NAMES[i % len(NAMES)], "code": f"{i:06d}"} for i in range(n)]
    return Sms.model_validate(
        {"to": to, "from": "SHOP", "message": "Hi {name}, your code is {code}.", "sub": subs}
    )


async def send(settings: Settings, n: int) -> tuple[str, float]:
    producer = await Producer.connect(settings)
    try:
        started = time.perf_counter()
        sending_id = await producer.submit(sms(n))
        status = await producer.wait(sending_id, timeout=600, poll=0.1)
        elapsed = time.perf_counter() - started
    finally:
        await producer.close()
    counts = status["counts"]
    if counts["accepted"] != n:
        raise SystemExit(f"FAIL: {counts}")
    return sending_id, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle workers")
    args = parser.parse_args()
    n = args.recipients

    tmp = Path(tempfile.mkdtemp(prefix="bulksend-redis-ops-"))
    server = RedisServer(tmp / "redis")
    server.start()
    db: Any = redis.Redis.from_url(server.url)
    sandbox = SandboxProcess(log=tmp / "sandbox.log", timeout=30)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKSEND_")}
    env.update(
        BULKSEND_REDIS_URL=server.url,
        BULKSEND_PROVIDER_URL=sandbox.url,
        BULKSEND_MAIL_API_URL=f"{sandbox.url}/mail/api/",
    )
    settings = Settings(
        redis_url=server.url, provider_url=sandbox.url, mail_api_url=f"{sandbox.url}/mail/api/"
    )
    workers = WorkerProcesses(env, log_dir=tmp)
    try:
        workers.start(args.workers)
        deadline = time.monotonic() + 60
        while db.hlen(keys.workers(settings.queue_name)) < args.workers:
            if time.monotonic() > deadline:
                raise SystemExit(f"FAIL: workers did not start; logs in {tmp}")
            time.sleep(0.1)

        # 1. idle workers: their cost per second.
        db.config_resetstat()
        cpu0, t0 = cpu_seconds(db), time.perf_counter()
        time.sleep(args.idle)
        idle_s = time.perf_counter() - t0
        idle_cpu_per_s = (cpu_seconds(db) - cpu0) / idle_s
        idle_calls_per_s = sum(command_calls(db).values()) / idle_s
        log(
            f"idle: {args.workers} workers cost Redis {idle_calls_per_s:,.0f} commands/s and "
            f"{idle_cpu_per_s * 1e6:,.0f} CPU µs/s"
        )

        # 2. one sending, submit to final.
        memory0 = int(db.info("memory")["used_memory"])
        db.config_resetstat()
        cpu1, t1 = cpu_seconds(db), time.perf_counter()
        sending_id, elapsed = asyncio.run(send(settings, n))
        span = time.perf_counter() - t1
        cpu = cpu_seconds(db) - cpu1
        calls = command_calls(db)
        memory = int(db.info("memory")["used_memory"]) - memory0
        stats = httpx.get(f"{sandbox.url}/_sandbox/stats").json()["channels"]["sms"]
        if stats["recipients"] != n or stats["duplicates"]:
            raise SystemExit(f"FAIL: sandbox saw {stats}")
    finally:
        workers.stop()
        sandbox.stop()
        server.stop()

    total = sum(calls.values())
    us = cpu * 1e6 / n
    us_net = max(cpu - idle_cpu_per_s * span, 0) * 1e6 / n
    ranked = sorted(calls.items(), key=lambda item: -item[1])
    shown = dict(ranked[:SHOWN])
    shown["other"] = sum(c for _, c in ranked[SHOWN:])
    log(f"sending {sending_id}: {n:,} recipients, {elapsed:.1f} s submit to final")
    log(f"Redis commands per recipient: {total / n:.2f}")
    for name, count in shown.items():
        log(f"  {name:<18} {count / n:6.3f}  ({count:,})")
    log(
        f"Redis CPU per recipient: {us:.1f} µs ({us_net:.1f} µs without the idle workers' "
        f"cost); one core's ceiling ≈ {1e6 / us_net:,.0f} recipients/s"
    )
    log(f"Redis memory a finished recipient keeps: {memory / n:.0f} bytes")
    split = " ".join(f"cmd_{name}={count / n:.3f}" for name, count in shown.items())
    print(
        f"RESULT recipients={n} workers={args.workers} commands_per_recipient={total / n:.2f} "
        f"{split} redis_cpu_us_per_recipient={us:.1f} redis_cpu_us_per_recipient_net="
        f"{us_net:.1f} ceiling_recipients_per_s={1e6 / us_net:.0f} "
        f"bytes_per_finished_recipient={memory / n:.0f} idle_commands_per_s="
        f"{idle_calls_per_s:.0f} idle_cpu_us_per_s={idle_cpu_per_s * 1e6:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
