"""What every send job shares: API-named fields, one-line validation errors.

Job models use the provider's parameter names as aliases (``from``,
``scheduleDate`` …) so that ``api_payload()`` is the request body as the docs
show it, while Python code reads snake_case attributes.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel, to_snake

from jobs.errors import InvalidJob
from jobs.fields import campaign_problem, parse_api_date, refuse, tags_problem

__all__ = ["InvalidJob", "SendJob", "build", "describe"]


@cache
def _attribute(api_name: str) -> str:
    """``notificationUrl`` → ``notification_url``; cached: called for every job."""
    return to_snake(api_name)


class SendJob(BaseModel):
    """Base of every send job. ``kind`` names the channel (``jobs.channels`` has the rest).

    ``campaignName`` and ``tags`` are here because every channel takes them
    with the same rule: tags need a campaign name.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    kind: ClassVar[str]
    # Parameters that are per recipient (one element per entry of ``to``).
    per_recipient: ClassVar[tuple[str, ...]] = ()

    campaign_name: str | None = None
    tags: list[str] | None = None

    @field_validator("campaign_name")
    @classmethod
    def _campaign_not_blank(cls, value: str | None) -> str | None:
        refuse(campaign_problem(value))
        return value

    @model_validator(mode="after")
    def _tags_need_campaign(self) -> Self:
        problem = tags_problem(self.tags, self.campaign_name)
        if problem is not None:
            raise ValueError(f"tags: {problem}")
        return self

    @property
    def endpoint(self) -> str:
        """The provider's path for this job, from its channel's descriptor."""
        from jobs import channels

        return channels.get(self.kind).endpoint

    def recipients(self) -> list[str]:
        """Each recipient's address as given (``to``, unless a channel says otherwise)."""
        return list(getattr(self, "to"))  # noqa: B009 - every channel but one has `to`

    def recipient_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each recipient's address as given, with its per-recipient parameters (API
        names). The lists are looked up once, not once per recipient: at a hundred
        thousand recipients that lookup was a tenth of a submit."""
        columns = [
            (name, values)
            for name in self.per_recipient
            if isinstance(values := getattr(self, _attribute(name), None), list)
        ]
        if len(columns) == 1:  # one list (``sub``, say): zipped, without a loop per row
            name, values = columns[0]
            for to, value in zip(self.recipients(), values, strict=True):
                yield to, {name: value}
            return
        for index, to in enumerate(self.recipients()):
            yield to, {name: values[index] for name, values in columns}

    def api_payload(self) -> dict[str, Any]:
        """The JSON body for the provider, without recipients or per-recipient fields.
        Those are left out of the dump, not dropped after it: serializing a hundred
        thousand recipients' values to throw them away was a tenth of a submit."""
        left_out = {
            name
            for name, info in type(self).model_fields.items()
            if (api := info.alias or name) == "to"
            or (api in self.per_recipient and isinstance(getattr(self, name), list))
        }
        return self.model_dump(by_alias=True, exclude_none=True, mode="json", exclude=left_out)


def one_content_source(
    inline: tuple[str, str | None], template_id: int | None, template_v2_id: int | None
) -> None:
    """Exactly one of an inline body, ``templateId`` or ``templateV2Id`` (else 140).

    The doc does not say which one wins when several are given; sending the
    wrong content to every recipient is worse than refusing.
    """
    name, text = inline
    candidates = (
        (name, text if text and text.strip() else None),
        ("templateId", template_id),
        ("templateV2Id", template_v2_id),
    )
    given = [key for key, value in candidates if value is not None]
    if not given:
        raise ValueError(
            f"{name}: {name}, templateId or templateV2Id is required (provider code 140)"
        )
    if len(given) > 1:
        raise ValueError(f"{name}: give only one of {name}, templateId, templateV2Id, not {given}")


def check_api_date(value: str | None) -> str | None:
    if value is not None:
        parse_api_date(value)
    return value


def describe(exc: ValidationError) -> str:
    """One line naming each bad field by its API name and the reason."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        # Model-level checks already start with the field they are about.
        problems.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(problems)


J = TypeVar("J", bound="SendJob")


def build(model: type[J], data: dict[str, Any]) -> J:
    """Validate ``data`` into ``model`` or raise InvalidJob with a one-line reason."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidJob(f"invalid {model.kind} sending: {describe(exc)}") from None
