"""A keep-alive HTTP/1.1 client on bare asyncio streams, for the HTTP benches.

On this 2-core machine httpx spends more CPU per request than the server it
measures (it drove ``bulksend serve`` to 640 requests/s where these connections
get 1,600/s), so a bench through httpx would measure httpx. This client writes
a request, reads the whole answer (status line, headers, a Content-Length body)
and returns its status and how long it took; nothing else.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit


class Connection:
    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.parts = urlsplit(url)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.head = f"Host: {self.parts.netloc}\r\n{extra}"

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(
            self.parts.hostname, self.parts.port
        )
        return self

    async def request(
        self, method: str, target: str, body: bytes = b"", content_type: str = ""
    ) -> tuple[int, bytes, float]:
        """(status, body, seconds until the whole answer was in)."""
        typed = f"Content-Type: {content_type}\r\n" if content_type else ""
        head = f"{method} {target} HTTP/1.1\r\n{self.head}{typed}Content-Length: {len(body)}\r\n"
        sent = time.perf_counter()
        self.writer.write(head.encode() + b"\r\n" + body)
        status = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        answer = await self.reader.readexactly(length)
        return int(status.split()[1]), answer, time.perf_counter() - sent

    def close(self) -> None:
        self.writer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
