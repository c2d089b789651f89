"""The local stack's child processes: the sandbox provider, workers, the web service.

The demo, the tests and the benchmarks all run the real parts on one machine,
as children of the process that needs them. How to pick a free port, start the
sandbox or the web service and wait until it answers, and start workers and
stop them (SIGTERM so that they drain their calls, SIGKILL for what does not
stop) is written here once, so that the three cannot drift apart. Redis has
its own module, ``bulksend.redis_server``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

Process = subprocess.Popen[bytes]
PreExec = Callable[[], object] | None
SANDBOX = (sys.executable, "-m", "sandbox")
WORKER = (sys.executable, "-m", "bulksend", "worker")
SERVE = (sys.executable, "-m", "bulksend", "serve")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_processes(procs: Iterable[Process], grace: float = 30) -> list[int]:
    """SIGTERM every live one (a worker drains its calls), SIGKILL what still runs
    ``grace`` seconds later; their exit codes, in order."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return [proc.returncode for proc in procs]


def _spawn(
    argv: Sequence[str], env: Mapping[str, str] | None, log: Path | None, preexec_fn: PreExec
) -> Process:
    """A child writing to ``log`` (appended; both streams), or to this process's
    stdout with its stderr dropped when there is no log."""
    if log is None:
        return subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL, preexec_fn=preexec_fn)
    with log.open("ab") as out:  # a file, not a pipe: nobody reads it while they run
        return subprocess.Popen(argv, env=env, stdout=out, stderr=out, preexec_fn=preexec_fn)


class HttpProcess:
    """A child serving HTTP on a loopback port (a free one unless given), answering
    ``probe`` once constructed; a context manager that stops it."""

    argv: tuple[str, ...]
    probe: str
    name: str

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        log: Path | None = None,
        timeout: float = 20,
        preexec_fn: PreExec = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [*self.argv, "--port", str(self.port)]
        if log is None:  # its own warnings are worth seeing
            self.process: Process = subprocess.Popen(argv, env=env, preexec_fn=preexec_fn)
        else:
            self.process = _spawn(argv, env, log, preexec_fn)
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(f"{self.url}{self.probe}", timeout=1).raise_for_status()
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    detail = f": {log.read_text()[-2000:]}" if log and log.exists() else ""
                    raise RuntimeError(f"{self.name} on {self.url} did not start{detail}") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace: float = 15) -> None:
        """Stop it (SIGTERM), SIGKILL after ``grace`` seconds."""
        stop_processes([self.process], grace)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class SandboxProcess(HttpProcess):
    """``python -m sandbox``; ``stop``'s grace lets delayed (ambiguous) replies still
    pending finish."""

    argv = SANDBOX
    probe = "/_sandbox/stats"
    name = "sandbox"


class ServeProcess(HttpProcess):
    """``bulksend serve``: ``env`` must hold ``BULKSEND_API_TOKEN`` (and the Redis to use)."""

    argv = SERVE
    probe = "/healthz"
    name = "bulksend serve"


class WorkerProcesses:
    """Worker processes sharing one environment (``bulksend worker`` unless ``argv``
    says otherwise); a context manager that stops them all."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        argv: Sequence[str] = WORKER,
        log_dir: Path | None = None,
        name: str = "worker",
        preexec_fn: PreExec = None,
    ) -> None:
        self.env = env
        self.argv = list(argv)
        self.log_dir = log_dir
        self.name = name
        self.preexec_fn = preexec_fn
        self.procs: list[Process] = []

    def log(self, index: int) -> Path | None:
        """Where worker ``index`` writes (``<log_dir>/<name>-<index>.log``), if anywhere."""
        return self.log_dir / f"{self.name}-{index}.log" if self.log_dir else None

    def start(self, n: int = 1, env: Mapping[str, str] | None = None) -> list[Process]:
        """``n`` more workers (with ``env`` instead of the shared one, if given)."""
        started = [
            _spawn(self.argv, env or self.env, self.log(len(self.procs) + i), self.preexec_fn)
            for i in range(n)
        ]
        self.procs += started
        return started

    def restart(self, index: int, sig: int = signal.SIGKILL) -> Process:
        """Send worker ``index`` ``sig``, wait for it to exit, start a new one (with the
        shared environment) in its place."""
        old = self.procs[index]
        old.send_signal(sig)
        old.wait()
        self.procs[index] = _spawn(self.argv, self.env, self.log(index), self.preexec_fn)
        return self.procs[index]

    def send_signal(self, sig: int) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(sig)

    def stop(self, grace: float = 30) -> list[int]:
        """SIGTERM (they drain), SIGKILL after ``grace`` seconds; their exit codes."""
        return stop_processes(self.procs, grace)

    def kill(self) -> None:
        """SIGKILL: no draining, calls on the wire are cut."""
        self.send_signal(signal.SIGKILL)
        for proc in self.procs:
            proc.wait()

    def __iter__(self) -> Iterator[Process]:
        return iter(self.procs)

    def __getitem__(self, index: int) -> Process:
        return self.procs[index]

    def __len__(self) -> int:
        return len(self.procs)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_workers(n: int, env: Mapping[str, str]) -> WorkerProcesses:
    """``n`` ``bulksend worker`` processes with ``env``, their stderr dropped."""
    workers = WorkerProcesses(env)
    workers.start(n)
    return workers
