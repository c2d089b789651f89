"""The dashboard's pages and actions: server-rendered HTML, htmx for the live parts.

Each page works without JavaScript (forms are plain GET and POST); htmx only
refreshes the live fragments in place (the same handler answers the fragment
when htmx asks, ``HX-Request``), and ``app.js`` draws the throughput chart with
uPlot. Every script and style is served from the package and the pages say so
in their Content-Security-Policy (``script-src 'self'``), so the dashboard works
offline and an injected inline script would not run.

Actions go through the producer — the same calls as the CLI and the HTTP API —
and only for a session made with the API token; each one is confirmed on a page
that says how many recipients it touches, checked against the session's CSRF
token, and kept in the activity list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlencode

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from jobs import channels
from jobs.accounts import account_id, resume
from jobs.errors import InvalidJob, SendingNotFound
from jobs.results import STATUSES, Requeueable
from web import context
from web.dashboard import activity, data
from web.dashboard.session import COOKIE, LIFETIME_S, Keys, Session, session_of
from web.sendings import decode_cursor, encode_cursor

__all__ = ["ACTIONS", "Pages"]

HERE: Final = Path(__file__).parent
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
SENDINGS_PAGE: Final = 25


class Action:
    """An action on a sending: what it is called, which recipients it touches."""

    def __init__(self, name: str, title: str, touches: str, verb: str) -> None:
        self.name, self.title, self.touches, self.verb = name, title, touches, verb

    def count(self, status: dict[str, Any]) -> int:
        return int(status["counts"][self.touches])


ACTIONS: Final = {
    a.name: a
    for a in (
        Action("cancel", "Cancel the sending", "queued", "will be recorded cancelled, never sent"),
        Action(
            "requeue-unknown",
            "Requeue the unknown",
            "unknown",
            "whose outcome is unknown will be sent again (they may have been received)",
        ),
        Action("retry-failed", "Retry the failed", "failed", "that failed will be sent again"),
    )
}


def _iso(value: str | None) -> str:
    """An ISO date as the pages show it: UTC, to the second."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _epoch(value: float | None) -> str:
    return _iso(datetime.fromtimestamp(value, UTC).isoformat()) if value else "—"


def _num(value: float | int | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        enable_async=False,
    )
    env.filters.update(iso=_iso, epoch=_epoch, num=_num)
    env.globals.update(statuses=STATUSES, actions=ACTIONS)
    return env


