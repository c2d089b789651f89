"""SMS encoding and part counting (3GPP TS 23.038, provider ``encoding``/``parts``).

The provider bills per part and refuses a message whose declared ``parts`` is
too small (105) or whose characters its ``encoding`` cannot carry (113), so the
pipeline must know both numbers before it spends money. Tables are data: see
``jobs/charsets.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, cast

from jobs.charsets import CHARSETS, TRANSLITERATION

Encoding = Literal["gsm", "gsm-pt", "utf-16"]

# Capacities from "Send SMS Message" → parts: 160 / 153 septets, 70 / 67 UCS-2 units.
SINGLE = {"gsm": 160, "gsm-pt": 160, "utf-16": 70}
CONCAT = {"gsm": 153, "gsm-pt": 153, "utf-16": 67}
MAX_PARTS_SMS = 15
MAX_PARTS_LANDING = 8
# "Send SMS Message" → parts (and "Landing SMS" → parts): "This variable is set to 1
# by default, so if it is not specified and a message over 160 characters for gsm
# encoding is sent, the message will fail." A sending without ``parts`` allows one.
DEFAULT_PARTS = 1


class SmsTextError(ValueError):
    """A text the provider would refuse; ``code`` is the provider's error code."""

    code: int


class UnencodableError(SmsTextError):
    code = 113

    def __init__(self, encoding: str, offending: list[str]) -> None:
        self.offending = offending
        shown = "".join(offending)
        super().__init__(f"encoding {encoding!r} cannot carry these characters: {shown!r}")


class TooManyPartsError(SmsTextError):
    code = 105

    def __init__(self, needed: int, allowed: int) -> None:
        self.needed = needed
        self.allowed = allowed
        super().__init__(f"text needs {needed} parts, at most {allowed} are allowed")


@dataclass(frozen=True, slots=True)
class SmsInfo:
    encoding: Encoding
    length: int  # septets for GSM, UTF-16 code units for UCS-2
    parts: int
    per_part: int  # capacity of one part as used (160/153 or 70/67)
    offending: list[str] = field(default_factory=list)


_ONE_PARTS: dict[tuple[Encoding, int], SmsInfo] = {}


def one_cost(encoding: str) -> tuple[Encoding, re.Pattern[str]] | None:
    """For ``analyze``'s fast path: the encoding a text whose characters all cost one is
    sent in, and the pattern of such texts; None for an encoding it does not know. A
    text cut into pieces matches when each piece does: a planner can price a template
    and its values apart (``jobs.planning``)."""
    one = "gsm" if encoding == "auto" else encoding
    pattern = _ONES.get(one)
    return None if pattern is None else (cast(Encoding, one), pattern)


def one_part(encoding: Encoding, length: int) -> SmsInfo:
    """A one-part text's info, made once per length: building a frozen dataclass cost
    more than pricing the text (0.5 µs of 0.9). Nothing changes an ``SmsInfo``."""
    info = _ONE_PARTS.get((encoding, length))
    if info is None:
        info = _ONE_PARTS[encoding, length] = SmsInfo(encoding, length, 1, SINGLE[encoding], [])
    return info


def transliterate(text: str) -> str:
    """What the provider does to the text with ``trans=1``."""
    return text.translate(TRANSLITERATION)


# Texts made only of characters that cost one (a GSM basic table; no astral character
# in UCS-2), as a regex: most texts are, and one C-speed match prices them all.
_ONES = {
    **{
        enc: re.compile(f"[{re.escape(''.join(sorted(basic)))}]*")
        for enc, (basic, _) in CHARSETS.items()
    },
    "utf-16": re.compile("[^\U00010000-\U0010ffff]*"),
}


def _costs(text: str, encoding: Encoding) -> list[int] | None:
    """Cost of each character (septets or UTF-16 units), None if not encodable."""
    if _ONES[encoding].fullmatch(text):
        return [1] * len(text)
    if encoding == "utf-16":
        return [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    basic, extension = CHARSETS[encoding]
    costs = []
    for ch in text:
        if ch in basic:
            costs.append(1)
        elif ch in extension:
            costs.append(2)
        else:
            return None
    return costs


def _offending(text: str, encoding: Encoding) -> list[str]:
    basic, extension = CHARSETS[encoding]
    seen: dict[str, None] = {}
    for ch in text:
        if ch not in basic and ch not in extension:
            seen.setdefault(ch, None)
    return list(seen)


def _chunks(text: str, costs: list[int], capacity: int) -> list[str]:
    """Greedy split that never cuts a character (escape pair or surrogate pair)."""
    parts: list[str] = []
    start = used = 0
    for i, cost in enumerate(costs):
        if used + cost > capacity:
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    return parts


def _layout(text: str, encoding: Encoding, costs: list[int]) -> tuple[int, list[str]]:
    if sum(costs) <= SINGLE[encoding]:
        return SINGLE[encoding], [text]
    return CONCAT[encoding], _chunks(text, costs, CONCAT[encoding])


def _resolve(text: str, encoding: str) -> tuple[Encoding, list[int], list[str]]:
    if encoding == "auto":
        costs = _costs(text, "gsm")
        if costs is not None:
            return "gsm", costs, []
        return "utf-16", _costs(text, "utf-16") or [], _offending(text, "gsm")
    if encoding not in SINGLE:
        raise ValueError(f"encoding must be one of auto, gsm, gsm-pt, utf-16, not {encoding!r}")
    enc: Encoding = encoding  # type: ignore[assignment]
    costs = _costs(text, enc)
    if costs is None:
        raise UnencodableError(enc, _offending(text, enc))
    return enc, costs, []


def analyze(
    text: str,
    encoding: str = "auto",
    *,
    trans: bool = False,
    max_parts: int | None = None,
) -> SmsInfo:
    """The cheapest encoding that carries ``text`` (or the one given) and its cost.

    ``auto`` picks GSM 7-bit when every character is in the GSM basic or
    extension table, else UCS-2 (``utf-16``), listing the characters that forced
    it. With ``max_parts`` a longer text raises ``TooManyPartsError``.
    """
    if trans:
        text = transliterate(text)
    ones = one_cost(encoding)
    if (
        ones is not None
        and len(text) <= SINGLE[ones[0]]
        and (max_parts is None or max_parts >= 1)
        and ones[1].fullmatch(text)
    ):  # one part, every character costing one: most texts, priced without a cost list
        return one_part(ones[0], len(text))
    enc, costs, offending = _resolve(text, encoding)
    per_part, chunks = _layout(text, enc, costs)
    info = SmsInfo(enc, sum(costs), len(chunks), per_part, offending)
    if max_parts is not None and info.parts > max_parts:
        raise TooManyPartsError(info.parts, max_parts)
    return info


def split(text: str, encoding: str = "auto", *, trans: bool = False) -> list[str]:
    """The parts as the handset receives them; ``"".join(split(t)) == t``."""
    if trans:
        text = transliterate(text)
    enc, costs, _ = _resolve(text, encoding)
    return _layout(text, enc, costs)[1]
