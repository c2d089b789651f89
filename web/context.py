"""What every handler reaches through its request: the producer and the settings.

The app's lifespan opens one ``Producer`` (one Redis pool) per process and puts it
on ``app.state``; these two functions are the only readers, so a handler's
dependencies are typed and written once.
"""

from __future__ import annotations

from starlette.requests import Request

from jobs.producer import Producer
from jobs.settings import Settings

__all__ = ["producer", "settings"]


def producer(request: Request) -> Producer:
    found: Producer = request.app.state.producer
    return found


def settings(request: Request) -> Settings:
    found: Settings = request.app.state.settings
    return found
