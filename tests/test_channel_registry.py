"""The channel registry: a made-up channel is one descriptor, and the whole pipeline
takes it — CLI flags, validation, normalisation, planning, request shape, results."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import Field

from bulksend.cli import parser, send_job
from jobs import Channel, InvalidJob, Producer, SendJob, Settings, UnknownChannel, channels
from jobs.chunks import Entry
from jobs.planning import recipients_as_lists
from tests.helpers import drain, numbers


class Pager(SendJob):
    """A pager message: a short text to numbers, carried by the SMS endpoint."""

    kind: ClassVar[str] = "pager"
    to: list[str] = Field(min_length=1)
    sender: str = Field(alias="from", min_length=1, max_length=11)
    message: str = Field(min_length=1, max_length=80)


def shouted(body: dict[str, Any], entries: list[Entry]) -> dict[str, Any]:
    """Its own request shape: the text in capitals, recipients as lists."""
    return recipients_as_lists({**body, "message": body["message"].upper()}, entries)


@pytest.fixture
def pager() -> Iterator[Channel]:
    channel = channels.register(
        Channel(Pager, "/api/rest/sms", "pager message (made up)", shape=shouted)
    )
    yield channel
    channels._REGISTRY.pop("pager")


def test_a_registered_channel_gets_its_cli_flags_from_its_model(pager: Channel) -> None:
    args = parser().parse_args(
        ["send", "pager", "--to", "34666555444", "--from", "ME", "--message", "hi"]
    )
    job = send_job(args, Settings())
    assert isinstance(job, Pager) and job.to == ["34666555444"]
    assert job.endpoint == "/api/rest/sms"
    bad = parser().parse_args(["send", "pager", "--to", "1", "--from", "ME", "--message", ""])
    with pytest.raises(InvalidJob) as refused:
        send_job(bad, Settings())
    assert refused.value.field == "message"


def test_an_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(UnknownChannel) as err:
        channels.get("fax")
    assert err.value.field == "kind" and "sms" in err.value.reason


async def test_a_made_up_channel_travels_the_whole_pipeline(
    pager: Channel, settings: Settings, sandbox_url: str
) -> None:
    producer = await Producer.connect(settings)
    try:
        to = [*numbers(3), "12"]  # the last one is not a number: 102, never sent
        job = Pager.model_validate({"to": to, "from": "ME", "message": "wake up"})
        sending_id = await producer.submit(job)
        await drain(settings)
        got = [(r["to"], r["status"]) async for r in producer.store.iter_results(sending_id)]
    finally:
        await producer.close()
    assert got == [*((n, "accepted") for n in numbers(3)), ("12", "rejected")]
    sent = httpx.get(f"{sandbox_url}/_sandbox/messages").json()["messages"]
    assert {m["text"] for m in sent} == {"WAKE UP"}  # its own shape went on the wire
