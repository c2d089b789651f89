"""Contact import throughput and memory, side by side with the machine's limit for the work.

1. baseline: ``csv`` + ``phonenumbers`` + ``email-validator`` alone on the file —
   read each row, parse and check its phone, validate its email: what any
   importer must at least do, in one process with nothing else.
2. pipeline: ``bulksend import FILE --target mail`` in a subprocess (the producer),
   with ``--workers`` (1) ``bulksend worker`` processes uploading CSV files to the
   sandbox's mail API; rows/s from submit start to the import being final. On 2
   cores one worker is enough: the producer's reading is the long pole, and a
   second worker only takes CPU from it.
3. the ratio pipeline / baseline, and peak RSS of the producer and each worker.

The mail target is the one a million rows are imported through: the messaging
API takes one contact per request (messaging-api.txt → Databases → POST
/api/rest/contacts), so its rate is the provider's, not ours; ``--messaging N``
also times N rows through it for the record.

Run: python bench/import.py [--rows 1000000] [--messaging 0]
(the last line is machine-readable: RESULT key=value ...)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from bulksend.redis_server import RedisServer
from bulksend.stack import SandboxProcess, start_workers
from jobs import Producer, Settings

FIRST = ["Ana", "Ben", "Chloé", "Dan", "Eva", "Fay", "Gus", "Hugo"]


def write_file(path: Path, rows: int) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["First name", "Last name", "Mobile", "E-mail", "Country", "City"])
        for i in range(rows):
            bad = i % 1000 == 999  # one row in a thousand has an invalid email
            email = f"c{i}@nowhere" if bad else f"c{i}@example.com"
            out.writerow([FIRST[i % 8], f"Demo{i}", f"6{i:08d}", email, "ES", "Madrid"])


def baseline(path: Path) -> float:
    """Rows per second of the bare work: csv + phonenumbers + email-validator."""
    started = time.perf_counter()
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for row in reader:
            try:
                number = phonenumbers.parse(row[2], row[4])
                phonenumbers.is_possible_number(number)
            except phonenumbers.NumberParseException:
                pass
            with contextlib.suppress(EmailNotValidError):
                validate_email(row[3], check_deliverability=False)
    return rows_in(path) / (time.perf_counter() - started)


def rows_in(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh) - 1


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def wait_final(settings: Settings, sending_id: str) -> dict[str, object]:
    producer = await Producer.connect(settings)
    try:
        return await producer.wait(sending_id, timeout=3600, poll=0.5)
    finally:
        await producer.close()


def pipeline(
    path: Path, env: dict[str, str], target: str, group: str, workers_n: int
) -> dict[str, float]:
    settings = Settings(redis_url=env["BULKSEND_REDIS_URL"], queue_name=env["BULKSEND_QUEUE_NAME"])
    with start_workers(workers_n, env) as workers:
        started = time.perf_counter()
        submit = subprocess.run(
            [sys.executable, "-m", "bulksend", "import", str(path), "--group", group,
             "--target", target, "--json"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        producer_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        sending_id = submit.stdout.strip().split('"')[3]
        status = asyncio.run(wait_final(settings, sending_id))
        elapsed = time.perf_counter() - started
        worker_rss = max(peak_rss_mb(w.pid) for w in workers)
    counts = status["counts"]
    assert isinstance(counts, dict)
    return {
        "rows_per_s": rows_in(path) / elapsed,
        "accepted": float(counts["accepted"]),
        "rejected": float(counts["rejected"]),
        "producer_rss_mb": producer_rss,
        "worker_rss_mb": worker_rss,
        "elapsed_s": elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--messaging", type=int, default=0, help="also import N rows that way")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        path = tmp / "contacts.csv"
        write_file(path, args.rows)
        base = baseline(path)
        print(f"baseline (csv + phonenumbers + email-validator): {base:,.0f} rows/s")
        redis_server = RedisServer(tmp / "redis")
        redis_server.start()
        try:
            env = {
                **os.environ,
                "BULKSEND_REDIS_URL": redis_server.url,
                "BULKSEND_QUEUE_NAME": "bench:import",
                "BULKSEND_DATA_DIR": str(tmp / "data"),
            }
            with SandboxProcess(env) as sandbox:
                env["BULKSEND_PROVIDER_URL"] = sandbox.url
                env["BULKSEND_MAIL_API_URL"] = f"{sandbox.url}/mail/api/"
                mail = pipeline(path, env, "mail", "3", args.workers)
                stats = httpx.get(f"{sandbox.url}/_sandbox/stats").json()
                print(
                    f"pipeline (--target mail, {args.workers} worker(s)): "
                    f"{mail['rows_per_s']:,.0f} rows/s "
                    f"in {mail['elapsed_s']:.1f}s; accepted {mail['accepted']:,.0f}, "
                    f"rejected {mail['rejected']:,.0f}; sandbox {stats.get('mail')}"
                )
                messaging_rate = 0.0
                if args.messaging:
                    small = tmp / "small.csv"
                    write_file(small, args.messaging)
                    messaging = pipeline(small, env, "messaging", "bench", args.workers)
                    messaging_rate = messaging["rows_per_s"]
                    print(
                        f"messaging target, {args.messaging:,} rows: {messaging_rate:,.0f} rows/s"
                    )
        finally:
            redis_server.stop()
    ratio = mail["rows_per_s"] / base
    print(
        f"RESULT rows={args.rows} pipeline_vs_baseline={ratio:.2f} "
        f"pipeline_rows_per_s={mail['rows_per_s']:.0f} baseline_rows_per_s={base:.0f} "
        f"producer_rss_mb={mail['producer_rss_mb']:.0f} worker_rss_mb={mail['worker_rss_mb']:.0f} "
        f"messaging_rows_per_s={messaging_rate:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
