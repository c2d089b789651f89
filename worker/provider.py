"""The HTTP side of the messaging provider: one pooled client, typed outcomes.

Callers get one of three things, because each asks for a different action:
a ``Reply`` (the provider answered, whatever it said), ``NotSent`` (the request
certainly never reached it: safe to retry) or ``Ambiguous`` (it may have landed
and we did not hear back: resending could send twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)


class NotSent(Exception):
    """The request did not leave: connection refused, DNS, pool exhausted."""


class Ambiguous(Exception):
    """The request may have reached the provider, but no usable answer came back."""


@dataclass(frozen=True, slots=True)
class RecipientReply:
    to: str
    accepted: bool
    message_id: str | None = None
    parts: int | None = None
    scheduled_at: str | None = None
    code: int | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    http_status: int
    results: list[RecipientReply] | None  # 202 / 207
    code: int | None = None  # whole-request error
    description: str | None = None
    retry_after: float | None = None  # seconds, from a 429's Retry-After


def _parse(response: httpx.Response) -> Reply:
    try:
        body: Any = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    status = response.status_code
    if status in (200, 202, 207) and isinstance(body, dict):
        results = []
        for item in body.get("result") or []:
            error = item.get("error") or {}
            results.append(
                RecipientReply(
                    to=str(item.get("to")),
                    accepted=bool(item.get("accepted")),
                    message_id=item.get("id"),
                    parts=item.get("parts"),
                    scheduled_at=item.get("scheduledAt"),
                    code=error.get("code"),
                    description=error.get("description"),
                )
            )
        return Reply(status, results)
    retry_after = None
    if status == 429:
        try:
            retry_after = float(response.headers.get("Retry-After", ""))
        except ValueError:
            retry_after = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return Reply(status, None, error.get("code"), error.get("description"), retry_after)
    return Reply(status, None, None, response.reason_phrase or f"HTTP {status}", retry_after)


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
        self._client = httpx.AsyncClient(
            base_url=base_url,
            auth=httpx.BasicAuth(*auth),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        self._connect_attempts = connect_attempts

    async def post(self, path: str, body: dict[str, Any]) -> Reply:
        content = orjson.dumps(body)
        # Retrying in-call is only safe while nothing has been sent.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(NotSent),
            stop=stop_after_attempt(self._connect_attempts),
            wait=wait_random_exponential(multiplier=0.05, max=1.0),
            reraise=True,
        ):
            with attempt:
                return await self._post_once(path, content)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_once(self, path: str, content: bytes) -> Reply:
        try:
            response = await self._client.post(path, content=content)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent(f"{type(exc).__name__}: {exc}") from exc
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise Ambiguous(f"{type(exc).__name__}: {exc}") from exc
        return _parse(response)

    async def aclose(self) -> None:
        await self._client.aclose()
