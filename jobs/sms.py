"""The SMS send job: ``POST /api/rest/sms`` ("Send SMS Message" in messaging-api.txt).

``parts`` is the most parts the provider may bill per recipient, and it "is set
to 1 by default" ("Send SMS Message" → ``parts``): a sending without it may
only send one-part texts. A fixed text that needs more is refused at submit
(``check_text``, 105); per-recipient texts are checked by the worker's planner
(``jobs/planning.py``) against the same limit, so no recipient is ever billed
more parts than the sending allows.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from jobs import gsm
from jobs.base import SendJob, check_api_date
from jobs.channels import Channel, register
from jobs.fields import (
    OTP_RANGES,
    available_time_problem,
    available_times_problem,
    expiration_problem,
    normalize_phone,
    notification_url_problem,
    recipients_problem,
    refuse,
    sender_problem,
    sub_problem,
)
from jobs.gsm import DEFAULT_PARTS, MAX_PARTS_SMS
from jobs.planning import plan_sms
from jobs.templating import (
    TemplateError,
    TextRules,
    check_template,
    missing_variables,
    render,
    stand_ins,
    variables,
)

SubValue = str | int | float | bool | None


def _otp_range(name: str) -> Any:
    low, high = OTP_RANGES[name]
    return Field(ge=low, le=high)


class AvailableTime(BaseModel):
    """One ``availableTimes`` window: optional ``day`` 1–7, ``from``/``to`` as UTC HH:MM."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    day: int | None = None
    start: str = Field(alias="from")
    end: str = Field(alias="to")

    @model_validator(mode="after")
    def _window(self) -> Self:
        refuse(available_time_problem(self.model_dump(by_alias=True)))
        return self


class OtpConfig(BaseModel):
    """``otpConfig``: how the provider generates ``{OTP_CODE}`` (ranges from the doc)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    alpha: bool | None = None
    length: Annotated[int, _otp_range("length")] | None = None
    max_attempts: Annotated[int, _otp_range("maxAttempts")] | None = None
    max_seconds_validity: Annotated[int, _otp_range("maxSecondsValidity")] | None = None
    app_id: str | None = None
    reject_if_pending_code: bool | None = None


class Sms(SendJob):
    kind: ClassVar[str] = "sms"
    per_recipient: ClassVar[tuple[str, ...]] = ("sub", "notificationUrl")
    max_parts: ClassVar[int] = MAX_PARTS_SMS

    to: list[str] = Field(min_length=1)
    sender: str = Field(alias="from")
    message: str
    sub: list[dict[str, SubValue]] | None = None
    encoding: Literal["auto", "gsm", "gsm-pt", "utf-16"] = "auto"
    # None: the provider's default of one part (gsm.DEFAULT_PARTS), not max_parts.
    parts: Annotated[int, Field(ge=1)] | None = None
    trans: bool = False
    schedule_date: str | None = None
    expiration_date: str | None = None
    notification_url: str | list[str] | None = None
    certified: bool | None = None
    flash: bool | None = None
    split_parts: bool | None = None
    available_times: list[AvailableTime] | None = None
    otp_config: OtpConfig | None = None

    @field_serializer("trans")
    def _trans_as_int(self, value: bool) -> int:
        return int(value)  # the API documents 1 and 0

    @field_validator("message")
    @classmethod
    def _message_present(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text message missing (provider code 104)")
        return value

    @field_validator("sender")
    @classmethod
    def _sender_valid(cls, value: str) -> str:
        problem = sender_problem(value)
        if problem:
            raise ValueError(f"{problem[1]} (provider code {problem[0]})")
        return value

    @field_validator("parts")
    @classmethod
    def _parts_in_range(cls, value: int | None) -> int | None:
        if value is not None and value > cls.max_parts:
            raise ValueError(f"at most {cls.max_parts} parts are allowed (provider code 110)")
        return value

    _dates = field_validator("schedule_date", "expiration_date")(check_api_date)

    @field_validator("available_times")
    @classmethod
    def _times_not_empty(cls, value: list[AvailableTime] | None) -> list[AvailableTime] | None:
        if value is not None and not value:
            refuse(available_times_problem(value))
        return value

    @model_validator(mode="after")
    def _expires_after_schedule(self) -> Self:
        refuse(expiration_problem(self.schedule_date, self.expiration_date))
        return self

    @model_validator(mode="after")
    def _per_recipient_lengths(self) -> Self:
        n = len(self.to)
        if self.sub is not None and (reason := sub_problem(self.sub, n)):
            raise ValueError(f"sub: {reason}")
        if self.notification_url is not None:
            refuse(notification_url_problem(self.notification_url, n), "notificationUrl")
        refuse(recipients_problem(normalize_phone(number) for number in self.to), "to")
        return self

    def check_text(self, rules: TextRules) -> None:
        """Refuse, before anything is queued, a text that cannot be sent as written.

        Unknown filters and (unless ``rules.allow_unknown``) variables a
        recipient has no value for; and, when the text has no variables, a
        text every recipient would be refused for (too many parts: 105, or
        characters the requested encoding cannot carry: 113). Without
        ``parts`` the limit is the provider's default of one part.
        """
        try:
            check_template(self.message)
        except TemplateError as exc:
            raise ValueError(f"message: {exc}") from None
        otp_length = (self.otp_config and self.otp_config.length) or rules.otp_length
        fixed = stand_ins(rules.short_link_length, otp_length)
        if not rules.allow_unknown:
            subs = self.sub if self.sub is not None else [{}] * len(self.to)
            needed = missing_variables(self.message, {}, fixed)  # looked up once, not per recipient
            # A column per name, not a loop per recipient: the first recipient short of a
            # value, and the first name missing_variables would name for it.
            columns = [[values.get(name) for values in subs] for name in needed]
            first = min((c.index(None) for c in columns if None in c), default=None)
            if first is not None:
                name = next(n for n, c in zip(needed, columns, strict=True) if c[first] is None)
                raise ValueError(
                    f"sub.{first}: no value for {{{name}}} used in message "
                    "(BULKSEND_ALLOW_UNKNOWN_VARIABLES=true lets contact fields fill it)"
                )
        if any(name not in fixed for name, _ in variables(self.message)):
            return  # per-recipient texts: checked one by one by the worker
        text = render(self.message, {}, fixed=fixed)
        try:
            gsm.analyze(
                text, self.encoding, trans=self.trans, max_parts=self.parts or DEFAULT_PARTS
            )
        except gsm.TooManyPartsError as exc:
            raise ValueError(f"message: {self._parts_advice(exc)} (provider code 105)") from None
        except gsm.SmsTextError as exc:
            raise ValueError(f"message: {exc} (provider code {exc.code})") from None

    def _parts_advice(self, exc: gsm.TooManyPartsError) -> str:
        """Why the text does not fit, and what would make it fit."""
        if exc.needed > self.max_parts:
            return (
                f"text needs {exc.needed} parts, more than the {self.max_parts}"
                " that parts can allow; shorten the text"
            )
        if self.parts is None:
            return (
                f"text needs {exc.needed} parts, but without parts only {DEFAULT_PARTS} is"
                f" allowed (the provider's default); set parts to {exc.needed}"
                f" (at most {self.max_parts}) or shorten the text"
            )
        return (
            f"text needs {exc.needed} parts, at most {exc.allowed} are allowed;"
            f" raise parts to {exc.needed} or shorten the text"
        )


CHANNEL = register(
    Channel(
        Sms,
        "/api/rest/sms",
        "SMS (POST /api/rest/sms)",
        planner=plan_sms,
        max_parts=MAX_PARTS_SMS,
    )
)
