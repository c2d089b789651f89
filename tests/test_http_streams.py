"""The provider client's network layer (``worker.http_streams``) against real servers on
127.0.0.1: plain and TLS, and every way a connection can go wrong, each raising the
exception httpcore's own (anyio) backend raises, so ``worker.provider`` tells a call
never sent from one whose outcome is unknown exactly as before."""

from __future__ import annotations

import asyncio
import gc
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import trustme

from worker.http_streams import StreamsTransport
from worker.provider import Ambiguous, NotSent, ProviderClient

LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_whole_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """Its body."""
    return (await read_whole_request(reader)).split(b"\r\n\r\n", 1)[1]


def answer(body: bytes, *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


@asynccontextmanager
async def server(
    handler: Handler, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[int, list[int]]]:
    """A server on a free port; yields the port and a list that counts its connections."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield srv.sockets[0].getsockname()[1], connections
    finally:
        srv.close()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive: answer each request with its own body, until the client goes."""
    while True:
        body = await read_request(reader)
        writer.write(answer(body))
        await writer.drain()


def clients(
    ssl_context: ssl.SSLContext | None = None,
) -> list[tuple[str, httpx.AsyncClient]]:
    """The same client twice: on httpcore's default (anyio) backend, and on ours."""
    verify: ssl.SSLContext | bool = ssl_context or True
    return [
        ("anyio", httpx.AsyncClient(limits=LIMITS, verify=verify, timeout=0.5)),
        (
            "streams",
            httpx.AsyncClient(
                transport=StreamsTransport(limits=LIMITS, ssl_context=ssl_context), timeout=0.5
            ),
        ),
    ]


async def test_plain_requests_share_one_connection() -> None:
    async with server(echo) as (port, connections):
        _, client = clients()[1]
        async with client:
            for n in range(5):
                response = await client.post(f"http://127.0.0.1:{port}/", content=b"x" * n * 1000)
                assert response.status_code == 200
                assert response.content == b"x" * n * 1000
    assert len(connections) == 1  # kept alive


async def test_tls_with_a_certificate_the_client_trusts() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with server(echo, server_context) as (port, connections):
        _, client = clients(client_context)[1]
        async with client:
            for body in (b"secret", b"y" * 200_000):  # more than one TLS record
                response = await client.post(f"https://localhost:{port}/", content=body)
                assert response.content == body
            assert response.extensions["network_stream"].get_extra_info("ssl_object") is not None
    assert len(connections) == 1


async def test_tls_with_an_untrusted_certificate_is_a_connect_error() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    async with server(echo, server_context) as (port, _):
        _, client = clients()[1]  # the system's CAs: not this one
        async with client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"https://localhost:{port}/")


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    """The server closes each connection after answering but says nothing of it (no
    ``Connection: close``): the pool must see the close and dial again, not send the
    next request into a dead connection (which could only end as 'unknown')."""

    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader)
        writer.write(answer(body))
        await writer.drain()

    for name, client in clients():
        async with server(once) as (port, connections), client:
            for _ in range(3):
                response = await client.post(f"http://127.0.0.1:{port}/", content=b"a")
                assert response.status_code == 200, name
                await asyncio.sleep(0.05)  # the close reaches the client
            assert len(connections) == 3, name


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.sleep(5)


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)


async def half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.transport.abort()  # RST, not FIN


@pytest.mark.parametrize("handler", [silent, hang_up, half_answer, reset])
async def test_failures_raise_what_the_anyio_backend_raises(handler: Handler) -> None:
    raised: dict[str, type[BaseException]] = {}
    for name, client in clients():
        async with server(handler) as (port, _), client:
            with pytest.raises(httpx.HTTPError) as caught:
                await client.post(f"http://127.0.0.1:{port}/", content=b"{}")
            raised[name] = type(caught.value)
    assert raised["streams"] is raised["anyio"], raised


async def test_refused_connection_raises_what_the_anyio_backend_raises() -> None:
    async with server(echo) as (port, _):
        pass  # closed: nothing listens on the port any more
    raised = {}
    for name, client in clients():
        async with client:
            with pytest.raises(httpx.HTTPError) as caught:
                await client.get(f"http://127.0.0.1:{port}/")
            raised[name] = type(caught.value)
    assert raised["streams"] is raised["anyio"] is httpx.ConnectError


