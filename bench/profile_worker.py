"""A flame graph of one ``bulksend worker`` sending 100,000 SMS recipients (py-spy).

Redis and the sandbox run as in the benches; the sending (``sub`` per recipient)
is submitted first, then one worker starts and ``py-spy record`` samples it at
200 Hz until the sending is final. The SVG goes to ``docs/profile-worker.svg``
(the README's profile), or where ``--out`` says; ``--format raw`` writes the
collapsed stacks instead, to read as text.

Run: python bench/profile_worker.py [--recipients 100000] [--out docs/profile-worker.svg]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bulksend.redis_server import RedisServer
from bulksend.stack import SandboxProcess, WorkerProcesses
from jobs.producer import Producer
from jobs.settings import Settings
from jobs.sms import Sms


async def profile(n: int, out: Path, fmt: str) -> float:
    with tempfile.TemporaryDirectory() as folder:
        redis = RedisServer(Path(folder))
        redis.start()
        try:
            with SandboxProcess() as sandbox:
                env = {
                    **os.environ,
                    "BULKSEND_REDIS_URL": redis.url,
                    "BULKSEND_PROVIDER_URL": sandbox.url,
                    "BULKSEND_QUEUE_NAME": "profile",
                }
                settings = Settings(
                    redis_url=redis.url, provider_url=sandbox.url, queue_name="profile"
                )
                producer = await Producer.connect(settings)
                job = Sms.model_validate(
                    {
                        "to": [f"3466{i:07d}" for i in range(n)],
                        "from": "SHOP",
                        "message": "Hi {name}, sale!",
                        "sub": [{"name": f"n{i}"} for i in range(n)],
                    }
                )
                sending_id = await producer.submit(job)
                with WorkerProcesses(env) as workers:
                    workers.start(1)
                    spy = subprocess.Popen(
                        [str(Path(sys.executable).parent / "py-spy"), "record", "-p",
                         str(workers[0].pid), "-o", str(out), "-f", fmt, "-r", "200"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                    started = time.monotonic()
                    await producer.wait(sending_id, timeout=600, poll=0.1)
                    seconds = time.monotonic() - started
                    spy.send_signal(signal.SIGINT)  # py-spy writes what it has
                    spy.wait()
                await producer.close()
        finally:
            redis.stop()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("docs/profile-worker.svg"))
    parser.add_argument("--format", default="flamegraph", choices=["flamegraph", "raw"])
    args = parser.parse_args()
    seconds = asyncio.run(profile(args.recipients, args.out, args.format))
    print(f"{args.recipients:,} recipients final in {seconds:.1f}s; profile in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
