"""How every role logs: one place, ``BULKSEND_LOG_FORMAT`` = ``text`` (default) or ``json``.

``text`` is the worker's ``time logger message`` line, and uvicorn's own lines for
``serve`` and the sandbox as uvicorn prints them. ``json`` is one object per line on
stderr, for a log pipeline to index without parsing text::

    {"ts": "2026-01-05T10:00:00.123Z", "level": "INFO", "logger": "bulksend.worker",
     "message": "sending s1… chunk c0: 3 recipients in 1 calls, 0 refused before sending",
     "sending": "s1…", "chunk": "c0", "pid": 4242, "host": "worker-1"}

A log call gives its context with ``extra={"sending": …, "chunk": …}`` (``CONTEXT``);
an exception comes as ``exc`` (its traceback). Uvicorn's access lines also carry
``method``, ``path`` and ``status``.

Personal data stays out of the logs by rule, whichever the format: our lines name
sendings, chunks and provider message ids, never a recipient, an address or a text.
Three things here keep other people's lines to that rule: the access log never shows
a query string (``DropQuery``: a delivery notification's carries the recipient's
phone, the dashboard's recipient search the address searched for; ``web.hooks``'
``RedactHooks`` hides the hooks' secret path segment too), arq's INFO lines (every
job's arguments) are off, and so are httpx's (a line per request, with its URL).
"""

from __future__ import annotations

import copy
import logging
import logging.config
import socket
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

__all__ = [
    "CONTEXT",
    "TEXT_FORMAT",
    "DropQuery",
    "JsonFormatter",
    "LogFormat",
    "configure",
    "uvicorn_config",
]

LogFormat = Literal["text", "json"]

TEXT_FORMAT: Final = "%(asctime)s %(name)s %(message)s"
# What a log call may add with ``extra=`` and the JSON line carries as its own keys.
CONTEXT: Final = ("sending", "chunk", "account", "scope")
# Loggers held at WARNING: arq's INFO lines name every job with its arguments, httpx's
# every request with its URL (a mail-API or blacklist URL may name an address).
QUIET: Final = ("arq.worker", "httpx", "httpcore")
ACCESS_LOGGER: Final = "uvicorn.access"
HOST: Final = socket.gethostname()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, the ``CONTEXT`` keys given, ``pid``, ``host``, and ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT:
            value = record.__dict__.get(key)
            if value is not None:
                line[key] = value
        if record.name == ACCESS_LOGGER:
            line.update(_access_fields(record))
        line["pid"] = record.process
        line["host"] = HOST
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Uvicorn's access line's parts: its args are (client, method, path, version, status)."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 5:
        return {"method": args[1], "path": args[2], "status": args[4]}
    return {}


class DropQuery(logging.Filter):
    """Uvicorn's access line without the request's query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and "?" in str(args[2]):
            record.args = (*args[:2], str(args[2]).split("?", 1)[0], *args[3:])
        return True


def formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure(fmt: LogFormat, level: int = logging.INFO) -> None:
    """The root logger writes ``fmt`` lines at ``level`` and up to stderr (the worker, and
    every command that logs); the ``QUIET`` loggers only from WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def uvicorn_config(fmt: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """``log_config`` for ``uvicorn.run`` / ``uvicorn.Config`` (``serve``, the sandbox).

    ``text``: uvicorn's own configuration (its lines look as they always did, access
    lines on stdout), plus our loggers' text lines on stderr through the root logger.
    ``json``: every logger, uvicorn's too, through one JSON handler on stderr. Either
    way the access log drops query strings (``DropQuery``)."""
    from uvicorn.config import LOGGING_CONFIG

    if fmt == "json":
        config: dict[str, Any] = {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": JsonFormatter}},
            "handlers": {
                "default": {
                    "class": "logging.StreamHandler",
                    "formatter": "json",
                    "stream": "ext://sys.stderr",
                },
            },
            "loggers": {
                "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
                "uvicorn.error": {"level": "INFO"},
                ACCESS_LOGGER: {"handlers": ["default"], "level": "INFO", "propagate": False},
            },
        }
        root_handler = "default"
    else:
        config = copy.deepcopy(LOGGING_CONFIG)
        config["formatters"]["text"] = {"format": TEXT_FORMAT}
        config["handlers"]["root"] = {
            "class": "logging.StreamHandler",
            "formatter": "text",
            "stream": "ext://sys.stderr",
        }
        root_handler = "root"
    config["root"] = {"handlers": [root_handler], "level": level}
    config["filters"] = {"drop_query": {"()": DropQuery}}
    config["loggers"][ACCESS_LOGGER]["filters"] = ["drop_query"]
    for name in QUIET:
        config["loggers"][name] = {"level": "WARNING"}
    return config
