"""The landing SMS send job: ``POST /api/rest/landingsms`` ("Landing SMS" in messaging-api.txt).

A landing SMS is an SMS whose text carries a link to a hosted HTML page, so it
takes every SMS rule plus the page (``templateBody`` or a template id) and the
place in the text where the link goes.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Self

from pydantic import Field, model_validator

from jobs.gsm import MAX_PARTS_LANDING
from jobs.sms import Sms

# The doc shows the link's place only in its example ("TEST API LANDING
# {LAND_URL}") and names the error "Missing landing placeholder" (141).
LANDING_PLACEHOLDER = "{LAND_URL}"


class LandingSms(Sms):
    kind: ClassVar[str] = "landing"
    endpoint: ClassVar[str] = "/api/rest/landingsms"
    # The landing doc documents ``notificationUrl`` as one string, not one per recipient.
    per_recipient: ClassVar[tuple[str, ...]] = ("sub",)
    max_parts: ClassVar[int] = MAX_PARTS_LANDING  # "The maximum number of parts allowed is 8."

    template_body: str | None = None
    template_id: Annotated[int, Field(ge=1)] | None = None
    template_v2_id: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _landing_page(self) -> Self:
        body = self.template_body if self.template_body and self.template_body.strip() else None
        given = [
            name
            for name, value in (
                ("templateBody", body),
                ("templateId", self.template_id),
                ("templateV2Id", self.template_v2_id),
            )
            if value is not None
        ]
        if not given:
            raise ValueError(
                "templateBody: templateBody, templateId or templateV2Id is required"
                " (provider code 140)"
            )
        if len(given) > 1:
            # The doc does not say which one wins; refuse rather than guess.
            raise ValueError(
                f"templateBody: give only one of templateBody, templateId, templateV2Id,"
                f" not {given}"
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
