"""The Redis key layout, in one place.

Per sending:

``bs:sending:{id}``      hash  kind, state, spec, timestamps and the counters
                               ``n:<status>`` (one per recipient status)
``bs:results:{id}:{b}``  hash  recipient index → result record (MessagePack), for the indices
                               ``b * RESULTS_BUCKET`` up to the next bucket: small hashes
                               keep Redis's compact encoding (``results``); none for a
                               queued recipient nothing has moved yet (its entry gives it)
``bs:chunks:{id}``       hash  chunk name → its entries ``[[index, to, extras(, as handed
                               in)], …]`` (zlib); a submit's chunk ``n`` holds the
                               recipients from ``n × chunk_size`` on
``bs:fails:{id}:{chunk}`` str  runs of that chunk that ended in an error
``bs:settled:{id}``      set   chunks whose recipients were all final (noted by the run
                               that finished them, or the sweeper): not read again
``bs:flights:{id}``      hash  call id → the recipients a run put on the wire in that call,
                               MessagePack ``[run, until, at, [[first, last], …]]``: runs of
                               adjacent indices, a chunk's usually one (``flights``)
``bs:flying:{id}``       str   a bitmap: bit ``index`` is set while that recipient is in a
                               flight; gone once no call of the sending is on the wire
``bs:prepare:{id}``      str   the lock of the run preparing its calls (an import's group)
``bs:breakdown:{id}``    hash  what its recipients ended with, counted as they arrive:
                               ``code:<code>`` (rejected, failed, unknown, expired; ``none``
                               without a code), ``parts:<encoding>`` and
                               ``accepted:<encoding>`` (accepted SMS)

Across sendings:

``bs:sendings``          zset  sending ids by creation time, for listings
``bs:campaigns``         zset  ``<lowercased campaign name>\\x00<id>`` at score 0: sendings by
                               campaign name prefix (ZRANGEBYLEX)
``bs:active``            set   sendings not yet done: what the sweeper looks at
``bs:group:{name}``      set   the imports into that messaging group (``send --group``)
``bs:sweep``             str   the sweeper's lock (one worker sweeps at a time)
``bs:activity``          list  the dashboard's actions (what, when, which token kind), capped
``bs:metrics``           hash  what ``/metrics`` shows, cluster-wide (``web.metrics``): the
                               fields ``metrics_field(...)`` names, see ``METRICS``
``bs:hooks``             str   present while a `serve` with a hook secret runs (renewed)
``bs:msg:{message id}``  str   ``"{sending} {index}"``: the recipient of a provider message id
``bs:early:{message id}`` list events that came before that id was recorded (``jobs.events``)
``bs:workers:{queue}``   hash  worker (host:pid:token) → its last heartbeat, JSON
                               ``{"at": epoch seconds, "running": chunk jobs}`` (a bare
                               epoch from older workers)
``bs:series:{epoch}``    hash  provider calls of the 10 s starting at that epoch (a multiple
                               of 10): ``accepted`` recipients, ``errors``; kept 2 hours

Suppression (``jobs.suppression``), per list (``sms``, ``voice``, ``mailing``):

``bs:suppress:{list}``      hash  normalized address → JSON ``{"reason", "at", "source",
                                  "sending"}``: never sent to again
``bs:suppress:push:{list}`` set   our additions not yet put on the provider's blacklist
``bs:suppress:drop:{list}`` set   our removals not yet taken off the provider's blacklist
``bs:suppress:sync``        str   held for BULKSEND_BLACKLIST_SYNC_INTERVAL by the worker that
                                  syncs with the provider's blacklist (``worker.blacklist``)

Per provider account (``user@host``) and stop scope (``*`` or a channel):

``bs:stop:{account}:{scope}``   hash  a hold or halt: state, code, reason, since
``bs:probe:{account}:{scope}``  str   who may probe a hold now
``bs:parked:{account}``         hash  ``{sending}/{chunk}`` → scope: chunks waiting out a stop
``bs:rate:{account}:{what}``     str   the shared rate limit: msg, req, cooldown, 429

arq's own keys (``arq:job:*``, ``arq:in-progress:*``, ``arq:retry:*``,
``arq:result:*``, the queue zset and its ``{queue}:health-check``) hold the chunk
jobs; a job carries only ``(sending id, chunk name)``. Their prefixes come from
``arq.constants``.
"""

