"""Suppression: addresses never sent to again, against a real Redis, the sandbox, the CLI
and a real ``bulksend serve``.

The lists (``jobs.suppression``), how the producer records a suppressed recipient
(final, never in a chunk, counted), ``bulksend suppress``, ``/v1/suppressions``, and
the sync with the provider's blacklist (``worker.blacklist``) against the sandbox's.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from redis.asyncio import Redis

from bulksend.stack import ServeProcess
from jobs import chunks, keys, suppression
from jobs.email import Email
from jobs.errors import InvalidJob
from jobs.producer import Producer
from jobs.settings import Settings
from jobs.sms import Sms
from jobs.whatsapp import WhatsApp
from tests.helpers import drain, numbers, running_worker, sandbox_stats, wait_until
from worker import blacklist

TOKEN = "api-token-for-the-suppression-tests"
READONLY = "readonly-token-for-the-suppression-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BULKSEND = [sys.executable, "-m", "bulksend"]


@pytest.fixture
async def db(redis_url: str) -> AsyncIterator[Any]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(settings.model_copy(update={"chunk_size": 3}))
    yield p
    await p.close()


def sms(to: list[str]) -> Sms:
    return Sms.model_validate({"to": to, "from": "TEST", "message": "Hello"})


def email(to: list[str]) -> Email:
    return Email.model_validate(
        {
            "to": to,
            "fromEmail": "news@example.com",
            "replyTo": "help@example.com",
            "subject": "News",
            "body": "<p>Hi</p>",
        }
    )


async def records(producer: Producer, sending_id: str) -> list[dict[str, Any]]:
    return [dict(r) async for r in producer.store.iter_results(sending_id)]


def sandbox_sent(sandbox_url: str, channel: str) -> list[str]:
    answer = httpx.get(
        f"{sandbox_url}/_sandbox/messages", params={"channel": channel, "limit": 1000}
    ).json()
    return [str(m["to"]) for m in answer["messages"]]


def commands(db: redis.Redis, command: str) -> int:
    stats: Any = db.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {"calls": 0})["calls"])


# --- the rules ----------------------------------------------------------------------


def test_each_kind_has_its_list_and_an_import_none() -> None:
    assert suppression.LISTS == ("sms", "voice", "mailing")
    found = {kind: suppression.list_for_kind(kind) for kind in ("sms", "landing", "whatsapp")}
    assert found == {"sms": "sms", "landing": "sms", "whatsapp": "sms"}
    assert suppression.list_for_kind("voice") == suppression.list_for_kind("voice-audio") == "voice"
    assert suppression.list_for_kind("email") == "mailing"
    assert suppression.list_for_kind("contacts") is None


def test_normalization_is_trim_and_lower_for_mail_digits_for_phones() -> None:
    assert (
        suppression.normalize("mailing", "  Ana.Lopez@Example.COM \r\n") == "ana.lopez@example.com"
    )
    assert suppression.normalize("sms", "+34 666-555-444") == "34666555444"
    assert suppression.normalize("voice", "(0034) 666.555.444") == "0034666555444"
    assert suppression.normalize("sms", "666555444") == "666555444"  # national ≠ international
    # ASCII only, as the Lua twin sees bytes: other scripts' digits are not digits.
    assert suppression.normalize("sms", "٣٤٦٦٦") == ""


@pytest.mark.parametrize(
    ("list_name", "address", "why"),
    [
        ("sms", "12345", "fewer than 6 digits"),
        ("sms", "+34 66", "fewer than 6 digits"),
        ("sms", "call 666555444", "only digits"),
        ("voice", "", "empty"),
        ("mailing", "ana@example", "no dot"),
        ("mailing", "ana@@example.com", "exactly one @"),
        ("mailing", "ana.example.com", "exactly one @"),
        ("mailing", "@example.com", "nothing before"),
    ],
)
def test_what_is_not_an_address_is_refused_with_a_reason(
    list_name: str, address: str, why: str
) -> None:
    found = suppression.problem(list_name, address)
    assert found is not None and why in found


def test_addresses_that_are_fine() -> None:
    for list_name, address in (("sms", "666555"), ("voice", "+34 666 555 444")):
        assert suppression.problem(list_name, address) is None
    assert suppression.problem("mailing", " Ana@Example.com ") is None


# --- the lists in Redis --------------------------------------------------------------


async def test_add_keeps_the_first_entry_and_remove_says_whether_it_was_there(db: Any) -> None:
    assert await suppression.add(db, "sms", "+34 666 555 444", "asked by phone")
    assert not await suppression.add(db, "sms", "34666555444", "another reason", "import")
    found = await suppression.get_many(db, "sms", ["34-666-555-444", "34666555333"])
    assert list(found) == ["34666555444"]
    entry = found["34666555444"]
    assert entry["reason"] == "asked by phone" and entry["source"] == "manual"
    assert entry["sending"] is None and entry["at"].startswith("20")
    stored = orjson.loads(await db.hget(keys.suppression("sms"), "34666555444"))
    assert set(stored) == {"reason", "at", "source", "sending"}
    assert await suppression.count(db, "sms") == 1 and await suppression.count(db, "voice") == 0
    assert await suppression.remove(db, "sms", "+34666555444")
    assert not await suppression.remove(db, "sms", "34666555444")
    assert await suppression.count(db, "sms") == 0


async def test_bad_list_or_address_is_invalid_job_naming_the_field(db: Any) -> None:
    with pytest.raises(InvalidJob) as bad_list:
        await suppression.add(db, "email", "ana@example.com", "x")
    assert bad_list.value.field == "channel" and "mailing" in bad_list.value.reason
    with pytest.raises(InvalidJob) as bad_address:
        await suppression.add(db, "mailing", "not-an-address", "x")
    assert bad_address.value.field == "address"


async def test_pages_by_hscan_reach_every_entry_once(db: Any) -> None:
    phones = numbers(700)
    for phone in phones:
        await suppression.add(db, "voice", phone, "bulk")
    seen: list[str] = []
    cursor, steps = 0, 0
    while True:
        entries, cursor = await suppression.page(db, "voice", cursor, 100)
        steps += 1
        seen += [e["address"] for e in entries]
        assert all(e["channel"] == "voice" and e["reason"] == "bulk" for e in entries)
        if cursor == 0:
            break
    assert sorted(set(seen)) == sorted(phones) and steps > 1


async def test_import_file_one_per_line_and_csv_with_refused_lines(db: Any, tmp_path: Path) -> None:
    plain = tmp_path / "phones.txt"
    plain.write_text("+34 666 555 444\n\n123\n34666555333\r\n34666555444\n")
    added, refused = await suppression.import_file(db, "sms", plain, "list from the shop")
    assert added == 2  # the fifth line is the first one again
    assert [line for line, _ in refused] == [2, 3]
    assert refused[0][1] == "empty line" and "fewer than 6 digits" in refused[1][1]
    entry = (await suppression.get_many(db, "sms", ["34666555333"]))["34666555333"]
    assert entry["source"] == "import" and entry["reason"] == "list from the shop"

    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "name;Email;city\nAna;ANA@example.com;Madrid\nLuis;luis@;Lisboa\nEva;;Paris\n"
        '"Marta, Jr";marta@example.org;Roma\n'
    )
    added, refused = await suppression.import_file(db, "mailing", csv_file, "old list")
    assert added == 2
    assert [line for line, _ in refused] == [3, 4]
    assert "no dot" in refused[0][1] and refused[1][1] == "empty line"
    assert set(await suppression.get_many(db, "mailing", ["ana@example.com", "Marta@Example.org"]))

    first_column = tmp_path / "first.csv"
    first_column.write_text("666555111,Ana\n666555222,Luis\n")
    assert await suppression.import_file(db, "voice", first_column, "x") == (2, [])

    with pytest.raises(InvalidJob) as missing:
        await suppression.import_file(db, "voice", tmp_path / "nope.txt", "x")
    assert missing.value.field == "file"


# --- the producer ---------------------------------------------------------------------


async def test_suppressed_phone_is_recorded_and_never_reaches_the_provider(
    producer: Producer, settings: Settings, sandbox_url: str, db: Any
) -> None:
    await suppression.add(db, "sms", "+34 666 000 0003", "unsubscribed by phone")
    to = numbers(7)  # 3466600000..: the fourth is the suppressed one
    to[3] = "+34 6660000003"
    sending_id = await producer.submit(sms([*to, "12"]))
    found = await records(producer, sending_id)
    suppressed = found[3]
    assert suppressed["status"] == "suppressed" and suppressed["to"] == "+34 6660000003"
    assert suppressed["code"] is None
    assert suppressed["description"].startswith("suppressed: unsubscribed by phone (since 20")
    assert [r["status"] for r in found] == ["queued"] * 3 + ["suppressed"] + ["queued"] * 3 + [
        "rejected"
    ]
    # Never in a chunk: nothing will ever send it.
    in_chunks = [
        e.index async for _, entries in producer.store.chunk_entries(sending_id) for e in entries
    ]
    assert 3 not in in_chunks and sorted(in_chunks) == [0, 1, 2, 4, 5, 6]

    await drain(settings)
    status = await producer.status(sending_id)
    assert status is not None and status["state"] == "done"
    counts = status["counts"]
    assert counts["accepted"] == 6 and counts["suppressed"] == 1 and counts["rejected"] == 1
    assert counts["total"] == 8 == sum(v for k, v in counts.items() if k != "total")
    assert sandbox_stats(sandbox_url, "sms")["recipients"] == 6
    assert "34666000003" not in sandbox_sent(sandbox_url, "sms")
    assert (await records(producer, sending_id))[3]["status"] == "suppressed"


async def test_suppressed_email_is_recorded_and_never_sent(
    producer: Producer, settings: Settings, sandbox_url: str, db: Any
) -> None:
    await suppression.add(db, "mailing", "Luis@Example.org", "complained", "event", "s123")
    await suppression.add(db, "sms", "34666555444", "an SMS list does not count for email")
    sending_id = await producer.submit(email(["ana@example.com", " luis@example.ORG", "x@b.es"]))
    await drain(settings)
    found = await records(producer, sending_id)
    assert [r["status"] for r in found] == ["accepted", "suppressed", "accepted"]
    assert found[1]["description"].startswith("suppressed: complained (since ")
    assert sandbox_stats(sandbox_url, "email")["recipients"] == 2
    assert all("luis" not in to.lower() for to in sandbox_sent(sandbox_url, "email"))
    status = await producer.status(sending_id)
    assert status is not None and status["state"] == "done"
    assert status["counts"]["suppressed"] == 1 and status["counts"]["total"] == 3


async def test_a_sending_all_suppressed_is_done_without_a_worker(
    producer: Producer, db: Any
) -> None:
    to = numbers(5)
    for phone in to:
        await suppression.add(db, "sms", phone, "gone")
    sending_id = await producer.submit(sms(to))
    status = await producer.status(sending_id)
    assert status is not None and status["state"] == "done" and status["final"]
    assert status["counts"]["suppressed"] == 5 == status["counts"]["total"]
    assert await chunks.names(producer.redis, sending_id) == []
    assert await producer.redis.zcard(producer.settings.queue_name) == 0


async def test_one_lookup_call_per_chunk_of_recipients(
    producer: Producer, db: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await suppression.add(db, "sms", numbers(1)[0], "x")
    calls: list[int] = []
    get_many = suppression.get_many

    async def counted(redis: Any, list_name: str, addresses: Any) -> Any:
        addresses = list(addresses)
        calls.append(len(addresses))
        return await get_many(redis, list_name, addresses)

    monkeypatch.setattr(suppression, "get_many", counted)
    sync_db = redis.Redis.from_url(redis_url)
    sync_db.config_resetstat()
    await producer.submit(sms(numbers(10)))  # chunks of 3: 4 chunks
    assert calls == [3, 3, 3, 1]  # one round trip per chunk, its addresses in one argument
    assert commands(sync_db, "hmget") == 0


async def test_whatsapp_messages_to_and_voice_are_screened(producer: Producer, db: Any) -> None:
    await suppression.add(db, "sms", "34666555444", "no")
    await suppression.add(db, "voice", "34666555333", "no")
    job = WhatsApp.model_validate(
        {
            "templateId": 1,
            "from": "34666777555",
            "messages": [{"to": to} for to in ("34666555333", "+34666555444")],
        }
    )
    found = await records(producer, await producer.submit(job))
    assert [r["status"] for r in found] == ["queued", "suppressed"]  # the voice list is not sms's


async def test_a_resubmission_keeps_what_the_first_attempt_recorded(
    producer: Producer, settings: Settings, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk written (its recipients queued), then a crash before its job: the
    address is suppressed in between. It is queued, so the chunk must still carry it (or
    it would never end), and it is sent — it was queued before it was suppressed. (A
    chunk's entries and its recipients' counters are written in one step: a crash
    cannot fall between them.)"""
    to = numbers(3)
    enqueue = chunks.enqueue
    crashed = []

    async def crash(*args: Any, **kwargs: Any) -> bool:
        crashed.append(args)
        raise RuntimeError("producer killed")

    monkeypatch.setattr(chunks, "enqueue", crash)
    with pytest.raises(RuntimeError):
        await producer.submit(sms(to), idempotency_key="crash-once")
    assert crashed
    monkeypatch.setattr(chunks, "enqueue", enqueue)
    await suppression.add(db, "sms", to[1], "suppressed after the first attempt")
    sending_id = await producer.submit(sms(to), idempotency_key="crash-once")
    assert [r["status"] for r in await records(producer, sending_id)] == ["queued"] * 3
    await drain(settings)
    status = await producer.status(sending_id)
    assert status is not None and status["state"] == "done"
    assert status["counts"]["accepted"] == 3


