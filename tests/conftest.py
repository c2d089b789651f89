"""Real parts for every test: a real redis-server and the sandbox over loopback HTTP.

Both are started once per session as child processes on free ports; each test
gets a flushed Redis database and a reset sandbox.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from bulksend.redis_server import RedisServer
from jobs.settings import Settings

SANDBOX_AUTH = ("sandbox", "sandbox-api-password")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),  # a file, not a pipe: nobody reads it while tests run
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{url}/_sandbox/stats", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox did not start: {log.read_text()}") from None
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:  # delayed (ambiguous) replies still pending
            proc.kill()
            proc.wait()


@pytest.fixture
def settings(redis_url: str, sandbox_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        provider_url=sandbox_url,
        data_dir=str(tmp_path / "data"),
        retry_delay=0.05,
        provider_timeout=5,
    )


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """Environment for child processes (CLI, workers) pointing at the test services."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("BULKSEND_")}
    out.update(
        BULKSEND_REDIS_URL=str(settings.redis_url),
        BULKSEND_PROVIDER_URL=settings.provider_url,
        BULKSEND_DATA_DIR=settings.data_dir,
        BULKSEND_RETRY_DELAY=str(settings.retry_delay),
        BULKSEND_PROVIDER_TIMEOUT=str(settings.provider_timeout),
    )
    return out


@pytest.fixture(autouse=True)
def _clean_services(request: pytest.FixtureRequest) -> None:
    """Flush Redis and reset the sandbox before each test that uses them."""
    if "redis_url" in request.fixturenames:
        redis.Redis.from_url(request.getfixturevalue("redis_url")).flushall()
    if "sandbox_url" in request.fixturenames:
        httpx.post(f"{request.getfixturevalue('sandbox_url')}/_sandbox/reset").raise_for_status()


@pytest.fixture
async def sandbox(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox_url, auth=SANDBOX_AUTH, timeout=10) as client:
        yield client
