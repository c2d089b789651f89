"""Field rules of the messaging API, shared by the job models and the sandbox.

Both sides of the wire must apply the same reading of ``messaging-api.txt``
(each channel's Parameters table and "Errors"), so the rules live here once: a
job model refuses what the sandbox (and the provider) would refuse, with the
same code. A rule says what is wrong as ``(code, reason)`` (or a reason when
the doc gives no code); the job models turn it into a one-line error
(``refuse``), the sandbox into its answer. Checks of raw JSON types (a string
where an array belongs …) stay in the sandbox: the job models' types do those.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final, TypeGuard
from urllib.parse import urlsplit

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
    if 7 <= len(raw) <= 15 and raw.isascii() and raw.isdigit() and raw[0] != "0":
        return raw  # already as the provider wants it (``_PHONE``): the usual case, quickly
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


# --- rules of every channel -----------------------------------------------------------

Problem = tuple[int, str]  # (the provider's code, the reason), as the functions here return


def refuse(problem: Problem | None, field: str = "") -> None:
    """How a job model refuses ``problem`` (nothing when None): a ValueError
    "<field>: <reason> (provider code N)", the field left out when pydantic names it."""
    if problem is not None:
        code, reason = problem
        where = f"{field}: " if field else ""
        raise ValueError(f"{where}{reason} (provider code {code})")


def is_int(value: object) -> TypeGuard[int]:
    """A JSON integer (``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_http_url(value: object) -> TypeGuard[str]:
    """An absolute http(s) URL with a host."""
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def recipients_problem(found: Iterable[str | None]) -> Problem | None:
    """102 when not one recipient is valid (``found``: each normalized, None when
    invalid); the whole request is refused, where an invalid one among valid ones
    only gets its own 102 ("Errors" → 102 "No valid recipients")."""
    return None if any(found) else (102, "no valid recipients")


def campaign_problem(campaign_name: str | None) -> Problem | None:
    """126 for a ``campaignName`` given but blank ("Errors" → 126 "Empty campaign name")."""
    if campaign_name is not None and not campaign_name.strip():
        return 126, "must not be empty when given"
    return None


def tags_problem(tags: object, campaign_name: object) -> str | None:
    """``tags``: "campaignName is required if this parameter is specified" (no code)."""
    if tags is not None and not campaign_name:
        return "campaignName is required when tags are given"
    return None


def sub_problem(sub: object, recipients: int) -> str | None:
    """What is wrong with a given ``sub`` (no code): "the array must contain as many
    items as the send recipients" ("Substitution variables"), each an object."""
    if not isinstance(sub, list):
        return "must be an array of objects, one per recipient"
    if len(sub) != recipients:
        return f"has {len(sub)} objects for {recipients} recipients; needs one each"
    for i, values in enumerate(sub):
        if not isinstance(values, dict):
            return f"entry {i} is not an object"
    return None


def notification_url_problem(urls: object, recipients: int) -> Problem | None:
    """109 ("Notification URL incorrect"): not an http(s) URL, or an array ("Multiple
    notification URLs") without "as many elements as the send recipients"."""
    if isinstance(urls, list) and len(urls) != recipients:
        return 109, f"has {len(urls)} URLs for {recipients} recipients; needs one each"
    for url in urls if isinstance(urls, list) else [urls]:
        if not is_http_url(url):
            return 109, f"{url!r} is not an http(s) URL"
    return None


def expiration_problem(schedule_date: str | None, expiration_date: str | None) -> Problem | None:
    """119 when ``expirationDate`` is not after ``scheduleDate`` (both valid dates or None).

    A message that expires when or before it is due is never sent: the provider
    answers "Invalid expiration date" ("Errors" → 119).
    """
    if schedule_date is None or expiration_date is None:
        return None
    if parse_api_date(expiration_date) <= parse_api_date(schedule_date):
        return 119, f"expirationDate: {expiration_date} is not after scheduleDate {schedule_date}"
    return None


# "otpConfig" → length / maxAttempts / maxSecondsValidity: "The minimum value is … and
# the maximum is …" (no code: a 422 field error).
OTP_RANGES: Final = {"length": (3, 10), "maxAttempts": (1, 10), "maxSecondsValidity": (30, 600)}


# --- calls (voice, voice-audio) ---------------------------------------------------------

MAX_RETRIES = 5  # "retries": "Maximum number of retries. Maximum 5."
# callers: {"ES": "6123456789", ...} — an ISO 3166-1 alpha-2 country code to a
# caller number of digits (the same digit limit as an SMS numeric sender).
COUNTRY_CODE = re.compile(r"[A-Z]{2}")
CALLER_NUMBER = re.compile(r"[0-9]{1,15}")
# "Send Voice message with an audio file" → audioUrl shows only an .mp3 URL and
# the doc lists no formats, so only what it documents is accepted (code 134).
AUDIO_EXTENSIONS = frozenset({".mp3"})


def retries_problem(retries: object) -> Problem | None:
    """``retries`` when given: empty → 190, not an integer → 176, not 0..5 → 177."""
    if retries is None or retries == "":
        return 190, "is given but empty"
    if not is_int(retries):
        return 176, f"{retries!r} is not an integer"
    if not 0 <= retries <= MAX_RETRIES:
        return 177, f"must be 0 to {MAX_RETRIES}, not {retries}"
    return None


def callers_problem(callers: object) -> Problem | None:
    """132 unless ``callers`` maps two-letter country codes to caller numbers."""
    if not isinstance(callers, dict):
        return 132, "must be an object of country code to caller number"
    for country, caller in callers.items():
        if not isinstance(country, str) or not COUNTRY_CODE.fullmatch(country):
            return 132, f"{country!r} is not a two-letter country code like 'ES'"
        if not isinstance(caller, str) or not CALLER_NUMBER.fullmatch(caller):
            return 132, f"{country}: {caller!r} is not a caller number of at most 15 digits"
    return None


def audio_url_problem(url: object) -> Problem | None:
    """133 unless an http(s) URL (the provider fetches the file itself); 134 unless
    its file name has one of ``AUDIO_EXTENSIONS``."""
    if not is_http_url(url):
        return 133, f"{url!r} is not an http(s) URL"
    file_name = urlsplit(url).path.rsplit("/", 1)[-1]
    extension = file_name[file_name.rfind(".") :].lower() if "." in file_name else ""
    if extension not in AUDIO_EXTENSIONS:
        allowed = ", ".join(sorted(AUDIO_EXTENSIONS))
        return 134, f"{url!r} is not a supported audio file ({allowed})"
    return None


# --- SMS ---------------------------------------------------------------------------------


def available_times_problem(times: object) -> Problem | None:
    """``availableTimes`` when given: empty → 194, not an array → 183, then each window."""
    if times is None or times == [] or times == "":
        return 194, "is given but empty"
    if not isinstance(times, list):
        return 183, "must be an array of {day, from, to} objects"
    for window in times:
        if problem := available_time_problem(window):
            return problem
    return None


def available_time_problem(window: object) -> Problem | None:
    """One window ``{"day": 1, "from": "09:00", "to": "21:00"}``: not an object with
    ``from`` and ``to`` → 189; ``day`` (optional) not an integer → 184, not 1..7 → 185;
    ``from`` / ``to`` not UTC ``HH:MM`` → 186 / 187; ``from`` after ``to`` → 188,
    the same → 196."""
    if not isinstance(window, dict) or "from" not in window or "to" not in window:
        return 189, "each window needs from and to"
    day = window.get("day")
    if day is not None:
        if not is_int(day):
            return 184, f"day: {day!r} is not an integer"
        if not 1 <= day <= 7:
            return 185, f"day: {day} is not 1 (Monday) to 7 (Sunday)"
    start, end = window["from"], window["to"]
    if not isinstance(start, str) or not is_hhmm(start):
        return 186, f"from: {start!r} is not a UTC time HH:MM"
    if not isinstance(end, str) or not is_hhmm(end):
        return 187, f"to: {end!r} is not a UTC time HH:MM"
    if start > end:
        return 188, "from must be earlier than to"
    if start == end:
        return 196, "from must be earlier than to, not the same"
    return None
