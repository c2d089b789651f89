"""``POST /v1/account/resume``: lift a hold or halt of the provider account.

The same act as ``bulksend resume``: the stop (of one channel with
``?channel=``, else all) is lifted and every chunk parked behind it is queued
again. Which stop there was is in every affected sending's status
(``account``); this answers what was lifted.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobs import channels
from jobs.accounts import account_id, resume
from web import context
from web.openapi import ApiRoute, Content, Doc, Param
from web.sendings import AccountStop, choice

__all__ = ["Resumed", "route"]


class Resumed(BaseModel):
    account: str = Field(description="the provider account, user@host")
    lifted: AccountStop | None = Field(description="the stop that was lifted; null: none was")


async def resume_account(request: Request) -> Response:
    channel = choice(request, "channel", tuple(c.kind for c in channels.all_channels()))
    producer, settings = context.producer(request), context.settings(request)
    account = account_id(settings)
    expires_s = settings.result_ttl_days * 86400
    lifted = await resume(producer.redis, account, channel, expires_s=expires_s)
    answer = Resumed(account=account, lifted=AccountStop(**lifted.as_dict()) if lifted else None)
    return JSONResponse(answer.model_dump(mode="json"))


route: Final = ApiRoute(
    "/v1/account/resume",
    resume_account,
    methods=["POST"],
    name="resume_account",
    doc=Doc(
        summary="Lift a hold or halt of the provider account and queue what was parked",
        answer="what was lifted",
        content=Content("application/json", Resumed),
        params=(Param("channel", "query", "lift only this channel's stop (e.g. email)"),),
        errors=(422,),
    ),
)
