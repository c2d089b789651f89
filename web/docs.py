"""``/docs``: the OpenAPI document as one server-rendered HTML page.

It reads the same document as ``/openapi.json`` — routes, their parameters and
answers, then every schema pretty-printed — and needs nothing else: no
JavaScript, no stylesheet or font from a CDN (the CSS is inline), so it works
on an air-gapped host and cannot leak who reads it. Every text from the
document is escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from web.openapi import cached_document

__all__ = ["docs_page", "render"]

STYLE: Final = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 70em; padding: 1em 2em;
       color: #1d1d1f; }
h1 { margin-bottom: 0; } h2 { border-bottom: 1px solid #ddd; margin-top: 2em; }
.op { border: 1px solid #ddd; border-radius: 6px; margin: 1em 0; padding: .5em 1em; }
.method { display: inline-block; min-width: 4.5em; font-weight: 600; text-transform: uppercase; }
.get { color: #0a6ebd; } .post { color: #1a7f37; }
code, pre { font: 13px/1.4 ui-monospace, monospace; }
pre { background: #f6f8fa; border-radius: 6px; overflow-x: auto; padding: .75em; }
table { border-collapse: collapse; } td, th { padding: .2em .8em .2em 0; text-align: left;
       vertical-align: top; }
.public { color: #6e7781; font-size: 90%; }
nav a { margin-right: 1em; }
"""


def _schema_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    return f"<code>{escape(json.dumps(schema))}</code>"


def _contents(contents: dict[str, Any]) -> str:
    return ", ".join(
        f"<code>{escape(media)}</code> {_schema_name(item.get('schema', {}))}"
        for media, item in contents.items()
    )


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    public = ' <span class="public">(no token)</span>' if op.get("security") == [] else ""
    parts = [
        f'<div class="op"><span class="method {method}">{method}</span> '
        f"<code>{escape(path)}</code>{public}<p>{escape(op['summary'])}</p>"
    ]
    params = op.get("parameters", [])
    if params:
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
            f"<td>{escape(p.get('description', ''))}</td></tr>"
            for p in params
        )
        parts.append(f"<table><tr><th>parameter</th><th>in</th><th></th></tr>{rows}</table>")
    body = op.get("requestBody")
    if body:
        parts.append(f"<p>Body: {_contents(body['content'])}</p>")
    rows = "".join(
        f"<tr><td>{escape(status)}</td><td>{escape(answer['description'])}</td>"
        f"<td>{_contents(answer.get('content', {}))}</td></tr>"
        for status, answer in op["responses"].items()
    )
    parts.append(f"<table><tr><th>answer</th><th></th><th></th></tr>{rows}</table></div>")
    return "".join(parts)


def render(document: dict[str, Any]) -> str:
    """The page for an OpenAPI document."""
    info = document["info"]
    operations = "".join(
        _operation(path, method, op)
        for path, methods in document["paths"].items()
        for method, op in methods.items()
    )
    schemas = "".join(
        f'<h3 id="schema-{escape(name)}">{escape(name)}</h3>'
        f"<pre>{escape(json.dumps(schema, indent=2, ensure_ascii=False))}</pre>"
        for name, schema in sorted(document["components"]["schemas"].items())
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(info['title'])} HTTP API</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{STYLE}</style></head><body>"
        f"<h1>{escape(info['title'])} HTTP API</h1><p>version {escape(info['version'])} · "
        '<a href="/openapi.json">openapi.json</a></p>'
        f"<p>{escape(info['description'])}</p>"
        f"<h2>Routes</h2>{operations}<h2>Schemas</h2>{schemas}</body></html>"
    )


async def docs_page(request: Request) -> Response:
    return HTMLResponse(render(cached_document(request)))
