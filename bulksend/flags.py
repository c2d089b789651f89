"""Command-line flags derived from a job model: the API names in kebab-case.

Deriving them keeps the CLI and the models from drifting apart: a parameter
added to a model is a flag at once (``fromEmail`` → ``--from-email``), lists are
repeatable flags, booleans are switches, objects are JSON. Validation stays in
the model, so a bad flag is reported by its API name like any other bad input.
"""

from __future__ import annotations

import argparse
import re
import types
import typing
from typing import Any

import orjson
from pydantic import BaseModel

# Per-recipient lists that are easier to give as a JSONL file, one line each.
JSONL_FIELDS = ("sub", "messages")


def kebab(api_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", api_name).lower()


def _shape(annotation: Any) -> str:
    """'bool', 'int', 'str', 'strs' (list of str, or str | list[str]) or 'json'."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        if str in args and any(typing.get_origin(a) is list for a in args):
            return "strs"
        return _shape(args[0]) if len(args) == 1 else "json"
    if origin is typing.Annotated:
        return _shape(args[0])
    if origin is list:
        return "strs" if args == [str] else "json"
    if annotation in (bool, int, str):
        return str(annotation.__name__)
    if typing.get_origin(annotation) is typing.Literal:
        return "str"
    return "json"


def _single_or_list(annotation: Any) -> bool:
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return union and str in typing.get_args(annotation)


class FlagError(ValueError):
    pass


def add_model_flags(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        api = field.alias or name
        flag = "--" + kebab(api)
        shape = _shape(field.annotation)
        dest = f"api_{api}"
        desc = field.description or api
        meta = kebab(api).upper().replace("-", "_")
        if api in JSONL_FIELDS:
            parser.add_argument(
                flag + "-file",
                dest=dest + "_file",
                metavar="JSONL",
                help=f"{api}: one object a line",
            )
            parser.add_argument(flag, dest=dest, metavar="JSON", help=f"{api} as a JSON array")
        elif shape == "bool":
            parser.add_argument(flag, dest=dest, action="store_true", default=None, help=desc)
        elif shape == "int":
            parser.add_argument(flag, dest=dest, type=int, metavar=meta, help=desc)
        elif shape == "strs":
            parser.add_argument(
                flag, dest=dest, action="append", metavar=meta, help=f"{api}; repeatable"
            )
        elif shape == "json":
            parser.add_argument(flag, dest=dest, metavar="JSON", help=f"{api} as JSON")
        else:
            parser.add_argument(flag, dest=dest, metavar=meta, help=desc)


def read_jsonl(path: str, what: str) -> list[Any]:
    rows = []
    try:
        with open(path, "rb") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(orjson.loads(line))
                    except orjson.JSONDecodeError as exc:
                        raise FlagError(f"{what}: {path} line {n}: not JSON ({exc})") from None
    except OSError as exc:
        raise FlagError(f"{what}: cannot read {path}: {exc.strerror}") from None
    return rows


def _json(value: str, what: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise FlagError(f"{what}: not valid JSON: {value!r}") from None


def model_data(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The flags given, as a dict keyed by API name, ready for model validation."""
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        api = field.alias or name
        value = getattr(args, f"api_{api}", None)
        path = getattr(args, f"api_{api}_file", None)
        if path is not None:
            value = read_jsonl(path, api)
        elif value is not None and _shape(field.annotation) == "json":
            value = _json(value, api)
        # ``str | list[str]`` (notificationUrl): one flag means the single-string form.
        if isinstance(value, list) and len(value) == 1 and _single_or_list(field.annotation):
            value = value[0]
        if value is not None:
            data[api] = value
    return data
