"""Redis kept safe: a Redis that evicts is refused, a full one loses nothing, Sentinel works.

Every Redis here is a real ``redis-server`` started for the test with the setting
under test (a small ``maxmemory``, an evicting policy, ``CONFIG`` renamed away, a
password), and Sentinel is a real ``redis-server --sentinel`` in front of one.
Workers and ``serve`` are real processes where what is checked is how they start
or refuse to (an exit code, one line on stderr).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from pydantic import SecretStr

from bulksend.redis_server import RedisServer, find_redis_server
from bulksend.stack import ServeProcess, WorkerProcesses, free_port
from jobs import connection, keys, redis_safety
from jobs.errors import ConfigurationError, RedisFull, UnsafeRedis
from jobs.producer import Producer
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import drain, numbers, sandbox_stats
from web import create_app

TOKEN = "api-token-for-the-redis-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PASSWORD = "s3cret-pass"
SMALL = "4mb"  # maxmemory of the small Redis: ~1 MiB of it is Redis itself


@contextlib.contextmanager
def redis_server(
    tmp_path: Path, name: str, *args: str, password: str | None = None
) -> Iterator[RedisServer]:
    """A redis-server with ``args``; with ``password`` from its start on to its stop
    (``RedisServer`` itself pings, and shuts down, without one)."""
    server = RedisServer(tmp_path / name, extra_args=args)
    server.start()
    try:
        if password is not None:
            redis.Redis(port=server.port).config_set("requirepass", password)
        yield server
    finally:
        if password is not None:
            redis.Redis(port=server.port, password=password).config_set("requirepass", "")
        server.stop()


@pytest.fixture
def small(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis with a small maxmemory under noeviction: it fills up, it never evicts."""
    with redis_server(tmp_path, "small", "--maxmemory", SMALL) as server:
        yield server


@pytest.fixture
def evicting(tmp_path: Path) -> Iterator[str]:
    """The URL (with its password) of a Redis whose policy evicts keys."""
    with redis_server(
        tmp_path, "evicting", "--maxmemory-policy", "allkeys-lru", password=PASSWORD
    ) as server:
        yield f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"


def sms(n: int, start: int = 0, **fields: Any) -> Sms:
    return Sms.model_validate({"to": numbers(n, start), "from": "SHOP", "message": "Hi", **fields})


def bulky(n: int) -> Sms:
    """``n`` recipients with ~1.6 KB of ``sub`` each that compresses to ~900 bytes: far
    more than the producer's per-recipient estimate, so its preflight passes and a
    write fails (5000 of them: ~4.5 MiB, in a Redis of 4 MiB)."""
    subs = [{"name": "Ana", "note": secrets.token_hex(800)} for _ in range(n)]
    return sms(n, message="Hi {name}", sub=subs)


def names(db: redis.Redis, pattern: str) -> list[bytes]:
    return list(db.scan_iter(match=pattern, count=1000))


def one_line(stderr: str) -> str:
    """The error line of a command that refused (anything else it logged is allowed,
    a traceback is not)."""
    assert "Traceback" not in stderr, stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("bulksend: error:")]
    return line


# --- URLs ------------------------------------------------------------------------------