from __future__ import annotations

from arq.constants import (
    health_check_key_suffix,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)

SENDINGS = "bs:sendings"
CAMPAIGNS = "bs:campaigns"
CAMPAIGN_SEP = "\x00"  # between name and id; no id holds it, so a member splits at its last
ACTIVE = "bs:active"
SWEEP_LOCK = "bs:sweep"
HOOKS = "bs:hooks"  # set while a `serve` receives notifications: workers link message ids
ACTIVITY = "bs:activity"  # the dashboard's actions, newest first (web.dashboard.activity)

# The counters behind ``/metrics``, one hash for every worker and replica. Fields are
# ``metrics_field(what, …)``, the free-form part (an endpoint) last:
#   rcpt|{kind}|{status}   recipients that reached a final status (a counter), or are
#                          pending now (queued, sending: a net count); moved by the
#                          Lua of jobs.results with the per-sending ``n:<status>``
#   req|{code}|{endpoint}  provider calls by outcome code (worker.metrics)
#   lat|{le}|{endpoint}    calls whose duration fell in that bucket (not cumulative)
#   lat_sum|{endpoint}     their durations, summed (seconds)
#   parts|{encoding}       SMS parts the provider answered it accepted
METRICS = "bs:metrics"
METRICS_RECIPIENTS = "rcpt"
METRICS_REQUESTS = "req"
METRICS_LATENCY = "lat"
METRICS_LATENCY_SUM = "lat_sum"
METRICS_PARTS = "parts"
METRICS_DELIVERY = "dlv"  # dlv|{kind}|{state}: recipients that reached a delivery state
METRICS_DELIVERY_LATENCY = "dlat"  # dlat|{le}: seconds from accepted to delivered
METRICS_DELIVERY_LATENCY_SUM = "dlat_sum"  # their sum
METRICS_HOOKS = "hook"  # hook|{outcome}: notifications received, by what became of them
_METRICS_SEP = "|"


def metrics_field(*parts: str) -> str:
    """A field of ``METRICS``: its kind first, an endpoint (which may hold anything) last."""
    return _METRICS_SEP.join(parts)


def metrics_field_parts(field: str, count: int) -> list[str]:
    """A ``METRICS`` field split back into its ``count`` parts (the kind first)."""
    return field.split(_METRICS_SEP, count - 1)


def sending(sending_id: str) -> str:
    return f"bs:sending:{sending_id}"


# Recipients per results hash. A sending's records are split in hashes this small so
# that each stays in Redis's compact encoding (a listpack, ziplist before Redis 7: under
# ``hash-max-listpack-entries``, 128 by default) at a few bytes of overhead per record
# instead of ~70 in a hash table. A lookup in one walks its entries: at 64 a read and
# write of a record cost Redis ~2.3 µs, at 128 ~2.7, in one hash table ~1.7
# (measured); below 64 the keys' own overhead and a finished sending's EXPIREs grow.
RESULTS = "bs:results:"
RESULTS_BUCKET = 64
# The largest value such a hash keeps compact (``hash-max-listpack-value``, 64 by
# default): a final record is ~150 bytes. The embedded Redis and the compose file set it;
# a worker warns about a Redis that keeps less.
RESULTS_VALUE_BYTES = 512


def results_prefix(sending_id: str) -> str:
    """What every results hash of the sending starts with; the bucket number follows."""
    return f"{RESULTS}{sending_id}:"


def results(sending_id: str, index: int) -> str:
    """The hash that holds recipient ``index``'s record."""
    return f"{results_prefix(sending_id)}{index // RESULTS_BUCKET}"


def all_results(sending_id: str, count: int) -> list[str]:
    """Every results hash of a sending of ``count`` recipients (indices 0 to count - 1)."""
    return [results(sending_id, index) for index in range(0, count, RESULTS_BUCKET)]


# ``results`` for the Lua scripts that touch records: ``prefix`` is ``results_prefix``.
LUA_RESULTS_KEY = f"""
local function results_key(prefix, idx)
  return prefix .. math.floor(tonumber(idx) / {RESULTS_BUCKET})
end
"""


