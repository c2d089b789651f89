"""Recipients streamed from a file, for sendings too big to hold in memory.

JSONL: one object a line, ``{"to": "34666555444", "sub": {"name": "Ana"}}``
(``notificationUrl`` may be given per line too). CSV: a header with a ``to``
column; every other column is a ``sub`` variable. The file is read twice, a
line at a time: once to validate all of it (a bad line refuses the sending
whole, naming the line, before anything is queued), once to enqueue.

Files saved by spreadsheet programs often start with a UTF-8 byte-order mark;
it is dropped, so that the CSV header's first column is ``to`` and not
``\ufeffto``, and the first JSONL line still parses.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from jobs.base import InvalidJob

Row = tuple[str, dict[str, Any]]  # (to, per-recipient parameters)
BOM = b"\xef\xbb\xbf"
JSONL_KEYS = {"to", "sub", "notificationUrl"}


def _jsonl_row(n: int, line: bytes) -> Row:
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"line {n}: not JSON ({exc})") from None
    if not isinstance(item, dict):
        raise ValueError(f"line {n}: must be a JSON object")
    unknown = set(item) - JSONL_KEYS
    if unknown:
        allowed = ", ".join(sorted(JSONL_KEYS))
        raise ValueError(f"line {n}: unknown keys {sorted(unknown)} (allowed: {allowed})")
    to = item.get("to")
    if not isinstance(to, str) or not to.strip():
        raise ValueError(f"line {n}: to: missing or not a string")
    extras: dict[str, Any] = {}
    if "sub" in item:
        if not isinstance(item["sub"], dict):
            raise ValueError(f"line {n}: sub: must be an object")
        extras["sub"] = item["sub"]
    if "notificationUrl" in item:
        extras["notificationUrl"] = item["notificationUrl"]
    return to, extras


def rows(path: str | Path) -> Iterator[Row]:
    """Every recipient of the file, in order; ValueError names the bad line."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "to" not in reader.fieldnames:
                raise ValueError("line 1: the CSV header needs a 'to' column")
            for n, record in enumerate(reader, 2):
                to = (record.pop("to") or "").strip()
                if not to:
                    raise ValueError(f"line {n}: to: empty")
                sub = {k: v for k, v in record.items() if k and v not in (None, "")}
                yield to, ({"sub": sub} if sub else {})
        return
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if n == 1:
                line = line.removeprefix(BOM)
            if line.strip():
                yield _jsonl_row(n, line)


def first_valid(path: str | Path, normalize: Callable[[str], str | None]) -> str | None:
    """The first usable recipient, read from the top of the file (to build the job)."""
    try:
        return next((to for to, _ in rows(path) if normalize(to)), None)
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # `scan` reports the problem with its line


@dataclass(frozen=True)
class FileSummary:
    count: int
    sha256: str
    first_valid: str | None


def scan(
    path: str | Path,
    normalize: Callable[[str], str | None],
    check: Callable[[str, dict[str, Any]], None] | None = None,
) -> FileSummary:
    """Validate the whole file in constant memory; ``check(to, extras)`` may raise."""
    count = 0
    first_valid: str | None = None
    try:
        file_digest = sha256_of(path)
        for to, extras in rows(path):
            count += 1
            if first_valid is None and normalize(to):
                first_valid = to
            if check is not None:
                try:
                    check(to, extras)
                except ValueError as exc:
                    raise ValueError(f"recipient {count}: {exc}") from None
    except OSError as exc:
        raise InvalidJob(f"recipients-file: cannot read {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJob(f"recipients-file: {path}: {exc}") from None
    if count == 0:
        raise InvalidJob(f"recipients-file: {path}: no recipients")
    return FileSummary(count, file_digest, first_valid)


def sha256_of(path: str | Path) -> str:
    """The file's digest, read in blocks: what makes a resubmission the same sending."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
