"""The mail marketing API's side of the wire: ``PublicKey`` / ``SecretKey`` headers and forms.

mail-api-4-contacts.txt → "Upload CSV": ``POST contacts/upload-csv`` with the
form fields ``contact_type_id`` and ``file`` (a ``.csv``), answered
``{"status": "success", "message": …}`` or ``{"status": "failed", "errors": …}``.
The outcome is mapped to the same ``Reply`` / ``NotSent`` / ``Ambiguous`` as the
messaging API's, so the error policy and the records treat both alike: a
success accepts every row of the upload, a documented failure rejects them with
the provider's words, anything else after sending may have landed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

from worker.provider import Ambiguous, NotSent, RecipientReply, Reply

REJECTED_CODE = 422  # the mail API has no numeric codes: its failures are input validation


def _errors_text(errors: Any) -> str:
    if isinstance(errors, dict):
        parts = []
        for field, messages in errors.items():
            text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else messages
            parts.append(f"{field}: {text}")
        return " · ".join(parts)
    return str(errors)


class MailClient:
    def __init__(self, base_url: str, public_key: str, secret_key: str, *, timeout: float) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={
                "PublicKey": public_key,
                "SecretKey": secret_key,
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        )
        self.call_budget_s = timeout + 2.0

    async def upload(self, path: str, body: dict[str, Any], rows: int) -> Reply:
        """One form post; ``body["file"]`` is ``(name, bytes)``, the rest are form fields."""
        name, content = body["file"]
        fields = {k: str(v) for k, v in body.items() if k != "file"}
        try:
            async with asyncio.timeout(self.call_budget_s):
                response = await self._client.post(
                    path.lstrip("/"), data=fields, files={"file": (name, content, "text/csv")}
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent(f"{type(exc).__name__}: {exc}") from exc
        except (TimeoutError, httpx.TimeoutException, httpx.NetworkError) as exc:
            raise Ambiguous(f"{type(exc).__name__}: {exc}") from exc
        except httpx.RemoteProtocolError as exc:
            raise Ambiguous(f"{type(exc).__name__}: {exc}") from exc
        return _reply(response, rows)

    async def aclose(self) -> None:
        await self._client.aclose()


def _reply(response: httpx.Response, rows: int) -> Reply:
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    status = response.status_code
    outcome = body.get("status") if isinstance(body, dict) else None
    if outcome == "success" and 200 <= status < 300:
        return Reply(status, [RecipientReply(to="", accepted=True) for _ in range(rows)])
    if outcome == "failed" and isinstance(body, dict):
        return Reply(status, None, REJECTED_CODE, _errors_text(body.get("errors")))
    if status in (401, 403, 404, 405) or (400 <= status < 500 and status != 429):
        return Reply(status, None, None, f"HTTP {status} from {response.request.url}")
    if status == 429:
        return Reply(status, None, None, "rate limited")
    raise Ambiguous(f"HTTP {status} without the documented body: the upload may have landed")
