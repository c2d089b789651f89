"""``bulksend demo``: the whole pipeline on one machine, with real parts.

Embedded Redis, the sandbox provider and worker processes are started as
children, a sending with ``sub`` variables and a few invalid numbers goes
through them, and the run checks its own accounting at the end: every
recipient recorded once, nobody received twice. With ``--serve`` the stack
stays up behind ``bulksend serve`` (a fresh token printed) until Ctrl-C, to try
the HTTP API on sendings that are already there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bulksend.redis_server import redis_for
from bulksend.stack import SandboxProcess, ServeProcess, start_workers
from jobs.base import SendJob
from jobs.contacts import ContactImport
from jobs.email import Attachment, Email
from jobs.landing import Landing
from jobs.producer import Producer, normalize_recipient
from jobs.results import FINAL
from jobs.settings import Settings
from jobs.sms import Sms
from jobs.voice import Voice, VoiceAudio
from jobs.whatsapp import WhatsApp

INVALID_NUMBERS = ["12", "abc", "34", "+", "0034666"]
FIRST_NAMES = ["ana", "luis", "marta", "joão", "chloé", "sven", "amira", "kenji", "zoë", "omar"]

CONTACT_ROWS = 200  # good rows of the demo's contact import


def _with_invalid(good: list[str], bad: list[str]) -> list[str]:
    """Spread ``bad`` recipients evenly among ``good`` ones."""
    out = list(good)
    for k, item in enumerate(bad):
        out.insert((k + 1) * len(good) // (len(bad) + 1) + k, item)
    return out


def demo_jobs(n_sms: int) -> list[SendJob]:
    """One sending of every kind, each with a few invalid recipients mixed in."""
    phones = [f"3466{i:07d}" for i in range(n_sms)]
    to = _with_invalid(phones, INVALID_NUMBERS)
    sub = [{"name": FIRST_NAMES[i % len(FIRST_NAMES)], "code": f"{i:06d}"} for i in range(len(to))]
    small = [f"3477{i:07d}" for i in range(100)]
    small_to = _with_invalid(small, INVALID_NUMBERS[:2])
    names = [{"name": FIRST_NAMES[i % len(FIRST_NAMES)]} for i in range(len(small_to))]
    emails = _with_invalid([f"user{i}@example.com" for i in range(100)], ["not-an-address"])
    receipt = Attachment.from_bytes("receipt.txt", b"Thank you for your order.\n")
    return [
        Sms.model_validate({
            "to": to, "from": "BULKSEND", "sub": sub, "campaignName": "bulksend demo",
            "message": "Hello {name|capitalize}, your code is {code}.",
        }),
        Email.model_validate({
            "to": emails, "fromEmail": "news@example.com", "fromName": "bulksend demo",
            "replyTo": "support@example.com", "subject": "Your receipt",
            "body": "<p>Hello {name}, your receipt is attached.</p>",
            "sub": [{"name": f"user {i}"} for i in range(len(emails))],
            "attachments": [receipt],
        }),
        Voice.model_validate({
            "to": small_to, "message": "Hello {name}, this is your reminder.",
            "language": "en_GB", "gender": "F", "sub": names, "retries": 2,
        }),
        VoiceAudio.model_validate({
            "to": small_to, "audioUrl": "https://example.com/audio/reminder.mp3",
        }),
        Landing.model_validate({
            "to": small_to, "from": "BULKSEND", "message": "Hi {name}, see {LAND_URL}",
            "sub": names, "templateBody": "<h1>Winter sale</h1>",
        }),
        WhatsApp.model_validate({
            "templateId": 123, "from": "34666777555",
            "messages": [{"to": n, "bodyFields": [f"client {i}"]} for i, n in enumerate(small_to)],
        }),
    ]  # fmt: skip


# Contact rows the demo's import refuses: an impossible phone, no contact at all,
# a duplicate of the first row, an invalid email.
BAD_CONTACTS = [
    "Bad,Phone,12,,ES,gold",
    "No,Contact,,,ES,",
    "Again,Twice,600000000,,ES,",
    "Bad,Mail,,someone@nowhere,ES,",
]


def demo_contacts(path: Path, good: int) -> int:
    """A contacts CSV as a CRM exports it, with a few bad rows; returns its data rows."""
    lines = ["First name,Last name,Mobile,E-mail,Country,Plan"]
    lines += [
        f"{FIRST_NAMES[i % len(FIRST_NAMES)]},Demo{i},6{i:08d},c{i}@example.com,ES,gold"
        for i in range(good)
    ]
    for k, row in enumerate(BAD_CONTACTS):
        lines.insert((k + 1) * good // (len(BAD_CONTACTS) + 1) + k + 1, row)
    path.write_text("\n".join(lines) + "\n")
    return len(lines) - 1


async def _submit_and_follow(
    settings: Settings, jobs: list[SendJob], contacts: Path, console: Console
) -> list[dict[str, Any]]:
    producer = await Producer.connect(settings)
    try:
        ids = [await producer.submit(job) for job in jobs]
        imported = ContactImport(group="demo customers")
        ids.append(await producer.submit_import(imported, contacts))
        total = sum(len(job.recipients()) for job in jobs) + CONTACT_ROWS + len(BAD_CONTACTS)
        console.print(f"{len(ids)} sendings (one a contact import), {total} recipients queued")
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            bar = progress.add_task("recorded", total=total)
            while True:
                statuses = [await producer.status(i) for i in ids]
                done = sum(
                    s["counts"]["total"] - s["counts"]["queued"] - s["counts"]["sending"]
                    for s in statuses
                    if s is not None
                )
                progress.update(bar, completed=done)
                if all(s is not None and s["final"] for s in statuses):
                    return [s for s in statuses if s is not None]
                await asyncio.sleep(0.2)
    finally:
        await producer.close()


def _serve_until_interrupted(console: Console, env: dict[str, str], port: int) -> None:
    """``bulksend serve`` over the demo's stack with a fresh token, until Ctrl-C."""
    token = secrets.token_urlsafe(32)
    with ServeProcess({**env, "BULKSEND_API_TOKEN": token}, port=port) as server:
        console.print(
            f"dashboard {server.url}/ (sign in with the token) · API docs {server.url}/docs"
        )
        console.print(f"token {token}")
        console.print(f'try: curl -H "Authorization: Bearer {token}" {server.url}/v1/sendings')
        console.print("Ctrl-C stops everything", highlight=False)
        with contextlib.suppress(KeyboardInterrupt):
            server.process.wait()


