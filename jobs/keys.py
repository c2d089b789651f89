"""The Redis key layout, in one place.

Per sending:

``bs:sending:{id}``      hash  kind, state, spec, timestamps and the counters
                               ``n:<status>`` (one per recipient status)
``bs:results:{id}``      hash  recipient index → result record (JSON)
``bs:chunks:{id}``       hash  chunk name → its entries ``[[index, to, extras], …]``
``bs:fails:{id}:{chunk}`` str  runs of that chunk that ended in an error

Across sendings:

``bs:sendings``          zset  sending ids by creation time, for listings
``bs:active``            set   sendings not yet done: what the sweeper looks at
``bs:sweep``             str   the sweeper's lock (one worker sweeps at a time)

Per provider account (``user@host``) and stop scope (``*`` or a channel):

``bs:stop:{account}:{scope}``   hash  a hold or halt: state, code, reason, since
``bs:probe:{account}:{scope}``  str   who may probe a hold now
``bs:parked:{account}``         hash  ``{sending}/{chunk}`` → scope: chunks waiting out a stop
``bs:rate:{account}:…``         str   the shared rate limit (see worker.rate_limit)

arq's own keys (``arq:job:*``, ``arq:in-progress:*``, the queue zset) hold the
chunk jobs; a job carries only ``(sending id, chunk name)``.
"""

from __future__ import annotations

SENDINGS = "bs:sendings"
ACTIVE = "bs:active"
SWEEP_LOCK = "bs:sweep"


def sending(sending_id: str) -> str:
    return f"bs:sending:{sending_id}"


def results(sending_id: str) -> str:
    return f"bs:results:{sending_id}"


def chunks(sending_id: str) -> str:
    return f"bs:chunks:{sending_id}"


def chunk_fails(sending_id: str, chunk: str) -> str:
    return f"bs:fails:{sending_id}:{chunk}"


def chunk_job_id(sending_id: str, chunk: int | str) -> str:
    """Deterministic: enqueueing the same chunk twice is a no-op in arq."""
    return f"{sending_id}:{chunk}"


def stop(account: str, scope: str) -> str:
    return f"bs:stop:{account}:{scope}"


def probe(account: str, scope: str) -> str:
    return f"bs:probe:{account}:{scope}"


def parked(account: str) -> str:
    return f"bs:parked:{account}"


def rate(account: str, what: str) -> str:
    return f"bs:rate:{account}:{what}"
