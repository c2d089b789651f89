"""Where one recipient's CPU goes, stage by stage, and a flame graph of the worker (py-spy).

Redis and the sandbox run as in the benches. A 100,000-recipient SMS sending
(``sub`` per recipient) is submitted first, by this process, with nothing else
running; then one worker starts and sends it. Each stage's CPU is read from
``/proc`` (this process's own for the submit), so the figures are what each part
costs alone — steadier than ``bench/throughput.py``'s, where everything runs at
once on two cores and a run varies by a tenth.

With ``--format flamegraph`` (the default) ``py-spy record`` samples the worker at
200 Hz (``--rate``) and the SVG goes to ``docs/profile-worker.svg`` (the README's profile), or
where ``--out`` says; ``raw`` writes the collapsed stacks instead, to read as text;
``none`` samples nothing (py-spy pauses the worker to sample it: the CPU figures
are then the worker's own). The sending's Redis commands follow, from ``INFO
commandstats``: calls and µs per recipient each, those the scripts make counted
both alone and inside their ``EVALSHA``; and each script's µs per recipient, from
the slow log with every command in it.

Run: python bench/profile_worker.py [--recipients 100000] [--out docs/profile-worker.svg]
     [--format flamegraph|raw|none] [--rate 200]
(the last line is machine-readable: RESULT key=value ...)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import redis as sync_redis

from bulksend.redis_server import RedisServer
from bulksend.stack import SandboxProcess, WorkerProcesses
from jobs import results
from jobs.producer import Producer
from jobs.settings import Settings
from jobs.sms import Sms

CLK_TCK = os.sysconf("SC_CLK_TCK")
QUEUE = "profile"
SLOWLOG_ENTRIES = 100_000  # every command of a 100,000-recipient sending and more


def script_times(entries: list[dict[str, Any]]) -> dict[str, int]:
    """µs each of ``jobs.results``' scripts took in all, by name, from the slow log (every
    command logged): ``INFO commandstats`` counts every ``EVALSHA`` as one command."""
    names = {
        hashlib.sha1(text.encode()).hexdigest(): name.removeprefix("_LUA_").lower()
        for name, text in vars(results).items()
        if name.startswith("_LUA_") and isinstance(text, str)
    }
    took: dict[str, int] = {}
    for entry in entries:
        command = entry["command"]  # its arguments are binary (MessagePack): not text
        if isinstance(command, str):
            command = command.encode("latin-1", "replace")
        if command[:8].upper() == b"EVALSHA ":
            name = names.get(command[8:48].decode("ascii", "replace"), "other")
            took[name] = took.get(name, 0) + int(entry["duration"])
    return took


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def profile(n: int, out: Path, fmt: str, rate: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder))
        server.start()
        client = sync_redis.Redis.from_url(server.url)
        assert server.process is not None
        redis_pid = server.process.pid
        try:
            with SandboxProcess() as sandbox:
                env = {
                    **os.environ,
                    "BULKSEND_REDIS_URL": server.url,
                    "BULKSEND_PROVIDER_URL": sandbox.url,
                    "BULKSEND_QUEUE_NAME": QUEUE,
                }
                settings = Settings(
                    redis_url=server.url, provider_url=sandbox.url, queue_name=QUEUE
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
                redis_before, submit_before = cpu_seconds(redis_pid), time.process_time()
                sending_id = await producer.submit(job)
                submit_cpu = time.process_time() - submit_before
                submit_redis = cpu_seconds(redis_pid) - redis_before
                with WorkerProcesses(env, log_dir=Path(folder)) as workers:
                    worker = workers.start(1)[0]
                    log = workers.log(0)
                    assert log is not None
                    while b"worker started" not in log.read_bytes():  # its imports are done
                        await asyncio.sleep(0.005)
                    client.config_resetstat()
                    client.config_set("slowlog-log-slower-than", 0)  # every command: its time
                    client.config_set("slowlog-max-len", SLOWLOG_ENTRIES)
                    client.slowlog_reset()
                    worker_before, redis_before = cpu_seconds(worker.pid), cpu_seconds(redis_pid)
                    spy = None
                    if fmt != "none":
                        spy = subprocess.Popen(
                            [str(Path(sys.executable).parent / "py-spy"), "record", "-p",
                             str(worker.pid), "-o", str(out), "-f", fmt, "-r", str(rate)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        )  # fmt: skip
                    started = time.monotonic()
                    await producer.wait(sending_id, timeout=600, poll=0.05)
                    seconds = time.monotonic() - started
                    worker_cpu = cpu_seconds(worker.pid) - worker_before
                    send_redis = cpu_seconds(redis_pid) - redis_before
                    commands = cast(dict[str, Any], client.info("commandstats"))
                    logged = cast(list[dict[str, Any]], client.slowlog_get(SLOWLOG_ENTRIES))
                    scripts = script_times(logged)
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)  # py-spy writes what it has
                        spy.wait()
                await producer.close()
        finally:
            client.close()
            server.stop()
    per = 1e6 / n
    return {
        "seconds": seconds,
        "submit_us": submit_cpu * per,
        "submit_redis_us": submit_redis * per,
        "worker_us": worker_cpu * per,
        "send_redis_us": send_redis * per,
        "scripts": {name: us / n for name, us in scripts.items()},
        "commands": {
            name.removeprefix("cmdstat_"): (stat["calls"] / n, stat["usec"] / n)
            for name, stat in commands.items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("docs/profile-worker.svg"))
    parser.add_argument("--format", default="flamegraph", choices=["flamegraph", "raw", "none"])
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    args = parser.parse_args()
    got = asyncio.run(profile(args.recipients, args.out, args.format, args.rate))
    where = f"; profile in {args.out}" if args.format != "none" else ""
    print(f"{args.recipients:,} recipients final in {got['seconds']:.1f}s after the submit{where}")
    print(
        f"µs of CPU per recipient: submit {got['submit_us']:.1f} (producer) + "
        f"{got['submit_redis_us']:.1f} (Redis); sending {got['worker_us']:.1f} (worker) + "
        f"{got['send_redis_us']:.1f} (Redis)"
    )
    print(
        "the sending's scripts, µs per recipient: "
        + ", ".join(f"{name} {us:.2f}" for name, us in sorted(got["scripts"].items(),
                                                               key=lambda s: -s[1]))
    )  # fmt: skip
    print("the sending's Redis commands, per recipient (calls, µs):")
    for name, (calls, us) in sorted(got["commands"].items(), key=lambda c: -c[1][1])[:8]:
        print(f"  {name:<10} {calls:7.3f} {us:6.2f}")
    workers_redis = got["worker_us"] + got["submit_redis_us"] + got["send_redis_us"]
    print(
        f"RESULT submit_us={got['submit_us']:.1f} submit_redis_us={got['submit_redis_us']:.1f} "
        f"worker_us={got['worker_us']:.1f} send_redis_us={got['send_redis_us']:.1f} "
        f"workers_and_redis_us={workers_redis:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
