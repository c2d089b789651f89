"""The voice send jobs: text-to-speech calls (``POST /api/rest/voice``) and calls
playing an audio file (``POST /api/rest/voiceAudio``), in messaging-api.txt
"Send Voice message" and "Send Voice message with an audio file".

Both are phone calls with the same recipients, caller ids and retry rules, so
those live once in ``CallJob``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from jobs.base import SendJob, check_api_date, check_expiration
from jobs.fields import normalize_phone
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
MAX_RETRIES = 5  # "Maximum number of retries. Maximum 5."
# "Send Voice message with an audio file" → audioUrl shows only an .mp3 URL and
# the doc lists no formats, so only what it documents is accepted (code 134).
AUDIO_EXTENSIONS = frozenset({".mp3"})

# callers: {"ES": "6123456789", ...} — an ISO 3166-1 alpha-2 country code to a
# caller number of digits (the same digit limit as an SMS numeric sender).
COUNTRY_CODE = re.compile(r"[A-Z]{2}")
CALLER_NUMBER = re.compile(r"[0-9]{1,15}")


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
        for country, caller in (value or {}).items():
            if not COUNTRY_CODE.fullmatch(country):
                raise ValueError(
                    f"{country!r} is not a two-letter country code like 'ES' (provider code 132)"
                )
            if not CALLER_NUMBER.fullmatch(caller):
                raise ValueError(
                    f"{country}: {caller!r} is not a caller number of at most 15 digits"
                    " (provider code 132)"
                )
        return value

    @field_validator("retries", mode="before")
    @classmethod
    def _retries_integer(cls, value: Any) -> Any:
        # Before pydantic's own coercion, so "3" or 2.0 get the provider's reason.
        if value == "":
            raise ValueError("is given but empty (provider code 190)")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{value!r} is not an integer (provider code 176)")
        return value

    @field_validator("retries")
    @classmethod
    def _retries_in_range(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= MAX_RETRIES:
            raise ValueError(f"must be 0 to {MAX_RETRIES}, not {value} (provider code 177)")
        return value

    _dates = field_validator("schedule_date", "expiration_date")(check_api_date)

    @model_validator(mode="after")
    def _some_valid_number(self) -> Self:
        if not any(normalize_phone(number) for number in self.to):
            raise ValueError("to: no valid recipients (provider code 102)")
        return self

    @model_validator(mode="after")
    def _expires_after_schedule(self) -> Self:
        # "To determine the latest date on which the call can be performed."
        check_expiration(self.schedule_date, self.expiration_date)
        return self


class Voice(CallJob):
    kind: ClassVar[str] = "voice"
    endpoint: ClassVar[str] = "/api/rest/voice"
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
        n = len(self.to)
        if self.sub is not None and len(self.sub) != n:
            raise ValueError(f"sub: has {len(self.sub)} objects for {n} recipients; needs one each")
        return self


class VoiceAudio(CallJob):
    kind: ClassVar[str] = "voice-audio"
    endpoint: ClassVar[str] = "/api/rest/voiceAudio"

    audio_url: str

    @field_validator("audio_url")
    @classmethod
    def _audio_url_valid(cls, value: str) -> str:
        # The provider fetches the file itself, so it must be a public http(s) URL.
        try:
            parts = urlsplit(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a URL (provider code 133)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL (provider code 133)")
        suffix = parts.path.rsplit("/", 1)[-1]
        extension = suffix[suffix.rfind(".") :].lower() if "." in suffix else ""
        if extension not in AUDIO_EXTENSIONS:
            allowed = ", ".join(sorted(AUDIO_EXTENSIONS))
            raise ValueError(
                f"{value!r} is not a supported audio file ({allowed}) (provider code 134)"
            )
        return value
