"""JSON for everything we put in Redis, arq jobs included — never pickle.

A value read from Redis must not be able to run code in a worker; orjson only
builds plain data, and it is fast enough to sit on the hot path.
"""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)