# --- the command line -----------------------------------------------------------------


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BULKSEND, "suppress", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_cli_add_list_remove(env: dict[str, str]) -> None:
    added = cli(env, "add", "--channel", "sms", "+34 666 555 444", "--reason", "asked")
    assert added.returncode == 0, added.stderr
    assert "34666555444 suppressed" in added.stdout
    again = cli(env, "add", "--channel", "sms", "34666555444", "--reason", "other")
    assert again.returncode == 0 and "already" in again.stdout and "asked" in again.stdout
    assert cli(env, "add", "--channel", "mailing", "Ana@Example.com").returncode == 0

    listing = cli(env, "list", "--channel", "sms", "--json")
    assert listing.returncode == 0, listing.stderr
    body = orjson.loads(listing.stdout)
    assert body["total"] == 1
    [entry] = body["data"]
    assert entry == {
        "channel": "sms",
        "address": "34666555444",
        "reason": "asked",
        "at": entry["at"],
        "source": "manual",
        "sending": None,
    }
    text = cli(env, "list", "--channel", "mailing")
    assert text.stdout.startswith("ana@example.com\tmanual\t") and "added by hand" in text.stdout

    removed = cli(env, "remove", "--channel", "sms", "34 666 555 444")
    assert removed.returncode == 0 and "removed" in removed.stdout
    gone = cli(env, "remove", "--channel", "sms", "34666555444")
    assert gone.returncode == 2 and gone.stderr.startswith("bulksend: error: address:")
    assert orjson.loads(cli(env, "list", "--channel", "sms", "--json").stdout)["data"] == []


