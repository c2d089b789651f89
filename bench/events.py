"""Delivery notifications and events ingested by ``bulksend serve``: events/s and latency.

``--recipients`` accepted SMS recipients are written straight into Redis in the
result store's layout (records with message ids, and the id → recipient links
the worker's move writes). Then, side by side in one run:

1. in-process: the same Lua step the hooks use (``web.hooks.EventSink``), called
   by 64 concurrent tasks — what recording costs without HTTP;
2. HTTP: the provider's side — 64 keep-alive connections sending, per recipient,
   an ``ACCEPTD`` and a ``DELIVRD`` delivery notification (GET, our own URL's
   sending and index) and a ``delivered`` event notification (form POST, found by
   message id), 30 % of them twice: events/s, p50/p99 latency.

Each run ends by checking the records: every recipient delivered exactly once
in the counters, whatever the duplicates.

Run: python bench/events.py [--recipients 20000]
(the last line is machine-readable: RESULT key=value ...)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import cast
from urllib.parse import urlencode

import redis
from lean_http import Connection, percentile
from redis import asyncio as aioredis

from bulksend.redis_server import RedisServer
from bulksend.stack import ServeProcess
from jobs import codec, keys
from jobs.events import from_dlr
from web.hooks import EventSink

CLIENTS = 64
SECRET = "bench-hook-secret"
GOAL = 5000.0


def seed(db: redis.Redis, sending_id: str, n: int) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    db.hset(
        keys.sending(sending_id),
        mapping={"id": sending_id, "kind": "sms", "state": "done", "total": n,
                 "n:accepted": n, "created_at": now, "finished_at": now},
    )  # fmt: skip
    pipe = db.pipeline(transaction=False)
    for i in range(n):
        mid = f"{sending_id}-m{i}"
        record = {"to": f"3466{i:07d}", "status": "accepted", "attempts": 1, "code": 0,
                  "id": mid, "parts": 1, "encoding": "gsm", "updated_at": now}  # fmt: skip
        pipe.hset(keys.results(sending_id, i), mapping={str(i): codec.pack(record)})
        pipe.set(keys.message(mid), f"{sending_id} {i}")
        if len(pipe) >= 10_000:
            pipe.execute()
    pipe.execute()


def requests_for(sending_id: str, n: int, rng: random.Random) -> list[tuple[str, str, bytes]]:
    """(method, target, body) per notification, duplicates included, shuffled."""
    out: list[tuple[str, str, bytes]] = []
    for i in range(n):
        mid = f"{sending_id}-m{i}"
        for status, date in (("ACCEPTD", "2026-11-26 10:00"), ("DELIVRD", "2026-11-26 10:01")):
            query = urlencode({"s": sending_id, "r": i, "i": mid, "st": status, "y": date})
            out.append(("GET", f"/hooks/dlr/{SECRET}?{query}", b""))
        form = {"id": mid, "channel": "sms", "event": "delivered",
                "eventDate": "2026-11-26T10:01:00+00:00"}  # fmt: skip
        out.append(("POST", f"/hooks/events/{SECRET}", urlencode(form).encode()))
    out += rng.sample(out, int(0.3 * len(out)))
    rng.shuffle(out)
    return out


async def in_process(url: str, sending_id: str, n: int) -> float:
    client = aioredis.Redis.from_url(url)
    sink = EventSink(client, 3600)
    work = iter(range(n))

    async def task() -> None:
        for i in work:
            mid = f"{sending_id}-m{i}"
            params = {"s": sending_id, "r": str(i), "i": mid, "st": "DELIVRD", "y": "x"}
            await sink.put(from_dlr(params))

    started = time.perf_counter()
    await asyncio.gather(*(task() for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - started
    await sink.close()
    await client.aclose()
    return n / elapsed


async def over_http(url: str, work: list[tuple[str, str, bytes]]) -> tuple[float, list[float]]:
    connections = [await Connection(url).open() for _ in range(CLIENTS)]
    latencies: list[float] = []
    queue = iter(work)
    form = "application/x-www-form-urlencoded"

    async def client(connection: Connection) -> None:
        for method, target, body in queue:
            status, answer, seconds = await connection.request(
                method, target, body, form if body else ""
            )
            assert status == 200 and answer == b"ok", (status, answer)
            latencies.append(seconds)

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    return len(work) / elapsed, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    args = parser.parse_args()
    n = args.recipients
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder) / "redis")
        server.start()
        db = redis.Redis.from_url(server.url)
        try:
            seed(db, "sbenchlocal", n)
            local = asyncio.run(in_process(server.url, "sbenchlocal", n))
            seed(db, "sbenchhttp", n)
            work = requests_for("sbenchhttp", n, random.Random(7))
            env = {**os.environ, "BULKSEND_REDIS_URL": server.url, "BULKSEND_API_TOKEN": "x",
                   "BULKSEND_HOOK_SECRET": SECRET}  # fmt: skip
            with ServeProcess(env) as serve:
                rate, latencies = asyncio.run(over_http(serve.url, work))
            delivered = int(cast(bytes, db.hget(keys.sending("sbenchhttp"), "d:delivered")))
            parked = len(cast(list[bytes], db.keys(keys.early("*"))))
        finally:
            server.stop()
    assert delivered == n and parked == 0, (delivered, parked)
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    print(f"in-process EventSink, {CLIENTS} tasks: {local:,.0f} events/s")
    print(f"HTTP /hooks, {CLIENTS} connections, {len(work):,} notifications (30% duplicates): "
          f"{rate:,.0f} events/s ({rate / local:.2f} of in-process), p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms; goal ≥ {GOAL:,.0f}/s")  # fmt: skip
    print(f"every one of {n:,} recipients delivered exactly once in the counters")
    print(
        f"RESULT events_per_s={rate:.0f} in_process_per_s={local:.0f} "
        f"http_vs_in_process={rate / local:.2f} p50_ms={p50:.1f} p99_ms={p99:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
