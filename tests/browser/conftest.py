"""Browser fixtures: Playwright's sync API driving Debian's chromium.

The browser is never downloaded: Playwright launches the system chromium
(/usr/bin/chromium, or $BULKSEND_CHROMIUM) through ``executable_path``; .ci/run
installs it with apt when it is missing. Without chromium the fixtures fail, not
skip, so a machine without it cannot pass the suite by accident.

Use the sync API in plain ``def`` tests only. While Playwright's sync API is
started, it marks its own event loop as the thread's running loop (between calls
too), so no asyncio code can run in the main thread: pytest-asyncio fails every
async test or fixture then with "Runner.run() cannot be called from a running
event loop". Hence the ``playwright`` and ``browser`` fixtures are module-scoped,
not session-scoped: Playwright stops at the end of each browser test module, before
the suite's async tests run. So a browser test module holds no ``async def`` tests
and uses no async fixtures; a server under test runs in a thread or a subprocess.

    def test_x(page: Page, console_errors: list[str]) -> None:
        page.goto(url)
        ...
        assert console_errors == []
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

DEFAULT_CHROMIUM = "/usr/bin/chromium"

# No internet here: without these, chromium's background connection attempts
# (component updates, sync, QUIC probes, first-run fetches) fail and add noise.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    return os.environ.get("BULKSEND_CHROMIUM") or DEFAULT_CHROMIUM


@dataclass
class BrowserPage:
    """A fresh page in its own context, with the errors it has logged so far."""

    page: Page
    context: BrowserContext
    # console messages of type "error" ("console: <text> (<url>:<line>)")
    # and uncaught exceptions ("pageerror: <name>: <message>"), in order
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless system chromium, launched once per test module (see the docstring above)."""
    path = chromium_path()
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"chromium not found at {path} (set BULKSEND_CHROMIUM to another binary, "
            "or `apt-get install chromium`; .ci/run does that). The browser tests never "
            "download a browser.",
            pytrace=False,
        )
    try:
        browser = playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS
        )
    except PlaywrightError as exc:
        pytest.fail(f"could not launch chromium at {path}: {exc}", pytrace=False)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def browser_page(browser: Browser) -> Iterator[BrowserPage]:
    """A new context and page for one test; console errors and page errors collected."""
    context = browser.new_context()
    page = context.new_page()
    bp = BrowserPage(page=page, context=context)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            loc = msg.location
            bp.errors.append(f"console: {msg.text} ({loc['url']}:{loc['lineNumber']})")

    def on_pageerror(exc: PlaywrightError) -> None:
        bp.errors.append(f"pageerror: {exc.name}: {exc.message}")

    page.on("console", on_console)
    page.on("pageerror", on_pageerror)
    try:
        yield bp
    finally:
        context.close()


@pytest.fixture
def page(browser_page: BrowserPage) -> Page:
    """The test's page (the same one as ``browser_page.page``)."""
    return browser_page.page


@pytest.fixture
def console_errors(browser_page: BrowserPage) -> list[str]:
    """The live list of the page's console errors and page errors (same as
    ``browser_page.errors``): assert it is empty at the end of a test."""
    return browser_page.errors
