"""The HTTP API (``bulksend serve``) as a client sees it: a real server process on loopback.

Every test starts ``python -m bulksend serve`` with the test services' environment
plus tokens (``ServeProcess``, the helper the demo uses too) and talks to it with
httpx; workers are the in-process ``drain`` on the same Redis. Memory is measured
on the server process (``/proc/<pid>/status``), never wall-clock time.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import redis
from pydantic import SecretStr
from starlette.routing import Route

from bulksend.stack import ServeProcess, free_port
from jobs import channels, keys
from jobs.producer import Producer
from jobs.results import STATUSES
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import drain, numbers, sandbox_stats, set_faults
from web import create_app, dashboard
from web.openapi import REF
from web.sendings import Counts, SendingStatus, encode_cursor

TOKEN = "api-token-for-the-tests"
READONLY = "readonly-token-for-the-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT_MB = 1  # BULKSEND_API_MAX_BODY_MB of the test server

PHONES = ["34666555444", "34666555333"]
BAD_PHONE = "12"
RECEIPT = base64.b64encode(b"Thank you for your order.\n").decode()

# One request body per sendable channel, in the provider's own JSON: two valid
# recipients and one the provider would refuse with 102.
BODIES: dict[str, dict[str, Any]] = {
    "sms": {
        "to": [*PHONES, BAD_PHONE],
        "from": "SHOP",
        "message": "Hi {name}",
        "sub": [{"name": "Ana"}, {"name": "Luis"}, {"name": "x"}],
    },
    "email": {
        "to": ["ana@example.com", "luis@example.com", "not-an-address"],
        "fromEmail": "news@example.com",
        "replyTo": "help@example.com",
        "subject": "Your receipt",
        "body": "<p>Hello</p>",
        "attachments": [{"name": "receipt.txt", "content": RECEIPT, "contentType": "text/plain"}],
    },
    "voice": {
        "to": [*PHONES, BAD_PHONE],
        "message": "Your code is 1234",
        "language": "en_GB",
        "gender": "F",
    },
    "voice-audio": {"to": [*PHONES, BAD_PHONE], "audioUrl": "https://example.com/a.mp3"},
    "landing": {
        "to": [*PHONES, BAD_PHONE],
        "from": "SHOP",
        "message": "See {LAND_URL}",
        "templateBody": "<h1>Sale</h1>",
    },
    "whatsapp": {
        "templateId": 123,
        "from": "34666777555",
        "messages": [{"to": to, "bodyFields": ["Ana"]} for to in [*PHONES, BAD_PHONE]],
    },
}

CONTACTS_CSV = (
    "First name,Mobile,E-mail,Country\n"
    "Ana,600000001,ana@example.com,ES\n"
    "Luis,600000002,luis@example.com,ES\n"
    "Bad,12,,ES\n"
    "Marta,600000003,marta@example.com,ES\n"
)


# --- the server and its clients ------------------------------------------------------


@pytest.fixture
def serve(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start ``bulksend serve`` with the test services, both tokens and ``overrides``."""
    started: list[ServeProcess] = []

    def start(**overrides: str) -> ServeProcess:
        server_env = {
            **env,
            "BULKSEND_API_TOKEN": TOKEN,
            "BULKSEND_READONLY_TOKEN": READONLY,
            "BULKSEND_API_MAX_BODY_MB": str(LIMIT_MB),
            **overrides,
        }
        server = ServeProcess(server_env, log=tmp_path / f"serve-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(serve: Callable[..., ServeProcess]) -> ServeProcess:
    return serve()


@pytest.fixture
def api(server: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=120) as client:
        yield client


@pytest.fixture
def db(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def nothing_queued(db: redis.Redis, settings: Settings) -> bool:
    return db.zcard(keys.SENDINGS) == 0 and db.zcard(settings.queue_name) == 0


def error(response: httpx.Response) -> dict[str, Any]:
    """The error object of an error answer, after checking its shape."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"field", "reason", "code"}, body
    detail: dict[str, Any] = body["error"]
    return detail


def calls(db: redis.Redis, command: str) -> int:
    """How many times Redis ran ``command`` since the last CONFIG RESETSTAT."""
    stats: Any = db.info("commandstats")
    return int(stats[f"cmdstat_{command}"]["calls"])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def raw_post(
    url: str, path: str, headers: dict[str, str], chunks: Iterable[bytes]
) -> tuple[int, int]:
    """POST over a bare socket, stopping as soon as an answer arrives: (status, bytes sent)."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {parts.netloc}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sent = 0
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # answered before the body was all sent
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        answer = b""
        while b"\r\n" not in answer:
            received = sock.recv(65536)
            assert received, "connection closed without an answer"
            answer += received
    return int(answer.split(b" ")[1]), sent


# --- start-up, health, tokens --------------------------------------------------------


def test_serve_refuses_to_start_without_a_token(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bulksend", "serve", "--port", str(free_port())],
        env={k: v for k, v in env.items() if k != "BULKSEND_API_TOKEN"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78
    [line] = done.stderr.splitlines()
    assert line.startswith("bulksend: error: api_token:") and "BULKSEND_API_TOKEN" in line


def test_health_ready_and_docs_need_no_token(server: ServeProcess) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").json() == {"status": "ready"}
        assert anonymous.get("/openapi.json").status_code == 200
        assert anonymous.get("/docs").status_code == 200
        assert anonymous.get("/metrics").status_code == 401  # not public unless configured


def test_readyz_is_503_while_redis_is_away(serve: Callable[..., ServeProcess]) -> None:
    # Nothing listens there: the process still starts (liveness), and is not ready.
    server = serve(BULKSEND_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert error(ready) == {"field": None, "reason": "Redis does not answer", "code": None}
        assert client.get("/v1/sendings").status_code == 503


def test_tokens(server: ServeProcess, db: redis.Redis, settings: Settings, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for headers in (
            {},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"Authorization": "Bearer nope"},
        ):
            refused = client.get("/v1/sendings", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["WWW-Authenticate"] == "Bearer"
            assert error(refused)["field"] == "Authorization"
        assert client.post("/v1/sms", json=BODIES["sms"]).status_code == 401

        readonly = {"Authorization": f"Bearer {READONLY}"}
        assert client.get("/v1/sendings", headers=readonly).status_code == 200
        for path in ("/v1/sms", "/v1/sendings/s1/cancel", "/v1/account/resume"):
            forbidden = client.post(path, json=BODIES["sms"], headers=readonly)
            assert forbidden.status_code == 403
            assert error(forbidden)["field"] == "Authorization"
        assert nothing_queued(db, settings)

        assert client.post("/v1/sms", json=BODIES["sms"], headers=AUTH).status_code == 202
        lowercase = {"Authorization": f"bearer {TOKEN}"}
        assert client.get("/v1/sendings", headers=lowercase).status_code == 200
    logs = "".join(path.read_text() for path in tmp_path.glob("serve-*.log"))
    assert "GET /v1/sendings" in logs  # the access log is on, and shows no token
    assert TOKEN not in logs and READONLY not in logs


def test_metrics_route(serve: Callable[..., ServeProcess]) -> None:
    server = serve()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/metrics").status_code == 401
        answer = client.get("/metrics", headers=AUTH)
        if answer.status_code == 503:  # web.metrics not there yet
            assert answer.text == "metrics not built\n"
        else:
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/")
    public = serve(BULKSEND_METRICS_PUBLIC="true")
    assert httpx.get(f"{public.url}/metrics", timeout=30).status_code in (200, 503)


# --- enqueue ---------------------------------------------------------------------------


def test_there_is_a_body_for_every_sendable_channel() -> None:
    assert set(BODIES) == {c.kind for c in channels.all_channels() if c.sendable}


async def test_every_channel_enqueued_and_followed_to_final(
    api: httpx.Client, settings: Settings, sandbox_url: str
) -> None:
    ids = {}
    for kind, body in BODIES.items():
        answer = api.post(f"/v1/{kind}", json=body)
        assert answer.status_code == 202, answer.text
        ids[kind] = answer.json()["id"]
        assert answer.headers["Location"] == f"/v1/sendings/{ids[kind]}"
    await drain(settings)
    for kind, sending_id in ids.items():
        status = api.get(f"/v1/sendings/{sending_id}").json()
        assert (status["kind"], status["state"], status["final"]) == (kind, "done", True)
        counts = status["counts"]
        assert (counts["total"], counts["accepted"], counts["rejected"]) == (3, 2, 1), kind
        assert sandbox_stats(sandbox_url, kind)["recipients"] == 2
        SendingStatus.model_validate(status)

    lines = api.get(f"/v1/sendings/{ids['sms']}/results").text.splitlines()
    records = [orjson.loads(line) for line in lines]
    assert [(r["index"], r["to"], r["status"]) for r in records] == [
        (0, PHONES[0], "accepted"),
        (1, PHONES[1], "accepted"),
        (2, BAD_PHONE, "rejected"),
    ]
    rejected = api.get(f"/v1/sendings/{ids['sms']}/results", params={"status": "rejected"})
    assert rejected.headers["content-type"] == "application/x-ndjson"
    assert [orjson.loads(line)["code"] for line in rejected.text.splitlines()] == [102]

    report = api.get(f"/v1/sendings/{ids['email']}/report", params={"status": "rejected"})
    assert report.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(report.text)))
    assert rows[0][:3] == ["index", "to", "status"]
    assert [row[1:4] for row in rows[1:]] == [["not-an-address", "rejected", "102"]]


def test_bad_input_is_422_naming_the_field_and_nothing_is_queued(
    api: httpx.Client, db: redis.Redis, settings: Settings
) -> None:
    sender = api.post("/v1/sms", json={**BODIES["sms"], "from": "WAYTOOLONGSENDER"})
    assert sender.status_code == 422
    assert error(sender)["field"] == "from" and error(sender)["code"] == 107
    extra = api.post("/v1/voice", json={**BODIES["voice"], "fax": True})
    assert (extra.status_code, error(extra)["field"], error(extra)["code"]) == (422, "fax", None)
    attachment = {"name": "a.txt", "content": "not base64!", "contentType": "text/plain"}
    mail = api.post("/v1/email", json={**BODIES["email"], "attachments": [attachment]})
    assert mail.status_code == 422 and "base64" in error(mail)["reason"]
    nobody = api.post("/v1/sms", json={"to": [BAD_PHONE], "from": "SHOP", "message": "hi"})
    assert nobody.status_code == 422 and error(nobody)["code"] == 102
    key = api.post("/v1/sms", json=BODIES["sms"], headers={"Idempotency-Key": "k" * 300})
    assert (key.status_code, error(key)["field"]) == (422, "Idempotency-Key")
    assert nothing_queued(db, settings)


def test_a_body_that_is_not_a_json_object_is_400(
    api: httpx.Client, db: redis.Redis, settings: Settings
) -> None:
    for content in (b"not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe"):
        answer = api.post("/v1/sms", content=content)
        assert answer.status_code == 400, content
        assert error(answer)["field"] == "body"
    assert nothing_queued(db, settings)


def test_unknown_routes_and_methods_answer_in_the_error_shape(api: httpx.Client) -> None:
    unknown = api.post("/v1/fax", json={})
    assert (unknown.status_code, error(unknown)["field"]) == (404, None)
    assert api.post("/v1/contacts", json={}).status_code == 404  # not a sendable channel
    wrong = api.get("/v1/sms")
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]
    assert error(wrong)["reason"] == "Method Not Allowed"


def test_a_body_over_the_limit_is_413_whether_declared_or_chunked(
    server: ServeProcess, db: redis.Redis, settings: Settings
) -> None:
    limit = LIMIT_MB * 1024 * 1024
    big = {**BODIES["sms"], "message": "x" * (limit + 10)}
    declared = httpx.post(f"{server.url}/v1/sms", json=big, headers=AUTH, timeout=60)
    assert declared.status_code == 413 and error(declared)["field"] == "body"

    # A declared length over the limit is refused before any of the body is sent.
    headers = {**AUTH, "Content-Type": "application/json", "Content-Length": str(50 * limit)}
    status, sent = raw_post(server.url, "/v1/sms", headers, [])
    assert (status, sent) == (413, 0)

    # Chunked (no length declared): refused once the bytes read pass the limit, long
    # before the 32 MiB the client would send.
    piece = b"x" * 65536
    chunks = (b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(512))
    headers = {**AUTH, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    status, sent = raw_post(server.url, "/v1/sms", headers, chunks)
    assert status == 413 and sent < 512 * len(piece)
    assert nothing_queued(db, settings)


async def test_idempotency_key_one_sending_under_20_concurrent_requests(
    server: ServeProcess, db: redis.Redis
) -> None:
    body = {"to": numbers(2500), "from": "SHOP", "message": "Hi"}  # three chunks
    headers = {**AUTH, "Idempotency-Key": "order-42"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=120) as client:
        answers = await asyncio.gather(*(client.post("/v1/sms", json=body) for _ in range(20)))
        assert {a.status_code for a in answers} == {202}
        [sending_id] = {a.json()["id"] for a in answers}
        assert db.zcard(keys.SENDINGS) == 1
        status = (await client.get(f"/v1/sendings/{sending_id}")).json()
        assert status["counts"]["total"] == status["counts"]["queued"] == 2500
        assert status["chunks"] == 3

        again = await client.post("/v1/sms", json=body)
        assert (again.status_code, again.json()["id"]) == (202, sending_id)
        other = await client.post("/v1/sms", json={**body, "message": "Hello"})
        assert other.status_code == 409 and error(other)["field"] == "Idempotency-Key"
    assert db.zcard(keys.SENDINGS) == 1


# --- imports ---------------------------------------------------------------------------


async def test_import_upload_followed_to_final(
    api: httpx.Client, settings: Settings, sandbox_url: str
) -> None:
    form = {"group": "Customers", "country": "ES", "map": ["E-mail=email", "Mobile=phone"]}
    files = {"file": ("crm-export.csv", CONTACTS_CSV.encode(), "text/csv")}
    headers = {"Idempotency-Key": "import-1"}
    answer = api.post("/v1/imports", data=form, files=files, headers=headers)
    assert answer.status_code == 202, answer.text
    sending_id = answer.json()["id"]
    assert answer.headers["Location"] == f"/v1/sendings/{sending_id}"
    again = api.post("/v1/imports", data=form, files=files, headers=headers)
    assert again.json()["id"] == sending_id
    await drain(settings)
    status = api.get(f"/v1/sendings/{sending_id}").json()
    assert status["kind"] == "contacts" and status["final"]
    assert (status["counts"]["accepted"], status["counts"]["rejected"]) == (3, 1)
    report = api.get(f"/v1/sendings/{sending_id}/report", params={"status": "rejected"})
    rows = list(csv.reader(io.StringIO(report.text)))
    assert rows[0] == ["First name", "Mobile", "E-mail", "Country", "row", "reason"]
    assert rows[1][:5] == ["Bad", "12", "", "ES", "4"]
    assert api.get("/v1/sendings", params={"kind": "contacts"}).json()["data"][0]["id"] == (
        sending_id
    )


def test_import_refusals(api: httpx.Client, db: redis.Redis, settings: Settings) -> None:
    csv_file = {"file": ("c.csv", CONTACTS_CSV.encode(), "text/csv")}
    missing = api.post("/v1/imports", data={"group": "Customers"}, files={"x": ("x", b"")})
    assert (missing.status_code, error(missing)["field"]) == (422, "file")
    bad_map = api.post("/v1/imports", data={"group": "G", "map": "nope"}, files=csv_file)
    assert (bad_map.status_code, error(bad_map)["field"]) == (422, "map")
    no_group = api.post("/v1/imports", files=csv_file)
    assert (no_group.status_code, error(no_group)["field"]) == (422, "group")
    header_only = {"file": ("c.csv", b"First name,Mobile\n", "text/csv")}
    empty = api.post("/v1/imports", data={"group": "G"}, files=header_only)
    assert (empty.status_code, error(empty)["field"]) == (422, "file")
    as_json = api.post("/v1/imports", json={"group": "G"})
    assert (as_json.status_code, error(as_json)["field"]) == (400, "body")
    huge = {"file": ("c.csv", b"a,b\n" * (LIMIT_MB * 300_000), "text/csv")}
    too_big = api.post("/v1/imports", data={"group": "G"}, files=huge)
    assert (too_big.status_code, error(too_big)["field"]) == (413, "body")
    assert nothing_queued(db, settings)


# --- reading and acting -------------------------------------------------------------


def test_unknown_sending_is_404_on_every_route(api: httpx.Client) -> None:
    expected = {"field": "id", "reason": "no sending 'nope'", "code": None}
    for method, path in [
        ("GET", "/v1/sendings/nope"),
        ("GET", "/v1/sendings/nope/results"),
        ("GET", "/v1/sendings/nope/report"),
        ("POST", "/v1/sendings/nope/cancel"),
        ("POST", "/v1/sendings/nope/requeue?unknown=1"),
    ]:
        answer = api.request(method, path)
        assert (answer.status_code, error(answer)) == (404, expected), path


def test_cancel(api: httpx.Client) -> None:
    sending_id = api.post("/v1/sms", json=BODIES["sms"]).json()["id"]
    status = api.post(f"/v1/sendings/{sending_id}/cancel").json()
    assert status["id"] == sending_id and status["final"] and "cancelled_at" in status
    assert (status["counts"]["cancelled"], status["counts"]["rejected"]) == (2, 1)
    SendingStatus.model_validate(status)


async def test_requeue_unknown(api: httpx.Client, settings: Settings, sandbox_url: str) -> None:
    set_faults(sandbox_url, empty_body={"status": 202})  # it may have landed: unknown
    sending_id = api.post("/v1/sms", json=BODIES["sms"]).json()["id"]
    await drain(settings)
    assert api.get(f"/v1/sendings/{sending_id}").json()["counts"]["unknown"] == 2
    refused = api.post(f"/v1/sendings/{sending_id}/requeue")
    assert (refused.status_code, error(refused)["field"]) == (400, "unknown")
    set_faults(sandbox_url)
    requeued = api.post(f"/v1/sendings/{sending_id}/requeue", params={"unknown": "1"})
    assert requeued.json() == {"requeued": 2}
    await drain(settings)
    assert api.get(f"/v1/sendings/{sending_id}").json()["counts"]["accepted"] == 2


async def test_account_resume(api: httpx.Client, settings: Settings, sandbox_url: str) -> None:
    set_faults(sandbox_url, credits=0)  # 402 / 111: the account is held
    sending_id = api.post("/v1/sms", json=BODIES["sms"]).json()["id"]
    await drain(settings)
    status = api.get(f"/v1/sendings/{sending_id}").json()
    assert status["account"]["state"] == "held" and status["account"]["code"] == 111
    assert api.post("/v1/account/resume", params={"channel": "fax"}).status_code == 422
    set_faults(sandbox_url)  # credits bought
    lifted = api.post("/v1/account/resume").json()
    assert lifted["account"] == f"{settings.provider_username}@{urlsplit(sandbox_url).netloc}"
    assert (lifted["lifted"]["state"], lifted["lifted"]["code"]) == ("held", 111)
    assert api.post("/v1/account/resume").json()["lifted"] is None
    await drain(settings)
    status = api.get(f"/v1/sendings/{sending_id}").json()
    assert status["account"] is None and status["counts"]["accepted"] == 2


def test_list_filters_and_cursor(api: httpx.Client) -> None:
    ids = [api.post(f"/v1/{kind}", json=BODIES[kind]).json()["id"] for kind in BODIES]
    api.post(f"/v1/sendings/{ids[0]}/cancel")
    newest_first = ids[::-1]
    seen, cursor = [], None
    while True:
        page = api.get(
            "/v1/sendings", params={"limit": 4, **({"cursor": cursor} if cursor else {})}
        )
        body = page.json()
        seen += [status["id"] for status in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first
    voice = api.get("/v1/sendings", params={"kind": "voice"}).json()
    assert [s["kind"] for s in voice["data"]] == ["voice"] and voice["next_cursor"] is None
    done = api.get("/v1/sendings", params={"state": "done"}).json()["data"]
    assert [s["id"] for s in done] == [ids[0]]
    future = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1).isoformat()
    assert api.get("/v1/sendings", params={"created_after": future}).json()["data"] == []
    assert len(api.get("/v1/sendings", params={"created_after": "2000-01-01"}).json()["data"]) == 6
    for params, field in [
        ({"state": "asleep"}, "state"),
        ({"kind": "fax"}, "kind"),
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
    ]:
        refused = api.get("/v1/sendings", params=params)
        assert (refused.status_code, error(refused)["field"]) == (422, field), params


def test_list_pages_through_100k_sendings_reading_one_page_each(
    api: httpx.Client, db: redis.Redis
) -> None:
    # The newer half created one at a time, the older half seven at a time (equal
    # creation times): pages cut through groups of ties.
    n, ties = 100_000, 7
    base = time.time() - n
    members = [(f"s{i:020x}", base + (i if i >= n // 2 else i // ties * ties)) for i in range(n)]
    pipe = db.pipeline(transaction=False)
    for i, (sending_id, score) in enumerate(members):
        pipe.hset(keys.sending(sending_id), mapping={"kind": "sms", "state": "done", "total": 1})
        pipe.zadd(keys.SENDINGS, {sending_id: score})
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    expected = [m for m, _ in sorted(members, key=lambda m: (m[1], m[0]), reverse=True)]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        body = api.get("/v1/sendings", params=params).json()
        seen += [status["id"] for status in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected  # every sending once, newest first, ties included

    # A page deep in the listing reads its 50 sendings and one range of the index, or
    # two when it starts inside a group of ties (50,079 does: the newest group of the
    # older half has 6, the others 7).
    created = dict(members)
    for start, ranges in ((495, 1), (50_079, 2)):
        last = expected[start - 1]
        db.config_resetstat()
        params = {"limit": 50, "cursor": encode_cursor((created[last], last))}
        page = api.get("/v1/sendings", params=params).json()
        assert [s["id"] for s in page["data"]] == expected[start : start + 50]
        assert calls(db, "hmget") == 50
        assert calls(db, "zrevrangebyscore") == ranges
    # A filter that matches nothing reads a bounded number of sendings, and says where
    # to go on.
    db.config_resetstat()
    empty = api.get("/v1/sendings", params={"state": "running"}).json()
    assert empty["data"] == [] and empty["next_cursor"] is not None
    assert calls(db, "hmget") <= 5000


async def test_results_of_100k_recipients_stream_at_flat_memory(
    server: ServeProcess, settings: Settings
) -> None:
    n = 100_000
    producer = await Producer.connect(settings)
    try:
        job = Sms.model_validate({"to": [*numbers(n), BAD_PHONE], "from": "SHOP", "message": "Hi"})
        sending_id = await producer.submit(job)
    finally:
        await producer.close()
    before = rss_mb(server.pid)
    peak, lines = before, 0
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=300) as client:
        url = f"/v1/sendings/{sending_id}/results"
        async with client.stream("GET", url) as answer:
            assert answer.status_code == 200
            async for _line in answer.aiter_lines():
                lines += 1
                if lines % 5000 == 0:
                    peak = max(peak, rss_mb(server.pid))
        rejected = (await client.get(url, params={"status": "rejected"})).text.splitlines()
    assert lines == n + 1
    assert [orjson.loads(line)["index"] for line in rejected] == [n]
    print(f"server RSS {before:.0f} MB before, peak {peak:.0f} MB streaming {n:,} records")
    assert peak < 300


# --- the document ------------------------------------------------------------------------


def test_openapi_lists_every_route_with_the_models_schemas(
    server: ServeProcess, settings: Settings
) -> None:
    document = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    assert document["openapi"].startswith("3.1")
    app = create_app(settings.model_copy(update={"api_token": SecretStr("x")}))
    # The dashboard's pages (``/`` and ``/ui/…``) are HTML for people, not API.
    api_routes = [r for r in app.routes if not dashboard.owns(getattr(r, "path", ""))]
    served = {
        (route.path, method.lower())
        for route in api_routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert all(isinstance(route, Route) for route in api_routes)
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert served == documented and len(served) == 25

    schemas = document["components"]["schemas"]
    for channel in channels.all_channels():
        if not channel.sendable:
            continue
        operation = document["paths"][f"/v1/{channel.kind}"]["post"]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        own = channel.model.model_json_schema(by_alias=True, ref_template=REF)
        for name, definition in own.pop("$defs", {}).items():
            assert schemas[name] == definition
        assert schemas[ref.rsplit("/", 1)[1]] == own
        assert {"202", "400", "401", "403", "409", "413", "422"} <= set(operation["responses"])
    error_ref = document["paths"]["/v1/sms"]["post"]["responses"]["422"]["content"]
    assert error_ref["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert set(schemas["ErrorDetail"]["properties"]) == {"field", "reason", "code"}
    assert set(schemas["Counts"]["properties"]) == {"total", *STATUSES}
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert "security" not in document["paths"]["/v1/sendings"]["get"]


def test_status_schema_is_the_status_the_producer_returns(api: httpx.Client) -> None:
    sending_id = api.post("/v1/sms", json=BODIES["sms"]).json()["id"]
    for status in (
        api.get(f"/v1/sendings/{sending_id}").json(),
        api.get("/v1/sendings").json()["data"][0],
    ):
        assert set(status) <= set(SendingStatus.model_fields)
        assert list(status["counts"]) == list(Counts.model_fields)
        SendingStatus.model_validate(status)


def test_docs_page_is_offline_html_listing_every_route(server: ServeProcess) -> None:
    page = httpx.get(f"{server.url}/docs", timeout=30)
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script" not in html.lower()
    assert 'src="http' not in html and 'href="http' not in html and "@import" not in html
    document = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    for path in document["paths"]:
        assert f"<code>{path}</code>" in html
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in html


# Whatever it sends: no 5xx, and every answer is one the document lists, in its media
# type and its schema. (Not "schema-valid data is accepted": the channels' rules —
# the provider's — are richer than JSON Schema says.)
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


def test_no_server_error_under_schemathesis(server: ServeProcess) -> None:
    """A bounded property-based run over the document (3 cases per route, 42 in all)."""
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    run = subprocess.run(
        [
            st, "run", f"{server.url}/openapi.json",
            "--checks", ",".join(CHECKS),
            "--phases", "fuzzing",
            "--max-examples", "3",
            "--include-path-regex", "^/v1/",
            "--workers", "1",
            "--seed", "1",
            "--generation-database", "none",
            "--header", f"Authorization: Bearer {TOKEN}",
            "--request-timeout", "30",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