def test_sentinel_urls_become_arq_settings_and_no_message_shows_a_password() -> None:
    url = "redis+sentinel://:p%40ss@10.0.0.1:26380,sentinel-b,[::1]:26381/mymaster/2"
    found = connection.redis_settings(url)
    assert found.sentinel and found.sentinel_master == "mymaster"
    assert found.host == [("10.0.0.1", 26380), ("sentinel-b", 26379), ("::1", 26381)]
    assert (found.database, found.username, found.password) == (2, None, "p@ss")
    assert connection.redis_settings("redis+sentinel://h/m").database == 0
    plain = connection.redis_settings("redis://user:pw@cache:6380/3")
    assert (plain.sentinel, plain.host, plain.port, plain.database) == (False, "cache", 6380, 3)

    assert (
        connection.display(url)
        == "redis+sentinel://***@10.0.0.1:26380,sentinel-b,[::1]:26381/mymaster/2"
    )
    assert connection.display("redis://user:pw@cache:6380/3") == "redis://user:***@cache:6380/3"
    assert connection.display("rediss://cache/0?password=pw") == "rediss://cache/0?…"
    assert connection.display("redis://cache:6379/0") == "redis://cache:6379/0"

    for bad, why in [
        ("redis+sentinel:///mymaster", "no sentinel host"),
        ("redis+sentinel://h:1", "/master or /master/db"),
        ("redis+sentinel://h:1/m/x", "'x' is not a number"),
        ("redis+sentinel://h:port/m", "is not host[:port]"),
        ("http://h:1/0", "unknown scheme 'http'"),
    ]:
        with pytest.raises(ConfigurationError, match="redis_url") as refused:
            connection.redis_settings(bad)
        assert why in str(refused.value) and "\n" not in str(refused.value)


# --- the eviction policy ---------------------------------------------------------------


async def test_every_policy_but_noeviction_is_refused_in_one_line_without_the_password(
    evicting: str,
) -> None:
    where = connection.display(evicting)
    client = connection.arq_client(evicting, queue_name="q")
    try:
        for policy in ("allkeys-lru", "volatile-lru", "allkeys-random", "volatile-ttl"):
            await client.config_set("maxmemory-policy", policy)
            with pytest.raises(UnsafeRedis) as refused:
                await redis_safety.check(client, where)
            message = str(refused.value)
            assert message == (
                f"Redis at redis://***@127.0.0.1:{evicting.rsplit(':', 1)[1]} has "
                f"maxmemory-policy {policy}: it evicts keys, which loses queued jobs and "
                "results; set maxmemory-policy noeviction"
            )
            assert PASSWORD not in message and isinstance(refused.value, ConfigurationError)
        await client.config_set("maxmemory-policy", "noeviction")
        memory = await redis_safety.check(client, where)
        assert memory is not None and memory.policy == "noeviction"
    finally:
        await client.aclose()


async def test_a_submit_to_an_evicting_redis_is_refused_before_anything_is_written(
    evicting: str,
) -> None:
    producer = await Producer.connect(Settings(redis_url=evicting))
    try:
        with pytest.raises(UnsafeRedis, match="maxmemory-policy allkeys-lru"):
            await producer.submit(sms(3))
        assert await producer.redis.dbsize() == 0
    finally:
        await producer.close()


