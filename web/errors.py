"""Where errors become HTTP answers: one status code per kind of error, one body shape.

Every refusal of the HTTP API is ``{"error": {"field", "reason", "code"}}`` so that
a client handles one shape whatever went wrong: ``field`` names the part of the
request at fault (a JSON field by its API name, ``body``, a header, a query
parameter), ``code`` is the provider's error code when the refusal is one the
provider would also make (``InvalidJob.code``). ``STATUS_CODES`` is this
service's twin of the CLI's ``bulksend.cli.EXIT_CODES``; nothing else in
``web/`` picks a status code for an error.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobs.errors import (
    BulksendError,
    ConfigurationError,
    IdempotencyConflict,
    InvalidJob,
    RedisFull,
    SendingNotFound,
    UnsafeRedis,
)
from jobs.redis_safety import is_out_of_memory

__all__ = [
    "DESCRIPTIONS",
    "EXCEPTION_HANDLERS",
    "STATUS_CODES",
    "BadRequest",
    "ErrorBody",
    "ErrorDetail",
    "Forbidden",
    "Refused",
    "TooLarge",
    "Unauthorized",
    "error_response",
]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str | None = Field(
        description="the part of the request at fault: a JSON field by its API name, "
        "'body', a header or a query parameter; null when it is the request as a whole"
    )
    reason: str = Field(description="what is wrong, in one line")
    code: int | None = Field(
        description="the provider's error code for the same refusal (messaging-api.txt → "
        "Errors), when there is one"
    )


class ErrorBody(BaseModel):
    """Every error answer of the HTTP API."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


class BadRequest(InvalidJob):
    """The request is not what the route reads at all: not JSON, not an object, not a form."""


class TooLarge(InvalidJob):
    """The body is larger than ``BULKSEND_API_MAX_BODY_MB``."""


class Refused(BulksendError):
    """A request the service refuses before looking at what it asks."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class Unauthorized(Refused):
    """No bearer token, or not one of ours."""


class Forbidden(Refused):
    """A read-only token on a route that changes something."""


# First match wins, so a subclass comes before its base.
STATUS_CODES: Final[dict[type[BaseException], int]] = {
    BadRequest: 400,
    TooLarge: 413,
    InvalidJob: 422,
    Unauthorized: 401,
    Forbidden: 403,
    SendingNotFound: 404,
    IdempotencyConflict: 409,
    RedisConnectionError: 503,
    RedisTimeoutError: 503,
    UnsafeRedis: 503,  # a Redis that evicts keys: not ready (/readyz), as if it were away
    RedisFull: 507,  # Insufficient Storage: Redis is at its maxmemory
    ConfigurationError: 500,
    BulksendError: 500,
}

# What each error status means on this API (for the OpenAPI document).
DESCRIPTIONS: Final[dict[int, str]] = {
    400: "the body is not JSON, not a JSON object, or not the form the route reads",
    401: "no bearer token, or an invalid one (WWW-Authenticate: Bearer)",
    403: "the read-only token on a route that changes something",
    404: "no such sending (or no such route)",
    409: "the Idempotency-Key was used before with a different body",
    413: "the body is larger than BULKSEND_API_MAX_BODY_MB",
    422: "bad input, refused whole; nothing was queued",
    503: "Redis does not answer, or its maxmemory-policy evicts keys (the reason says which)",
    507: "Redis is out of memory (its maxmemory): refused whole, nothing was queued",
}

# Which part of the request an HTTP-level refusal (Starlette's own) is about.
_HTTP_FIELDS: Final[dict[int, str]] = {400: "body", 413: "body"}


def _detail(exc: BaseException) -> ErrorDetail:
    if isinstance(exc, InvalidJob):
        return ErrorDetail(field=exc.field or None, reason=exc.reason, code=exc.code)
    if isinstance(exc, Refused):
        return ErrorDetail(field=exc.field, reason=exc.reason, code=None)
    if isinstance(exc, SendingNotFound):
        return ErrorDetail(field="id", reason=str(exc), code=None)
    if isinstance(exc, IdempotencyConflict):
        return ErrorDetail(field="Idempotency-Key", reason=str(exc), code=None)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return ErrorDetail(field=None, reason="Redis does not answer", code=None)
    return ErrorDetail(field=None, reason=str(exc), code=None)


def _json(status: int, detail: ErrorDetail, headers: dict[str, str] | None = None) -> Response:
    body = ErrorBody(error=detail).model_dump(mode="json")
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(exc: BaseException) -> Response:
    """The answer to one of the errors ``STATUS_CODES`` knows."""
    status = next(code for kind, code in STATUS_CODES.items() if isinstance(exc, kind))
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return _json(status, _detail(exc), headers)


async def _on_error(request: Request, exc: Exception) -> Response:
    return error_response(exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route 404, wrong method 405, a bad form 400), same shape."""
    assert isinstance(exc, HTTPException)
    detail = ErrorDetail(field=_HTTP_FIELDS.get(exc.status_code), reason=exc.detail, code=None)
    return _json(exc.status_code, detail, dict(exc.headers or {}))


async def _on_redis_refusal(request: Request, exc: Exception) -> Response:
    """A command Redis refused. At ``maxmemory`` (a write outside a submit, which has its
    own ``RedisFull``): 507 in the same shape. Anything else is a bug: raised again for
    the 500 below, and its traceback in the log."""
    if not is_out_of_memory(exc):
        raise exc
    full = RedisFull("Redis is out of memory (maxmemory): refused; make room in Redis and retry")
    return error_response(full)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    """A bug: 500 in the same shape, saying nothing of it (its traceback goes to the log)."""
    return _json(500, ErrorDetail(field=None, reason="internal error", code=None))


EXCEPTION_HANDLERS: Final = {
    Exception: _on_unexpected,
    BulksendError: _on_error,
    RedisConnectionError: _on_error,
    RedisTimeoutError: _on_error,
    ResponseError: _on_redis_refusal,
    HTTPException: _on_http_error,
}
