"""`bulksend demo`, the main job: every channel through real worker processes."""

from __future__ import annotations

import subprocess
import sys


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