def test_cli_bad_input_exits_2_naming_the_field(env: dict[str, str]) -> None:
    bad_channel = cli(env, "add", "--channel", "email", "ana@example.com")
    assert bad_channel.returncode == 2
    assert bad_channel.stderr.startswith("bulksend: error: channel:")
    assert "mailing" in bad_channel.stderr
    bad_address = cli(env, "add", "--channel", "sms", "12")
    assert bad_address.returncode == 2 and "address: not a phone number" in bad_address.stderr
    missing = cli(env, "import", "--channel", "sms", "/nonexistent/file.txt")
    assert missing.returncode == 2 and missing.stderr.startswith("bulksend: error: file:")


def test_cli_import_prints_what_was_added_and_each_refused_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    good = tmp_path / "good.csv"
    good.write_text("phone,name\n+34 666 555 111,Ana\n34666555222,Luis\n")
    done = cli(env, "import", "--channel", "voice", str(good))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2 added") and done.stderr == ""

    mixed = tmp_path / "mixed.txt"
    mixed.write_text("34666555111\n34666555333\nnot a phone\n\n99\n")
    done = cli(env, "import", "--channel", "voice", str(mixed), "--reason", "old list")
    assert done.returncode == 2
    assert done.stdout.startswith("1 added") and "3 lines refused" in done.stdout
    assert done.stderr.splitlines() == [
        "line 3: not a phone number: only digits, spaces, + - ( ) and . are allowed",
        "line 4: empty line",
        "line 5: not a phone number: fewer than 6 digits",
    ]
    listing = orjson.loads(cli(env, "list", "--channel", "voice", "--json").stdout)
    reasons = {e["address"]: (e["reason"], e["source"]) for e in listing["data"]}
    assert reasons == {
        "34666555111": ("imported from good.csv", "import"),
        "34666555222": ("imported from good.csv", "import"),
        "34666555333": ("old list", "import"),
    }


