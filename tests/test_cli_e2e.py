"""The command line and real ``bulksend worker`` processes, end to end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bulksend.stack import WorkerProcesses, start_workers
from jobs.settings import Settings
from tests.helpers import drain, numbers, sandbox_stats

BULKSEND = [sys.executable, "-m", "bulksend"]


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BULKSEND, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def workers(env: dict[str, str]) -> Iterator[WorkerProcesses]:
    procs = start_workers(2, env)
    yield procs
    procs.send_signal(signal.SIGTERM)
    for p in procs:
        assert p.wait(30) == 0  # SIGTERM drains and exits cleanly


def test_send_wait_json_with_two_worker_processes(
    env: dict[str, str], workers: WorkerProcesses, sandbox_url: str, tmp_path: Path
) -> None:
    to = numbers(2500)
    invalid = ["12", "abc", "34"]
    subs = tmp_path / "subs.jsonl"
    subs.write_text("".join(json.dumps({"name": f"n{i}"}) + "\n" for i in range(len(to) + 3)))
    args = ["send", "sms", "--from", "TEST", "--message", "Hello {name}", "--sub-file", str(subs)]
    for number in [*to, *invalid]:
        args += ["--to", number]
    done = cli(env, *args, "--wait", "--json", "--timeout", "120", timeout=180)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["state"] == "done"
    assert status["counts"] == {
        "total": 2503,
        "queued": 0,
        "sending": 0,
        "accepted": 2500,
        "rejected": 3,
        "failed": 0,
        "unknown": 0,
        "expired": 0,
        "cancelled": 0,
        "suppressed": 0,
    }
    stats = sandbox_stats(sandbox_url)
    assert stats["recipients"] == 2500 and stats["duplicates"] == 0

    again = cli(env, "status", status["id"], "--json")
    assert json.loads(again.stdout)["counts"] == status["counts"]

    export = cli(env, "results", status["id"])
    rows = [json.loads(line) for line in export.stdout.splitlines()]
    assert [r["to"] for r in rows] == [*to, *invalid]
    assert {r["status"] for r in rows[:2500]} == {"accepted"}
    assert {(r["status"], r["code"]) for r in rows[2500:]} == {("rejected", 102)}


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--from", "TEST", "--to", "34666555444", "--message", " "], "message"),
        (["--from", "WAYTOOLONGSENDER", "--to", "34666555444", "--message", "x"], "from"),
        (["--from", "TEST", "--to", "12", "--message", "x"], "to"),
        (["--from", "T", "--to", "34666555444", "--message", "x", "--schedule-date", "2024"],
         "scheduleDate"),
        (["--from", "T", "--to", "34666555444", "--message", "x", "--tags", "a"], "tags"),
    ],
)  # fmt: skip
def test_invalid_sending_is_refused_with_one_line_and_nothing_enqueued(
    env: dict[str, str], redis_url: str, flags: list[str], field: str
) -> None:
    result = cli(env, "send", "sms", *flags)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], result.stderr
    assert redis.Redis.from_url(redis_url).dbsize() == 0


def test_sub_count_must_match_recipients(
    env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    subs = tmp_path / "subs.jsonl"
    subs.write_text('{"name": "a"}\n')
    result = cli(env, "send", "sms", "--from", "T", "--to", "34666555444", "--to", "34666555333",
                 "--message", "Hi {name}", "--sub-file", str(subs))  # fmt: skip
    assert result.returncode == 2 and "sub" in result.stderr and "2 recipients" in result.stderr
    assert redis.Redis.from_url(redis_url).dbsize() == 0


def test_status_of_unknown_sending_is_an_error(env: dict[str, str], redis_url: str) -> None:
    result = cli(env, "status", "nope")
    assert result.returncode == 2 and "no sending" in result.stderr


def test_sms_info_json(env: dict[str, str]) -> None:
    result = cli(env, "sms-info", "Hola José ✓" + "a" * 70, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert {k: info[k] for k in ("encoding", "length", "parts", "per_part", "offending")} == {
        "encoding": "utf-16",
        "length": 81,
        "parts": 2,
        "per_part": 67,
        "offending": ["✓"],
    }
    bad = cli(env, "sms-info", "😀", "--encoding", "gsm")
    assert bad.returncode == 2 and "113" in bad.stderr and "😀" in bad.stderr


EMAIL = ["--from-email", "n@example.com", "--reply-to", "n@example.com", "--subject", "s"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["email", "--to", "a@example.com", *EMAIL, "--body", "b", "--attach", "/nope.pdf"],
         "attach"),
        (["email", "--to", "a@example.com", *EMAIL], "templateId"),
        (["email", "--to", "a@example.com", "--from-email", "n@example.com", "--reply-to", "bad",
          "--subject", "s", "--body", "b"], "replyTo"),
        (["voice", "--to", "34666555444", "--message", "hi", "--language", "xx_XX",
          "--gender", "F"], "language"),
        (["voice", "--to", "34666555444", "--message", "hi", "--language", "en_GB", "--gender", "F",
          "--retries", "9"], "retries"),
        (["voice-audio", "--to", "34666555444", "--audio-url", "https://x.example/a.exe"],
         "audioUrl"),
        (["landing", "--from", "S", "--to", "34666555444", "--message", "no link",
          "--template-body", "<p>x</p>"], "message"),
        (["whatsapp", "--from", "34666777555", "--messages", '[{"to": "34666555444"}]'],
         "templateId"),
        (["whatsapp", "--template-id", "1", "--from", "34666777555", "--messages", "[{"],
         "messages"),
    ],
)  # fmt: skip
def test_invalid_sendings_of_every_channel(
    env: dict[str, str], redis_url: str, args: list[str], field: str
) -> None:
    result = cli(env, "send", *args)
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], result.stderr
    assert redis.Redis.from_url(redis_url).dbsize() == 0


def test_send_email_with_attachment_by_path_waits_for_the_result(
    env: dict[str, str], workers: WorkerProcesses, sandbox_url: str, tmp_path: Path
) -> None:
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")
    done = cli(env, "send", "email", "--to", "ana@example.com", "--to", "nope", *EMAIL,
               "--body", "<p>hi</p>", "--attach", str(report), "--wait", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)["counts"]
    assert (counts["accepted"], counts["rejected"]) == (1, 1)
    sent = sandbox_stats(sandbox_url, "email")
    assert sent["recipients"] == 1 and sent["duplicates"] == 0


async def test_cancel_before_any_worker_runs_cancels_everyone(
    env: dict[str, str], settings: Settings, sandbox_url: str
) -> None:
    sent = cli(env, "send", "sms", "--from", "T", "--message", "hi", "--to", "34666555444",
               "--to", "34666555333", "--json")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    sending_id = json.loads(sent.stdout)["id"]
    done = cli(env, "cancel", sending_id, "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["final"] and status["counts"]["cancelled"] == 2
    assert cli(env, "cancel", "s-nope").stderr.startswith("bulksend: error: id: no sending")
    await drain(settings)  # the chunk job runs, and sends nothing
    assert sandbox_stats(sandbox_url)["requests"] == 0


def test_list_shows_the_sendings_newest_first(env: dict[str, str], redis_url: str) -> None:
    ids = []
    for text in ("one", "two"):
        sent = cli(env, "send", "sms", "--from", "T", "--message", text, "--to", "34666555444",
                   "--json")  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        ids.append(json.loads(sent.stdout)["id"])
    listed = cli(env, "list", "--kind", "sms", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [s["id"] for s in json.loads(listed.stdout)["data"]] == ids[::-1]
    assert json.loads(cli(env, "list", "--kind", "email", "--json").stdout)["data"] == []
