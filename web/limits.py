"""The largest body the service reads (``BULKSEND_API_MAX_BODY_MB``), enforced as it arrives.

A body is refused with 413 at its declared ``Content-Length`` before a byte is
read, and — for chunked bodies, which declare none — as soon as the bytes
counted while reading pass the limit. So an oversize body is never held whole,
whatever reads it (``request.body()``, or the multipart parser spooling an
upload to disk).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.errors import TooLarge, error_response

__all__ = ["BodyLimit"]


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> TooLarge:
        mib = self.max_bytes / (1024 * 1024)
        return TooLarge(
            f"body: larger than {mib:g} MiB (BULKSEND_API_MAX_BODY_MB)",
            field="body",
            reason=f"larger than {mib:g} MiB (BULKSEND_API_MAX_BODY_MB)",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(self._too_large())(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()  # the app's error handler answers 413
            return message

        await self.app(scope, counted, send)
