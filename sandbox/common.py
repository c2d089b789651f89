"""What more than one channel checks, once: recipients, dates, campaigns, ``sub``,
OTP settings, call options, and the ``result`` list with its 202 / 207 / 400.

Every function here follows the channels' convention: a documented code refuses
the whole request at once (``raise ApiError(code)``); a rule the doc states
without a code is recorded in ``fields`` (parameter name → reason) and reported
with the others as one 422 by the channel.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from jobs.email import normalize_email
from jobs.fields import (
    OTP_RANGES,
    callers_problem,
    campaign_problem,
    expiration_problem,
    is_int,
    normalize_phone,
    parse_api_date,
    recipients_problem,
    retries_problem,
    sub_problem,
    tags_problem,
)
from jobs.templating import OTP_LENGTH, TemplateError, render
from sandbox.errors import VALIDATION, ApiError, error_detail
from sandbox.state import Accepted, Message, SandboxState

ERR_102: Final = error_detail(102)
NO_VALUES: Final[Mapping[str, Any]] = {}


def is_blank(value: object) -> bool:
    """Not given: absent/null, or a string of nothing but spaces."""
    return value is None or (isinstance(value, str) and not value.strip())


def digest(*parts: str) -> str:
    """A short stand-in for long content (an email body, a landing page) in a
    duplicate identity, so that accepted recipients do not keep copies of it."""
    data = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def api_date(value: object, code: int) -> str | None:
    """``YYYYmmddHHiiss`` → ``YYYY-mm-dd HH:ii:ss`` (None when not given); else ``code``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(code)
    try:
        return parse_api_date(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ApiError(code) from None


def dates(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``scheduleDate`` (108) and ``expirationDate`` (119, also when not after the first)."""
    scheduled_at = api_date(body.get("scheduleDate"), 108)
    expires_at = api_date(body.get("expirationDate"), 119)
    if expiration_problem(body.get("scheduleDate"), body.get("expirationDate")):
        raise ApiError(119)
    return scheduled_at, expires_at


def phone(raw: object) -> str | None:
    """A number as ``jobs.fields`` reads it (a JSON integer counts as its digits)."""
    if isinstance(raw, str):
        return normalize_phone(raw)
    if is_int(raw):
        return normalize_phone(str(raw))
    return None


def email(raw: object) -> str | None:
    return normalize_email(raw) if isinstance(raw, str) else None


def recipients(to: object, normalize: Callable[[object], str | None]) -> list[str | None]:
    """Each entry of ``to`` normalized (None: invalid); 102 when none is valid."""
    if not isinstance(to, list):
        raise ApiError(102)
    found = [normalize(raw) for raw in to]
    if recipients_problem(found):
        raise ApiError(102)
    return found


def campaign(body: Mapping[str, Any], fields: dict[str, str]) -> str | None:
    """``campaignName`` (blank → 126) and the ``tags`` rule (tags need a campaign name)."""
    name = body.get("campaignName")
    if name is not None and not isinstance(name, str):
        fields["campaignName"] = "must be a string"
        name = None
    elif problem := campaign_problem(name):
        raise ApiError(problem[0])
    tags = body.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            fields["tags"] = "must be an array of strings"
        elif "campaignName" not in fields and (reason := tags_problem(tags, name)):
            fields["tags"] = reason
    return name


def booleans(body: Mapping[str, Any], names: tuple[str, ...], fields: dict[str, str]) -> None:
    for name in names:
        if body.get(name) is not None and not isinstance(body[name], bool):
            fields[name] = "must be a boolean"


def sub(body: Mapping[str, Any], count: int, fields: dict[str, str]) -> list[dict[str, Any]] | None:
    """``sub``: exactly one object per entry of ``to`` (invalid entries included)."""
    value = body.get("sub")
    if value is None:
        return None
    if reason := sub_problem(value, count):
        fields["sub"] = reason
        return None
    assert isinstance(value, list)
    return value


def otp_code(value: object, fields: dict[str, str]) -> str:
    """Record problems of ``otpConfig`` in ``fields``; a stand-in OTP code it describes."""
    if value is None:
        return "0" * OTP_LENGTH
    if not isinstance(value, dict):
        fields["otpConfig"] = "must be an object"
        return "0" * OTP_LENGTH
    for name, (low, high) in OTP_RANGES.items():
        if name in value and not (is_int(value[name]) and low <= value[name] <= high):
            fields[f"otpConfig.{name}"] = f"must be an integer from {low} to {high}"
    for name in ("alpha", "rejectIfPendingCode"):
        if name in value and not isinstance(value[name], bool):
            fields[f"otpConfig.{name}"] = "must be a boolean"
    if "appId" in value and not isinstance(value["appId"], str):
        fields["otpConfig.appId"] = "must be a string"
    length: int = OTP_LENGTH
    if "otpConfig.length" not in fields:
        length = value.get("length", OTP_LENGTH)
    return ("A" if value.get("alpha") is True else "0") * length


def render_text(
    template: str, values: Mapping[str, Any], fixed: Mapping[str, str], field: str
) -> str | dict[str, Any]:
    """One recipient's text (unknown variables stay as written), or its 422 detail."""
    try:
        return render(template, values, strict=False, fixed=fixed)
    except TemplateError as exc:
        return error_detail(VALIDATION, {field: str(exc)})


def content_source(
    body: Mapping[str, Any], names: tuple[str, str, str], fields: dict[str, str]
) -> list[str]:
    """Which of ``names`` (an HTML text, a legacy template id, a template id) are given:
    none → 140 (a blank text counts as not given); wrong types into ``fields``.
    More than one is accepted: the doc makes each "required without" the others
    and forbids nothing."""
    # Not jobs.base.one_content_source: the job model refuses two on purpose; this is the doc.
    given = [name for name in names if not is_blank(body.get(name))]
    if not given:
        raise ApiError(140)
    text_name, *id_names = names
    if text_name in given and not isinstance(body[text_name], str):
        fields[text_name] = "must be a string of HTML"
    for name in id_names:
        if name in given and not (is_int(body[name]) and body[name] >= 1):
            fields[name] = "must be a positive integer"
    return given


@dataclass(frozen=True, slots=True)
class CallOptions:
    """What a voice call and a voice-audio call share, checked."""

    callers: dict[str, str] | None
    scheduled_at: str | None
    retries: int | None
    expires_at: str | None


def call_options(body: Mapping[str, Any]) -> CallOptions:
    """The options of a voice and a voice-audio call, in the order of the doc's
    parameter tables:

    ====================  =================================================
    ``callers``           not an object of two-letter country code → digits
                          (at most 15) → 132
    ``scheduleDate``      not a real ``YYYYmmddHHiiss`` date → 108
    ``retries``           given as null or "" → 190; not an integer → 176;
                          not 0..5 → 177
    ``expirationDate``    not a real date, or not after ``scheduleDate`` → 119
    ====================  =================================================

    The caller rule is the job model's (``jobs.fields.callers_problem``: a
    two-letter country code to at most 15 digits), so that both sides of the wire
    read the doc's example ``{"ES": "6123456789"}`` alike.
    """
    callers = body.get("callers")
    if callers is not None and (problem := callers_problem(callers)):
        raise ApiError(problem[0])
    scheduled_at, expires_at = dates(body)
    retries = body.get("retries")
    if "retries" in body and (problem := retries_problem(retries)):
        raise ApiError(problem[0])  # 190 "specified but its value is empty", 176, 177
    return CallOptions(callers, scheduled_at, retries, expires_at)


class Results:
    """The ``result`` list of one request, one entry per recipient in the order sent,
    and the answer it makes: all accepted → 202; some → 207; none → the whole
    request fails with 102 when no recipient was valid, else with the first valid
    recipient's error.

    Campaign and sending ids are allocated with the first accepted recipient, and
    the sandbox's stats count the accepted ones only when the answer is made, after
    ``state.before_accept`` (the credits of ``sandbox.faults``) let them through;
    that is when their messages get their time and request number, and when
    ``state.after_accept`` gets them with their ``notificationUrl`` (``notify``).
    """

    def __init__(
        self,
        state: SandboxState,
        channel: str,
        campaign_name: str | None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self._state = state
        self._channel = channel
        self._campaign_name = campaign_name
        self._new_id = new_id or state.message_id
        self.campaign_id = self.sending_id = 0
        self.entries: list[dict[str, Any]] = []
        # (message id, recipient, sender, text, details, content) of each accepted one
        self._accepted: list[tuple[str, str, str | None, str, dict[str, Any], str | None]] = []
        self._notify: list[str | None] = []  # the notificationUrl of each accepted one
        self._first_error: dict[str, Any] | None = None

    def rendered(
        self,
        to: list[object],
        found: list[str | None],
        template: str,
        values: list[dict[str, Any]] | None,
        fixed: Mapping[str, str],
        field: str,
    ) -> Iterator[tuple[object, str, str, Mapping[str, Any]]]:
        """(entry of ``to``, recipient, rendered text, its ``sub`` values) of each valid
        recipient whose text renders; the others are answered here (102, 422)."""
        templated = "{" in template
        for i, raw in enumerate(to):
            recipient = found[i]
            if recipient is None:
                self.invalid(raw)
                continue
            own = values[i] if values else NO_VALUES
            if not templated:
                yield raw, recipient, template, own
                continue
            text = render_text(template, own, fixed, field)
            if isinstance(text, dict):
                self.refuse(raw, text)
                continue
            yield raw, recipient, text, own

    @property
    def position(self) -> int:
        """The index in ``to`` of the recipient being handled: every earlier entry of
        ``to`` has its one result entry by then."""
        return len(self.entries)

    def invalid(self, to: object, error: dict[str, Any] = ERR_102) -> None:
        """A recipient that is not a valid address (102)."""
        self.entries.append({"accepted": False, "to": to, "error": error})

    def refuse(self, to: object, error: dict[str, Any]) -> None:
        """A valid recipient whose message cannot be sent (105, 113, 422 …)."""
        self.entries.append({"accepted": False, "to": to, "error": error})
        if self._first_error is None:
            self._first_error = error

    def accept(
        self,
        to: object,
        recipient: str,
        text: str,
        *,
        sender: str | None,
        details: dict[str, Any],
        entry: Mapping[str, Any],
        content: str | None = None,
        notify: str | None = None,
    ) -> None:
        """An accepted recipient: ``entry`` follows ``accepted``/``to``/``id`` in the result;
        ``content`` is its identity for duplicates when ``text`` is not all of it;
        ``notify`` its ``notificationUrl`` ("Delivery notifications")."""
        if not self.sending_id:
            self.campaign_id = self._state.campaign_id(self._campaign_name)
            self.sending_id = self._state.new_id()
        message_id = self._new_id()
        self._accepted.append((message_id, recipient, sender, text, details, content))
        self._notify.append(notify)
        self.entries.append({"accepted": True, "to": to, "id": message_id, **entry})

    def answer(self) -> tuple[int, dict[str, Any]]:
        if not self._accepted:
            error = self._first_error
            if error is None:
                raise ApiError(102)
            raise ApiError(error["code"], error.get("fields"), error["description"])
        if self._state.before_accept is not None:
            self._state.before_accept(self._channel, len(self._accepted))
        stats = self._state.channels[self._channel]
        stats.requests_accepting += 1
        request_no, received_at, sending_id = stats.requests_accepting, time.time(), self.sending_id
        after = self._state.after_accept
        kept: list[Message] = []
        for message_id, recipient, sender, text, details, content in self._accepted:
            message = Message(
                message_id, recipient, sender, text, sending_id, details, received_at, request_no
            )
            stats.accept(message, content)
            if after is not None:
                kept.append(message)
        if after is not None:
            urls = self._notify if any(self._notify) else None
            campaign_id = self.campaign_id if self._campaign_name is not None else 0
            after(Accepted(self._channel, campaign_id, self._campaign_name, kept, urls))
        status = 202 if len(self._accepted) == len(self.entries) else 207
        return status, {
            "campaignId": self.campaign_id,
            "sendingId": self.sending_id,
            "result": self.entries,
        }
