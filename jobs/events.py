"""What happened after "accepted": delivery notifications and events, recorded exactly once.

Sources: ``messaging-api.txt`` → "Delivery notifications" (a GET to the
``notificationUrl`` per message and part, with ``%`` escapes) and "Event
Notifications" (a form POST per event, account-wide, retried up to 5 times when
not answered 200). Providers send these late, twice (or 46 times) and out of
order, and a fast DLR can arrive before the worker has recorded the message id
the 202 carried. So every event goes through one Lua step (``_LUA_APPLY``) that:

* finds the recipient: by the sending and index our own ``notificationUrl``
  carries, else by the message id (``keys.message``, written by the same move
  that records the recipient accepted);
* parks it (``keys.early``) when the recipient is not yet accepted with that
  message id — the move that records the acceptance applies what was parked, in
  the same atomic step, so nothing slips between the two;
* drops a duplicate (same event, date and part, already in the record);
* moves the delivery state only forward: ``sent`` → ``delivered`` |
  ``undelivered`` | ``rejected`` | ``expired``; a final state never changes, so a
  late ``ACCEPTD`` after ``DELIVRD`` changes nothing. A multipart SMS gets one
  state from its parts (``%n``): delivered when every part is, else the first
  part that failed;
* keeps ``opened``, ``clicked`` (with the URL), ``unsubscribed``, ``complaint``,
  ``hard_bounced``, ``soft_bounced`` as facts with their dates (a hard bounce also
  means undelivered), counts each fact once per recipient, and puts the address on
  the suppression list on ``unsubscribed``, ``unsubscribed_landing``,
  ``complaint`` and ``hard_bounced``.

Normalising what arrives (``from_dlr``, ``from_event``) is plain Python; a
malformed notification is ``Malformed`` — logged and counted by the caller, and
answered 200, since the provider retrying it cannot help.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, unquote

import orjson

from jobs import keys
from jobs.chunks import Entry
from jobs.planning import Call

__all__ = [
    "DELIVERY_STATES",
    "DLR_STATES",
    "Event",
    "Malformed",
    "delivery_counts",
    "from_dlr",
    "from_event",
    "with_notification_urls",
]

# %s of a delivery notification → our delivery state (None: no state, a fact only).
# "Delivery notifications": REJECTD, DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD,
# UNKNOWN, RECEIVED.
DLR_STATES: Final[dict[str, str | None]] = {
    "DELIVRD": "delivered",
    "UNDELIV": "undelivered",
    "DELETED": "undelivered",  # deleted by the operator before delivery
    "REJECTD": "rejected",
    "EXPIRED": "expired",
    "ACCEPTD": "sent",
    "RECEIVED": "sent",
    "UNKNOWN": None,
}

# ``event`` of an event notification → the delivery state it implies (None: a fact only).
# "Event Notifications" → event: the values the doc lists.
EVENT_STATES: Final[dict[str, str | None]] = {
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "rejected": "rejected",
    "expired": "expired",
    "hard_bounced": "undelivered",
    "soft_bounced": None,
    "opened": None,
    "clicked": None,
    "unsubscribed": None,
    "unsubscribed_landing": None,
    "complaint": None,
    "form_opened": None,
    "form_submitted": None,
    "form_rejected": None,
}

DELIVERY_STATES: Final = ("delivered", "undelivered", "rejected", "expired")
# The status object's ``delivery`` keys besides the states; a fact counts once per recipient.
FACT_COUNTERS: Final[dict[str, str]] = {
    "opened": "opened",
    "clicked": "clicked",
    "hard_bounced": "bounced",
    "soft_bounced": "bounced",
    "unsubscribed": "unsubscribed",
    "unsubscribed_landing": "unsubscribed",
    "complaint": "complaint",
}
SUPPRESSING: Final = ("unsubscribed", "unsubscribed_landing", "complaint", "hard_bounced")
# A sending's kind → the suppression list its addresses go on (jobs.suppression).
LIST_OF_KIND: Final = {
    "sms": "sms",
    "landing": "sms",
    "whatsapp": "sms",
    "voice": "voice",
    "voice-audio": "voice",
    "email": "mailing",
}
# Channels whose calls take a notificationUrl ("Delivery notifications"): SMS one per
# recipient (an array), landing SMS one per call (a string).
PER_RECIPIENT_URL: Final = ("sms",)
PER_CALL_URL: Final = ("landing",)


class Malformed(ValueError):
    """A notification this service cannot use: answered 200 all the same."""


@dataclass(frozen=True, slots=True)
class Event:
    """One notification, normalised: what the Lua step takes."""

    message_id: str
    event: str  # a DLR's state ("delivered", "sent", …) or an event's name
    date: str
    state: str | None  # the delivery state it implies
    part: int = 0  # 0: the message as a whole
    extra: str = ""  # the clicked URL
    sending: str = ""  # from our own notificationUrl: finds the record without a lookup
    index: int = -1

    def as_json(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.message_id,
                "event": self.event,
                "date": self.date,
                "state": self.state or "",
                "part": self.part,
                "extra": self.extra,
            }
        )


def _field(params: Mapping[str, str], name: str, what: str) -> str:
    value = (params.get(name) or "").strip()
    if not value:
        raise Malformed(f"{name}: missing ({what})")
    return value


def from_dlr(params: Mapping[str, str]) -> Event:
    """A delivery notification's query (our ``notificationUrl``'s names, see ``dlr_url``)."""
    message_id = _field(params, "i", "%i, the message id")
    status = _field(params, "st", "%s, the status").upper()
    if status not in DLR_STATES:
        raise Malformed(f"st: {status!r} is not a documented status")
    part_raw = (params.get("n") or "0").strip() or "0"
    if not part_raw.isdigit():
        raise Malformed(f"n: {part_raw!r} is not a part number")
    index_raw = (params.get("r") or "").strip()
    state = DLR_STATES[status]
    return Event(
        message_id=message_id,
        event=state or status.lower(),
        date=(params.get("y") or params.get("t") or "").strip(),
        state=state,
        part=int(part_raw),
        sending=(params.get("s") or "").strip(),
        index=int(index_raw) if index_raw.isdigit() else -1,
    )


def from_event(form: Mapping[str, str]) -> Event:
    """An event notification's form fields ("Event Notifications")."""
    message_id = _field(form, "id", "the message id")
    name = _field(form, "event", "the event").lower()
    if name not in EVENT_STATES:
        raise Malformed(f"event: {name!r} is not a documented event")
    extra = ""
    if name == "clicked" and form.get("extra"):
        try:
            url = orjson.loads(form["extra"]).get("url", "")
        except (orjson.JSONDecodeError, AttributeError):
            raise Malformed("extra: not the documented JSON object") from None
        extra = unquote(str(url))
    return Event(
        message_id=message_id,
        event=name,
        date=_field(form, "eventDate", "when it happened"),
        state=EVENT_STATES[name],
        extra=extra,
    )


