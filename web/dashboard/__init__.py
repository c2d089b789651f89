"""The queue dashboard at ``/``: sendings, recipients, workers and the account, live.

Server-rendered pages (``pages``) over the same producer as the HTTP API, signed
in with the API or the read-only token through a session cookie (``session``),
with htmx and uPlot served from the package (``static/vendor``, from npm; see
its README). ``routes`` is all the app needs; ``owns`` tells the API's bearer
middleware which paths the dashboard guards itself.
"""

from __future__ import annotations

from typing import Final

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from web.dashboard.pages import HERE, Pages
from web.dashboard.session import Keys, SessionGate
from web.sendings import report

__all__ = ["PREFIX", "owns", "routes"]

PREFIX: Final = "/ui"


def owns(path: str) -> bool:
    """The paths the dashboard answers (and guards with its session), not the API."""
    return path == "/" or path == PREFIX or path.startswith(PREFIX + "/")


def routes(api_token: str, readonly_token: str | None) -> list[BaseRoute]:
    keys = Keys(api_token, readonly_token)
    pages = Pages(keys)
    gate = [Middleware(SessionGate, keys=keys)]
    get, post = ["GET"], ["POST"]
    inside = [
        Route("/signin", pages.sign_in_form, methods=get),
        Route("/signin", pages.sign_in, methods=post),
        Route("/signout", pages.sign_out, methods=post),
        Route("/overview", pages.overview, methods=get),
        Route("/series.json", pages.series, methods=get),
        Route("/sendings", pages.sendings, methods=get),
        Route("/sendings/{id}", pages.sending, methods=get),
        Route("/sendings/{id}/report.csv", report, methods=get),
        Route("/sendings/{id}/recipients/{index:int}", pages.recipient, methods=get),
        Route("/sendings/{id}/confirm/{action}", pages.confirm, methods=get),
        Route("/sendings/{id}/{action}", pages.act, methods=post),
        Route("/account/resume", pages.confirm_resume, methods=get),
        Route("/account/resume", pages.resume, methods=post),
        Route("/activity", pages.activity, methods=get),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return [
        Route("/", pages.overview, methods=get, middleware=gate, name="dashboard"),
        Mount(PREFIX, routes=inside, middleware=gate),
    ]