async def test_the_provider_client_tells_unsent_from_unknown() -> None:
    """Through ``ProviderClient`` (which uses this transport): nothing listening is
    ``NotSent``; a request the server read and dropped is ``Ambiguous``."""
    async with server(hang_up) as (port, _):
        client = ProviderClient(f"http://127.0.0.1:{port}", ("u", "p"), timeout=1)
        with pytest.raises(Ambiguous):
            await client.post("/api/rest/sms", {"to": ["34666000001"]})
        await client.aclose()
    client = ProviderClient(f"http://127.0.0.1:{port}", ("u", "p"), timeout=1, connect_attempts=1)
    with pytest.raises(NotSent):
        await client.post("/api/rest/sms", {"to": ["34666000001"]})
    await client.aclose()


def recording(seen: list[bytes]) -> Handler:
    """Keep-alive: keep each whole request in ``seen``, answer each that the one
    recipient was accepted."""

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await read_whole_request(reader))
            writer.write(answer(b'{"result": [{"to": "34666000001", "accepted": true}]}'))
            await writer.drain()

    return record


async def test_the_provider_client_sends_what_its_httpx_client_would() -> None:
    """``ProviderClient.post`` goes straight to the transport (``_send``): the request
    line, headers (Basic auth, JSON, host, length) and body are the ones
    ``httpx.AsyncClient.post`` sends with the same settings."""
    seen: list[bytes] = []
    async with server(recording(seen)) as (port, _):
        client = ProviderClient(f"http://127.0.0.1:{port}/base", ("user", "pässword"), timeout=1)
        reply = await client.post("/api/rest/sms", {"to": ["34666000001"]})
        await client._client.post("/api/rest/sms", content=b'{"to":["34666000001"]}')
        await client.aclose()
    assert reply.http_status == 200 and [r.accepted for r in reply.results or []] == [True]
    ours, httpx_own = seen
    assert ours.startswith(b"POST /base/api/rest/sms HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Basic dXNlcjpww6Rzc3dvcmQ=\r\n" in ours
    assert parsed(ours) == parsed(httpx_own)


def parsed(request: bytes) -> tuple[bytes, set[bytes], bytes]:
    """A request's line, its headers (in any order) and its body."""
    head, body = request.split(b"\r\n\r\n", 1)
    line, *headers = head.split(b"\r\n")
    return line, set(headers), body


async def test_a_provider_answer_is_freed_without_the_cyclic_collector() -> None:
    """A call's request and response (a thousand recipients' bytes each way) go the
    moment the call is over: in no reference cycle that waits for the collector, which
    a worker runs rarely (``worker.main._tune_collector``)."""
    async with server(echo) as (port, _):
        client = ProviderClient(f"http://127.0.0.1:{port}", ("u", "p"), timeout=1)
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            await client.post("/api/rest/sms", {"result": [{"to": "1", "accepted": True}]})
            gc.collect()
            left = [o for o in gc.garbage if isinstance(o, httpx.Request | httpx.Response)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        await client.aclose()
    assert left == []


async def test_the_provider_client_goes_through_a_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``HTTP_PROXY`` carries the provider's calls (the request in absolute form, to the
    proxy), as httpx's own client does with ``trust_env``; ``NO_PROXY`` exempts a host."""
    seen: list[bytes] = []
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    async with server(recording(seen)) as (port, _):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        client = ProviderClient("http://provider.invalid", ("u", "p"), timeout=1)
        reply = await client.post("/api/rest/sms", {"to": ["34666000001"]})
        await client.aclose()
        assert reply.http_status == 200 and len(seen) == 1
        assert seen[0].startswith(b"POST http://provider.invalid/api/rest/sms HTTP/1.1\r\n")
        monkeypatch.setenv("NO_PROXY", "provider.invalid")
        client = ProviderClient("http://provider.invalid", ("u", "p"), timeout=1)
        with pytest.raises(NotSent):  # straight to a host that does not exist
            await client.post("/api/rest/sms", {"to": ["34666000001"]})
        await client.aclose()
    assert len(seen) == 1
