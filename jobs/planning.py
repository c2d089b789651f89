"""Turn a chunk of recipients into provider calls, before any money is spent.

For SMS the cost of a recipient depends on its own rendered text: one name
that needs UCS-2 must not make the whole batch pay UCS-2 prices. So each
recipient's text is rendered and analyzed, and recipients are grouped by
(encoding, parts); each group becomes one call that declares exactly that
encoding and part count. A text the provider would refuse (too many parts,
characters its declared encoding cannot carry) is rejected here with the code
the provider would give, and never sent.

Which planner a channel uses, its part limit and the shape of its request
body are its descriptor's (``jobs.channels``): nothing here names a channel.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs import gsm
from jobs.chunks import Entry
from jobs.templating import TemplateError, TextRules, filters, plain_parts, render, stand_ins

if TYPE_CHECKING:
    from jobs.channels import Channel


@dataclass
class Call:
    """One provider request: the shared body plus its recipients."""

    kind: str
    body: dict[str, Any]
    entries: list[Entry] = field(default_factory=list)
    encoding: str | None = None
    parts: int | None = None
    endpoint: str | None = None  # None: the channel's own
    api: str = "messaging"  # which of the provider's APIs takes it: "messaging" or "mail"

    def request_body(self) -> dict[str, Any]:
        from jobs import channels

        body = channels.get(self.kind).shape(self.body, self.entries)
        if self.encoding is not None:
            body["encoding"] = self.encoding
            body["parts"] = self.parts
        return body


def recipients_as_lists(body: dict[str, Any], entries: list[Entry]) -> dict[str, Any]:
    """Most channels: ``to`` is a list, and each per-recipient field a list beside it."""
    shaped = dict(body)
    shaped["to"] = [e.to for e in entries]
    for name in sorted({k for e in entries for k in e.extras}):
        # One value per recipient, never null: a recipient without ``sub``
        # (an empty cell, a JSONL line without it) gets no values, not a
        # null that would make the provider refuse the whole call (422).
        default: dict[str, Any] | None = {} if name == "sub" else None
        shaped[name] = [e.extras.get(name) or default for e in entries]
    return shaped


@dataclass(frozen=True, slots=True)
class Refusal:
    entry: Entry
    code: int
    description: str


Plan = tuple[list[Call], list[Refusal]]
Planner = Callable[["Channel", dict[str, Any], list[Entry], TextRules], Plan]


def plan_sms(
    channel: Channel, payload: dict[str, Any], entries: list[Entry], rules: TextRules
) -> Plan:
    otp_length = (payload.get("otpConfig") or {}).get("length") or rules.otp_length
    fixed = stand_ins(rules.short_link_length, otp_length)
    filter_table = filters(rules.short_link_length)
    requested = payload.get("encoding", "auto")
    declared_parts = payload.get("parts")
    limit = min(declared_parts or gsm.DEFAULT_PARTS, channel.max_parts or gsm.DEFAULT_PARTS)
    trans = bool(payload.get("trans"))
    base = {k: v for k, v in payload.items() if k not in ("encoding", "parts")}
    groups: dict[tuple[str, int], Call] = {}
    refused: list[Refusal] = []
    # A campaign's recipients mostly share their text (no ``sub``, or the same values):
    # each distinct text is analyzed once per chunk, not once per recipient.
    analyzed: dict[str, gsm.SmsInfo | gsm.SmsTextError] = {}  # a refusal too
    pricing = _quick_pricing(payload["message"], fixed, requested, trans, limit)
    quick = pricing[0] if pricing is not None else None
    if pricing is not None and entries:  # usually one part for all of them: one call
        encoding = pricing[1]([entry.extras.get("sub") or {} for entry in entries])
        if encoding is not None:
            return [Call(channel.kind, base, list(entries), encoding=encoding, parts=1)], []
    for entry in entries:
        values = entry.extras.get("sub") or {}
        info = quick(values) if quick is not None else None
        if info is None:  # the long way: render the text, then analyze it
            try:
                text = render(
                    payload["message"],
                    values,
                    fixed=fixed,
                    strict=not rules.allow_unknown,
                    filter_table=filter_table,
                )
                found = analyzed.get(text)
                if found is None:
                    try:
                        found = gsm.analyze(text, requested, trans=trans, max_parts=limit)
                    except gsm.SmsTextError as exc:
                        found = exc
                    analyzed[text] = found
                if isinstance(found, gsm.SmsTextError):
                    raise found
                info = found
            except gsm.SmsTextError as exc:
                refused.append(Refusal(entry, exc.code, str(exc)))
                continue
            except TemplateError as exc:  # a variable without a value: this recipient only
                refused.append(Refusal(entry, 422, f"sub: {exc}"))
                continue
        key = (info.encoding, info.parts)
        if key not in groups:
            groups[key] = Call(channel.kind, base, encoding=info.encoding, parts=info.parts)
        groups[key].entries.append(entry)
    return list(groups.values()), refused


Price = Callable[[Mapping[str, Any]], gsm.SmsInfo | None]
PriceAll = Callable[[Sequence[Mapping[str, Any]]], str | None]


def _quick_pricing(
    template: str, fixed: Mapping[str, str], requested: str, trans: bool, limit: int
) -> tuple[Price, PriceAll] | None:
    """Most texts are one part of characters that each cost one (``gsm.analyze``'s fast
    path). When the template's own text is, a recipient whose values all are too is
    priced from their lengths, without rendering its text: what ``analyze(render(...))``
    gives it (``tests/test_gsm.py`` checks). ``price`` prices one recipient (None: the
    long way, a value missing, not a string, or another character); ``price_all`` a
    chunk's at once, a column of values at a time: the one-part encoding of them all,
    or None to price them one by one. None for both when the template needs the long
    way for everyone (filters, transliteration)."""
    plain = plain_parts(template, fixed)
    ones = gsm.one_cost(requested)
    if plain is None or ones is None or trans or limit < 1:
        return None
    text, names = plain
    encoding, pattern = ones
    fits, capacity = pattern.fullmatch, gsm.SINGLE[encoding]
    if not fits(text):
        return None
    # Values are mostly names and codes: ASCII letters and digits, found so by two string
    # methods at a third of the regex's cost, where the encoding's table has them all.
    alnum = bool(fits(string.ascii_letters + string.digits))

    def costs_one(value: str) -> bool:  # every character of it costs one
        return (alnum and value.isascii() and value.isalnum()) or bool(fits(value))

    def price(values: Mapping[str, Any]) -> gsm.SmsInfo | None:
        length = len(text)
        for name in names:
            value = values.get(name)
            if type(value) is not str or not costs_one(value):
                return None
            length += len(value)
        return gsm.one_part(encoding, length) if length <= capacity else None

    def price_all(subs: Sequence[Mapping[str, Any]]) -> str | None:
        # What ``price`` says of each, when it says one part for every one: each column
        # of values all strings of characters that cost one (a text in pieces matches
        # when each piece does, ``gsm.one_cost``), and the longest of each column fit.
        longest = len(text)
        for name in names:
            column: list[Any] = [values.get(name) for values in subs]
            try:
                joined = "".join(column)
            except TypeError:  # a value missing, or not a string
                return None
            if not costs_one(joined):
                return None
            longest += max(map(len, column))
        return encoding if longest <= capacity else None

    return price, price_all


def plan_single_call(
    channel: Channel, payload: dict[str, Any], entries: list[Entry], rules: TextRules
) -> Plan:
    """Channels without per-recipient cost: the whole chunk in one call."""
    return ([Call(channel.kind, payload, list(entries))] if entries else []), []


def plan(
    kind: str, payload: dict[str, Any], entries: list[Entry], rules: TextRules | None = None
) -> Plan:
    from jobs import channels

    channel = channels.get(kind)
    return channel.planner(channel, payload, entries, rules or TextRules())
