"""A rate limit shared by all workers on all hosts, per provider account.

GCRA (a token bucket kept as one timestamp per limit) in a Lua script, so a
limit holds however many workers there are: messages per second (cost = the
call's recipients) and requests per second (cost = 1). A 429 from the provider
sets a cool-down that every worker waits out before its next call, and each
429 in a row doubles it: a burst of 429 slows everyone down, not only the
worker that heard it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

# KEYS: messages tat, requests tat, cooldown. ARGV: now_ms, msg interval ms,
# req interval ms, cost. Returns ms to wait (0 = go; the slot is taken).
_ACQUIRE = """
local now = tonumber(ARGV[1])
local cool = redis.call('PTTL', KEYS[3])
if cool > 0 then return cool end
local function check(key, interval, cost)
  if interval <= 0 then return 0, nil end
  local tat = math.max(tonumber(redis.call('GET', key) or now), now)
  local inc = interval * cost
  local tolerance = math.max(1000, inc)
  local new_tat = tat + inc
  local wait = new_tat - tolerance - now
  if wait > 0 then return wait, nil end
  return 0, new_tat
end
local cost = tonumber(ARGV[4])
local w1, t1 = check(KEYS[1], tonumber(ARGV[2]), cost)
local w2, t2 = check(KEYS[2], tonumber(ARGV[3]), 1)
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
        prefix = f"bs:rate:{account}"
        self._keys = [f"{prefix}:msg", f"{prefix}:req", f"{prefix}:cooldown"]
        self._streak = f"{prefix}:429"
        self._msg_ms = 1000 / messages_per_second if messages_per_second > 0 else 0
        self._req_ms = 1000 / requests_per_second if requests_per_second > 0 else 0
        self._max_cooldown_ms = max_cooldown_s * 1000
        self._acquire = redis.register_script(_ACQUIRE)
        self._backoff = redis.register_script(_BACKOFF)
        self._redis = redis
        self._streak_open = False  # this worker heard a 429 since its last success

    async def acquire(self, cost: int) -> float:
        """Wait for a slot for a call with ``cost`` recipients; returns seconds waited."""
        waited = 0.0
        while True:
            now_ms = int(time.time() * 1000)
            args = [now_ms, self._msg_ms, self._req_ms, cost]
            wait_ms = int(await self._acquire(keys=self._keys, args=args))
            if wait_ms <= 0:
                return waited
            await asyncio.sleep(wait_ms / 1000)
            waited += wait_ms / 1000

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
