"""The dashboard in a real browser: Debian's chromium driven by Playwright.

A real ``bulksend serve`` and real worker processes on the test Redis and the
sandbox. Sign in, watch a sending finish without reloading, search a recipient,
cancel with the confirmation, see the read-only token unable to act — and no
console error on any page. Screenshots of the overview and of a sending are
taken on every run (and copied to ``$BULKSEND_SCREENSHOTS_DIR`` when set: that
is how ``docs/`` gets them).

Sync API only (see ``conftest.py``): nothing async runs in this module.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Literal

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from bulksend.stack import ServeProcess, WorkerProcesses
from tests.helpers import numbers

TOKEN = "browser-api-token"
READONLY = "browser-readonly-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TIMEOUT_MS = 60_000


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[ServeProcess]:
    server_env = {
        **env,
        "BULKSEND_API_TOKEN": TOKEN,
        "BULKSEND_READONLY_TOKEN": READONLY,
        "BULKSEND_CHUNK_SIZE": "20",  # several calls, paced by the workers' rate limit
    }
    with ServeProcess(server_env, log=tmp_path / "serve.log") as server:
        yield server


def send(server: ServeProcess, to: list[str], **fields: object) -> str:
    body = {"from": "SHOP", "message": "Hi {n}", "to": to, "sub": [{"n": i} for i in to]}
    answer = httpx.post(f"{server.url}/v1/sms", json={**body, **fields}, headers=AUTH)
    assert answer.status_code == 202, answer.text
    sending_id: str = answer.json()["id"]
    return sending_id


def sign_in(page: Page, server: ServeProcess, token: str) -> None:
    page.goto(f"{server.url}/")
    expect(page).to_have_url(f"{server.url}/ui/signin?next=/")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    target = os.environ.get("BULKSEND_SCREENSHOTS_DIR")
    if target:
        shutil.copy(path, Path(target) / path.name)


def test_watch_a_sending_finish_live_and_find_a_recipient(
    page: Page,
    console_errors: list[str],
    server: ServeProcess,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    sign_in(page, server, TOKEN)
    to = numbers(120)
    # Calls of 20 (the batcher merges chunks up to the chunk size) at 40/s: ~3 s.
    slow = {**env, "BULKSEND_RATE_MESSAGES_PER_SECOND": "40", "BULKSEND_CHUNK_SIZE": "20"}
    sending_id = send(server, to, campaignName="Browser test")
    page.goto(f"{server.url}/ui/sendings/{sending_id}")
    expect(page.locator("#summary .state").first).to_have_text("running")
    page.evaluate("window.__notReloaded = true")
    with WorkerProcesses(slow) as workers:
        workers.start(2)
        # The summary is refreshed in place (htmx) until the sending is done.
        expect(page.locator("#summary .state").first).to_have_text("done", timeout=TIMEOUT_MS)
        expect(page.locator("#summary .count.s-accepted dd")).to_have_text("120")
        assert page.evaluate("window.__notReloaded") is True
        page.reload()
        screenshot(page, tmp_path, "sending")
        page.goto(f"{server.url}/")
        expect(page.get_by_role("link", name=sending_id)).to_be_visible()
        expect(page.locator("#throughput canvas")).to_have_count(1)
        expect(page.locator("#live").get_by_text("Workers alive")).to_be_visible()
        screenshot(page, tmp_path, "overview")
    page.get_by_role("link", name="Sendings", exact=True).click()
    page.get_by_label("Search by id or campaign name").fill("browser")
    page.get_by_role("button", name="Show").click()
    page.get_by_role("link", name=sending_id).click()
    page.get_by_label("Number or email contains").fill(to[57])
    page.get_by_role("button", name="Find").click()
    rows = page.locator("table.recipients tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(to[57])
    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", name=f"Recipient 57: {to[57]}")).to_be_visible()
    assert console_errors == []


def test_cancel_with_the_confirmation(
    page: Page, console_errors: list[str], server: ServeProcess
) -> None:
    sending_id = send(server, numbers(7))  # no worker runs: they stay queued
    sign_in(page, server, TOKEN)
    page.goto(f"{server.url}/ui/sendings/{sending_id}")
    page.get_by_role("link", name="Cancel the sending (7)…").click()
    expect(page.get_by_test_id("confirm-count")).to_have_text("7")
    page.get_by_role("button", name="Yes, cancel the sending").click()
    expect(page.get_by_role("status")).to_contain_text("7 recipient(s) touched")
    expect(page.locator("#summary .count.s-cancelled dd")).to_have_text("7")
    page.get_by_role("link", name="Activity").click()
    expect(page.get_by_role("row").filter(has_text=sending_id)).to_contain_text("cancel")
    assert console_errors == []


def test_the_read_only_token_cannot_act(
    page: Page, console_errors: list[str], server: ServeProcess
) -> None:
    sending_id = send(server, numbers(3))
    sign_in(page, server, READONLY)
    expect(page.get_by_text("read-only")).to_be_visible()
    page.goto(f"{server.url}/ui/sendings/{sending_id}")
    expect(page.get_by_role("heading", name="Recipients")).to_be_visible()
    expect(page.get_by_role("link", name="Cancel the sending (3)…")).to_have_count(0)
    answer = page.goto(f"{server.url}/ui/sendings/{sending_id}/confirm/cancel")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    status = httpx.get(f"{server.url}/v1/sendings/{sending_id}", headers=AUTH).json()
    assert status["counts"]["queued"] == 3
    # The 403 page is not a console error of ours; anything else would be.
    assert [e for e in console_errors if "403" not in e] == []


AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_violations(page: Page) -> list[str]:
    """axe-core's WCAG 2.1 A/AA violations on the page (rule: nodes), through CDP's
    evaluate, which the pages' Content-Security-Policy does not govern."""
    script = (resources.files("axe_playwright_python") / "axe.min.js").read_text()
    page.evaluate(script)
    found = page.evaluate(
        "async tags => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
        ".violations.map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))",
        AXE_TAGS,
    )
    return list(found)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_passes_axe_in_light_and_dark(
    browser: Browser, server: ServeProcess, scheme: Literal["light", "dark"]
) -> None:
    sending_id = send(server, [*numbers(3), "12"], campaignName="Axe")
    context = browser.new_context(color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto(f"{server.url}/ui/signin")
        assert axe_violations(page) == [], "sign-in"
        sign_in(page, server, TOKEN)
        for path in [
            "/",
            "/ui/sendings",
            f"/ui/sendings/{sending_id}",
            f"/ui/sendings/{sending_id}/recipients/0",
            f"/ui/sendings/{sending_id}/confirm/cancel",
            "/ui/activity",
        ]:
            page.goto(f"{server.url}{path}")
            assert axe_violations(page) == [], path
    finally:
        context.close()
