"""`bulksend demo`, the main job: every channel through real worker processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from bulksend.stack import free_port


def test_demo_every_channel_recorded_once(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bulksend", "demo", "--recipients", "300"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "every recipient recorded once; nobody received twice" in out
    for channel in ("sms", "email", "voice", "voice-audio", "landing", "whatsapp"):
        assert channel in out


def test_demo_serve_keeps_the_stack_behind_the_api_and_dashboard_until_ctrl_c(
    env: dict[str, str],
) -> None:
    port = free_port()
    argv = ["demo", "--recipients", "200", "--serve", "--port", str(port)]
    demo = subprocess.Popen(
        [sys.executable, "-m", "bulksend", *argv],
        env={**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        assert demo.stdout is not None
        out, token = "", None
        deadline = time.monotonic() + 180
        while token is None and time.monotonic() < deadline and demo.poll() is None:
            line = demo.stdout.readline()
            out += line
            found = re.match(r"token (\S+)", line.strip())
            token = found.group(1) if found else None
        assert token is not None, out
        assert "every recipient recorded once; nobody received twice" in out
        assert f"dashboard http://127.0.0.1:{port}/ (sign in with the token)" in out
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            assert api.get("/v1/sendings").status_code == 401
            assert api.post("/ui/signin", data={"token": token}).status_code == 303
            overview = api.get("/")  # the printed token opens the dashboard
            assert overview.status_code == 200 and "Latest sendings" in overview.text
            listed = api.get("/v1/sendings", headers={"Authorization": f"Bearer {token}"})
            kinds = {status["kind"] for status in listed.json()["data"]}
            assert {"sms", "email", "voice", "voice-audio", "landing", "whatsapp"} <= kinds
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        assert demo.wait(120) == 0
        rest = demo.stdout.read()
        assert "Traceback" not in rest, rest  # every process of the stack ends quietly
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    with pytest.raises(httpx.TransportError):  # the server went with the demo
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
