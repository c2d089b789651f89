"""``bulksend healthcheck worker|serve``: what a container's HEALTHCHECK and a Kubernetes
exec probe run.

Exit 0 healthy; 1 unhealthy, with one line on stderr saying why (Docker keeps it in
``docker inspect``; Docker reserves every other code, so nothing else is returned).
A command of our own because the slim image has no curl, and because arq's own
check cannot tell one worker from another:

worker
    Redis answers; arq's ``{queue}:health-check`` key is there (every worker of the
    queue renews it each ``HEALTH_CHECK_INTERVAL_S``: the queue is being served); and,
    when this host (a container's hostname) has heartbeats in ``bs:workers:{queue}``,
    the newest is younger than ``STALE_AFTER_S``. The heartbeat is what says that
    *this* container's worker lives: arq's key is one per queue, renewed by any worker.
    arq's key is deleted by the first worker of the queue that stops, until another one
    renews it, so a probe should only give up after a few failures in a row
    (``retries`` × ``interval`` > ``HEALTH_CHECK_INTERVAL_S``).
serve
    ``GET /readyz`` of the local ``bulksend serve`` answers 200: the process serves
    HTTP, and its Redis answers and never evicts a key (no token needed).
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from redis.exceptions import RedisError

from jobs import connection, keys
from jobs.errors import ConfigurationError
from jobs.settings import Settings
from worker.main import HEALTH_CHECK_INTERVAL_S
from worker.metrics import workers_of

Role = Literal["worker", "serve"]
DEFAULT_SERVE_URL = "http://127.0.0.1:8000"  # `bulksend serve`'s default port
TIMEOUT_S = 5.0  # each network step; a HEALTHCHECK's own timeout is longer
STALE_AFTER_S = 3 * HEALTH_CHECK_INTERVAL_S  # beats come every 5 s: this is many missed


@dataclass(frozen=True, slots=True)
class Verdict:
    healthy: bool
    reason: str


def redis_url_of(settings: Settings) -> str | None:
    """The Redis a worker with ``settings`` uses: the configured one, or the embedded
    one running under ``data_dir`` (never a new one: a probe starts nothing)."""
    if settings.redis_url:
        return settings.redis_url
    port_file = Path(settings.data_dir) / "redis.port"
    if port_file.exists():
        return f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
    return None


def check_worker(redis_url: str, queue_name: str, host: str | None = None) -> Verdict:
    """The worker role's verdict (see the module docstring)."""
    host = host or socket.gethostname()
    try:
        client = connection.sync_client(redis_url, timeout=TIMEOUT_S)  # Sentinel too
    except ConfigurationError as exc:  # a URL that cannot be read
        return Verdict(False, str(exc))
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.exists(keys.health_check(queue_name))
            pipe.hgetall(keys.workers(queue_name))
            arq_key, beats = pipe.execute()
    except RedisError as exc:
        return Verdict(False, f"{connection.display(redis_url)} does not answer: {exc}")
    finally:
        client.close()
    now = time.time()
    if not arq_key:
        return Verdict(
            False,
            f"no worker of queue {queue_name} renewed {keys.health_check(queue_name)} "
            f"within {HEALTH_CHECK_INTERVAL_S + 1} s",
        )
    try:
        mine = [w for w in workers_of(beats, now) if w.host == host]
    except (ValueError, KeyError, TypeError) as exc:
        return Verdict(False, f"unreadable heartbeat in {keys.workers(queue_name)}: {exc!r}")
    if not mine:
        return Verdict(True, f"queue {queue_name} is served (no heartbeat from {host} yet)")
    age = now - max(w.last_beat for w in mine)
    if age >= STALE_AFTER_S:
        return Verdict(False, f"the last worker heartbeat from {host} is {age:.0f} s old")
    return Verdict(True, f"queue {queue_name} is served; {host} beat {age:.0f} s ago")


def check_serve(base_url: str = DEFAULT_SERVE_URL) -> Verdict:
    """The serve role's verdict: ``GET {base_url}/readyz`` answers 200."""
    url = base_url.rstrip("/") + "/readyz"
    try:
        # trust_env=False: an HTTP(S)_PROXY of the container must not carry a local probe
        with httpx.Client(timeout=TIMEOUT_S, trust_env=False) as client:
            answer = client.get(url)
    except httpx.HTTPError as exc:
        return Verdict(False, f"{url}: {str(exc) or type(exc).__name__}")
    if answer.status_code != 200:
        return Verdict(False, f"{url} answered {answer.status_code}: {answer.text[:200]}")
    return Verdict(True, f"{url} answered 200")


def verdict(role: Role, url: str | None, settings: Settings) -> Verdict:
    """``role``'s verdict; ``url``: the Redis (worker) or the service (serve) to ask."""
    if role == "serve":
        return check_serve(url or DEFAULT_SERVE_URL)
    redis_url = url or redis_url_of(settings)
    if redis_url is None:
        return Verdict(False, "no Redis: BULKSEND_REDIS_URL is unset and none runs embedded")
    return check_worker(redis_url, settings.queue_name)


def run(role: Role, url: str | None, settings: Settings) -> int:
    """Print the verdict as one line (stdout if healthy, stderr if not); 0 or 1."""
    try:
        found = verdict(role, url, settings)
    except Exception as exc:  # a probe answers 0 or 1, never a traceback and another code
        found = Verdict(False, f"{type(exc).__name__}: {exc}")
    line = f"{role} {'healthy' if found.healthy else 'unhealthy'}: {' '.join(found.reason.split())}"
    print(line, file=sys.stdout if found.healthy else sys.stderr)
    return 0 if found.healthy else 1
