"""The dashboard over HTTP: sign-in, the session cookie, CSRF, roles, pages and actions.

A real ``bulksend serve`` process on loopback, a real Redis, the sandbox and
in-process workers (``drain``); the browser's side of the same pages is in
``tests/browser``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bulksend.stack import ServeProcess
from jobs import keys
from jobs.settings import Settings
from tests.helpers import drain, numbers, set_faults

TOKEN = "dashboard-api-token"
READONLY = "dashboard-readonly-token"
SMS = {"from": "SHOP", "message": "Hi {name}"}


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[ServeProcess]:
    server_env = {**env, "BULKSEND_API_TOKEN": TOKEN, "BULKSEND_READONLY_TOKEN": READONLY}
    with ServeProcess(server_env, log=tmp_path / "serve.log") as server:
        yield server


def browser(server: ServeProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)


@contextmanager
def signed_in(server: ServeProcess, token: str = TOKEN) -> Iterator[httpx.Client]:
    with browser(server) as client:
        answer = client.post("/ui/signin", data={"token": token, "next": "/"})
        assert answer.status_code == 303, answer.text
        yield client


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "no CSRF token on the page"
    return found.group(1)


def send(server: ServeProcess, to: list[str], **fields: object) -> str:
    body = {**SMS, "to": to, "sub": [{"name": "Ana"}] * len(to), **fields}
    answer = httpx.post(
        f"{server.url}/v1/sms", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 202, answer.text
    sending_id: str = answer.json()["id"]
    return sending_id


def test_nothing_is_shown_before_sign_in(server: ServeProcess) -> None:
    with browser(server) as client:
        for path in ["/", "/ui/sendings", "/ui/sendings/x", "/ui/activity", "/ui/series.json"]:
            answer = client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/ui/signin?next="), path
        assert client.post("/ui/sendings/x/cancel").status_code == 401
        htmx = client.get("/ui/overview", headers={"HX-Request": "true"})
        assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/ui/signin")
        # The bearer token is the API's door, not the dashboard's.
        bearer = client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 303
        form = client.get("/ui/signin")
        assert form.status_code == 200 and 'type="password"' in form.text
        assert client.get("/ui/static/app.css").status_code == 200


def test_sign_in_sets_a_strict_http_only_cookie_and_refuses_a_wrong_token(
    server: ServeProcess,
) -> None:
    with browser(server) as client:
        wrong = client.post("/ui/signin", data={"token": "guess", "next": "/"})
        assert wrong.status_code == 401 and "not valid" in wrong.text
        assert "set-cookie" not in wrong.headers
        right = client.post("/ui/signin", data={"token": TOKEN, "next": "//evil.example/"})
        assert right.status_code == 303 and right.headers["location"] == "/"
        cookie = right.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert TOKEN.lower() not in cookie
        page = client.get("/")
        assert page.status_code == 200 and "Latest sendings" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        value = client.cookies["bulksend_session"]
    # A forged cookie is no session: one character of its MAC changed.
    forged = value[:-1] + ("0" if value[-1] != "0" else "1")
    with browser(server) as stranger:
        answer = stranger.get("/", headers={"Cookie": f"bulksend_session={forged}"})
        assert answer.status_code == 303
        answer = stranger.get("/", headers={"Cookie": f"bulksend_session={value}"})
        assert answer.status_code == 200


def test_sign_out_needs_the_csrf_token_and_ends_the_session(server: ServeProcess) -> None:
    with signed_in(server) as client:
        page = client.get("/")
        assert client.post("/ui/signout", data={"csrf": "wrong"}).status_code == 403
        assert client.get("/").status_code == 200
        out = client.post("/ui/signout", data={"csrf": csrf(page)})
        assert out.status_code == 303
        assert client.get("/").status_code == 303


async def test_pages_show_a_sending_its_errors_and_its_recipients(
    server: ServeProcess, settings: Settings
) -> None:
    to = [*numbers(3), "12"]  # 12 is refused by the provider with 102
    sending_id = send(server, to, campaignName="Spring Sale")
    await drain(settings)
    with signed_in(server, READONLY) as client:
        overview = client.get("/")
        assert sending_id in overview.text and 'href="/ui/sendings/' + sending_id in overview.text
        fragment = client.get("/ui/overview", headers={"HX-Request": "true"})
        assert fragment.status_code == 200 and "<html" not in fragment.text
        page = client.get(f"/ui/sendings/{sending_id}")
        assert page.status_code == 200
        text = re.sub(r"\s+", " ", page.text)
        assert "<dt>accepted</dt><dd>3</dd>" in text and "<dt>rejected</dt><dd>1</dd>" in text
        assert re.search(r"<td>102</td><td>1</td><td>[^<]*recipients", text), "102 grouped"
        assert "reject_recipient" in text  # the policy's action for 102
        assert "gsm" in text.lower()  # the encoding breakdown of an SMS sending
        assert "first call" in text and "Spring Sale" in text
        found = client.get(f"/ui/sendings/{sending_id}", params={"q": to[1][-4:]})
        assert to[1] in found.text and to[2] not in found.text
        rejected = client.get(f"/ui/sendings/{sending_id}", params={"status": "rejected"})
        assert ">12<" in rejected.text.replace(" ", "") and to[0] not in rejected.text
        one = client.get(f"/ui/sendings/{sending_id}/recipients/0")
        assert one.status_code == 200 and to[0] in one.text and "accepted" in one.text
        assert client.get(f"/ui/sendings/{sending_id}/recipients/99").status_code == 404
        assert client.get("/ui/sendings/nope").status_code == 404
        by_name = client.get("/ui/sendings", params={"q": "spring"})
        assert sending_id in by_name.text
        by_id = client.get("/ui/sendings", params={"q": sending_id})
        assert sending_id in by_id.text
        assert "nothing" not in client.get("/ui/sendings", params={"q": "autumn"}).text.lower()
        series = client.get("/ui/series.json").json()
        assert sum(series["accepted"]) * 10 == pytest.approx(3)


async def test_actions_confirm_count_act_and_are_kept_in_the_activity(
    server: ServeProcess, settings: Settings, sandbox_url: str
) -> None:
    sending_id = send(server, numbers(5))
    with signed_in(server) as client:
        confirm = client.get(f"/ui/sendings/{sending_id}/confirm/cancel")
        assert confirm.status_code == 200
        assert re.search(r'data-testid="confirm-count">5<', confirm.text)
        assert client.post(f"/ui/sendings/{sending_id}/cancel", data={}).status_code == 403
        assert httpx.get(f"{server.url}/v1/sendings/{sending_id}", headers={
            "Authorization": f"Bearer {TOKEN}"}).json()["counts"]["queued"] == 5  # fmt: skip
        done = client.post(f"/ui/sendings/{sending_id}/cancel", data={"csrf": csrf(confirm)})
        assert done.status_code == 303 and "cancel%3A5" in done.headers["location"]
        # Unknown outcomes, then the requeue of exactly those.
        set_faults(sandbox_url, empty_body={"status": 202})
        other = send(server, numbers(2, 100))
        await drain(settings)
        confirm = client.get(f"/ui/sendings/{other}/confirm/requeue-unknown")
        assert re.search(r'data-testid="confirm-count">2<', confirm.text)
        set_faults(sandbox_url)
        client.post(f"/ui/sendings/{other}/requeue-unknown", data={"csrf": csrf(confirm)})
        await drain(settings)
        page = re.sub(r"\s+", " ", client.get(f"/ui/sendings/{other}").text)
        assert "<dt>accepted</dt><dd>2</dd>" in page
        activity = re.sub(r"\s+", " ", client.get("/ui/activity").text)
        assert f'<td>cancel</td> <td><a class="id" href="/ui/sendings/{sending_id}">' in activity
        assert "requeue-unknown" in activity and "<td>api</td>" in activity


async def test_the_read_only_token_sees_no_action_and_is_refused_one(
    server: ServeProcess, settings: Settings, sandbox_url: str
) -> None:
    sending_id = send(server, numbers(3))
    set_faults(sandbox_url, credits=0)  # the account is held
    await drain(settings)
    with signed_in(server, READONLY) as client:
        page = client.get(f"/ui/sendings/{sending_id}")
        assert "Cancel the sending" not in page.text and "/confirm/" not in page.text
        assert "Resume" not in client.get("/").text and "held" in client.get("/").text
        assert client.get(f"/ui/sendings/{sending_id}/confirm/cancel").status_code == 403
        assert client.get("/ui/account/resume").status_code == 403
        token = csrf(page)  # a valid CSRF token of this session: still not allowed
        assert (
            client.post(f"/ui/sendings/{sending_id}/cancel", data={"csrf": token}).status_code
            == 403
        )
        assert client.post("/ui/account/resume", data={"csrf": token}).status_code == 403
    db = redis.Redis.from_url(str(settings.redis_url))
    assert db.llen(keys.ACTIVITY) == 0
    with signed_in(server) as client:
        confirm = client.get("/ui/account/resume")
        assert "held" in confirm.text
        set_faults(sandbox_url)
        assert client.post("/ui/account/resume", data={"csrf": csrf(confirm)}).status_code == 303
        assert "Sending normally" in client.get("/").text
    await drain(settings)
    assert db.llen(keys.ACTIVITY) == 1


async def test_an_import_is_a_sending_of_kind_contacts_with_its_rejected_rows(
    server: ServeProcess, settings: Settings, tmp_path: Path
) -> None:
    rows = "First name,Mobile\nAna,600000001\n=Bad,12\n"
    answer = httpx.post(
        f"{server.url}/v1/imports",
        headers={"Authorization": f"Bearer {TOKEN}"},
        data={"group": "dashboard", "country": "ES"},
        files={"file": ("contacts.csv", rows.encode(), "text/csv")},
    )
    assert answer.status_code == 202, answer.text
    import_id = answer.json()["id"]
    await drain(settings)
    with signed_in(server) as client:
        listed = client.get("/ui/sendings", params={"kind": "contacts"})
        assert import_id in listed.text
        page = client.get(f"/ui/sendings/{import_id}")
        assert "Rejected rows (CSV)" in page.text
        report = client.get(f"/ui/sendings/{import_id}/report.csv", params={"status": "rejected"})
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
        # The rejected row only, its formula-looking cell neutralised.
        assert "'=Bad" in report.text and "Ana" not in report.text


def test_ten_tabs_polling_the_overview_cost_one_reading(
    server: ServeProcess, settings: Settings
) -> None:
    db = redis.Redis.from_url(str(settings.redis_url))
    with signed_in(server, READONLY) as client:
        cookie = client.cookies["bulksend_session"]
    headers = {"HX-Request": "true", "Cookie": f"bulksend_session={cookie}"}
    db.config_resetstat()
    with ThreadPoolExecutor(10) as pool:
        answers = list(
            pool.map(lambda _: httpx.get(f"{server.url}/ui/overview", headers=headers), range(10))
        )
    assert all(a.status_code == 200 and "Latest sendings" in a.text for a in answers)
    stats: Any = db.info("commandstats")
    # One ZCARD of the listing per reading of the cluster: ten tabs, at most two readings
    # (the 1 s cache may expire once while they arrive).
    assert stats["cmdstat_zcard"]["calls"] <= 2
