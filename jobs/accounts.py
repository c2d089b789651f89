"""Stops of the provider account shared by every worker: *hold* and *halt*, and parking.

Some provider answers are about the account, not the message (messaging-api.txt
→ "Errors"): no credits (111), no billing profile (150) — *hold*; bad
credentials (103), an IP not allowed (112), a wrong base URL — *halt*; email
blocked for hard bounces (118) — a hold of the email channel only. Retrying
every job against such an account would burn attempts and fail recipients that
are perfectly sendable once the operator acts. So the first worker that hears
one records it in Redis under its *scope* (``*`` for the account, or a
channel); every worker then stops calling the provider in that scope.

Held work is *parked*, not spun: a chunk job that meets a stop records itself
in the account's parked hash and finishes, so a hold of any length (a weekend
without credits) costs no job runs, spends none of arq's tries and outlives
arq's job expiry. ``resume`` lifts the stop and enqueues every parked chunk
again; a hold (never a halt) is probed every ``BULKSEND_HOLD_PROBE_INTERVAL``
seconds: the sweeper enqueues one parked chunk, whose run alone may call the
provider, and only that run's success lifts the hold.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from jobs import chunks, keys
from jobs.results import now_iso
from jobs.settings import Settings

log = logging.getLogger("bulksend.accounts")

ACCOUNT = "*"  # the scope of a stop that concerns every channel
DEFAULT_EXPIRES_S = 30 * 86400


def account_id(settings: Settings) -> str:
    """Who we send as: provider username at provider host — no secret in it."""
    host = urlsplit(settings.provider_url).netloc
    return f"{settings.provider_username}@{host}"


@dataclass(frozen=True, slots=True)
class Stop:
    state: str  # "held" or "halted"
    code: int | None
    reason: str
    since: str
    probe_at: float | None  # epoch seconds; None for a halt
    scope: str = ACCOUNT

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "code": self.code,
            "reason": self.reason,
            "since": self.since,
            "scope": self.scope,
        }


def _decode(raw: dict[bytes, bytes], scope: str) -> Stop | None:
    if not raw:
        return None
    data = {k.decode(): v.decode() for k, v in raw.items()}
    code = data.get("code")
    probe = data.get("probe_at")
    return Stop(
        data["state"],
        int(code) if code else None,
        data.get("reason", ""),
        data.get("since", ""),
        float(probe) if probe else None,
        scope,
    )


async def read_stop(redis: Any, account: str, scope: str = ACCOUNT) -> Stop | None:
    return _decode(await redis.hgetall(keys.stop(account, scope)), scope)


def stop_scopes() -> list[str]:
    """Every scope a stop can have: the account's, then each registered channel's."""
    from jobs import channels

    return [ACCOUNT, *(c.kind for c in channels.all_channels())]


async def read_stops(redis: Any, account: str) -> list[Stop]:
    """Every stop of the account, the account-wide one first: one pipelined read of the
    known scopes, never a SCAN (whose cost grows with every key in Redis)."""
    scopes = stop_scopes()
    async with redis.pipeline(transaction=False) as pipe:
        for scope in scopes:
            pipe.hgetall(keys.stop(account, scope))
        found = await pipe.execute()
    stops = [_decode(raw, scope) for raw, scope in zip(found, scopes, strict=True)]
    return [s for s in stops if s is not None]


# KEYS: stop, parked. ARGV: field, scope. Parks only while the stop is still
# there: a resume between a run's look and its parking must not strand it.
_PARK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""


async def park(redis: Any, account: str, scope: str, sending_id: str, chunk: str) -> bool:
    """Park a chunk until its scope is resumed; False when the stop is gone already."""
    script = redis.register_script(_PARK)
    field = keys.parked_field(sending_id, chunk)
    done = await script(keys=[keys.stop(account, scope), keys.parked(account)], args=[field, scope])
    return bool(done)


async def unpark(
    redis: Any,
    account: str,
    *,
    scope: str | None = None,
    limit: int | None = None,
    expires_s: float = DEFAULT_EXPIRES_S,
) -> int:
    """Enqueue parked chunks again (of one scope, or all); returns how many.

    A chunk whose job still exists (it is finishing the run that parked it)
    stays parked, and the sweeper enqueues it on a later pass.
    """
    moved = 0
    parked = await redis.hgetall(keys.parked(account))
    for field, value in parked.items():
        if scope is not None and value.decode() != scope:
            continue
        if limit is not None and moved >= limit:
            break
        sending_id, chunk = keys.parked_chunk(field.decode())
        if await chunks.enqueue(redis, sending_id, chunk, expires_s=expires_s):
            await redis.hdel(keys.parked(account), field)
            moved += 1
    return moved


async def parked_scopes(redis: Any, account: str) -> dict[str, int]:
    """How many chunks are parked, by scope."""
    out: dict[str, int] = {}
    for value in (await redis.hgetall(keys.parked(account))).values():
        out[value.decode()] = out.get(value.decode(), 0) + 1
    return out


async def resume(
    redis: Any, account: str, scope: str | None = None, expires_s: float = DEFAULT_EXPIRES_S
) -> Stop | None:
    """Lift a hold or halt (one scope, or all) and enqueue what was parked; returns what
    was lifted (the account-wide stop first)."""
    stops = await read_stops(redis, account)
    if scope is not None:
        stops = [s for s in stops if s.scope == scope]
    for stop in stops:
        await redis.delete(keys.stop(account, stop.scope), keys.probe(account, stop.scope))
    # Parked chunks of any scope: a stop lifted by someone else's resume, or a
    # chunk parked under a scope that no longer holds, must not wait for a sweep.
    remaining = {s.scope for s in await read_stops(redis, account)}
    for parked_scope in await parked_scopes(redis, account):
        if parked_scope not in remaining:
            await unpark(redis, account, scope=parked_scope, expires_s=expires_s)
    return stops[0] if stops else None


class Turn(Enum):
    GO = "go"  # not stopped
    PROBE = "probe"  # held, and this run may call the provider once to see
    STOPPED = "stopped"


class AccountGate:
    """A worker's view of its account's stops, cached briefly to spare Redis."""

    def __init__(self, redis: Any, account: str, probe_interval: float, cache_s: float = 0.5):
        self.redis = redis
        self.account = account
        self.probe_interval = probe_interval
        self.cache_s = cache_s
        self._cached: dict[str, tuple[float, Stop | None]] = {}

    async def current(self, scope: str) -> Stop | None:
        at, stop = self._cached.get(scope, (0.0, None))
        if time.monotonic() - at > self.cache_s:
            stop = await read_stop(self.redis, self.account, scope)
            self._cached[scope] = (time.monotonic(), stop)
        return stop

    async def turn(self, channel: str) -> tuple[Turn, Stop | None]:
        """May a run of ``channel`` call the provider? The one run that wins a due probe
        of a hold gets ``PROBE``."""
        for scope in (ACCOUNT, channel):
            stop = await self.current(scope)
            if stop is None:
                continue
            if stop.state == "held" and stop.probe_at is not None and time.time() >= stop.probe_at:
                won = await self.redis.set(
                    keys.probe(self.account, scope),
                    "1",
                    nx=True,
                    ex=max(int(self.probe_interval), 5),
                )
                if won:
                    return Turn.PROBE, stop
            return Turn.STOPPED, stop
        return Turn.GO, None

    async def stop(self, scope: str, halt: bool, code: int | None, reason: str) -> None:
        state = "halted" if halt else "held"
        mapping: dict[str, Any] = {
            "state": state,
            "code": code if code is not None else "",
            "reason": reason,
            "since": now_iso(),
        }
        if not halt and self.probe_interval > 0:
            mapping["probe_at"] = time.time() + self.probe_interval
        await self.redis.hset(keys.stop(self.account, scope), mapping=mapping)
        await self.redis.delete(keys.probe(self.account, scope))
        self._cached[scope] = (
            time.monotonic(),
            _decode({k.encode(): str(v).encode() for k, v in mapping.items()}, scope),
        )
        level = logging.CRITICAL if halt else logging.ERROR
        where = "" if scope == ACCOUNT else f" ({scope} only)"
        log.log(
            level,
            "provider account %s %s%s: %s %s",
            self.account,
            state,
            where,
            code,
            reason,
            extra={"account": self.account, "scope": scope},
        )

    async def probe_succeeded(self, scope: str, expires_s: float) -> None:
        """The probe of a hold went through: lift it and send what waited."""
        await resume(self.redis, self.account, scope, expires_s)
        self._cached.pop(scope, None)
        log.warning(
            "provider account %s resumed after a successful probe",
            self.account,
            extra={"account": self.account, "scope": scope},
        )