def chunks(sending_id: str) -> str:
    return f"bs:chunks:{sending_id}"


def breakdown(sending_id: str) -> str:
    """What a sending's recipients ended with (codes, parts), moved with their records."""
    return f"bs:breakdown:{sending_id}"


def campaign_member(name: str, sending_id: str) -> str:
    """A sending's member of ``CAMPAIGNS``: its name lowercased first, so that a
    lexicographic range is a case-insensitive prefix search."""
    return f"{name.lower()}{CAMPAIGN_SEP}{sending_id}"


def prepare_lock(sending_id: str) -> str:
    """Held by the one run that prepares a sending's calls (an import's group)."""
    return f"bs:prepare:{sending_id}"


def group_imports(group: str) -> str:
    """The imports into a messaging group, for ``send --group``."""
    return f"bs:group:{group}"


def chunk_fails(sending_id: str, chunk: str) -> str:
    return f"bs:fails:{sending_id}:{chunk}"


def settled_chunks(sending_id: str) -> str:
    return f"bs:settled:{sending_id}"


def flights(sending_id: str) -> str:
    """The sending's calls on the wire, one entry per call: its recipients are ``sending``
    without a write each (``jobs.results``)."""
    return f"bs:flights:{sending_id}"


def flying(sending_id: str) -> str:
    """One bit per recipient, set while it is in one of ``flights``: what a move checks."""
    return f"bs:flying:{sending_id}"


def chunk_job_id(sending_id: str, chunk: int | str) -> str:
    """Deterministic: enqueueing the same chunk twice is a no-op in arq."""
    return f"{sending_id}:{chunk}"


def stop(account: str, scope: str) -> str:
    return f"bs:stop:{account}:{scope}"


def probe(account: str, scope: str) -> str:
    return f"bs:probe:{account}:{scope}"


def parked(account: str) -> str:
    return f"bs:parked:{account}"


def parked_field(sending_id: str, chunk: str) -> str:
    """A chunk's field in ``parked``."""
    return f"{sending_id}/{chunk}"


def parked_chunk(field: str) -> tuple[str, str]:
    """``(sending id, chunk)`` of a field in ``parked``."""
    sending_id, chunk = field.split("/", 1)
    return sending_id, chunk


def rate(account: str, what: str) -> str:
    return f"bs:rate:{account}:{what}"


def message(message_id: str) -> str:
    """A provider message id → ``"{sending} {index}"``: how an event finds its recipient."""
    return f"bs:msg:{message_id}"


def early(message_id: str) -> str:
    """Events that arrived before their message id was recorded, applied when it is."""
    return f"bs:early:{message_id}"


def suppression(list_name: str) -> str:
    """A suppression list (sms, voice, mailing): normalised address → why, since when."""
    return f"bs:suppress:{list_name}"


def workers(queue_name: str) -> str:
    """The workers on ``queue_name`` and their last heartbeats (``bulksend_workers_alive``)."""
    return f"bs:workers:{queue_name}"


def series(bucket: int) -> str:
    """The provider calls of the 10 seconds starting at epoch ``bucket`` (live chart)."""
    return f"bs:series:{bucket}"


BLACKLIST_SYNC = "bs:suppress:sync"  # who syncs the provider's blacklist, and when next


def suppression_push(list_name: str) -> str:
    """Addresses we suppressed that the provider's blacklist does not have yet."""
    return f"bs:suppress:push:{list_name}"


def suppression_drop(list_name: str) -> str:
    """Addresses we took off a list that the provider's blacklist may still have."""
    return f"bs:suppress:drop:{list_name}"


# arq's keys ------------------------------------------------------------------------


def arq_job(job_id: str) -> str:
    return job_key_prefix + job_id


def arq_in_progress(job_id: str) -> str:
    return in_progress_key_prefix + job_id


def arq_result(job_id: str) -> str:
    return result_key_prefix + job_id


def arq_retry(job_id: str) -> str:
    return retry_key_prefix + job_id


ARQ_RESULTS_MATCH = result_key_prefix + "*"


def health_check(queue_name: str) -> str:
    """Where arq's workers on ``queue_name`` write their health check."""
    return queue_name + health_check_key_suffix
