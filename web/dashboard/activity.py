"""The activity list: every action taken through the dashboard, kept in Redis.

Operators ask "who cancelled this, and when?" long after the tab is closed, so
each action is recorded where every replica and every restart sees it: what was
done, to which sending, how many recipients it touched, when, and with which
kind of token (never the token). The list is capped at ``KEEP`` entries.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from jobs import keys
from jobs.results import now_iso

__all__ = ["KEEP", "latest", "record"]

KEEP: Final = 1000


async def record(redis: Any, *, what: str, target: str | None, count: int | None, by: str) -> None:
    entry = {"at": now_iso(), "what": what, "target": target, "count": count, "by": by}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lpush(keys.ACTIVITY, orjson.dumps(entry))
        pipe.ltrim(keys.ACTIVITY, 0, KEEP - 1)
        await pipe.execute()


async def latest(redis: Any, count: int = 100) -> list[dict[str, Any]]:
    """The newest ``count`` actions, newest first."""
    return [orjson.loads(raw) for raw in await redis.lrange(keys.ACTIVITY, 0, count - 1)]