def run_demo(
    settings: Settings,
    *,
    recipients: int = 10_000,
    workers: int = 2,
    serve_port: int | None = None,
) -> int:
    """Run the demo; with ``serve_port``, keep the stack and ``bulksend serve`` on that
    port running after the summary, until Ctrl-C. Exit code 0 if the accounting is exact."""
    console = Console(width=max(Console().width, 132))  # the summary table is wide
    with redis_for(settings.redis_url, settings.data_dir) as redis_url:
        # Its own queue: jobs other commands left in the shared embedded Redis are
        # not the demo's to send, and would spoil its accounting.
        queue = f"bulksend:demo:{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "BULKSEND_QUEUE_NAME": queue,
            "BULKSEND_REDIS_URL": redis_url,
            "BULKSEND_PROVIDER_USERNAME": settings.sandbox_username,
            "BULKSEND_PROVIDER_API_PASSWORD": settings.sandbox_api_password.get_secret_value(),
        }
        with SandboxProcess(env) as sandbox:
            env["BULKSEND_PROVIDER_URL"] = sandbox.url
            httpx.post(f"{sandbox.url}/_sandbox/reset").raise_for_status()
            console.print(f"redis {redis_url} · sandbox {sandbox.url} · {workers} workers")
            with start_workers(workers, env):
                live = settings.model_copy(update={"redis_url": redis_url, "queue_name": queue})
                started = time.monotonic()
                jobs = demo_jobs(recipients)
                with tempfile.TemporaryDirectory() as folder:
                    contacts = Path(folder) / "crm-export.csv"
                    demo_contacts(contacts, CONTACT_ROWS)
                    statuses = asyncio.run(_submit_and_follow(live, jobs, contacts, console))
                elapsed = time.monotonic() - started
                stats = httpx.get(f"{sandbox.url}/_sandbox/stats").json()
                expected = {job.kind: len(job.recipients()) - _invalid(job) for job in jobs}
                expected["contacts"] = CONTACT_ROWS
                code = _report(console, statuses, stats, elapsed, expected)
                if serve_port is not None:
                    _serve_until_interrupted(console, env, serve_port)
    return code


def _seen(stats: dict[str, Any], kind: str) -> dict[str, int]:
    """What the sandbox took of a kind: recipients accepted, and how many twice."""
    if kind == "contacts":  # the sandbox's contacts database, not a sending channel
        created = stats.get("contacts", {})
        return {
            "recipients": created.get("created", 0),
            "duplicates": created.get("created_twice", 0),
        }
    return dict(stats["channels"].get(kind, {}))


def _invalid(job: SendJob) -> int:
    return sum(normalize_recipient(job.kind, r) is None for r in job.recipients())


def _report(
    console: Console,
    statuses: list[dict[str, Any]],
    stats: dict[str, Any],
    elapsed: float,
    expected: dict[str, int],
) -> int:
    table = Table(title=f"bulksend demo — all sendings final in {elapsed:.1f}s")
    # Every count that is not zero somewhere; total, accepted and rejected always.
    count_names = [
        name
        for name in statuses[0]["counts"]
        if name in ("total", "accepted", "rejected") or any(s["counts"][name] for s in statuses)
    ]
    for column in ["channel", *count_names, "provider got", "twice"]:
        table.add_column(column, justify="right", no_wrap=True)
    ok = True
    for status in statuses:
        counts = status["counts"]
        seen = _seen(stats, status["kind"])
        table.add_row(
            status["kind"],
            *(str(counts[name]) for name in count_names),
            str(seen.get("recipients", 0)),
            str(seen.get("duplicates", 0)),
        )
        recorded = sum(counts[k] for k in FINAL)
        ok = ok and (
            status["final"]
            and recorded == counts["total"]
            and counts["accepted"] == expected[status["kind"]] == seen.get("recipients")
            and counts["rejected"] == counts["total"] - expected[status["kind"]]
            and seen.get("duplicates") == 0
        )
    console.print(table)
    console.print(
        "[green]every recipient recorded once; nobody received twice[/]"
        if ok
        else "[red]accounting mismatch[/]"
    )
    return 0 if ok else 1
