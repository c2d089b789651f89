"""The landing SMS send job: ``POST /api/rest/landingsms`` ("Landing SMS" in messaging-api.txt).

A landing SMS is an SMS whose text carries a link to a hosted HTML page, so it
takes every SMS rule plus the page (``templateBody`` or a template id) and the
place in the text where the link goes.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Self

from pydantic import Field, model_validator

from jobs.base import one_content_source
from jobs.channels import Channel, register
from jobs.gsm import MAX_PARTS_LANDING
from jobs.planning import plan_sms
from jobs.sms import Sms

# The doc shows the link's place only in its example ("TEST API LANDING
# {LAND_URL}") and names the error "Missing landing placeholder" (141).
LANDING_PLACEHOLDER = "{LAND_URL}"


class Landing(Sms):
    kind: ClassVar[str] = "landing"
    # The landing doc documents ``notificationUrl`` as one string, not one per recipient.
    per_recipient: ClassVar[tuple[str, ...]] = ("sub",)
    max_parts: ClassVar[int] = MAX_PARTS_LANDING  # "The maximum number of parts allowed is 8."

    template_body: str | None = None
    template_id: Annotated[int, Field(ge=1)] | None = None
    template_v2_id: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _landing_page(self) -> Self:
        one_content_source(
            ("templateBody", self.template_body), self.template_id, self.template_v2_id
        )
        if LANDING_PLACEHOLDER not in self.message:
            raise ValueError(
                f"message: has no {LANDING_PLACEHOLDER} where the landing link goes"
                " (provider code 141)"
            )
        return self

    @model_validator(mode="after")
    def _sms_only_parameters(self) -> Self:
        # Sms parameters that the landing endpoint does not document.
        if isinstance(self.notification_url, list):
            raise ValueError("notificationUrl: landing SMS takes one URL, not one per recipient")
        if self.available_times is not None:
            raise ValueError("availableTimes: not a landing SMS parameter")
        return self


CHANNEL = register(
    Channel(
        Landing,
        "/api/rest/landingsms",
        "SMS with a landing page (POST /api/rest/landingsms)",
        planner=plan_sms,
        max_parts=MAX_PARTS_LANDING,
    )
)