class Pages:
    """The handlers, sharing the template environment and the session keys."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.env = _environment()

    # rendering ---------------------------------------------------------------------

    def render(self, request: Request, name: str, status_code: int = 200, **ctx: Any) -> Response:
        session = request.scope.get("state", {}).get("session")
        html = self.env.get_template(name).render(
            request=request, session=session, path=request.url.path, **ctx
        )
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    def not_found(self, request: Request, what: str) -> Response:
        return self.render(request, "error.html", 404, title="Not found", message=what)

    def forbidden(self, request: Request, message: str) -> Response:
        return self.render(request, "error.html", 403, title="Not allowed", message=message)

    # signing in --------------------------------------------------------------------

    async def sign_in_form(self, request: Request) -> Response:
        return self.render(request, "signin.html", next=_next(request), error=None)

    async def sign_in(self, request: Request) -> Response:
        form = await request.form()
        token, target = str(form.get("token", "")), _next(request, str(form.get("next", "")))
        kind = self.keys.kind_of(token.strip())
        if kind is None:
            return self.render(
                request, "signin.html", 401, next=target, error="That token is not valid."
            )
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            self.keys.cookie(kind),
            max_age=int(LIFETIME_S),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def sign_out(self, request: Request) -> Response:
        refusal = await self._check_form(request, act=False)
        if refusal is not None:
            return refusal
        response = RedirectResponse("/ui/signin", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    # pages -------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        found = await data.overview(context.producer(request), context.settings(request))
        name = "_overview.html" if request.headers.get("hx-request") else "overview.html"
        return self.render(request, name, o=found, account=account_id(context.settings(request)))

    async def series(self, request: Request) -> Response:
        return JSONResponse(await data.series(context.producer(request)))

    async def sendings(self, request: Request) -> Response:
        producer = context.producer(request)
        query = request.query_params
        state = _pick(query.get("state"), ("enqueuing", "running", "done"))
        kind = _pick(query.get("kind"), tuple(c.kind for c in channels.all_channels()))
        text = (query.get("q") or "").strip()
        cursor = query.get("cursor")
        rows: list[dict[str, Any]]
        next_cursor: str | None = None
        if text:
            rows = await _search_sendings(producer, text)
        else:
            after = None
            if cursor:
                try:
                    after = decode_cursor(cursor)
                except InvalidJob:
                    after = None
            rows, last = await producer.sendings(SENDINGS_PAGE, after=after, state=state, kind=kind)
            if last is not None:
                params = {k: v for k, v in (("state", state), ("kind", kind)) if v}
                next_cursor = urlencode({**params, "cursor": encode_cursor(last)})
        name = "_sendings.html" if request.headers.get("hx-request") else "sendings.html"
        return self.render(
            request,
            name,
            rows=rows,
            state=state,
            kind=kind,
            q=text,
            kinds=[c.kind for c in channels.all_channels()],
            next_query=next_cursor,
            first=not cursor,
        )

    async def sending(self, request: Request) -> Response:
        producer, sending_id = context.producer(request), request.path_params["id"]
        try:
            view = await data.sending_view(producer, context.settings(request), sending_id)
        except SendingNotFound:
            return self.not_found(request, f"No sending {sending_id} (or its records expired).")
        if request.query_params.get("part") == "summary":
            return self.render(request, "_sending.html", v=view)
        query = request.query_params
        text = (query.get("q") or "").strip() or None
        status = _pick(query.get("status"), STATUSES)
        page = await data.recipients(
            producer,
            sending_id,
            total=view.status["counts"]["total"],
            text=text,
            status=status,
            start=_int(query.get("start")),
            cursor=_int(query.get("cursor")),
        )
        return self.render(
            request,
            "sending.html",
            v=view,
            page=page,
            q=text or "",
            status_filter=status,
            done=query.get("done"),
            page_size=data.RECIPIENTS_PAGE,
        )

    async def recipient(self, request: Request) -> Response:
        producer, sending_id = context.producer(request), request.path_params["id"]
        index = request.path_params["index"]
        found = await producer.store.load(sending_id, [index])
        if index not in found:
            return self.not_found(request, f"No recipient {index} in sending {sending_id}.")
        record = found[index]
        return self.render(
            request,
            "recipient.html",
            sending_id=sending_id,
            index=index,
            record=record,
            raw=orjson.dumps(record, option=orjson.OPT_INDENT_2).decode(),
        )

    async def activity(self, request: Request) -> Response:
        entries = await activity.latest(context.producer(request).redis)
        return self.render(request, "activity.html", entries=entries)

    # actions -----------------------------------------------------------------------

    async def confirm(self, request: Request) -> Response:
        session = session_of(request.scope)
        if not session.may_act:
            return self.forbidden(request, "The read-only token may look, not act.")
        action = ACTIONS.get(request.path_params["action"])
        sending_id = request.path_params["id"]
        status = await context.producer(request).status(sending_id)
        if action is None or status is None:
            return self.not_found(request, "No such sending or action.")
        return self.render(
            request, "confirm.html", action=action, status=status, count=action.count(status)
        )

    async def act(self, request: Request) -> Response:
        refusal = await self._check_form(request, act=True)
        if refusal is not None:
            return refusal
        producer, sending_id = context.producer(request), request.path_params["id"]
        action = ACTIONS.get(request.path_params["action"])
        before = await producer.status(sending_id)
        if action is None or before is None:
            return self.not_found(request, "No such sending or action.")
        if action.name == "cancel":
            after = await producer.cancel(sending_id)
            touched = after["counts"]["cancelled"] - before["counts"]["cancelled"]
        else:
            touched = await producer.requeue(sending_id, cast(Requeueable, action.touches))
        data.forget()
        await activity.record(
            producer.redis,
            what=action.name,
            target=sending_id,
            count=touched,
            by=session_of(request.scope).kind,
        )
        target = f"/ui/sendings/{sending_id}?" + urlencode({"done": f"{action.name}:{touched}"})
        return RedirectResponse(target, status_code=303)

    async def confirm_resume(self, request: Request) -> Response:
        if not session_of(request.scope).may_act:
            return self.forbidden(request, "The read-only token may look, not act.")
        found = await data.overview(context.producer(request), context.settings(request))
        return self.render(request, "confirm_resume.html", stops=found.stops)

    async def resume(self, request: Request) -> Response:
        refusal = await self._check_form(request, act=True)
        if refusal is not None:
            return refusal
        producer, settings = context.producer(request), context.settings(request)
        lifted = await resume(
            producer.redis, account_id(settings), expires_s=settings.result_ttl_days * 86400
        )
        data.forget()
        await activity.record(
            producer.redis,
            what="resume",
            target=f"{lifted.state} {lifted.scope}" if lifted else None,
            count=None,
            by=session_of(request.scope).kind,
        )
        return RedirectResponse("/", status_code=303)

    async def _check_form(self, request: Request, *, act: bool) -> Response | None:
        """The CSRF token must match the session's; an action needs the API token."""
        session: Session = session_of(request.scope)
        form = await request.form()
        given = form.get("csrf")
        if not self.keys.csrf_ok(session, given if isinstance(given, str) else None):
            return self.forbidden(request, "This form has expired; reload the page and retry.")
        if act and not session.may_act:
            return self.forbidden(request, "The read-only token may look, not act.")
        return None


async def _search_sendings(producer: Any, text: str) -> list[dict[str, Any]]:
    """By id (exactly), else by campaign name (its beginning, any case)."""
    exact = await producer.status(text)
    if exact is not None:
        return [exact]
    ids = await producer.store.find_campaigns(text, SENDINGS_PAGE)
    return [s for s in await producer.statuses(ids) if s is not None]


def _pick(value: str | None, allowed: tuple[str, ...]) -> str | None:
    return value if value in allowed else None


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def _next(request: Request, given: str | None = None) -> str:
    """Where to go after signing in: a path of this site only (never another host)."""
    target = given or request.query_params.get("next") or "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
