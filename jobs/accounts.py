"""Account-level stops shared by every worker: *hold* and *halt*.

Some provider answers are about the account, not the message: no credits
(111), a hard-bounce block (118), no billing profile (150) — *hold*; bad
credentials (103), an IP not allowed (112), an unverified sender or replyTo
(115, 117) — *halt*. Retrying every job against such an account would burn
attempts and fail recipients that are perfectly sendable once the operator
acts. So the first worker that hears one records it in Redis; every worker
then stops calling the provider for that account and leaves its recipients
queued. ``bulksend resume`` lifts it; a hold (never a halt) is also probed
again automatically every ``BULKSEND_HOLD_PROBE_INTERVAL`` seconds by one
worker at a time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jobs.results import now_iso
from jobs.settings import Settings

log = logging.getLogger("bulksend.accounts")


def account_id(settings: Settings) -> str:
    """Who we send as: provider username at provider host — no secret in it."""
    host = urlsplit(settings.provider_url).netloc
    return f"{settings.provider_username}@{host}"


def _key(account: str) -> str:
    return f"bs:account:{account}"


@dataclass(frozen=True, slots=True)
class Stop:
    state: str  # "held" or "halted"
    code: int | None
    reason: str
    since: str
    probe_at: float | None  # epoch seconds; None for a halt

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "code": self.code, "reason": self.reason, "since": self.since}


def _decode(raw: dict[bytes, bytes]) -> Stop | None:
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
    )


async def read_stop(redis: Any, account: str) -> Stop | None:
    return _decode(await redis.hgetall(_key(account)))


async def resume(redis: Any, account: str) -> Stop | None:
    """Lift a hold or halt; returns what was lifted."""
    stop = await read_stop(redis, account)
    await redis.delete(_key(account), _key(account) + ":probe")
    return stop


class AccountGate:
    """A worker's view of its account's stop, cached briefly to spare Redis."""

    def __init__(self, redis: Any, account: str, probe_interval: float, cache_s: float = 0.5):
        self.redis = redis
        self.account = account
        self.probe_interval = probe_interval
        self.cache_s = cache_s
        self._cached: tuple[float, Stop | None] = (0.0, None)

    async def current(self) -> Stop | None:
        at, stop = self._cached
        if time.monotonic() - at > self.cache_s:
            stop = await read_stop(self.redis, self.account)
            self._cached = (time.monotonic(), stop)
        return stop

    async def may_send(self) -> bool:
        """False while stopped; True for the one worker that wins a due probe of a hold."""
        stop = await self.current()
        if stop is None:
            return True
        if stop.state != "held" or stop.probe_at is None or time.time() < stop.probe_at:
            return False
        won = await self.redis.set(
            _key(self.account) + ":probe", "1", nx=True, ex=max(int(self.probe_interval), 5)
        )
        return bool(won)

    async def stop(self, halt: bool, code: int | None, reason: str) -> None:
        state = "halted" if halt else "held"
        mapping: dict[str, Any] = {
            "state": state,
            "code": code if code is not None else "",
            "reason": reason,
            "since": now_iso(),
        }
        if not halt and self.probe_interval > 0:
            mapping["probe_at"] = time.time() + self.probe_interval
        await self.redis.hset(_key(self.account), mapping=mapping)
        await self.redis.delete(_key(self.account) + ":probe")
        self._cached = (
            time.monotonic(),
            _decode({k.encode(): str(v).encode() for k, v in mapping.items()}),
        )
        level = logging.CRITICAL if halt else logging.ERROR
        log.log(level, "provider account %s %s: %s %s", self.account, state.upper(), code, reason)

    async def succeeded(self) -> None:
        """A call went through: a probe that worked lifts the hold."""
        stop = await self.current()
        if stop is not None and stop.state == "held":
            await resume(self.redis, self.account)
            self._cached = (time.monotonic(), None)
            log.warning("provider account %s resumed after a successful probe", self.account)