def dlr_url(public_url: str, secret: str, sending_id: str | None, index: int | None) -> str:
    """Our ``notificationUrl``: the hook with every escape the doc defines, plus what finds
    the recipient without a lookup (sending and index, when the URL is per recipient)."""
    base = f"{public_url.rstrip('/')}/hooks/dlr/{quote(secret, safe='')}?"
    own = f"s={sending_id}&r={index}&" if sending_id is not None and index is not None else ""
    escapes = "i=%i&st=%s&n=%n&y=%y&t=%t&P=%P&p=%p&S=%S&C=%C&c=%c"
    return base + own + escapes


def with_notification_urls(
    calls: Sequence[Call], sending_id: str, public_url: str | None, secret: str | None
) -> list[Call]:
    """The calls, each SMS call with our ``notificationUrl`` for every recipient when it has
    none of its own (a sending's own is kept as given: its events then come only through
    the account-wide event notifications)."""
    if not public_url or not secret:
        return list(calls)
    out = []
    for call in calls:
        own = "notificationUrl" in call.body or any(
            "notificationUrl" in e.extras for e in call.entries
        )
        if own or call.kind not in (*PER_RECIPIENT_URL, *PER_CALL_URL):
            out.append(call)
        elif call.kind in PER_CALL_URL:
            body = {**call.body, "notificationUrl": dlr_url(public_url, secret, None, None)}
            out.append(_replace(call, body=body))
        else:
            entries = [
                Entry(
                    e.index,
                    e.to,
                    {
                        **e.extras,
                        "notificationUrl": dlr_url(public_url, secret, sending_id, e.index),
                    },
                )
                for e in call.entries
            ]
            out.append(_replace(call, entries=entries))
    return out


