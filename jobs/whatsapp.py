"""The WhatsApp template job: ``POST /api/rest/whatsapp`` ("Send WhatsApp template").

Unlike the other channels, recipients are ``messages[]`` objects, each with its
own ``to`` and positional fields; the pipeline still treats each message as
one recipient with one recorded result.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from jobs.base import SendJob
from jobs.channels import Channel, register
from jobs.chunks import Entry
from jobs.fields import normalize_phone, recipients_problem, refuse, sender_problem


class Location(BaseModel):
    """``messages.*.location``: lat/long are strings in the doc's examples."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: str
    long: str
    name: str | None = None
    address: str | None = None

    @field_validator("lat", "long")
    @classmethod
    def _coordinate(cls, value: str) -> str:
        try:
            float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a coordinate") from None
        return value


class WhatsAppMessage(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    to: str
    header_fields: list[str] | None = None
    body_fields: list[str] | None = None
    call_to_action_fields: list[str] | None = None
    default_answer: str | None = None
    button_answers: list[str] | None = None
    location: Location | None = None


class WhatsApp(SendJob):
    kind: ClassVar[str] = "whatsapp"

    template_id: int = Field(ge=1)
    sender: str = Field(alias="from")
    messages: list[WhatsAppMessage] = Field(min_length=1)

    @field_validator("sender")
    @classmethod
    def _sender_valid(cls, value: str) -> str:
        # "The sender must be registered on the platform": a phone number.
        problem = sender_problem(value)
        if problem and problem[0] == 106:  # empty or only spaces
            raise ValueError(f"{problem[1]} (provider code 106)")
        if problem or not value.isdigit():
            raise ValueError("must be the registered sender's phone number, 1 to 15 digits")
        return value

    @model_validator(mode="after")
    def _some_valid_number(self) -> Self:
        refuse(recipients_problem(normalize_phone(m.to) for m in self.messages), "messages")
        return self

    def recipients(self) -> list[str]:
        return [m.to for m in self.messages]

    def recipient_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for message in self.messages:
            fields = message.model_dump(by_alias=True, exclude_none=True, mode="json")
            yield fields.pop("to"), fields

    def api_payload(self) -> dict[str, Any]:
        body = super().api_payload()
        body.pop("messages")
        return body


def messages_with_fields(body: dict[str, Any], entries: list[Entry]) -> dict[str, Any]:
    """WhatsApp's recipients are ``messages[]`` objects, each with its own fields."""
    return {**body, "messages": [{"to": e.to, **e.extras} for e in entries]}


CHANNEL = register(
    Channel(
        WhatsApp,
        "/api/rest/whatsapp",
        "WhatsApp template (POST /api/rest/whatsapp)",
        shape=messages_with_fields,
        recipients_file=False,
    )
)
