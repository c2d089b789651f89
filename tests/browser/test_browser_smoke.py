"""The vendored front-end files load and run in the system chromium.

A tiny page, served over loopback HTTP from a temp dir holding copies of the
vendored files, loads htmx and uPlot; htmx swaps in a fragment and uPlot draws a
chart, with no console or page errors.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

VENDOR = Path(__file__).resolve().parents[2] / "web" / "dashboard" / "static" / "vendor"
VENDORED = ["htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css"]

INDEX = """<!doctype html>
<html>
<head>
  <meta charset="utf-8">
  <title>smoke</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/vendor/uPlot.min.css">
  <script src="/vendor/htmx.min.js"></script>
  <script src="/vendor/uPlot.iife.min.js"></script>
</head>
<body>
  <div id="out" hx-get="/fragment.html" hx-trigger="load" hx-swap="innerHTML">loading</div>
  <div id="chart"></div>
  <script>
    new uPlot(
      {width: 400, height: 200, series: [{}, {label: "sent", stroke: "blue"}]},
      [[1, 2, 3], [10, 20, 15]],
      document.getElementById("chart"),
    );
  </script>
</body>
</html>
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def smoke_site(tmp_path: Path) -> Iterator[str]:
    """Base URL of a loopback HTTP server over a temp dir with the smoke page."""
    (tmp_path / "vendor").mkdir()
    for name in VENDORED:
        shutil.copy(VENDOR / name, tmp_path / "vendor" / name)
    (tmp_path / "index.html").write_text(INDEX)
    (tmp_path / "fragment.html").write_text('<span id="swapped">swapped by htmx</span>')

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_vendored_htmx_and_uplot_run(
    page: Page, console_errors: list[str], smoke_site: str
) -> None:
    page.goto(f"{smoke_site}/index.html")

    assert page.evaluate("typeof window.htmx") == "object"
    assert page.evaluate("typeof window.uPlot") == "function"
    assert page.evaluate("htmx.version").startswith("2.")

    # htmx fetched and swapped the fragment; uPlot drew its canvas
    page.wait_for_selector("#out #swapped", timeout=5000)
    assert page.locator("#chart .uplot canvas").count() == 1

    assert console_errors == []