def _replace(call: Call, **changes: Any) -> Call:
    from dataclasses import replace

    return replace(call, **changes)


def delivery_counts(meta: Mapping[str, str], accepted: int) -> dict[str, int]:
    """The status object's ``delivery``: states, ``pending`` (accepted, no final state
    yet) and the facts, from a sending's hash fields ``d:<state>`` and ``f:<fact>``."""
    states = {s: int(meta.get(f"d:{s}", 0)) for s in DELIVERY_STATES}
    facts = {f: int(meta.get(f"f:{f}", 0)) for f in ("opened", "clicked", "bounced")}
    return {
        **states,
        "pending": max(accepted - sum(states.values()), 0),
        **facts,
        "unsubscribed": int(meta.get("f:unsubscribed", 0)),
    }


# --- the Lua step ------------------------------------------------------------------

_TABLE = "{" + ", ".join(f'["{k}"]="{v}"' for k, v in FACT_COUNTERS.items()) + "}"
_LISTS = "{" + ", ".join(f'["{k}"]="{v}"' for k, v in LIST_OF_KIND.items()) + "}"
_FINALS = "{" + ", ".join(f"{s}=1" for s in DELIVERY_STATES) + "}"
_SUPPRESSING = "{" + ", ".join(f"{s}=1" for s in SUPPRESSING) + "}"
_DLV, _SEP = keys.metrics_field(keys.METRICS_DELIVERY, ""), keys.metrics_field("", "")

