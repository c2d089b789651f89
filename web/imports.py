"""``POST /v1/imports``: a contact CSV import, uploaded as a multipart form.

The form is the ``bulksend import`` command as fields: ``file`` (the CSV) and
``group``, ``target``, ``country``, ``map`` (repeatable ``COLUMN=FIELD``),
``encoding``, ``delimiter`` — read into the same ``ContactImport`` by the same
``ContactImport.from_options``. The upload goes to disk as it arrives (the
multipart parser spools it; ``BodyLimit`` stops it at the size limit), is
copied to a file of its own name in a private temporary directory, and is
deleted once ``submit_import`` returns: by then every row is recorded in Redis.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from jobs.contacts import ContactImport
from jobs.errors import InvalidJob
from web import context
from web.enqueue import IDEMPOTENCY_KEY, Accepted, accepted, idempotency_key
from web.errors import BadRequest
from web.openapi import ApiRoute, Content, Doc

__all__ = ["FORM_SCHEMA", "route"]

OPTIONS: Final = ("group", "target", "country", "encoding", "delimiter")
DEFAULT_NAME: Final = "contacts.csv"


def _form_schema() -> dict[str, Any]:
    """The form's fields, described by ``ContactImport``'s own schema where it has them."""
    fields = ContactImport.model_json_schema()["properties"]
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": "the contact CSV"},
        **{name: fields[name] for name in OPTIONS},
        "map": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[^=]+=[^=]+$"},
            "description": "COLUMN=FIELD overrides of the mapping (FIELD '-' skips a column)",
        },
    }
    properties["delimiter"] = {
        **properties["delimiter"],
        "description": "override the sniffed delimiter (, ; tab |)",
    }
    return {"type": "object", "required": ["file", "group"], "properties": properties}


FORM_SCHEMA: Final = _form_schema()


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidJob(f"{name}: a text field is expected, not a file", field=name)
    return value or None


def _texts(form: FormData, name: str) -> list[str]:
    values = form.getlist(name)
    if not all(isinstance(value, str) for value in values):
        raise InvalidJob(f"{name}: text fields are expected, not files", field=name)
    return [value for value in values if isinstance(value, str)]


def _file_name(given: str | None) -> str:
    """The upload's own name, without any directory it claims (it names the mail API's file)."""
    name = Path((given or "").replace("\\", "/")).name.strip()
    return name if name not in ("", ".", "..") else DEFAULT_NAME


def _copy(source: IO[bytes], path: Path) -> None:
    source.seek(0)
    with path.open("wb") as target:
        shutil.copyfileobj(source, target, 1024 * 1024)


async def import_contacts(request: Request) -> Response:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        reason = "a multipart/form-data body is expected: file and the import's options"
        raise BadRequest(f"body: {reason}", field="body", reason=reason)
    key = idempotency_key(request)
    async with request.form(max_files=1, max_fields=100) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidJob("file: a CSV file is required", field="file")
        job = ContactImport.from_options(
            _text(form, "group"),
            target=_text(form, "target"),
            country=_text(form, "country"),
            maps=_texts(form, "map"),
            encoding=_text(form, "encoding"),
            delimiter=_text(form, "delimiter"),
        )
        with tempfile.TemporaryDirectory(prefix="bulksend-import-") as folder:
            path = Path(folder) / _file_name(upload.filename)
            await run_in_threadpool(_copy, upload.file, path)
            sending_id = await context.producer(request).submit_import(job, path, key)
    return accepted(sending_id)


route: Final = ApiRoute(
    "/v1/imports",
    import_contacts,
    methods=["POST"],
    name="import_contacts",
    doc=Doc(
        summary="Import a contact CSV (tracked like a sending of kind contacts, one "
        "recipient per data row)",
        answer="accepted: every row is recorded and its chunks are queued",
        status=202,
        content=Content("application/json", Accepted),
        body=Content("multipart/form-data", FORM_SCHEMA),
        params=(IDEMPOTENCY_KEY,),
        errors=(400, 409, 413, 422, 507),
        headers={"Location": "/v1/sendings/{id}"},
    ),
)
