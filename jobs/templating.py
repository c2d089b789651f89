"""Rendering ``{var}`` and ``{var|filter}`` the way the provider does.

Spec: messaging-api.txt → "Substitution variables" and "Custom fields filters".
The pipeline renders each recipient's text itself because the cost (encoding,
parts) depends on the final text, not on the template.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.settings import Settings

# {name} or {name|filter}; names are letters, digits and underscores.
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:\|([A-Za-z]+))?\}")

# Placeholders the provider fills in itself, and the length it gives them.
UNSUB_URL = "UNSUB_URL"
OTP_CODE = "OTP_CODE"
LAND_URL = "LAND_URL"  # landing SMS: the link to the landing page (a short link)
SHORT_LINK_PREFIX = "https://sms.tl/"  # "{url|shorten} → https://sms.tl/xxxxxx"
SHORT_LINK_LENGTH = len(SHORT_LINK_PREFIX) + 6
OTP_LENGTH = 4  # "otpConfig" → length: "The default value is 4"


@dataclass(frozen=True, slots=True)
class TextRules:
    """Lengths the provider gives to what it fills in (settings), and the unknown-var rule."""

    short_link_length: int = SHORT_LINK_LENGTH
    otp_length: int = OTP_LENGTH
    allow_unknown: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> TextRules:
        return cls(
            settings.short_link_length,
            settings.otp_code_length,
            settings.allow_unknown_variables,
        )


class TemplateError(ValueError):
    pass


class UnknownVariable(TemplateError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"variable {{{name}}} has no value in sub or the contact's fields")


def _number(value: str, thousands: str, decimal: str) -> str:
    try:
        number = Decimal(value.replace(",", "") if thousands == "," else value)
    except InvalidOperation:
        raise TemplateError(f"{value!r} is not a number") from None
    text = f"{number:,.2f}" if number != number.to_integral() else f"{number:,.0f}"
    swap: dict[str, str | int | None] = {",": thousands, ".": decimal}
    return text.translate(str.maketrans(swap))


def _capitalize(value: str) -> str:
    return value[:1].upper() + value[1:].lower()


def short_link(length: int = SHORT_LINK_LENGTH) -> str:
    """A stand-in provider short link of the real length (what the text is billed at)."""
    return SHORT_LINK_PREFIX + "x" * max(length - len(SHORT_LINK_PREFIX), 1)


def stand_ins(
    short_link_length: int = SHORT_LINK_LENGTH, otp_length: int = OTP_LENGTH
) -> dict[str, str]:
    """What the provider puts in place of its own placeholders, at their real length."""
    link = short_link(short_link_length)
    return {UNSUB_URL: link, LAND_URL: link, OTP_CODE: "0" * otp_length}


def _shortened(length: int) -> Callable[[str], str]:
    def shorten(value: str) -> str:
        if not value.startswith(("http://", "https://")) or "." not in value:
            raise TemplateError(f"{value!r} is not a valid url to shorten")
        return short_link(length)

    return shorten


def filters(short_link_length: int = SHORT_LINK_LENGTH) -> dict[str, Callable[[str], str]]:
    """The documented filters; ``shorten`` yields a link of the provider's length."""
    return {
        "lower": str.lower,
        "upper": str.upper,
        "capitalize": _capitalize,
        "capitalizeAll": lambda v: " ".join(_capitalize(w) for w in v.split(" ")),
        "formatDotComma": lambda v: _number(v, ".", ","),
        "formatCommaDot": lambda v: _number(v, ",", "."),
        "shorten": _shortened(short_link_length),
    }


_DEFAULT_FILTERS = filters()


def variables(template: str) -> list[tuple[str, str | None]]:
    """The (name, filter) pairs a template uses, in order."""
    return [(m.group(1), m.group(2)) for m in PLACEHOLDER.finditer(template)]


def check_template(template: str) -> None:
    """Refuse filters the provider does not document, before anything is sent."""
    for name, filt in variables(template):
        if filt is not None and filt not in _DEFAULT_FILTERS:
            known = ", ".join(_DEFAULT_FILTERS)
            raise TemplateError(f"{{{name}|{filt}}}: unknown filter (documented: {known})")


@lru_cache(maxsize=256)
def _names(template: str) -> tuple[str, ...]:
    """The variable names of ``template`` (cached: a sending renders one template
    for each of its recipients)."""
    return tuple(name for name, _ in variables(template))


def missing_variables(
    template: str, values: Mapping[str, object], fixed: Mapping[str, str]
) -> list[str]:
    """Variables of ``template`` that neither ``values`` nor ``fixed`` fill.

    The submit checks (``Sms.check_text``, ``Producer.submit_file``) use it;
    ``render(strict=True)`` (the worker's planner) finds the same first one as it
    renders, in one pass.
    """
    return [name for name in _names(template) if name not in fixed and values.get(name) is None]


def render(
    template: str,
    values: Mapping[str, object],
    *,
    fixed: Mapping[str, str] | None = None,
    strict: bool = True,
    filter_table: Mapping[str, Callable[[str], str]] = _DEFAULT_FILTERS,
) -> str:
    """The text one recipient receives.

    ``values`` are the recipient's ``sub`` object then contact fields; ``fixed``
    fills provider placeholders (``UNSUB_URL``, ``OTP_CODE``) with stand-ins of
    their real length. With ``strict`` an unknown variable (``missing_variables``)
    raises; without it the placeholder is left as written, as the provider would
    send it.
    """

    steps, tail = _steps(template)
    out: list[str] = []
    for literal, name, filt, written in steps:
        out.append(literal)
        if fixed is not None and name in fixed:
            out.append(fixed[name])
            continue
        value = values.get(name)
        if value is None:
            if strict:  # the first one missing_variables would name: they go in order
                raise UnknownVariable(name)
            out.append(written)
            continue
        text = str(value)
        if filt is not None:
            if filt not in filter_table:
                raise TemplateError(f"unknown filter |{filt} on {{{name}}}")
            text = filter_table[filt](text)
        out.append(text)
    out.append(tail)
    return "".join(out)


def plain_parts(template: str, fixed: Mapping[str, str]) -> tuple[str, tuple[str, ...]] | None:
    """A template whose placeholders take their values as they are (no filter): its
    text but for them (literals and ``fixed`` stand-ins, joined) and the names of the
    variables whose values ``render`` puts in; None when a filter changes a value."""
    steps, tail = _steps(template)
    text, names = [], []
    for literal, name, filt, _ in steps:
        text.append(literal)
        if name in fixed:  # as render: a stand-in, whatever the filter
            text.append(fixed[name])
        elif filt is not None:
            return None
        else:
            names.append(name)
    text.append(tail)
    return "".join(text), tuple(names)


Step = tuple[str, str, str | None, str]  # literal before, name, filter, as written


@lru_cache(maxsize=256)
def _steps(template: str) -> tuple[tuple[Step, ...], str]:
    """The template cut at its placeholders, once: a sending renders one template for
    each of its recipients, and scanning it each time was most of a render."""
    steps: list[Step] = []
    start = 0
    for match in PLACEHOLDER.finditer(template):
        steps.append(
            (template[start : match.start()], match.group(1), match.group(2), match.group(0))
        )
        start = match.end()
    return tuple(steps), template[start:]
