"""The HTTP enqueue API against ``Producer.submit`` in-process, side by side in one run.

1. in-process: single-recipient SMS sendings validated (``Sms.model_validate``, as
   the API does with each body) and submitted with ``Producer.submit`` by 16
   concurrent tasks: sendings/s — what enqueueing costs without HTTP.
2. HTTP: the same sendings as ``POST /v1/sms`` to ``bulksend serve`` (a
   subprocess, uvicorn) from 16 concurrent keep-alive clients: requests/s,
   p50/p99 latency.
3. paced: ``POST /v1/sms`` at 500 requests/s for ``--paced-seconds``: p50/p99
   latency under a steady load (the issue's goal: p99 ≤ 50 ms).

Nothing is sent to a provider (no worker runs): this measures enqueueing only.
Run: python bench/api.py [--requests 3000] [--paced-seconds 5]
(the last line is machine-readable: RESULT key=value ...)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
from lean_http import Connection, percentile

from bulksend.redis_server import RedisServer
from bulksend.stack import ServeProcess
from jobs import Producer, Settings, Sms

CLIENTS = 16


def body(i: int) -> dict[str, object]:
    return {"to": [f"3466{i:07d}"], "from": "BENCH", "message": "Your code is {c}",
            "sub": [{"c": i}]}  # fmt: skip


async def in_process(settings: Settings, n: int) -> float:
    producer = await Producer.connect(settings)
    bodies = iter([body(i) for i in range(n)])
    started = time.perf_counter()

    async def client() -> None:
        for data in bodies:  # a service builds the model from its data, as the API does
            await producer.submit(Sms.model_validate(data))

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - started
    await producer.close()
    return n / elapsed


async def post(connection: Connection, i: int) -> float:
    """POST /v1/sms with ``body(i)``: it must be a 202; the seconds it took."""
    status, answer, seconds = await connection.request(
        "POST", "/v1/sms", orjson.dumps(body(i)), "application/json"
    )
    assert status == 202, (status, answer)
    return seconds


async def over_http(url: str, token: str, n: int, offset: int) -> tuple[float, list[float]]:
    """16 clients, each posting its next body as soon as its last answer is in."""
    connections = [
        await Connection(url, {"Authorization": f"Bearer {token}"}).open() for _ in range(CLIENTS)
    ]
    latencies: list[float] = []
    numbers = iter(range(offset, offset + n))

    async def client(connection: Connection) -> None:
        for i in numbers:
            latencies.append(await post(connection, i))

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    return n / elapsed, latencies


async def paced(url: str, token: str, rate: float, seconds: float, offset: int) -> list[float]:
    """A request every 1/rate s on whichever of 64 connections is free."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(64):
        idle.put_nowait(await Connection(url, {"Authorization": f"Bearer {token}"}).open())
    latencies: list[float] = []

    async def one(i: int) -> None:
        connection = await idle.get()
        latencies.append(await post(connection, i))
        idle.put_nowait(connection)

    tasks = []
    started = time.perf_counter()
    for k in range(int(rate * seconds)):
        delay = started + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(offset + k)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--paced-seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=500.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder) / "redis")
        server.start()
        token = secrets.token_urlsafe(24)
        env = {
            **os.environ,
            "BULKSEND_REDIS_URL": server.url,
            "BULKSEND_QUEUE_NAME": "bench:api",
            "BULKSEND_API_TOKEN": token,
        }
        settings = Settings(redis_url=server.url, queue_name="bench:api")
        try:
            local = asyncio.run(in_process(settings, args.requests))
            with ServeProcess(env) as serve:
                url = serve.url
                rate, latencies = asyncio.run(over_http(url, token, args.requests, 10**6))
                steady = asyncio.run(paced(url, token, args.rate, args.paced_seconds, 2 * 10**6))
        finally:
            server.stop()
    ratio = rate / local
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    s50, s99 = percentile(steady, 0.5) * 1000, percentile(steady, 0.99) * 1000
    print(f"in-process Producer.submit, {CLIENTS} tasks: {local:,.0f} sendings/s")
    print(f"HTTP POST /v1/sms, {CLIENTS} clients: {rate:,.0f} requests/s, "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip
    print(f"paced at {args.rate:.0f}/s for {args.paced_seconds:.0f}s: p50 {s50:.1f} ms, "
          f"p99 {s99:.1f} ms (mean {statistics.mean(steady) * 1000:.1f} ms)")  # fmt: skip
    print(
        f"RESULT http_vs_in_process={ratio:.2f} http_rps={rate:.0f} in_process_rps={local:.0f} "
        f"p50_ms={p50:.1f} p99_ms={p99:.1f} paced_rate={args.rate:.0f} "
        f"paced_p50_ms={s50:.1f} paced_p99_ms={s99:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
