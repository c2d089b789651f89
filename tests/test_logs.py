"""``BULKSEND_LOG_FORMAT``: JSON lines from real processes, and no recipient data in any log.

A real ``bulksend worker`` sends (then meets a credits hold) and a real ``bulksend
serve`` answers probes, delivery notifications and the API; every line they write
must be JSON with ``ts``/``level``/``logger``/``message``, chunk lines must carry
their sending's id, and no phone number, message text, ``sub`` value, hook secret or
query string may show anywhere. The formatter and the access-log filter are checked
on their own too.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bulksend import logs
from bulksend.stack import ServeProcess, WorkerProcesses
from tests.helpers import numbers, set_faults

BULKSEND = [sys.executable, "-m", "bulksend"]
SECRET = "hook-secret-never-logged"
TEXT = "Private note for {name}: table 7781"
NAMES = ["Zephyrine", "Quillon", "Marvolo"]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BULKSEND, *args], env=env, capture_output=True, text=True, timeout=120)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line as JSON with the four keys every line has; fails on the first that is not."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert {"ts", "level", "logger", "message"} <= parsed.keys(), line
        assert datetime.fromisoformat(parsed["ts"]).utcoffset() is not None, line
        out.append(parsed)
    return out


def send_sms(env: dict[str, str], to: list[str], tmp_path: Path, *flags: str) -> str:
    subs = tmp_path / f"subs-{to[0]}.jsonl"
    subs.write_text("".join(json.dumps({"name": n}) + "\n" for n in NAMES[: len(to)]))
    args = ["send", "sms", "--from", "TEST", "--message", TEXT, "--sub-file", str(subs), "--json"]
    for number in to:
        args += ["--to", number]
    done = cli(env, *args, *flags)
    assert done.returncode == 0, done.stderr
    json_lines(done.stderr)  # the CLI's own log lines, if any, are JSON too
    return str(json.loads(done.stdout)["id"])


def status(env: dict[str, str], sending_id: str) -> dict[str, Any]:
    done = cli(env, "status", sending_id, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def assert_no_recipient_data(text: str, to: list[str]) -> None:
    rendered = [TEXT.format(name=n) for n in NAMES]
    for private in [*to, *NAMES, TEXT, *rendered, TEXT.split(":")[0]]:
        assert private not in text, f"{private!r} is in the log"


def test_a_worker_logs_json_with_sending_ids_and_no_recipient_data(
    env: dict[str, str], sandbox_url: str, tmp_path: Path
) -> None:
    env = {**env, "BULKSEND_LOG_FORMAT": "json"}
    sent, held = numbers(3, start=4242), numbers(2, start=9191)
    with WorkerProcesses(env, log_dir=tmp_path) as workers:
        workers.start(1)
        first = send_sms(env, sent, tmp_path, "--wait", "--timeout", "60")
        # Credits run out: the account is held (a log line with the provider's reason)
        # and the chunk parked (a chunk line).
        set_faults(sandbox_url, error={"code": 111, "rate": 1.0})
        second = send_sms(env, held, tmp_path)
        deadline = time.monotonic() + 60
        while "account" not in status(env, second):
            assert time.monotonic() < deadline, "the account was never held"
            time.sleep(0.1)
        assert workers.stop() == [0]  # SIGTERM: drains, then exits cleanly
    log = workers.log(0)
    assert log is not None
    text = log.read_text()
    lines = json_lines(text)

    chunk_lines = [
        line for line in lines if line["logger"] == "bulksend.worker" and "chunk" in line
    ]
    done = [line for line in chunk_lines if line.get("sending") == first]
    assert done and all(line["chunk"] in line["message"] for line in done)
    assert "3 recipients in 1 calls" in done[0]["message"]
    parked = [line for line in chunk_lines if line.get("sending") == second]
    assert parked and "parked: account held" in parked[0]["message"]
    [hold] = [line for line in lines if line["logger"] == "bulksend.accounts"]
    assert hold["level"] == "ERROR" and hold["scope"] == "*"
    assert hold["message"].startswith(f"provider account {hold['account']} held: 111")
    messages = [line["message"] for line in lines]
    assert any(m.startswith("worker started on queue") for m in messages)
    assert any(m.startswith("worker stopped on queue") for m in messages)
    assert all(isinstance(line["pid"], int) and line["host"] for line in lines)
    assert_no_recipient_data(text, [*sent, *held])


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_serve_access_log_has_no_secret_query_or_phone(
    env: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    serve_env = {
        **env,
        "BULKSEND_LOG_FORMAT": fmt,
        "BULKSEND_API_TOKEN": "t",
        "BULKSEND_HOOK_SECRET": SECRET,
    }
    phone = numbers(1, start=5151)[0]
    log = tmp_path / "serve.log"
    with ServeProcess(serve_env, log=log) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz").status_code == 200
        dlr = {"s": "s1", "r": "0", "i": "m-77", "st": "DELIVRD", "P": phone, "y": "2026-01-05"}
        assert client.get(f"/hooks/dlr/{SECRET}", params=dlr).status_code == 200
        no_id = {"st": "DELIVRD", "P": phone}  # malformed: logged as a warning, answered 200
        assert client.get(f"/hooks/dlr/{SECRET}", params=no_id).status_code == 200
        form = {"id": "m-77", "event": "opened", "eventDate": "2026-01-05T10:00:00+00:00"}
        assert client.post(f"/hooks/events/{SECRET}", data=form).status_code == 200
        listing = client.get(
            "/v1/sendings", params={"state": "running"}, headers={"Authorization": "Bearer t"}
        )
        assert listing.status_code == 200
    text = log.read_text()
    assert SECRET not in text and phone not in text
    assert "DELIVRD" not in text and "state=running" not in text
    requests = [line for line in text.splitlines() if " HTTP/1.1" in line]
    assert len(requests) >= 5 and not any("?" in line for line in requests)
    assert "/hooks/dlr/…" in text and "/hooks/events/…" in text and "/v1/sendings" in text
    if fmt == "text":
        return
    lines = json_lines(text)
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert {(line["method"], line["path"], line["status"]) for line in access} >= {
        ("GET", "/healthz", 200),
        ("GET", "/hooks/dlr/…", 200),
        ("POST", "/hooks/events/…", 200),
        ("GET", "/v1/sendings", 200),
    }
    hooks = {line["message"]: line["level"] for line in lines if line["logger"] == "bulksend.hooks"}
    assert hooks["a malformed notification was ignored: i: missing (%i, the message id)"] == (
        "WARNING"
    )
    # SIGTERM: uvicorn's graceful shutdown ran to its end.
    errors = [line["message"] for line in lines if line["logger"] == "uvicorn.error"]
    assert "Shutting down" in errors
    assert any(m.startswith("Finished server process") for m in errors)


def record(msg: str, *args: object, **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord("bulksend.worker", logging.INFO, __file__, 1, msg, args, None)
    made.__dict__.update(extra)
    return made


def test_the_json_formatter_line() -> None:
    line = json.loads(
        logs.JsonFormatter().format(
            record("sending %s chunk %s: done", "s1", "c0", sending="s1", chunk="c0")
        )
    )
    assert line["message"] == "sending s1 chunk c0: done"
    assert (line["level"], line["logger"], line["sending"], line["chunk"]) == (
        "INFO",
        "bulksend.worker",
        "s1",
        "c0",
    )
    assert line["ts"].endswith("Z")
    assert datetime.fromisoformat(line["ts"]).utcoffset() == UTC.utcoffset(None)
    assert "exc" not in line
    odd = json.loads(logs.JsonFormatter().format(record("x", sending=Path("s2"))))
    assert odd["sending"] == "s2"  # whatever is given becomes a string, never an error


def test_an_exception_becomes_exc() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord(
            "bulksend.sweeper", logging.ERROR, __file__, 1, "sweep failed", None, sys.exc_info()
        )
    line = json.loads(logs.JsonFormatter().format(failed))
    assert line["level"] == "ERROR" and line["message"] == "sweep failed"
    assert line["exc"].startswith("Traceback") and line["exc"].endswith("ValueError: boom")


def test_the_access_log_drops_query_strings() -> None:
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("10.0.0.1:5000", "GET", "/ui/sendings/s1?q=%2B34660005151", "1.1", 200),
        None,
    )
    assert logs.DropQuery().filter(access)
    assert access.getMessage() == '10.0.0.1:5000 - "GET /ui/sendings/s1 HTTP/1.1" 200'
    for fmt in ("text", "json"):
        config = logs.uvicorn_config(fmt)
        assert config["loggers"]["uvicorn.access"]["filters"] == ["drop_query"]
        assert config["loggers"]["arq.worker"] == {"level": "WARNING"}
