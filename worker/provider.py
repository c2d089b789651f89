"""The HTTP side of the messaging provider: one pooled client, typed outcomes.

Callers get one of three things, because each asks for a different action:
a ``Reply`` (the provider answered, whatever it said), ``NotSent`` (the request
certainly never reached it: safe to retry) or ``Ambiguous`` (it may have landed
and we did not hear back: resending could send twice).

What counts as an answer follows messaging-api.txt → "Errors" and the 202/207
responses: a 2xx with its ``result`` list, or an error status with the
documented ``{"error": {"code", "description"}}`` body. Anything else that
came back after the request was sent is not an answer about the message: a 2xx
with an empty or non-JSON body, or a 5xx without the documented body (a
gateway's 502/504), may well mean the provider took it, so it is ``Ambiguous``.
A bare 404/405 means we are not talking to the provider at all (a wrong base
URL, a proxy); it is answered with a description naming the URL, and the error
policy halts the account on it.
"""

from __future__ import annotations

import asyncio
import base64
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

import httpx
import msgspec
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from jobs.channels import ResultsOf, result_list
from worker.http_streams import StreamsTransport


class NotSent(Exception):
    """The request did not leave: connection refused, DNS, pool exhausted."""


class Ambiguous(Exception):
    """The request may have reached the provider, but no usable answer came back."""


@dataclass(slots=True)  # not frozen: one per recipient, and frozen ones build three times slower
class RecipientReply:
    to: str
    accepted: bool
    message_id: str | None = None
    parts: int | None = None
    scheduled_at: str | None = None
    code: int | None = None
    description: str | None = None


class Accepted(Sequence[RecipientReply]):
    """A 2xx in which the provider accepted every recipient plainly (no error, not
    scheduled), kept as the columns the worker records: message ids and parts. Building
    a thousand ``RecipientReply`` a call cost more than recording them; whoever asks for
    one (an index, a slice, a loop) still gets it."""

    __slots__ = ("_tos", "ids", "parts")

    def __init__(self, tos: list[Any], ids: list[Any], parts: list[Any]) -> None:
        self._tos = tos
        self.ids = ids
        self.parts = parts

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> RecipientReply: ...
    @overload
    def __getitem__(self, index: slice) -> Accepted: ...
    def __getitem__(self, index: int | slice) -> RecipientReply | Accepted:
        if isinstance(index, slice):
            return Accepted(self._tos[index], self.ids[index], self.parts[index])
        return RecipientReply(str(self._tos[index]), True, self.ids[index], self.parts[index])


@dataclass(frozen=True, slots=True)
class Reply:
    http_status: int
    results: Sequence[RecipientReply] | None  # 202 / 207
    code: int | None = None  # whole-request error
    description: str | None = None
    retry_after: float | None = None  # seconds, from a 429's Retry-After


def _recipient(item: dict[str, Any]) -> RecipientReply:
    """One recipient of a 202/207 ``result``; positional: a thousand a call, and keywords
    cost half again."""
    get, error = item.get, item.get("error")
    reply = RecipientReply(
        str(get("to")), bool(get("accepted")), get("id"), get("parts"), get("scheduledAt")
    )
    if error:
        reply.code, reply.description = error.get("code"), error.get("description")
    return reply


def _replies(items: list[dict[str, Any]]) -> Sequence[RecipientReply]:
    """A 2xx's ``result``, per recipient: ``Accepted`` when every one of them is a plain
    acceptance, the usual answer."""
    plain = [
        item.get("accepted") is True and "error" not in item and item.get("scheduledAt") is None
        for item in items
    ]
    if all(plain):
        return Accepted(
            [item.get("to") for item in items],
            [item.get("id") for item in items],
            [item.get("parts") for item in items],
        )
    return [_recipient(item) for item in items]


class _Item(msgspec.Struct, gc=False):
    """One recipient of a 202/207 ``result``, each field as JSON gave it (``Any``), absent
    as ``None``, and ``error`` told apart from absent (``UNSET``), as ``_replies`` reads a
    dict's: the same answer, without a dict for each of a thousand recipients."""

    to: Any = None
    accepted: Any = None
    id: Any = None
    parts: Any = None
    scheduledAt: Any = None
    error: Any = msgspec.UNSET


class _Results(msgspec.Struct, gc=False):
    result: list[_Item] | None = None


_RESULTS = msgspec.json.Decoder(_Results)


def _accepted(content: bytes) -> Accepted | None:
    """The usual 2xx of ``result_list``'s shape, every recipient plainly accepted, decoded
    straight into its columns (0.25 → 0.13 µs a recipient); None for anything else,
    which ``_parse`` reads the long way."""
    try:
        items = _RESULTS.decode(content).result
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if items is None:
        return None
    for item in items:
        plain = item.accepted is True and item.error is msgspec.UNSET
        if not plain or item.scheduledAt is not None:
            return None
    return Accepted(
        [item.to for item in items], [item.id for item in items], [item.parts for item in items]
    )