# --- the HTTP API ---------------------------------------------------------------------


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[ServeProcess]:
    server_env = {**env, "BULKSEND_API_TOKEN": TOKEN, "BULKSEND_READONLY_TOKEN": READONLY}
    process = ServeProcess(server_env, log=tmp_path / "serve.log")
    yield process
    process.stop()


@pytest.fixture
def api(server: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        yield client


def error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"field", "reason", "code"}, body
    detail: dict[str, Any] = body["error"]
    return detail


def test_api_add_list_remove(api: httpx.Client) -> None:
    new = {"channel": "mailing", "address": " Ana@Example.com", "reason": "asked by mail"}
    created = api.post("/v1/suppressions", json=new)
    assert created.status_code == 201, created.text
    entry = created.json()
    assert entry["address"] == "ana@example.com" and entry["reason"] == "asked by mail"
    assert entry["channel"] == "mailing" and entry["source"] == "manual"
    again = api.post("/v1/suppressions", json={"channel": "mailing", "address": "ana@example.com"})
    assert again.status_code == 200 and again.json() == entry  # its first entry, unchanged
    assert (
        api.post("/v1/suppressions", json={"channel": "sms", "address": "34666555444"}).json()[
            "reason"
        ]
        == suppression.DEFAULT_REASON
    )

    page = api.get("/v1/suppressions", params={"channel": "mailing"}).json()
    assert page == {"data": [entry], "next_cursor": None}
    assert api.get("/v1/suppressions", params={"channel": "voice"}).json()["data"] == []

    assert api.delete("/v1/suppressions/mailing/ANA@example.com").status_code == 204
    gone = api.delete("/v1/suppressions/mailing/ana@example.com")
    assert gone.status_code == 404 and error(gone)["field"] == "address"
    assert api.delete("/v1/suppressions/sms/+34 666 555 444").status_code == 204


