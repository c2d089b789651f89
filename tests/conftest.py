"""Real parts for every test: a real redis-server and the sandbox over loopback HTTP.

Both are started once per session as child processes on free ports; each test
gets a flushed Redis database and a reset sandbox.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from bulksend.redis_server import RedisServer
from bulksend.stack import SandboxProcess
from jobs.settings import Settings

SANDBOX_AUTH = ("sandbox", "sandbox-api-password")


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
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    with SandboxProcess(log=log) as sandbox:
        yield sandbox.url


@pytest.fixture
def settings(redis_url: str, sandbox_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        provider_url=sandbox_url,
        mail_api_url=f"{sandbox_url}/mail/api/",
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
        BULKSEND_MAIL_API_URL=settings.mail_api_url,
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
