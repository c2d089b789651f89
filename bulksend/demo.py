"""``bulksend demo``: the whole pipeline on one machine, with real parts.

Embedded Redis, the sandbox provider and worker processes are started as
children, a sending with ``sub`` variables and a few invalid numbers goes
through them, and the run checks its own accounting at the end: every
recipient recorded once, nobody received twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bulksend.redis_server import redis_for
from jobs.producer import Producer
from jobs.settings import Settings
from jobs.sms import Sms

INVALID_NUMBERS = ["12", "abc", "34", "+", "0034666"]
FIRST_NAMES = ["ana", "luis", "marta", "joão", "chloé", "sven", "amira", "kenji", "zoë", "omar"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.05)


def demo_sms(n: int) -> Sms:
    numbers = [f"3466{i:07d}" for i in range(n)]
    subs: list[dict[str, Any]] = [
        {"name": FIRST_NAMES[i % len(FIRST_NAMES)], "code": f"{i:06d}"} for i in range(n)
    ]
    # Invalid numbers among valid ones: recorded as rejected (102), never sent.
    for k, bad in enumerate(INVALID_NUMBERS):
        at = (k + 1) * n // (len(INVALID_NUMBERS) + 1)
        numbers.insert(at, bad)
        subs.insert(at, {"name": "nobody", "code": "000000"})
    return Sms.model_validate(
        {
            "to": numbers,
            "from": "BULKSEND",
            "message": "Hello {name|capitalize}, your code is {code}.",
            "sub": subs,
            "campaignName": "bulksend demo",
        }
    )


async def _submit_and_follow(settings: Settings, job: Sms, console: Console) -> dict[str, Any]:
    producer = await Producer.connect(settings)
    try:
        sending_id = await producer.submit(job)
        console.print(f"sending [bold]{sending_id}[/]: {len(job.to)} recipients queued")
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            bar = progress.add_task("recorded", total=len(job.to))
            while True:
                status = await producer.status(sending_id)
                assert status is not None
                counts = status["counts"]
                pending = counts["queued"] + counts["sending"]
                progress.update(bar, completed=counts["total"] - pending)
                if status["final"]:
                    return status
                await asyncio.sleep(0.2)
    finally:
        await producer.close()


def run_demo(settings: Settings, *, recipients: int = 10_000, workers: int = 2) -> int:
    console = Console()
    with redis_for(settings.redis_url, settings.data_dir) as redis_url:
        port = _free_port()
        sandbox_url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "BULKSEND_REDIS_URL": redis_url,
            "BULKSEND_PROVIDER_URL": sandbox_url,
            "BULKSEND_PROVIDER_USERNAME": settings.sandbox_username,
            "BULKSEND_PROVIDER_API_PASSWORD": settings.sandbox_api_password.get_secret_value(),
        }
        cmd = [sys.executable, "-m", "bulksend"]
        children: list[subprocess.Popen[bytes]] = []
        try:
            sandbox = subprocess.Popen([*cmd, "sandbox", "--port", str(port)], env=env)
            children.append(sandbox)
            _wait_http(f"{sandbox_url}/_sandbox/stats", sandbox)
            httpx.post(f"{sandbox_url}/_sandbox/reset").raise_for_status()
            console.print(f"redis {redis_url} · sandbox {sandbox_url} · {workers} workers")
            for _ in range(workers):
                children.append(
                    subprocess.Popen([*cmd, "worker"], env=env, stderr=subprocess.DEVNULL)
                )
            live = settings.model_copy(update={"redis_url": redis_url})
            started = time.monotonic()
            status = asyncio.run(_submit_and_follow(live, demo_sms(recipients), console))
            elapsed = time.monotonic() - started
            stats = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
        finally:
            for child in reversed(children):
                child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
    return _report(console, status, stats, elapsed, recipients)


def _report(
    console: Console, status: dict[str, Any], stats: dict[str, Any], elapsed: float, valid: int
) -> int:
    counts = status["counts"]
    sms = stats["channels"].get("sms", {})
    table = Table(title=f"sending {status['id']} — {status['state']} in {elapsed:.1f}s")
    for name in counts:
        table.add_column(name, justify="right")
    table.add_row(*(str(v) for v in counts.values()))
    console.print(table)
    console.print(
        f"sandbox: {sms.get('requests', 0)} requests, {sms.get('recipients', 0)} recipients "
        f"accepted, {sms.get('duplicates', 0)} received more than once"
    )
    recorded = sum(v for k, v in counts.items() if k not in ("total", "queued", "sending"))
    ok = (
        status["final"]
        and recorded == counts["total"]
        and counts["accepted"] == valid == sms.get("recipients")
        and counts["rejected"] == len(INVALID_NUMBERS)
        and sms.get("duplicates") == 0
    )
    console.print("[green]all recipients recorded once[/]" if ok else "[red]accounting mismatch[/]")
    return 0 if ok else 1
