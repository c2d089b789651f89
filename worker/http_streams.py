"""httpcore's network layer on asyncio's own streams, for the messaging API client.

httpx reaches the network through httpcore, and httpcore on asyncio goes through
anyio, which costs a 1,000-recipient call more than its parsing does: each read
resumes and pauses the transport (two ``epoll_ctl``), each write yields to the
loop once more (anyio's checkpoint), and before every request the pool asks each
idle connection whether the server has closed it, which anyio answers by building
a socket's attribute map and asking the kernel for its peer's address. Here a
connection is a ``StreamReader``/``StreamWriter`` pair: a read takes what the
transport has already buffered, a write returns at once below the high-water
mark, and "closed by the server" is a look at the reader. In
``bench/profile_worker.py`` (300,000 recipients, taking turns) the worker went from
7.9 and 8.4 to 7.4 and 7.8 µs of CPU a recipient.

Errors map as httpcore's own anyio backend maps them, type for type, so httpx
raises what it raised before and ``worker.provider`` still tells a call that was
never sent (a connect error) from one whose outcome is unknown (a read or write
error after connecting).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


@contextmanager
def _mapped(timeout: type[Exception], error: type[Exception]) -> Iterator[None]:
    """A timeout as ``timeout``, and a broken connection (``OSError``, which asyncio's
    resets, refusals and TLS errors all are) as ``error``: httpcore's exceptions, which
    httpx maps to its own."""
    try:
        yield
    except TimeoutError as exc:
        raise timeout(str(exc) or type(exc).__name__) from exc
    except OSError as exc:
        raise error(str(exc) or type(exc).__name__) from exc


class StreamConnection(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)  # b'' once the server closed it

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            async with asyncio.timeout(timeout):
                if self._writer.transport.is_closing():
                    raise ConnectionResetError("the connection is closed")
                self._writer.write(buffer)
                await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
                async with asyncio.timeout(timeout):
                    await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except Exception:
            await self.aclose()
            raise
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # on an idle connection: the server closed it, or spoke
            return self._reader.at_eof() or _buffered(self._reader) or self._closing()
        key = {"client_addr": "sockname", "server_addr": "peername"}.get(info, info)
        return self._writer.get_extra_info(key)  # ssl_object, socket, the addresses

    def _closing(self) -> bool:
        return self._writer.transport.is_closing() or self._reader.exception() is not None


def _buffered(reader: asyncio.StreamReader) -> bool:
    """Bytes the transport read that nobody asked for: asyncio keeps them in the reader
    (anyio, pausing the transport, left them in the socket for httpcore to see)."""
    return bool(getattr(reader, "_buffer", b""))


class StreamsBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        return _with_options(reader, writer, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        return _with_options(reader, writer, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _with_options(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    socket_options: Iterable[SocketOption] | None,
) -> StreamConnection:
    sock = writer.get_extra_info("socket")
    for option in socket_options or ():
        sock.setsockopt(*option)
    return StreamConnection(reader, writer)


class StreamsTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request mapping, exception mapping, pool), its pool's
    connections made by ``StreamsBackend``. httpx takes no network backend, so the pool
    is made again with the same settings and that backend. A client given a transport
    mounts no proxy from the environment: ``worker.provider`` uses this one only where
    the environment names none for the provider."""

    def __init__(self, *, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        ssl_context = ssl_context or httpx.create_ssl_context()
        super().__init__(limits=limits, verify=ssl_context)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=StreamsBackend(),
        )