def _parse(response: httpx.Response, results_of: ResultsOf = result_list) -> Reply:
    status = response.status_code
    if 200 <= status < 300 and results_of is result_list:
        accepted = _accepted(response.content)
        if accepted is not None:
            return Reply(status, accepted)
    try:
        body: Any = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    documented = isinstance(error, dict) and isinstance(error.get("code"), int)
    if 200 <= status < 300:
        items = results_of(body)
        if items is None:
            raise Ambiguous(f"HTTP {status} without the documented result")
        return Reply(status, _replies(items))
    retry_after = None
    if status == 429:
        try:
            retry_after = float(response.headers.get("Retry-After", ""))
        except ValueError:
            retry_after = None
    if documented:
        assert isinstance(error, dict)
        return Reply(status, None, error["code"], error.get("description"), retry_after)
    if status >= 500:
        raise Ambiguous(f"HTTP {status} without the documented error body: it may have landed")
    if status in (404, 405):
        url = response.request.url.copy_with(query=None)
        why = f"HTTP {status} from {url}: not the provider's API (wrong base URL or a proxy?)"
        return Reply(status, None, None, why)
    return Reply(status, None, None, response.reason_phrase or f"HTTP {status}", retry_after)


def _proxied(url: httpx.URL) -> bool:
    """Whether the environment sends ``url`` through a proxy: ``HTTP_PROXY``,
    ``HTTPS_PROXY`` or ``ALL_PROXY`` for its scheme, and its host not in ``NO_PROXY``."""
    proxies = urllib.request.getproxies()
    if not (proxies.get(url.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(url.host)


class ProviderClient:
    """Messaging API client: Basic auth, keep-alive pool, short retries only when safe."""

    def __init__(
        self,
        base_url: str,
        auth: tuple[str, str],
        *,
        timeout: float = 10.0,
        max_connections: int = 20,
        connect_attempts: int = 3,
    ) -> None:
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        # Through a proxy the environment names (httpx's ``trust_env``), the client's own
        # transport, which httpx mounts only when it is given none.
        self._transport = None if _proxied(httpx.URL(base_url)) else StreamsTransport(limits=limits)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            auth=httpx.BasicAuth(*auth),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=limits,
            transport=self._transport,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        # What the client would add to each send (``_send``): its headers with the Basic
        # auth header httpx.BasicAuth builds, and its timeouts.
        userpass = b":".join(part.encode() for part in auth)
        self._headers = httpx.Headers(self._client.headers)
        self._headers["Authorization"] = "Basic " + base64.b64encode(userpass).decode()
        self._extensions = {"timeout": self._client.timeout.as_dict()}
        self._urls: dict[str, httpx.URL] = {}
        self._connect_attempts = connect_attempts
        # The longest a call may take, connect retries included: the moment a
        # claimed recipient's call must be over (its record's ``until``).
        self.call_budget_s = timeout + 2.0

    async def post(
        self, path: str, body: dict[str, Any], results_of: ResultsOf = result_list
    ) -> Reply:
        content = orjson.dumps(body)
        try:
            async with asyncio.timeout(self.call_budget_s):
                return await self._post(path, content, results_of)
        except TimeoutError as exc:
            raise Ambiguous(f"no answer within {self.call_budget_s:.0f}s") from exc

    async def get_json(self, path: str, params: dict[str, Any]) -> Any:
        """A plain read (an import's groups): an error here fails the run, to be retried."""
        response = await self._client.get(path, params=params)
        response.raise_for_status()
        return orjson.loads(response.content)

    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        response = await self._client.post(path, content=orjson.dumps(body))
        response.raise_for_status()
        return orjson.loads(response.content)

    async def _post(self, path: str, content: bytes, results_of: ResultsOf) -> Reply:
        # Retrying in-call is only safe while nothing has been sent.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(NotSent),
            stop=stop_after_attempt(self._connect_attempts),
            wait=wait_random_exponential(multiplier=0.05, max=1.0),
            reraise=True,
        ):
            with attempt:
                return await self._post_once(path, content, results_of)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_once(self, path: str, content: bytes, results_of: ResultsOf) -> Reply:
        try:
            response = await self._send(path, content)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent(f"{type(exc).__name__}: {exc}") from exc
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise Ambiguous(f"{type(exc).__name__}: {exc}") from exc
        return _parse(response, results_of)

    async def _send(self, path: str, content: bytes) -> httpx.Response:
        """``self._client.post(path, content=content)``, straight to its transport: what
        the client adds on the way (auth flow, redirects, cookies, hooks) is nothing a
        call to the API needs, and it cost 150 to 340 µs of CPU a 1,000-recipient call,
        one in every thirty of a worker's, side by side on the sandbox. Its response also
        holds itself in a cycle (``BoundAsyncStream``), with the request's and the
        answer's bytes, until the cyclic collector comes by; this one is freed at once.
        Through a proxy, the client's own way."""
        if self._transport is None:
            return await self._client.post(path, content=content)
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self._client.base_url.join(path.lstrip("/"))
        request = httpx.Request(
            "POST", url, headers=self._headers, content=content, extensions=self._extensions
        )
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        await self._client.aclose()
