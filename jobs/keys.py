"""The Redis key layout, in one place.

``bs:sending:{id}``  hash   the sending: kind, state, spec, timestamps and the
                            counters ``n:<status>`` (one per recipient status)
``bs:results:{id}``  hash   recipient index → result record (JSON)
``bs:sendings``      zset   sending ids by creation time, for listings
arq's own keys (``arq:job:*``, the queue zset) hold the chunk jobs.
"""

from __future__ import annotations

SENDINGS = "bs:sendings"


def sending(sending_id: str) -> str:
    return f"bs:sending:{sending_id}"


def results(sending_id: str) -> str:
    return f"bs:results:{sending_id}"


def chunk_job_id(sending_id: str, chunk: int | str) -> str:
    """Deterministic: enqueueing the same chunk twice is a no-op in arq."""
    return f"{sending_id}:{chunk}"
