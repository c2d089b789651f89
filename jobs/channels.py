"""The channel registry: everything that differs between channels, one descriptor each.

A channel is its job model (validation, the provider's JSON), the endpoint it
posts to, how a recipient is normalised (``None``: the provider would answer
102), how recipients and their per-recipient fields go into a request body,
how a chunk becomes calls (``planner``) and how many SMS parts the provider
allows it. Producer, worker, CLI and sandbox tests ask the registry; nothing
else branches on a channel's name. Adding a channel is one module that defines
its model and registers its descriptor (plus its sandbox endpoint); every
channel answers in the same ``result`` shape (messaging-api.txt → the 202/207
responses), parsed once in ``worker.provider``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobs.chunks import Entry
from jobs.errors import UnknownChannel
from jobs.fields import normalize_phone
from jobs.planning import Planner, plan_single_call, recipients_as_lists

if TYPE_CHECKING:
    from jobs.base import SendJob

__all__ = ["Channel", "all_channels", "get", "register"]

Normalize = Callable[[str], str | None]
Shape = Callable[[dict[str, Any], list[Entry]], dict[str, Any]]
ResultsOf = Callable[[Any], list[dict[str, Any]] | None]
# Before a sending's first call: resolve what its calls need from the provider
# (an import's group id), once per sending; gets a JSON API and the payload.
Prepare = Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any]]]


def result_list(body: Any) -> list[dict[str, Any]] | None:
    """The 202/207 answer of every sending channel: ``{"result": [{to, accepted, id, …}]}``."""
    result = body.get("result") if isinstance(body, dict) else None
    return result if isinstance(result, list) else None


@dataclass(frozen=True)
class Channel:
    model: type[SendJob]
    endpoint: str  # the provider's path, e.g. "/api/rest/sms"
    summary: str  # one line, for the CLI's help
    normalize: Normalize = normalize_phone
    shape: Shape = recipients_as_lists
    planner: Planner = plan_single_call
    max_parts: int | None = None  # SMS parts the provider allows; None: not an SMS channel
    recipients_file: bool = True  # may its recipients come from a file (``--recipients-file``)
    attachments: bool = False  # does it take files (``--attach``)
    batch: bool = True  # may calls of different jobs be merged (micro-batching)
    results_of: ResultsOf = result_list  # a 2xx body → its per-recipient results
    prepare: Prepare | None = None
    sendable: bool = True  # offered by ``bulksend send`` (an import has its own command)
    contact_field: str = "phone"  # an imported contact's address here (``send --group``)

    @property
    def kind(self) -> str:
        return self.model.kind


_REGISTRY: dict[str, Channel] = {}


def register(channel: Channel) -> Channel:
    """Make a channel known; registering a kind twice replaces it (tests, reloads)."""
    _REGISTRY[channel.kind] = channel
    return channel


def get(kind: str) -> Channel:
    _load_builtin()
    try:
        return _REGISTRY[kind]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownChannel(f"kind: no channel {kind!r} (known: {known})") from None


def all_channels() -> list[Channel]:
    """Every registered channel, in registration order."""
    _load_builtin()
    return list(_REGISTRY.values())


def _load_builtin() -> None:
    """The built-in channels register when their modules are imported."""
    import jobs.contacts
    import jobs.email
    import jobs.landing
    import jobs.sms
    import jobs.voice
    import jobs.whatsapp  # noqa: F401