def test_a_worker_refuses_an_evicting_redis_with_one_line(
    evicting: str, env: dict[str, str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bulksend", "worker"],
        env={**env, "BULKSEND_REDIS_URL": evicting},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 78
    line = one_line(done.stderr)
    assert "has maxmemory-policy allkeys-lru: it evicts keys" in line
    assert "redis://***@127.0.0.1:" in line and PASSWORD not in done.stderr


def test_serve_refuses_an_evicting_redis_at_start_with_one_line(
    evicting: str, env: dict[str, str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bulksend", "serve", "--port", str(free_port())],
        env={**env, "BULKSEND_REDIS_URL": evicting, "BULKSEND_API_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 78
    assert "has maxmemory-policy allkeys-lru" in one_line(done.stderr)
    assert PASSWORD not in done.stderr


def _readyz(client: httpx.Client, *, until: Callable[[httpx.Response], bool]) -> httpx.Response:
    """``/readyz`` again until ``until`` holds of it (the test fails after 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        answer = client.get("/readyz")
        if until(answer):
            return answer
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)


def test_serve_started_before_redis_is_not_ready_while_redis_evicts(
    env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    server_env = {**env, "BULKSEND_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    with (
        ServeProcess({**server_env, "BULKSEND_API_TOKEN": TOKEN}, log=tmp_path / "serve.log") as s,
        httpx.Client(base_url=s.url, timeout=30) as client,
    ):
        away = client.get("/readyz")
        assert away.status_code == 503
        assert away.json()["error"]["reason"] == "Redis does not answer"
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        late = subprocess.Popen(
            [find_redis_server(), *args, "--maxmemory-policy", "volatile-lru"],
            stdout=subprocess.DEVNULL,
        )
        try:
            unsafe = _readyz(
                client, until=lambda r: r.json()["error"]["reason"] != "Redis does not answer"
            )
            assert unsafe.status_code == 503
            assert unsafe.json() == {
                "error": {
                    "field": None,
                    "reason": f"Redis at redis://127.0.0.1:{port}/0 has maxmemory-policy "
                    "volatile-lru: it evicts keys, which loses queued jobs and results; set "
                    "maxmemory-policy noeviction",
                    "code": None,
                }
            }
            redis.Redis(port=port).config_set("maxmemory-policy", "noeviction")
            ready = _readyz(client, until=lambda r: r.status_code == 200)
            assert ready.json() == {"status": "ready"}
        finally:
            late.terminate()
            late.wait()


async def test_a_small_hash_value_limit_is_warned_of_and_a_missing_config_is_no_matter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bulksend.redis")
    with redis_server(tmp_path, "listpack", "--hash-max-ziplist-value", "64") as server:
        sync = redis.Redis.from_url(server.url)
        assert redis_safety.check_sync(sync, server.url) is not None
        sync.close()
    [warning] = [r.getMessage() for r in caplog.records]
    assert "hash-max-listpack-value 64" in warning and "set it to 512" in warning
    assert "about twice the memory" in warning

    caplog.clear()
    no_config = ("--rename-command", "CONFIG", "")
    with redis_server(tmp_path, "managed", *no_config) as server:
        client = connection.arq_client(server.url, queue_name="q")
        memory = await redis_safety.check(client, server.url)  # INFO answers, CONFIG not
        assert memory is not None and memory.policy == "noeviction"
        await client.aclose()
    with redis_server(
        tmp_path, "managed-lru", *no_config, "--maxmemory-policy", "allkeys-lru"
    ) as s:
        client = connection.arq_client(s.url, queue_name="q")
        with pytest.raises(UnsafeRedis, match="allkeys-lru"):
            await redis_safety.check(client, s.url)
        await client.aclose()
    assert caplog.records == []


# --- a full Redis ----------------------------------------------------------------------


@pytest.fixture
async def full(small: RedisServer, settings: Settings) -> AsyncIterator[Producer]:
    """A producer (and the sandbox's settings) on the small Redis."""
    producer = await Producer.connect(
        settings.model_copy(update={"redis_url": small.url, "chunk_size": 500})
    )
    try:
        yield producer
    finally:
        await producer.close()


async def test_a_sending_that_cannot_fit_is_refused_before_a_write(full: Producer) -> None:
    with pytest.raises(RedisFull) as refused:
        await full.submit(sms(50_000))
    message = str(refused.value)
    assert message.startswith("Redis is out of memory for this sending (used ")
    assert "of maxmemory 4.0 MiB; its 50000 recipients need about" in message
    assert "nothing of it was queued" in message
    assert refused.value.maxmemory == 4 * 1024 * 1024
    assert await full.redis.dbsize() == 0


async def test_a_write_refused_at_maxmemory_takes_the_whole_submit_back(
    full: Producer, small: RedisServer, sandbox_url: str
) -> None:
    db: Any = redis.Redis.from_url(small.url)  # redis-py types replies ``Awaitable[T] | T``
    job = bulky(5000)
    with pytest.raises(RedisFull) as refused:
        await full.submit(job, idempotency_key="big")
    message = str(refused.value)
    assert message.startswith("Redis is out of memory (used ")
    assert "nothing of sending s" in message and "was queued" in message
    # Nothing of it is left: no records, no chunks, no job, not listed, not active.
    for pattern in ("bs:results:*", "bs:chunks:*", "bs:sending:*", "bs:breakdown:*", "arq:*"):
        assert names(db, pattern) == [], pattern
    assert db.zcard(keys.SENDINGS) == db.scard(keys.ACTIVE) == 0
    assert db.zcard(full.settings.queue_name) == 0
    queued = keys.metrics_field(keys.METRICS_RECIPIENTS, "sms", "queued")
    assert db.hget(keys.METRICS, queued) in (None, b"0")  # /metrics shows none waiting

    # A sending that fits still goes, all the way.
    small_id = await full.submit(sms(20))
    await drain(full.settings)
    status = await full.status(small_id)
    assert status is not None and status["counts"]["accepted"] == 20

    # With room made, the same key submits the same sending again, whole.
    db.config_set("maxmemory", "64mb")
    sending_id = await full.submit(job, idempotency_key="big")
    assert f"nothing of sending {sending_id} was queued" in message  # the same id
    await drain(full.settings)
    done = await full.status(sending_id)
    assert done is not None and done["counts"]["accepted"] == 5000 and done["final"]

    # Submitted once more with less room than a new one of its size would need: it is
    # there already, so the preflight does not refuse it, and nothing is sent twice.
    plain = sms(5000, start=100_000)  # numbers of its own: the sandbox counts repeats
    plain_id = await full.submit(plain, idempotency_key="plain")
    await drain(full.settings)
    used = redis_safety.Memory.from_info(db.info("memory")).used  # as Redis counts it
    db.config_set("maxmemory", str(used + 512 * 1024))  # ≪ 5000 × PER_RECIPIENT_BYTES
    with pytest.raises(RedisFull, match="nothing of it was queued"):
        await full.submit(plain, idempotency_key="another")
    assert await full.submit(plain, idempotency_key="plain") == plain_id
    await drain(full.settings)
    assert (await full.status(plain_id) or {})["counts"]["accepted"] == 5000
    assert sandbox_stats(sandbox_url)["duplicates"] == 0


async def test_with_a_maxmemory_jobs_wait_for_the_last_chunk_and_without_they_stream(
    full: Producer, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = full.settings.queue_name
    seen: list[int] = []
    write = Producer._write

    async def watched(self: Producer, *args: Any) -> bool:
        seen.append(await self.redis.zcard(queue))  # jobs on the queue before this chunk
        return await write(self, *args)

    monkeypatch.setattr(Producer, "_write", watched)
    await full.submit(sms(2000))  # 4 chunks of 500
    assert seen == [0, 0, 0, 0] and await full.redis.zcard(queue) == 4

    seen.clear()
    streaming = await Producer.connect(settings.model_copy(update={"chunk_size": 500}))
    try:
        await streaming.submit(sms(2000))  # maxmemory 0: each job as its chunk is written
        assert seen == [0, 1, 2, 3]
    finally:
        await streaming.close()


async def test_a_full_redis_is_a_507_over_http(small: RedisServer, settings: Settings) -> None:
    app = create_app(
        settings.model_copy(update={"redis_url": small.url, "api_token": SecretStr(TOKEN)})
    )
    body = {"to": numbers(50_000), "from": "SHOP", "message": "Hi"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://serve", headers=AUTH
        ) as client,
    ):
        answer = await client.post("/v1/sms", content=orjson.dumps(body))
        assert answer.status_code == 507
        error = answer.json()["error"]
        assert (error["field"], error["code"]) == (None, None)
        assert error["reason"].startswith("Redis is out of memory for this sending")
        assert "nothing of it was queued" in error["reason"]
        fits = {"to": numbers(3), "from": "SHOP", "message": "Hi"}
        assert (await client.post("/v1/sms", json=fits)).status_code == 202
    assert redis.Redis.from_url(small.url).zcard(keys.SENDINGS) == 1


def test_the_cli_says_redis_is_full_in_one_line(
    small: RedisServer, env: dict[str, str], tmp_path: Path
) -> None:
    recipients = tmp_path / "many.jsonl"
    recipients.write_text("".join(f'{{"to": "{to}"}}\n' for to in numbers(50_000)))
    done = subprocess.run(
        [sys.executable, "-m", "bulksend", "send", "sms", "--from", "SHOP", "--message", "Hi",
         "--recipients-file", str(recipients)],
        env={**env, "BULKSEND_REDIS_URL": small.url},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 75
    line = one_line(done.stderr)
    assert line.startswith("bulksend: error: Redis is out of memory for this sending (used ")
    assert "nothing of it was queued" in line


@pytest.mark.parametrize(
    "url",
    ["redis://:s3cret@127.0.0.1:{port}/0", "redis+sentinel://:s3cret@127.0.0.1:{port}/mymaster/0"],
)
def test_the_cli_says_redis_does_not_answer_in_one_line(env: dict[str, str], url: str) -> None:
    """Nothing listens there: one line naming the setting, without the password; exit 69."""
    done = subprocess.run(
        [sys.executable, "-m", "bulksend", "status", "s1"],
        env={**env, "BULKSEND_REDIS_URL": url.format(port=free_port())},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 69
    line = one_line(done.stderr)
    assert line.startswith("bulksend: error: redis_url: redis") and "does not answer" in line
    assert "s3cret" not in done.stderr


# --- Sentinel --------------------------------------------------------------------------


@contextlib.contextmanager
def sentinel_for(master: RedisServer, tmp_path: Path, password: str) -> Iterator[int]:
    """A real ``redis-server --sentinel`` monitoring ``master`` as ``mymaster``; its port."""
    port = free_port()
    config = tmp_path / "sentinel.conf"  # the sentinel rewrites it: its own file
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
        f"sentinel auth-pass mymaster {password}\n"
    )
    process = subprocess.Popen(
        [find_redis_server(), str(config), "--sentinel"], stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                asked: Any = redis.Redis(port=port)
                if asked.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", "mymaster"):
                    break
            except redis.ConnectionError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "no sentinel"
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait()


async def test_sentinel_url_submits_and_a_worker_process_sends_it(
    tmp_path: Path, settings: Settings, env: dict[str, str], sandbox_url: str
) -> None:
    with (
        redis_server(tmp_path, "master", password=PASSWORD) as master,
        sentinel_for(master, tmp_path, PASSWORD) as port,
    ):
        url = f"redis+sentinel://:{PASSWORD}@127.0.0.1:{port}/mymaster/0"
        through = settings.model_copy(update={"redis_url": url, "chunk_size": 50})
        producer = await Producer.connect(through)
        lazy = await Producer.connect(through, wait=False)
        try:
            sending_id = await producer.submit(sms(120))
            direct = redis.Redis(port=master.port, password=PASSWORD)
            assert direct.zcard(keys.SENDINGS) == 1  # it went to the master
            log_dir = tmp_path / "logs"
            log_dir.mkdir()
            with WorkerProcesses({**env, "BULKSEND_REDIS_URL": url}, log_dir=log_dir) as worker:
                worker.start(1)
                status = await producer.wait(sending_id, timeout=90)
            assert status["counts"]["accepted"] == 120 and status["final"]
            assert (await lazy.status(sending_id) or {})["final"]  # the lazy pool too
            stats = sandbox_stats(sandbox_url)
            assert (stats["recipients"], stats["duplicates"]) == (120, 0)

            # The policy check goes through Sentinel too: asynchronous and synchronous.
            where = connection.display(url)
            assert where == f"redis+sentinel://***@127.0.0.1:{port}/mymaster/0"
            direct.config_set("maxmemory-policy", "allkeys-lfu")
            with pytest.raises(UnsafeRedis, match=r"redis\+sentinel://\*\*\*@.*allkeys-lfu"):
                await redis_safety.check(producer.redis, where)
            sync = connection.sync_client(url)
            with pytest.raises(UnsafeRedis, match="allkeys-lfu"):
                redis_safety.check_sync(sync, where)
            sync.close()
            with pytest.raises(UnsafeRedis):
                create_app(through.model_copy(update={"api_token": SecretStr(TOKEN)}))
        finally:
            await producer.close()
            await lazy.close()
