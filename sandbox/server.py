"""Run the sandbox: one uvicorn process, httptools parser, quiet logs."""

from __future__ import annotations

import contextlib

import uvicorn

from bulksend import logs
from jobs.settings import Settings, get_settings
from sandbox.app import create_app


def serve(host: str = "127.0.0.1", port: int = 8025, settings: Settings | None = None) -> None:
    """Serve until interrupted. One process: the sandbox's state lives in memory.

    Quiet: warnings and errors only, no access log, in ``BULKSEND_LOG_FORMAT``."""
    settings = settings or get_settings()
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        http="httptools",
        log_level="warning",
        log_config=logs.uvicorn_config(settings.log_format, level="WARNING"),
        access_log=False,
        workers=1,
        server_header=False,
        date_header=False,
    )
    # uvicorn shuts down gracefully on Ctrl-C, then raises the signal again: a
    # KeyboardInterrupt here is the end asked for, not an error to print.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()
