"""Turn a chunk of recipients into provider calls, before any money is spent.

For SMS the cost of a recipient depends on its own rendered text: one name
that needs UCS-2 must not make the whole batch pay UCS-2 prices. So each
recipient's text is rendered and analyzed, and recipients are grouped by
(encoding, parts); each group becomes one call that declares exactly that
encoding and part count. A text the provider would refuse (too many parts,
characters its declared encoding cannot carry) is rejected here with the code
the provider would give, and never sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobs import gsm
from jobs.chunks import Entry
from jobs.templating import TemplateError, TextRules, filters, render, stand_ins

MAX_PARTS = {"sms": gsm.MAX_PARTS_SMS, "landing": gsm.MAX_PARTS_LANDING}


@dataclass
class Call:
    """One provider request: the shared body plus its recipients."""

    kind: str
    body: dict[str, Any]
    entries: list[Entry] = field(default_factory=list)
    encoding: str | None = None
    parts: int | None = None

    def request_body(self) -> dict[str, Any]:
        body = dict(self.body)
        if self.kind == "whatsapp":  # recipients are messages[] objects with their own fields
            body["messages"] = [{"to": e.to, **e.extras} for e in self.entries]
            return body
        body["to"] = [e.to for e in self.entries]
        for name in sorted({k for e in self.entries for k in e.extras}):
            # One value per recipient, never null: a recipient without ``sub``
            # (an empty cell, a JSONL line without it) gets no values, not a
            # null that would make the provider refuse the whole call (422).
            default: dict[str, Any] | None = {} if name == "sub" else None
            body[name] = [e.extras.get(name) or default for e in self.entries]
        if self.encoding is not None:
            body["encoding"] = self.encoding
            body["parts"] = self.parts
        return body


@dataclass(frozen=True, slots=True)
class Refusal:
    entry: Entry
    code: int
    description: str


Plan = tuple[list[Call], list[Refusal]]


def plan_sms(kind: str, payload: dict[str, Any], entries: list[Entry], rules: TextRules) -> Plan:
    otp_length = (payload.get("otpConfig") or {}).get("length") or rules.otp_length
    fixed = stand_ins(rules.short_link_length, otp_length)
    filter_table = filters(rules.short_link_length)
    requested = payload.get("encoding", "auto")
    declared_parts = payload.get("parts")
    limit = min(declared_parts or gsm.DEFAULT_PARTS, MAX_PARTS[kind])
    trans = bool(payload.get("trans"))
    base = {k: v for k, v in payload.items() if k not in ("encoding", "parts")}
    groups: dict[tuple[str, int], Call] = {}
    refused: list[Refusal] = []
    for entry in entries:
        try:
            text = render(
                payload["message"],
                entry.extras.get("sub") or {},
                fixed=fixed,
                strict=not rules.allow_unknown,
                filter_table=filter_table,
            )
            info = gsm.analyze(text, requested, trans=trans, max_parts=limit)
        except gsm.SmsTextError as exc:
            refused.append(Refusal(entry, exc.code, str(exc)))
            continue
        except TemplateError as exc:  # a variable without a value: this recipient only
            refused.append(Refusal(entry, 422, f"sub: {exc}"))
            continue
        key = (info.encoding, info.parts)
        if key not in groups:
            groups[key] = Call(kind, base, encoding=info.encoding, parts=info.parts)
        groups[key].entries.append(entry)
    return list(groups.values()), refused


def plan_single_call(
    kind: str, payload: dict[str, Any], entries: list[Entry], rules: TextRules
) -> Plan:
    """Channels without per-recipient cost: the whole chunk in one call."""
    return ([Call(kind, payload, list(entries))] if entries else []), []


PLANNERS: dict[str, Callable[[str, dict[str, Any], list[Entry], TextRules], Plan]] = {
    "sms": plan_sms,
    "landing": plan_sms,
}


def plan(
    kind: str, payload: dict[str, Any], entries: list[Entry], rules: TextRules | None = None
) -> Plan:
    return PLANNERS.get(kind, plan_single_call)(kind, payload, entries, rules or TextRules())
