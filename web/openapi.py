"""The OpenAPI document, generated from the routes themselves and the models that validate.

Each route of the API is an ``ApiRoute``: a Starlette ``Route`` that carries its
``Doc`` (summary, parameters, body, answers). The document walks the app's
routes, so a route cannot exist undocumented, and every schema in it comes from
the type the code uses — a channel's request body is its job model's
``model_json_schema(by_alias=True)``, the very model that validates it; a result
line is ``jobs.results.Record`` — so validation and documentation have one
source. Schemas are generated in one pass into ``components/schemas`` (shared
definitions such as ``Attachment`` appear once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final, Literal

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from web.errors import DESCRIPTIONS, ErrorBody

__all__ = ["REF", "ApiRoute", "Content", "Doc", "Param", "document", "openapi_json"]

REF: Final = "#/components/schemas/{model}"
OPENAPI_VERSION: Final = "3.1.0"


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["query", "header"]
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Content:
    """A body: its media type and its schema — a type (model, TypedDict) or a JSON schema."""

    media_type: str
    schema: Any = None


@dataclass(frozen=True)
class Doc:
    summary: str
    answer: str  # what the success answer is
    content: Content | None = None  # the success answer's body
    status: int = 200
    body: Content | None = None  # the request body
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()  # besides 401/403/503, which follow from the token rules
    headers: Mapping[str, str] = field(default_factory=dict)  # answer headers → description
    public: bool = False  # no token needed


class ApiRoute(Route):
    """A route with its documentation."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: list[str],
        doc: Doc,
        name: str | None = None,
    ) -> None:
        super().__init__(path, endpoint, methods=methods, name=name)
        self.doc = doc


def _version() -> str:
    try:
        return version("bulksend")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without install
        return "0"


def _schemas(routes: list[ApiRoute]) -> tuple[dict[Any, Any], dict[str, Any]]:
    """Every type named by a route, generated in one pass: (type, mode) → schema, and the
    definitions they refer to."""
    inputs: dict[tuple[Any, JsonSchemaMode], TypeAdapter[Any]] = {
        (ErrorBody, "serialization"): TypeAdapter(ErrorBody)
    }
    modes: tuple[JsonSchemaMode, JsonSchemaMode] = ("validation", "serialization")
    for route in routes:
        for content, mode in zip((route.doc.body, route.doc.content), modes, strict=True):
            if content is not None and isinstance(content.schema, type):
                inputs[(content.schema, mode)] = TypeAdapter(content.schema)
    keyed, definitions = TypeAdapter.json_schemas(
        [(kind, mode, adapter) for (kind, mode), adapter in inputs.items()], ref_template=REF
    )
    return dict(keyed), definitions.get("$defs", {})


def _content(content: Content, mode: str, schemas: Mapping[Any, Any]) -> dict[str, Any]:
    if isinstance(content.schema, type):
        schema = schemas[(content.schema, mode)]
    else:
        schema = dict(content.schema or {"type": "string"})
    return {content.media_type: {"schema": schema}}


def _operation(route: ApiRoute, method: str, schemas: Mapping[Any, Any]) -> dict[str, Any]:
    doc = route.doc
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.param_convertors
    ]
    params += [
        {
            "name": p.name,
            "in": p.where,
            "description": p.description,
            "required": p.required,
            "schema": dict(p.schema),
        }
        for p in doc.params
    ]
    answer: dict[str, Any] = {"description": doc.answer}
    if doc.content is not None:
        answer["content"] = _content(doc.content, "serialization", schemas)
    if doc.headers:
        answer["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in doc.headers.items()
        }
    errors = set(doc.errors)
    if not doc.public:
        errors |= {401, 503} | ({403} if method != "get" else set())
    error_content = {"application/json": {"schema": schemas[(ErrorBody, "serialization")]}}
    responses: dict[str, Any] = {str(doc.status): answer}
    for status in sorted(errors):
        responses[str(status)] = {"description": DESCRIPTIONS[status], "content": error_content}
    operation: dict[str, Any] = {
        "operationId": f"{method}_{route.name}",
        "summary": doc.summary,
        "responses": responses,
    }
    if params:
        operation["parameters"] = params
    if doc.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": _content(doc.body, "validation", schemas),
        }
    if doc.public:
        operation["security"] = []
    return operation


def document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (those that are ``ApiRoute``)."""
    documented = [route for route in routes if isinstance(route, ApiRoute)]
    schemas, definitions = _schemas(documented)
    paths: dict[str, dict[str, Any]] = {}
    for route in documented:
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                operation = _operation(route, method.lower(), schemas)
                paths.setdefault(route.path, {})[method.lower()] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "bulksend",
            "version": _version(),
            "description": "Enqueue sendings on every channel, follow them, read their "
            "results. Every route but the public ones needs `Authorization: Bearer <token>`.",
        },
        "paths": paths,
        "components": {
            "schemas": definitions,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def cached_document(request: Request) -> dict[str, Any]:
    """The app's document, generated on first use (the routes do not change)."""
    state = request.app.state
    if getattr(state, "openapi", None) is None:
        state.openapi = document(request.app.routes)
    found: dict[str, Any] = state.openapi
    return found


async def openapi_json(request: Request) -> Response:
    return JSONResponse(cached_document(request))
