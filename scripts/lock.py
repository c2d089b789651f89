"""``requirements.lock``: every runtime dependency pinned, with hashes, and the check of it.

The image installs exactly what this file pins (``pip wheel --require-hashes``), so
a release on PyPI cannot change what runs in production between two builds, and
a tampered download fails the build. Two jobs, two speeds:

``python scripts/lock.py`` (``make lock``) resolves ``[project] dependencies`` of
``pyproject.toml`` against PyPI with ``uv pip compile`` (universal: for Python 3.11,
with markers, so the file serves an x86-64 and an arm64 build alike; hashes of every
file of each pinned release) and heads the file with a digest of those dependencies.

``python scripts/lock.py --check`` (``make lint``, so CI) never touches the network,
so it is deterministic: a new release on PyPI cannot turn CI red. It fails
(exit 1, "run make lock") when the digest no longer matches ``pyproject.toml`` — a
dependency was added, removed or its specifier changed without relocking — or when
a pin of the lock does not satisfy its ``pyproject.toml`` specifier, a dependency is
not pinned, or a pin is not ``==`` with hashes (a hand edit).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
DIGEST_LINE = "# pyproject-dependencies-sha256: "
PYTHON = "3.11"  # the image's Python (Dockerfile); the lock's lowest Python
# Where markers are evaluated when deciding whether a dependency must be pinned.
LOCK_ENVIRONMENT = {"python_version": PYTHON, "python_full_version": f"{PYTHON}.0"}
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    """One requirement of the lock: ``name==version [; marker]`` and its hashes."""

    requirement: Requirement
    hashes: int

    @property
    def version(self) -> Version | None:
        specs = list(self.requirement.specifier)
        if len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version:
            return Version(specs[0].version)
        return None


def dependencies(pyproject: Path) -> list[Requirement]:
    """``[project] dependencies``, parsed."""
    with pyproject.open("rb") as f:
        return [Requirement(d) for d in tomllib.load(f)["project"]["dependencies"]]


def digest(requirements: list[Requirement]) -> str:
    """A digest of the dependencies that ignores their order, comments and spacing:
    only a change of what is asked for needs a new lock."""
    canonical = sorted(str(r) for r in requirements)
    return hashlib.sha256("\n".join(canonical).encode()).hexdigest()


def read_lock(text: str) -> tuple[str | None, list[Pin]]:
    """The recorded digest and the pins of a lock file's text."""
    recorded = None
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        if line.startswith(DIGEST_LINE):
            recorded = line.removeprefix(DIGEST_LINE).strip()
        stripped = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not stripped and not current:
            continue
        current += " " + stripped.removesuffix("\\")
        if not stripped.endswith("\\"):
            logical.append(current.strip())
            current = ""
    if current.strip():
        logical.append(current.strip())
    pins = []
    for entry in logical:
        spec = entry.split(" --hash=", 1)[0].strip()
        pins.append(Pin(Requirement(spec), len(HASH.findall(entry))))
    return recorded, pins


def problems(pyproject: Path, lock: Path) -> list[str]:
    """What is wrong with ``lock`` for ``pyproject``; empty when it is in sync."""
    if not lock.exists():
        return [f"{lock.name} is missing"]
    wanted = dependencies(pyproject)
    try:
        recorded, pins = read_lock(lock.read_text())
    except InvalidRequirement as exc:
        return [f"{lock.name}: unreadable requirement: {exc}"]
    found = []
    if recorded is None:
        found.append(f"{lock.name} has no '{DIGEST_LINE.strip()}' line")
    elif recorded != digest(wanted):
        found.append(f"[project] dependencies of {pyproject.name} changed since {lock.name}")
    by_name: dict[str, list[Pin]] = {}
    for pin in pins:
        if pin.version is None or pin.hashes == 0:
            found.append(f"{pin.requirement}: not pinned with == and --hash")
            continue
        by_name.setdefault(canonicalize_name(pin.requirement.name), []).append(pin)
    for req in wanted:
        if req.marker is not None and not req.marker.evaluate(LOCK_ENVIRONMENT):
            continue
        locked = by_name.get(canonicalize_name(req.name), [])
        if not locked:
            found.append(f"{req.name}: in {pyproject.name}, not in {lock.name}")
        for pin in locked:
            version = pin.version
            if version is not None and not req.specifier.contains(version, prereleases=True):
                found.append(f"{req.name}=={version} does not satisfy {req}")
    return found


def check(pyproject: Path, lock: Path) -> int:
    found = problems(pyproject, lock)
    for problem in found:
        print(f"{lock.name}: {problem}; run make lock", file=sys.stderr)
    if not found:
        print(f"{lock.name}: in sync with {pyproject.name}")
    return 1 if found else 0


def write(pyproject: Path, lock: Path) -> int:
    """Resolve with uv (pins already in ``lock`` are kept where they still fit) and put
    the digest on top."""
    command = [
        sys.executable,
        "-m",
        "uv",
        "pip",
        "compile",
        str(pyproject.name),
        "--universal",
        "--python-version",
        PYTHON,
        "--generate-hashes",
        "--custom-compile-command",
        "make lock",
        "--quiet",
        "--output-file",
        str(lock),
    ]
    subprocess.run(command, cwd=pyproject.parent, check=True)
    body = lock.read_text()
    header = f"{DIGEST_LINE}{digest(dependencies(pyproject))}\n"
    lock.write_text(header + body)
    return check(pyproject, lock)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="verify offline, write nothing")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.pyproject, args.lock)
    return write(args.pyproject.resolve(), args.lock.resolve())


if __name__ == "__main__":
    sys.exit(main())
