"""One place that turns ``BULKSEND_REDIS_URL`` into Redis clients, Sentinel included.

Two forms of URL are read:

``redis://[[user]:password@]host[:port][/db]`` (``rediss://`` for TLS, ``unix://path``)
    one Redis, as redis-py and arq read it.
``redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/master[/db]``
    Redis Sentinel: the sentinels (port 26379 unless given; an IPv6 address in
    brackets) are asked where the master named ``master`` is, and every
    connection goes to it; after a failover, new connections follow the new
    master. The password (and user) is the master's, the data nodes'. The
    sentinels themselves are asked without one: arq's ``RedisSettings``, which
    the worker connects with, passes none to them, so a client here does not
    either; keep the sentinels on a private network.

Workers (arq's ``RedisSettings``), ``Producer.connect`` (an arq pool, or a lazy
client that connects on first use) and ``serve``'s start-up check (a short-lived
synchronous client) all come through here, so a Sentinel URL works everywhere or
nowhere. ``display`` is the URL as messages and logs may show it: never with its
password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

import redis
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import ConnectionPool
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from jobs import codec
from jobs.errors import ConfigurationError

__all__ = [
    "SENTINEL_SCHEME",
    "SentinelUrl",
    "arq_client",
    "display",
    "parse_sentinel",
    "redis_settings",
    "sync_client",
]

SENTINEL_SCHEME: Final = "redis+sentinel"
SENTINEL_PORT: Final = 26379
SENTINEL_FORM: Final = "redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/master[/db]"
CONNECT_TIMEOUT_S: Final = 2.0  # a sentinel or master that does not answer: the next one
_HOST: Final = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<name>[^:\[\]]+))(?::(?P<port>\d+))?$")


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """What a ``redis+sentinel://`` URL says: whom to ask, for which master, with what."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    database: int
    username: str | None
    password: str | None


def _invalid(reason: str) -> ConfigurationError:
    return ConfigurationError(f"redis_url: {reason}; a Sentinel URL is {SENTINEL_FORM}")


def parse_sentinel(url: str) -> SentinelUrl | None:
    """The Sentinel URL's parts, or None for any other URL (one Redis).

    Parsed by hand: ``urlsplit`` reads one host and port, not a list of them."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != SENTINEL_SCHEME:
        return None
    netloc, _, tail = rest.partition("/")
    path = tail.partition("?")[0].partition("#")[0]
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        userinfo, hosts = "", netloc
    username: str | None = None
    password: str | None = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None  # ``name@``: a user, as redis-py reads it
    sentinels: list[tuple[str, int]] = []
    for part in filter(None, hosts.split(",")):
        found = _HOST.match(part.strip())
        if found is None:
            raise _invalid(f"{part!r} is not host[:port]")
        host = found.group("v6") or found.group("name")
        sentinels.append((host, int(found.group("port") or SENTINEL_PORT)))
    if not sentinels:
        raise _invalid("no sentinel host")
    segments = [unquote(s) for s in path.split("/") if s]
    if not segments or len(segments) > 2:
        raise _invalid("the path must be /master or /master/db")
    database = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise _invalid(f"the database {segments[1]!r} is not a number")
        database = int(segments[1])
    return SentinelUrl(tuple(sentinels), segments[0], database, username, password)


def _plain(url: str) -> str:
    """A one-Redis URL, checked for a scheme redis-py reads (a clear line, not its error)."""
    scheme = url.partition("://")[0].lower()
    if scheme not in {"redis", "rediss", "unix"}:
        raise ConfigurationError(
            f"redis_url: unknown scheme {scheme!r}: redis://, rediss://, unix:// or "
            f"{SENTINEL_SCHEME}:// ({SENTINEL_FORM})"
        )
    return url


def redis_settings(url: str) -> RedisSettings:
    """arq's settings for ``url`` (what a worker connects with)."""
    sentinel = parse_sentinel(url)
    if sentinel is None:
        return RedisSettings.from_dsn(_plain(url))
    return RedisSettings(
        host=list(sentinel.sentinels),
        sentinel=True,
        sentinel_master=sentinel.master,
        database=sentinel.database,
        username=sentinel.username,
        password=sentinel.password,
    )


def arq_client(url: str, *, queue_name: str) -> ArqRedis:
    """An arq client for ``url`` that connects on first use, not now: a process that
    must start while Redis is away (``serve``) says so on its first command instead.
    Jobs are JSON (``jobs.codec``), never pickle."""
    options: dict[str, Any] = {
        "job_serializer": codec.dumps,
        "job_deserializer": codec.loads,
        "default_queue_name": queue_name,
    }
    sentinel = parse_sentinel(url)
    if sentinel is None:
        return ArqRedis(ConnectionPool.from_url(_plain(url)), **options)
    # Sentinel(...) uses the socket_* options for the sentinels too (sentinel_kwargs).
    client = AsyncSentinel(  # type: ignore[no-untyped-call]
        list(sentinel.sentinels), socket_connect_timeout=CONNECT_TIMEOUT_S
    ).master_for(
        sentinel.master,
        redis_class=ArqRedis,
        db=sentinel.database,
        username=sentinel.username,
        password=sentinel.password,
    )
    for name, value in options.items():  # master_for builds it from a pool: set them after
        setattr(client, name, value)
    return client  # type: ignore[no-any-return]


def sync_client(url: str, *, timeout: float = CONNECT_TIMEOUT_S) -> redis.Redis:
    """A synchronous client with short timeouts, for a check before an event loop runs."""
    sentinel = parse_sentinel(url)
    if sentinel is None:
        return redis.Redis.from_url(
            _plain(url), socket_timeout=timeout, socket_connect_timeout=timeout
        )
    found: redis.Redis = Sentinel(  # type: ignore[no-untyped-call]
        list(sentinel.sentinels), socket_timeout=timeout, socket_connect_timeout=timeout
    ).master_for(
        sentinel.master,
        db=sentinel.database,
        username=sentinel.username,
        password=sentinel.password,
    )
    return found


def display(url: str | None) -> str:
    """The URL with its password (and only that) replaced by ``***``."""
    if not url:
        return "Redis"
    base, query, _ = url.partition("?")  # a query may carry a password too (?password=)
    scheme, sep, rest = base.partition("://")
    if not sep:
        return "<a Redis URL that cannot be read>"
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if at and userinfo:
        user, colon, _ = userinfo.partition(":")
        shown = f"{user}:***" if colon and user else "***"
        netloc = f"{shown}@{hosts}"
    return f"{scheme}{sep}{netloc}{slash}{path}" + ("?…" if query else "")
