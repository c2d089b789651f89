"""Field rules of the messaging API, shared by the job models and the sandbox.

Both sides of the wire must apply the same reading of ``messaging-api.txt``
("Send SMS Message" → Parameters), so the rules live here once.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

# "Must include the prefix (e.g. in Spain 34666666666)": an E.164 number without
# the plus: a country code that does not start with 0, at most 15 digits in all.
_PHONE = re.compile(r"[1-9][0-9]{6,14}")
# "Sender text ... 15 numbers or 11 alphanumeric characters."
_SENDER_DIGITS = re.compile(r"[0-9]{1,15}")
_SENDER_ALNUM = re.compile(r"[A-Za-z0-9 ]{1,11}")
# "YYYYmmddHHiiss (e.g. 20130215142000 would be 15 February 2013 at 14:20:00)"
_DATE = re.compile(r"[0-9]{14}")
_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def normalize_phone(raw: str) -> str | None:
    """The number as the provider wants it (digits only), or None when it is not one.

    A leading ``+`` and inner spaces are accepted because producers paste
    numbers in that form; anything else that is not a digit makes it invalid.
    """
    candidate = raw.strip().replace(" ", "")
    candidate = candidate.removeprefix("+")
    return candidate if _PHONE.fullmatch(candidate) else None


def sender_problem(sender: str | None) -> tuple[int, str] | None:
    """The provider's (code, reason) for a bad ``from``, or None when it is fine.

    A sender of only spaces is no sender ("Errors" → 106 "Sender missing"), even
    though the alphanumeric form allows spaces between its characters.
    """
    if not sender or not sender.strip():
        return 106, "Sender missing"
    if _SENDER_DIGITS.fullmatch(sender) or _SENDER_ALNUM.fullmatch(sender):
        return None
    if sender.isdigit():
        return 107, "Sender too long: at most 15 digits"
    return 107, "Sender too long or invalid: at most 11 alphanumeric characters or 15 digits"


def parse_api_date(value: str) -> datetime:
    """Parse ``YYYYmmddHHiiss`` (UTC); ValueError names the expected form."""
    if not _DATE.fullmatch(value):
        raise ValueError(f"{value!r} is not a date in the form YYYYmmddHHiiss")
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{value!r} is not a real date (YYYYmmddHHiiss)") from None


def format_api_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def is_hhmm(value: str) -> bool:
    return bool(_HHMM.fullmatch(value))