def test_api_pages_with_a_cursor(api: httpx.Client, redis_url: str) -> None:
    db = redis.Redis.from_url(redis_url)
    phones = numbers(600)
    now = "2024-01-01T00:00:00.000+00:00"
    value = orjson.dumps({"reason": "r", "at": now, "source": "import", "sending": None})
    db.hset(keys.suppression("sms"), mapping=dict.fromkeys(phones, value))
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"channel": "sms", "limit": "100", **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/suppressions", params=params).json()
        seen += [e["address"] for e in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(set(seen)) == sorted(phones) and pages > 1


def test_api_bad_input_is_422_naming_the_field(api: httpx.Client) -> None:
    for params, field in (
        ({}, "channel"),
        ({"channel": "email"}, "channel"),
        ({"channel": "sms", "limit": "0"}, "limit"),
        ({"channel": "sms", "cursor": "x"}, "cursor"),
    ):
        refused = api.get("/v1/suppressions", params=params)
        assert refused.status_code == 422 and error(refused)["field"] == field, params
    for body, field in (
        ({"address": "34666555444"}, "channel"),
        ({"channel": "fax", "address": "34666555444"}, "channel"),
        ({"channel": "sms"}, "address"),
        ({"channel": "sms", "address": "12"}, "address"),
        ({"channel": "mailing", "address": "ana@example"}, "address"),
        ({"channel": "sms", "address": "34666555444", "extra": 1}, "extra"),
    ):
        refused = api.post("/v1/suppressions", json=body)
        assert refused.status_code == 422 and error(refused)["field"] == field, body
    not_json = api.post("/v1/suppressions", content=b"nope")
    assert not_json.status_code == 400 and error(not_json)["field"] == "body"
    bad_list = api.delete("/v1/suppressions/email/ana@example.com")
    assert bad_list.status_code == 422 and error(bad_list)["field"] == "channel"
    no_channel = api.post(
        "/v1/suppressions/import", content=b"34666555444\n", headers={"Content-Type": "text/plain"}
    )
    assert no_channel.status_code == 422 and error(no_channel)["field"] == "channel"


def test_api_import_counts_added_and_refused_lines(api: httpx.Client) -> None:
    body = "email,name\nana@example.com,Ana\nnot-an-address,X\n,Nobody\nANA@example.com,Ana\n"
    done = api.post(
        "/v1/suppressions/import",
        params={"channel": "mailing", "reason": "from the CRM"},
        content=body.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert done.status_code == 200, done.text
    answer = done.json()
    assert answer["added"] == 1
    assert [r["line"] for r in answer["refused"]] == [3, 4]
    assert "exactly one @" in answer["refused"][0]["reason"]
    assert answer["refused"][1]["reason"] == "empty line"
    [entry] = api.get("/v1/suppressions", params={"channel": "mailing"}).json()["data"]
    assert entry["reason"] == "from the CRM" and entry["source"] == "import"
    wrong_type = api.post(
        "/v1/suppressions/import",
        params={"channel": "sms"},
        content=b"{}",
        headers={"Content-Type": "application/json"},
    )
    assert wrong_type.status_code == 400 and error(wrong_type)["field"] == "body"
    empty = api.post(
        "/v1/suppressions/import",
        params={"channel": "sms"},
        content=b"\n",
        headers={"Content-Type": "text/plain"},
    )
    assert empty.status_code == 422 and error(empty)["field"] == "body"


def test_api_read_only_token_reads_and_may_not_write(
    api: httpx.Client, server: ServeProcess
) -> None:
    api.post("/v1/suppressions", json={"channel": "sms", "address": "34666555444"})
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {READONLY}"}, timeout=60
    ) as reader:
        assert reader.get("/v1/suppressions", params={"channel": "sms"}).status_code == 200
        for response in (
            reader.post("/v1/suppressions", json={"channel": "sms", "address": "34666555333"}),
            reader.delete("/v1/suppressions/sms/34666555444"),
            reader.post(
                "/v1/suppressions/import",
                params={"channel": "sms"},
                content=b"34666555333\n",
                headers={"Content-Type": "text/plain"},
            ),
        ):
            assert response.status_code == 403 and error(response)["field"] == "Authorization"
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/v1/suppressions", params={"channel": "sms"}).status_code == 401
    data = api.get("/v1/suppressions", params={"channel": "sms"}).json()["data"]
    assert [e["address"] for e in data] == ["34666555444"]


def test_api_routes_are_documented(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert set(paths["/v1/suppressions"]) == {"get", "post"}
    assert "201" in paths["/v1/suppressions"]["post"]["responses"]
    assert set(paths["/v1/suppressions/{channel}/{address}"]) == {"delete"}
    assert {"204", "403", "404"} <= set(
        paths["/v1/suppressions/{channel}/{address}"]["delete"]["responses"]
    )
    assert "text/csv" in paths["/v1/suppressions/import"]["post"]["requestBody"]["content"]


# --- the sync with the provider's blacklist ---------------------------------------------


@pytest.fixture
async def provider(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    client = blacklist.client_for(settings)
    yield client
    await client.aclose()


async def provider_list(sandbox: httpx.AsyncClient, list_name: str) -> list[str]:
    answer = await sandbox.get(f"{blacklist.PATH}/{list_name}", params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    return sorted(e["recipient"] for e in answer.json()["data"])


async def test_pull_brings_every_page_of_the_provider_blacklist(
    provider: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    db: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    phones = numbers(7)
    for phone in phones:
        put = await sandbox.put(f"{blacklist.PATH}/sms", json={"recipient": phone})
        assert put.status_code == 200, put.text
    await sandbox.put(f"{blacklist.PATH}/mailing", json={"recipient": "Eva@Example.com"})
    await suppression.add(db, "sms", phones[0], "ours first")
    monkeypatch.setattr(blacklist, "PAGE_LIMIT", 3)  # 7 entries: 3 pages
    added = await blacklist.pull(provider, db)
    assert added == {"sms": 6, "voice": 0, "mailing": 1}
    found = await suppression.get_many(db, "sms", phones)
    assert sorted(found) == sorted(phones)
    assert found[phones[0]]["reason"] == "ours first"  # the first entry stays
    assert {e["source"] for a, e in found.items() if a != phones[0]} == {"provider"}
    assert found[phones[1]]["reason"] == blacklist.PROVIDER_REASON
    assert (await suppression.get_many(db, "mailing", ["eva@example.com"]))["eva@example.com"]
    assert await blacklist.pull(provider, db) == {"sms": 0, "voice": 0, "mailing": 0}


async def test_push_puts_our_additions_and_deletes_our_removals(
    provider: httpx.AsyncClient, sandbox: httpx.AsyncClient, db: Any
) -> None:
    await suppression.add(db, "sms", "+34 666 555 444", "asked", push=True)
    await suppression.add(db, "mailing", "Ana@Example.com", "asked", push=True)
    await suppression.add(db, "voice", "34666555333", "sync was off")  # not noted: not pushed
    await suppression.import_lines(db, "voice", ["34666555222"], "imported", push=True)
    assert await db.smembers(keys.suppression_push("sms")) == {b"34666555444"}

    report = await blacklist.push(provider, db)
    assert report["sms"] == 1 and report["mailing"] == 1 and report["voice"] == 1
    assert await provider_list(sandbox, "sms") == ["34666555444"]
    assert await provider_list(sandbox, "mailing") == ["ana@example.com"]
    assert await provider_list(sandbox, "voice") == ["34666555222"]
    for list_name in suppression.LISTS:
        assert await db.scard(keys.suppression_push(list_name)) == 0

    # Removed here: it goes from the provider too, and a pull meanwhile does not bring
    # it back.
    assert await suppression.remove(db, "sms", "34666555444", push=True)
    assert await blacklist.pull(provider, db) == {"sms": 0, "voice": 0, "mailing": 0}
    assert await suppression.get_many(db, "sms", ["34666555444"]) == {}
    report = await blacklist.push(provider, db)
    assert report["removed:sms"] == 1
    assert await provider_list(sandbox, "sms") == []
    assert await db.scard(keys.suppression_drop("sms")) == 0

    # Added and removed before any push: nothing to tell the provider.
    await suppression.add(db, "sms", "34666555111", "oops", push=True)
    await suppression.remove(db, "sms", "34666555111", push=True)
    assert await db.scard(keys.suppression_push("sms")) == 0
    assert await db.scard(keys.suppression_drop("sms")) == 0


async def test_push_keeps_what_the_provider_did_not_answer_for_the_next_sync(
    settings: Settings, sandbox: httpx.AsyncClient, db: Any
) -> None:
    await suppression.add(db, "sms", "34666555444", "asked", push=True)
    nowhere = blacklist.client_for(
        settings.model_copy(update={"provider_url": "http://127.0.0.1:9"})
    )
    try:
        assert (await blacklist.push(nowhere, db))["sms"] == 0
        assert await blacklist.pull(nowhere, db) == {"sms": 0, "voice": 0, "mailing": 0}
    finally:
        await nowhere.aclose()
    assert await db.smembers(keys.suppression_push("sms")) == {b"34666555444"}


async def test_sync_due_runs_once_per_interval_and_only_when_on(
    settings: Settings, sandbox: httpx.AsyncClient, db: Any
) -> None:
    await suppression.add(db, "sms", "34666555444", "asked", push=True)
    assert await blacklist.sync_due(db, settings) is None  # off by default
    on = settings.model_copy(update={"blacklist_sync": True, "blacklist_sync_interval": 60})
    report = await blacklist.sync_due(db, on)
    assert report is not None and report["sms"] == 1
    assert await blacklist.sync_due(db, on) is None  # another worker, same interval
    assert await provider_list(sandbox, "sms") == ["34666555444"]


async def test_workers_sync_from_their_sweeper_loop(
    settings: Settings, sandbox: httpx.AsyncClient, db: Any
) -> None:
    await sandbox.put(f"{blacklist.PATH}/voice", json={"recipient": "34666555000"})
    await suppression.add(db, "mailing", "ana@example.com", "asked", push=True)
    on = settings.model_copy(update={"blacklist_sync": True, "sweep_interval": 0.2})
    async with running_worker(on):

        async def synced() -> bool:
            pulled = await suppression.get_many(db, "voice", ["34666555000"])
            return bool(pulled) and await provider_list(sandbox, "mailing") == ["ana@example.com"]

        await wait_until(synced, timeout=30, what="a blacklist sync")
