"""The voice send jobs: text-to-speech calls (``POST /api/rest/voice``) and calls
playing an audio file (``POST /api/rest/voiceAudio``), in messaging-api.txt
"Send Voice message" and "Send Voice message with an audio file".

Both are phone calls with the same recipients, caller ids and retry rules, so
those live once in ``CallJob``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from jobs.base import SendJob, check_api_date
from jobs.channels import Channel, register
from jobs.fields import (
    audio_url_problem,
    callers_problem,
    expiration_problem,
    normalize_phone,
    recipients_problem,
    refuse,
    retries_problem,
    sub_problem,
)
from jobs.sms import SubValue

# "Send Voice message" → Parameters → language: the documented options.
VOICE_LANGUAGES = frozenset(
    {
        "en_GB",
        "en_US",
        "es_ES",
        "es_US",
        "pt_PT",
        "pt_BR",
        "cmn_CN",
        "arb",
        "de_DE",
        "fr_FR",
        "it_IT",
        "hi_IN",
    }
)
# Same place: the options marked "* Available only in female gender."
FEMALE_ONLY_LANGUAGES = frozenset({"cmn_CN", "arb", "hi_IN"})
MAX_VOICE_MESSAGE = 500  # "At most it can have 500 characters."


class CallJob(SendJob):
    """What both kinds of call share; not a job kind of its own."""

    to: list[str] = Field(min_length=1)
    callers: dict[str, str] | None = None
    schedule_date: str | None = None
    retries: int | None = None
    expiration_date: str | None = None
    amd: bool | None = None

    @field_validator("callers")
    @classmethod
    def _callers_valid(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            refuse(callers_problem(value))
        return value

    @field_validator("retries", mode="before")
    @classmethod
    def _retries_valid(cls, value: Any) -> Any:
        # Before pydantic's own coercion, so "3" or 2.0 get the provider's reason.
        if value is not None:
            refuse(retries_problem(value))
        return value

    _dates = field_validator("schedule_date", "expiration_date")(check_api_date)

    @model_validator(mode="after")
    def _some_valid_number(self) -> Self:
        refuse(recipients_problem(normalize_phone(number) for number in self.to), "to")
        return self

    @model_validator(mode="after")
    def _expires_after_schedule(self) -> Self:
        # "To determine the latest date on which the call can be performed."
        refuse(expiration_problem(self.schedule_date, self.expiration_date))
        return self


class Voice(CallJob):
    kind: ClassVar[str] = "voice"
    per_recipient: ClassVar[tuple[str, ...]] = ("sub",)

    message: str
    language: str
    gender: Literal["F", "M"]
    sub: list[dict[str, SubValue]] | None = None

    @field_validator("message")
    @classmethod
    def _message_fits(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text message missing (provider code 104)")
        if len(value) > MAX_VOICE_MESSAGE:
            raise ValueError(
                f"has {len(value)} characters, at most {MAX_VOICE_MESSAGE} (provider code 105)"
            )
        return value

    @field_validator("language")
    @classmethod
    def _language_known(cls, value: str) -> str:
        if value not in VOICE_LANGUAGES:
            known = ", ".join(sorted(VOICE_LANGUAGES))
            raise ValueError(f"{value!r} is not one of {known} (provider code 130)")
        return value

    @field_validator("gender", mode="before")
    @classmethod
    def _gender_known(cls, value: Any) -> Any:
        if value not in ("F", "M"):
            raise ValueError(f"{value!r} is not 'F' or 'M' (provider code 131)")
        return value

    @model_validator(mode="after")
    def _voice_exists(self) -> Self:
        if self.gender == "M" and self.language in FEMALE_ONLY_LANGUAGES:
            raise ValueError(
                f"gender: {self.language} has only a female voice; use 'F' (provider code 131)"
            )
        if self.sub is not None and (reason := sub_problem(self.sub, len(self.to))):
            raise ValueError(f"sub: {reason}")
        return self


class VoiceAudio(CallJob):
    kind: ClassVar[str] = "voice-audio"

    audio_url: str

    @field_validator("audio_url")
    @classmethod
    def _audio_url_valid(cls, value: str) -> str:
        refuse(audio_url_problem(value))
        return value


VOICE = register(Channel(Voice, "/api/rest/voice", "text-to-speech call (POST /api/rest/voice)"))
VOICE_AUDIO = register(
    Channel(
        VoiceAudio,
        "/api/rest/voiceAudio",
        "call playing an audio file (POST /api/rest/voiceAudio)",
    )
)
