"""A rate limit shared by all workers on all hosts, per provider account.

GCRA (a token bucket kept as one timestamp per limit) in a Lua script, so a
limit holds however many workers there are: messages per second (cost = the
call's recipients) and requests per second (cost = 1). A call may go only once
the bucket has paid off every earlier call (the tolerance is the call's own
cost), so in any window of W seconds the provider sees at most R×W recipients
plus one call, across all workers and hosts. The clock is Redis's own, so
hosts with skewed clocks still share one bucket.

Waiting for a turn is bounded by the caller's deadline: a run that cannot get
a turn in time gives up its turn (``NoTurn``) and comes back later instead of
running into its job timeout, its recipients still ``queued``.

A 429 from the provider sets a cool-down that every worker waits out before its
next call, and each 429 in a row doubles it: a burst of 429 slows everyone
down, not only the worker that heard it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jobs import keys


class NoTurn(Exception):
    """No turn before the caller's deadline; ``wait_s`` says when to come back."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"no turn for {wait_s:.1f}s")
        self.wait_s = wait_s


# KEYS: messages tat, requests tat, cooldown. ARGV: msg interval ms, req interval
# ms, cost. Returns ms to wait (0 = go; the slot is taken).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cool = redis.call('PTTL', KEYS[3])
if cool > 0 then return cool end
-- tat: when the bucket will have paid off every call so far. A call goes
-- only once it has (tat <= now), then owes its own cost.
local function check(key, interval, cost)
  if interval <= 0 then return 0, nil end
  local tat = tonumber(redis.call('GET', key) or now)
  if tat > now then return tat - now, nil end
  return 0, now + interval * cost
end
local cost = tonumber(ARGV[3])
local w1, t1 = check(KEYS[1], tonumber(ARGV[1]), cost)
local w2, t2 = check(KEYS[2], tonumber(ARGV[2]), 1)
if w1 > 0 or w2 > 0 then return math.ceil(math.max(w1, w2)) end
if t1 then redis.call('SET', KEYS[1], t1, 'PX', math.ceil(t1 - now) + 1000) end
if t2 then redis.call('SET', KEYS[2], t2, 'PX', math.ceil(t2 - now) + 1000) end
return 0
"""

# KEYS: cooldown, streak. ARGV: base ms, max ms. Doubles per 429 in a row.
_BACKOFF = """
local streak = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]) * 2)
local ms = math.min(tonumber(ARGV[1]) * 2 ^ (streak - 1), tonumber(ARGV[2]))
redis.call('SET', KEYS[1], '1', 'PX', math.ceil(ms))
return math.ceil(ms)
"""


class RateLimiter:
    def __init__(
        self,
        redis: Any,
        account: str,
        messages_per_second: float = 0,
        requests_per_second: float = 0,
        max_cooldown_s: float = 30.0,
    ) -> None:
        self._keys = [keys.rate(account, "msg"), keys.rate(account, "req")]
        self._keys.append(keys.rate(account, "cooldown"))
        self._streak = keys.rate(account, "429")
        self._msg_ms = 1000 / messages_per_second if messages_per_second > 0 else 0
        self._req_ms = 1000 / requests_per_second if requests_per_second > 0 else 0
        self._max_cooldown_ms = max_cooldown_s * 1000
        self._acquire = redis.register_script(_ACQUIRE)
        self._backoff = redis.register_script(_BACKOFF)
        self._redis = redis
        self._streak_open = False  # this worker heard a 429 since its last success

    async def acquire(self, cost: int, deadline: float | None = None) -> float:
        """Wait for a slot for a call with ``cost`` recipients; returns seconds waited.

        ``deadline`` (``time.monotonic()``): raise ``NoTurn`` rather than wait past it.
        """
        started = time.monotonic()
        while True:
            args = [self._msg_ms, self._req_ms, cost]
            wait_s = int(await self._acquire(keys=self._keys, args=args)) / 1000
            if wait_s <= 0:
                return time.monotonic() - started
            if deadline is not None and time.monotonic() + wait_s > deadline:
                raise NoTurn(wait_s)
            await asyncio.sleep(wait_s)

    async def too_many_requests(self, retry_after: float | None) -> float:
        """A 429: everyone waits; returns the cool-down in seconds."""
        self._streak_open = True
        base = max(retry_after or 0.5, 0.05) * 1000
        ms = await self._backoff(
            keys=[self._keys[2], self._streak], args=[base, self._max_cooldown_ms]
        )
        return int(ms) / 1000

    async def call_went_through(self) -> None:
        if self._streak_open:
            self._streak_open = False
            await self._redis.delete(self._streak)