# Functions shared by the hook's script and the result store's move (which applies
# what was parked when it records the acceptance). They name keys by prefix: the
# recipient's sending is known only once its record is found.
LUA_FUNCTIONS = f"""
local EV_FINAL = {_FINALS}
local EV_FACT = {_TABLE}
local EV_LIST = {_LISTS}
local EV_SUPPRESS = {_SUPPRESSING}
local function ev_normalize(list, to)
  if list == 'mailing' then return string.lower((string.gsub(to, '^%s*(.-)%s*$', '%1'))) end
  return (string.gsub(to, '%D', ''))
end
local function ev_rkey(sid, idx)  -- keys.results(sid, idx): results_prefix(sid) in Lua
  return results_key('{keys.results_prefix("' .. sid .. '")}', idx)
end
local function ev_apply(sid, idx, ev)
  local rkey = ev_rkey(sid, idx)
  local cur = redis.call('HGET', rkey, idx)
  if not cur then  -- no such recipient, or one nothing has moved yet (no record)
    local skey, n = '{keys.sending("")}' .. sid, tonumber(idx)
    local total = tonumber(redis.call('HGET', skey, 'total') or '0')
    local untouched = redis.call('HEXISTS', skey, 'chunk_size') == 1
    if untouched and n and n >= 0 and n < total and math.floor(n) == n then return 'early' end
    return 'unknown'
  end
  local r = cmsgpack.unpack(cur)  -- a record is MessagePack (jobs.codec.pack)
  if r['status'] ~= 'accepted' or r['id'] ~= ev['id'] then return 'early' end
  local events = r['events'] or {{}}
  for _, e in ipairs(events) do
    if e[1] == ev['event'] and e[2] == ev['date'] and e[3] == ev['part'] then
      return 'duplicate'
    end
  end
  events[#events + 1] = {{ev['event'], ev['date'], ev['part'], ev['extra']}}
  r['events'] = events
  local skey = '{keys.sending("")}' .. sid
  local kind = redis.call('HGET', skey, 'kind') or '?'
  local old = r['delivery']
  local st = ev['state']
  if st ~= '' then
    local parts = tonumber(r['parts']) or 1
    if parts > 1 and ev['part'] > 0 then
      local dp = r['dparts'] or {{}}
      local key = tostring(ev['part'])
      if not EV_FINAL[dp[key] or ''] then dp[key] = st end
      r['dparts'] = dp
      local delivered, failed = 0, nil
      for i = 1, parts do
        local s = dp[tostring(i)]
        if s == 'delivered' then delivered = delivered + 1
        elseif s and EV_FINAL[s] and not failed then failed = s end
      end
      if failed then st = failed
      elseif delivered == parts then st = 'delivered'
      else st = 'sent' end
    end
    if not EV_FINAL[old or ''] and (EV_FINAL[st] or old == nil) then
      r['delivery'] = st
      if EV_FINAL[st] then
        r['delivered_at'] = ev['date']
        redis.call('HINCRBY', skey, 'd:' .. st, 1)
        redis.call('HINCRBY', '{keys.METRICS}', '{_DLV}' .. kind .. '{_SEP}' .. st, 1)
      end
    end
  end
  local counter = EV_FACT[ev['event']]
  if counter then
    local facts = r['facts'] or {{}}
    if not facts[counter] then
      facts[counter] = ev['date']
      redis.call('HINCRBY', skey, 'f:' .. counter, 1)
    end
    r['facts'] = facts
  end
  if EV_SUPPRESS[ev['event']] and EV_LIST[kind] then
    local list = EV_LIST[kind]
    local entry = cjson.encode({{
      reason = ev['event'], at = ev['date'], source = 'event', sending = sid}})
    redis.call('HSETNX', '{keys.suppression("")}' .. list, ev_normalize(list, r['to']), entry)
  end
  redis.call('HSET', rkey, idx, cmsgpack.pack(r))
  if old ~= 'delivered' and r['delivery'] == 'delivered' then return 'delivered' end
  return 'applied'
end
local function ev_park(mid, raw, ttl)
  local key = '{keys.early("")}' .. mid
  redis.call('RPUSH', key, raw)
  redis.call('EXPIRE', key, ttl)
end
-- The move that records a recipient accepted with message id ``mid`` calls this.
local function ev_link(sid, idx, mid, ttl)
  redis.call('SET', '{keys.message("")}' .. mid, sid .. ' ' .. idx, 'EX', ttl)
  local key = '{keys.early("")}' .. mid
  local parked = redis.call('LRANGE', key, 0, -1)
  if #parked > 0 then
    redis.call('DEL', key)
    for _, raw in ipairs(parked) do ev_apply(sid, tostring(idx), cjson.decode(raw)) end
  end
end
"""

# ARGV: ttl, then (message id, sending, index, event JSON) quadruples; sending '' when
# the notification does not name it. Returns one outcome per event: applied,
# delivered (applied, and the recipient is newly delivered: its accepted time
# follows, for the latency histogram), duplicate, parked (not accepted with that id
# yet, or no record names the id yet), unknown (the sending named has no such
# recipient: expired, or never ours).
LUA_INGEST = (
    keys.LUA_RESULTS_KEY
    + LUA_FUNCTIONS
    + f"""
local ttl = tonumber(ARGV[1])
local out = {{}}
for i = 2, #ARGV, 4 do
  local mid, sid, idx, raw = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if sid == '' then
    local found = redis.call('GET', '{keys.message("")}' .. mid)
    if found then
      local at = string.find(found, ' ', 1, true)
      sid, idx = string.sub(found, 1, at - 1), string.sub(found, at + 1)
    end
  end
  local outcome = 'parked'
  if sid ~= '' then outcome = ev_apply(sid, idx, cjson.decode(raw)) end
  if outcome == 'early' or outcome == 'parked' then
    ev_park(mid, raw, ttl)
    outcome = 'parked'
  end
  if outcome == 'delivered' then
    local rec = cmsgpack.unpack(redis.call('HGET', ev_rkey(sid, idx), idx))
    outcome = 'delivered ' .. (rec['updated_at'] or '')
  end
  out[#out + 1] = outcome
end
return out
"""
)


def ingest_args(events: Sequence[Event], ttl: int) -> list[Any]:
    args: list[Any] = [ttl]
    for ev in events:
        index = str(ev.index) if ev.sending and ev.index >= 0 else ""
        args += [ev.message_id, ev.sending if index else "", index, ev.as_json()]
    return args
