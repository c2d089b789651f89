"""Contact CSV imports end to end: producer → Redis → worker → the sandbox's contact APIs.

The import is a sending of kind ``contacts`` whose recipients are the file's data
rows, so status, results, cancel and the reports are the sending's own.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bulksend.stack import start_workers
from jobs import Producer, Settings, Sms
from jobs.contacts import ContactImport
from tests.helpers import drain, running_worker, set_faults, wait_until

DATA = Path(__file__).parent / "data" / "imports"
CUSTOMERS = DATA / "customers.csv"
GOOD_ROWS = [2, 3, 4, 6]  # Ana, Ben, Chloé, the formula-looking name
BULKSEND = [sys.executable, "-m", "bulksend"]


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(settings)
    yield p
    await p.close()


def stats(sandbox_url: str) -> dict[str, Any]:
    got: dict[str, Any] = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
    return got


def groups(sandbox_url: str) -> list[dict[str, Any]]:
    auth = ("sandbox", "sandbox-api-password")
    got = httpx.get(f"{sandbox_url}/api/rest/groups", auth=auth, params={"limit": 1000})
    return list(got.json()["data"])


def contacts(sandbox_url: str) -> list[dict[str, Any]]:
    auth = ("sandbox", "sandbox-api-password")
    got = httpx.get(
        f"{sandbox_url}/api/rest/contacts",
        auth=auth,
        params={"limit": 1000, "include": "customFields,groups"},
    )
    return list(got.json()["data"])


def customers(group: str = "Customers", **more: Any) -> ContactImport:
    return ContactImport.model_validate({"group": group, **more})


async def rows_of(producer: Producer, sending_id: str) -> dict[int, tuple[str, str | None]]:
    return {
        r["row"]: (r["status"], r.get("description"))
        async for r in producer.store.iter_results(sending_id)
    }


async def test_an_import_creates_each_good_row_once_into_its_group(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    sending_id = await producer.submit_import(customers(), CUSTOMERS)
    await drain(settings)
    status = await producer.status(sending_id)
    assert status is not None and status["final"] and status["kind"] == "contacts"
    assert (status["counts"]["accepted"], status["counts"]["rejected"]) == (4, 4)
    rows = await rows_of(producer, sending_id)
    assert sorted(n for n, (s, _) in rows.items() if s == "accepted") == GOOD_ROWS
    assert rows[5][1] is not None and rows[5][1].startswith("phone:")
    assert rows[7] == ("rejected", "duplicate of row 2")
    assert rows[9][0] == "rejected"
    [group] = groups(sandbox_url)
    assert group["name"] == "Customers"
    created = {c["phone"]: c for c in contacts(sandbox_url)}
    assert set(created) == {"34666555444", "447700900123", "33612345678", "34666555333"}
    ana = created["34666555444"]
    assert (ana["name"], ana["surname"], ana["email"]) == ("Ana", "García", "ana@example.com")
    assert [g["id"] for g in ana["groups"]["data"]] == [group["id"]]
    custom = {f["key"]: (f["type"], f["value"]) for f in ana["customFields"]["data"]}
    assert custom == {"Plan": ("string", "gold"), "Joined": ("date", "2024-05-01")}
    assert stats(sandbox_url)["contacts"]["created_twice"] == 0


async def test_the_report_gives_the_rejected_rows_back_as_they_were_and_formula_safe(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    sending_id = await producer.submit_import(customers(), CUSTOMERS)
    await drain(settings)
    rejected = [row async for row in producer.report(sending_id, "rejected")]
    header, *body = rejected
    assert header == ["First name", "Last name", "Mobile", "E-mail", "Country", "Plan",
                      "Joined", "row", "reason"]  # fmt: skip
    assert [r[-2] for r in body] == ["5", "7", "8", "9"]
    assert body[1][:3] == ["Eva", "Ruiz", "666555444"] and body[1][-1] == "duplicate of row 2"
    accepted = [row async for row in producer.report(sending_id, "accepted")]
    assert accepted[4][0] == '\'=HYPERLINK("http://x")'  # imported as text, neutralised here


async def test_an_existing_group_is_found_by_name_not_created_again(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    auth = ("sandbox", "sandbox-api-password")
    for name in ("Other", "Customers"):
        httpx.post(f"{sandbox_url}/api/rest/groups", auth=auth, json={"name": name})
    await producer.submit_import(customers(), CUSTOMERS)
    await drain(settings)
    assert sorted(g["name"] for g in groups(sandbox_url)) == ["Customers", "Other"]


async def test_an_import_into_the_mail_api_uploads_bounded_csv_files_once_each(
    producer: Producer, settings: Settings, sandbox_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    lines = ["first_name,last_name,email,city"]
    lines += [f"P{i},L{i},p{i}@example.com,Town {i}" for i in range(300)]
    lines.append("Bad,Row,not-an-email,Nowhere")
    path.write_text("\n".join(lines) + "\n")
    small = settings.model_copy(update={"import_upload_max_bytes": 4096})
    mail = Producer(producer.redis, small)
    sending_id = await mail.submit_import(customers("3", target="mail"), path)
    await drain(small)
    status = await producer.status(sending_id)
    assert status is not None
    assert (status["counts"]["accepted"], status["counts"]["rejected"]) == (300, 1)
    seen = stats(sandbox_url)["mail"]
    assert seen["rows"] == 300 and seen["rows_twice"] == 0 and seen["uploads"] > 3


async def test_resubmitting_with_the_same_key_imports_nothing_new(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    first = await producer.submit_import(customers(), CUSTOMERS, idempotency_key="crm-42")
    await drain(settings)
    again = await producer.submit_import(customers(), CUSTOMERS, idempotency_key="crm-42")
    await drain(settings)
    assert again == first
    assert stats(sandbox_url)["contacts"]["created"] == 4


async def test_a_killed_worker_creates_nobody_twice_and_the_import_finishes(
    producer: Producer, env: dict[str, str], sandbox_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "many.csv"
    path.write_text("phone,name\n" + "".join(f"+3466{i:07d},n{i}\n" for i in range(400)))
    set_faults(sandbox_url, latency_ms={"min": 20, "max": 120})
    sending_id = await producer.submit_import(customers(), path)
    env = {**env, "BULKSEND_JOB_TIMEOUT": "6"}
    with start_workers(2, env) as workers:

        async def some_created() -> bool:
            return int(stats(sandbox_url)["contacts"]["created"]) >= 100

        await wait_until(some_created, timeout=60)
        workers[0].send_signal(signal.SIGKILL)
        done = await producer.wait(sending_id, timeout=120)
    counts = done["counts"]
    assert counts["accepted"] + counts["unknown"] == 400 and counts["queued"] == 0
    seen = stats(sandbox_url)["contacts"]
    assert seen["created_twice"] == 0
    assert counts["accepted"] <= seen["created"] <= 400


async def test_cancel_stops_an_import(
    producer: Producer, settings: Settings, sandbox_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "many.csv"
    path.write_text("email\n" + "".join(f"u{i}@example.com\n" for i in range(300)))
    set_faults(sandbox_url, latency_ms=100)
    sending_id = await producer.submit_import(customers(), path)
    async with running_worker(settings.model_copy(update={"provider_max_connections": 2})):

        async def started() -> bool:
            return int(stats(sandbox_url)["contacts"]["created"]) > 5

        await wait_until(started, timeout=30)
        await producer.cancel(sending_id)
        done = await producer.wait(sending_id, timeout=30)
    counts = done["counts"]
    assert counts["cancelled"] > 0 and counts["accepted"] + counts["cancelled"] == 300
    assert stats(sandbox_url)["contacts"]["created"] == counts["accepted"]


async def test_send_to_an_imported_group_fills_each_contacts_variables(
    producer: Producer, settings: Settings, sandbox_url: str
) -> None:
    await producer.submit_import(customers(), CUSTOMERS)
    await drain(settings)
    job = Sms.model_validate(
        {"to": ["34600000000"], "from": "SHOP", "message": "Hi {name}, {Plan}"}
    )
    sending_id = await producer.submit_group(job, "Customers")
    await drain(settings)
    status = await producer.status(sending_id)
    assert status is not None and status["counts"]["accepted"] == 3  # one has no Plan
    sent = httpx.get(f"{sandbox_url}/_sandbox/messages", params={"channel": "sms"}).json()
    texts = {m["to"]: m["text"] for m in sent["messages"]}
    assert texts["34666555444"] == "Hi Ana, gold"
    assert texts["447700900123"] == "Hi Ben, 12.5"


# --- the command line ---------------------------------------------------------------


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BULKSEND, *args], env=env, capture_output=True, text=True, timeout=60)


async def test_cli_import_dry_run_shows_the_mapping_and_imports_nothing(
    env: dict[str, str], redis_url: str, sandbox_url: str
) -> None:
    done = cli(env, "import", str(CUSTOMERS), "--group", "Customers", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["delimiter"] == ";" and shown["mapping"]["Mobile"] == "phone"
    assert [r["row"] for r in shown["rows"] if r["error"] is None] == GOOD_ROWS
    assert stats(sandbox_url)["contacts"]["created"] == 0


async def test_cli_import_wait_then_report(
    env: dict[str, str], settings: Settings, sandbox_url: str
) -> None:
    done = cli(env, "import", str(CUSTOMERS), "--group", "Customers", "--json")
    assert done.returncode == 0, done.stderr
    sending_id = json.loads(done.stdout)["id"]
    await drain(settings)
    report = cli(env, "report", sending_id, "--status", "rejected")
    assert report.returncode == 0, report.stderr
    got = list(csv.reader(io.StringIO(report.stdout)))
    assert got[0][-2:] == ["row", "reason"] and len(got) == 5


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "file:"),
        (b"email,name\n", "file: no data rows"),
        (b"colour,size\nred,L\n", "file:"),
        (b"\x00\x01\x02\x03binary\x00" * 100, "file:"),
    ],
)
async def test_cli_import_refuses_bad_files_in_one_line(
    env: dict[str, str], redis_url: str, tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    done = cli(env, "import", str(path), "--group", "G")
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("bulksend: error: ") and reason in line


async def test_cli_import_refuses_a_missing_file_and_an_unknown_map_field(
    env: dict[str, str], redis_url: str
) -> None:
    missing = cli(env, "import", "/nowhere/x.csv", "--group", "G")
    assert missing.returncode == 2 and "file:" in missing.stderr
    bad_map = cli(env, "import", str(CUSTOMERS), "--group", "G", "--map", "Mobile=fax")
    assert bad_map.returncode == 2 and "map:" in bad_map.stderr and "fax" in bad_map.stderr
