"""`.env.example` and the README's configuration table, generated from ``Settings``.

Run ``python -m bulksend.settings_doc`` after adding a setting; a test fails
while either file is out of date, so the two can never drift from the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TABLE_START = "| variable | default | what it does |"


def _default(value: Any, secret: str) -> str:
    if hasattr(value, "get_secret_value"):
        return secret if secret else str(value.get_secret_value())
    return "" if value is None else str(value)


def env_example() -> str:
    lines = [
        "# bulksend settings. Every variable is optional; the value shown is the default.",
        "# Copy to .env (read automatically) or export them, and uncomment what you change:",
        "# a copied default would pin it (a loopback URL names the container itself under",
        "# docker compose). Credentials come only from here.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        lines += [
            f"# {field.description}",
            f"# BULKSEND_{name.upper()}={_default(field.default, '')}",
        ]
    return "\n".join(lines) + "\n"


def readme_table() -> str:
    rows = [TABLE_START, "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = _default(field.default, "(the sandbox's)") or "unset"
        rows.append(f"| `BULKSEND_{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(rows)


def readme_with_table(readme: str) -> str:
    start = readme.index(TABLE_START)
    end = readme.index("\n\n", start)
    return readme[:start] + readme_table() + readme[end:]


def main() -> None:
    (ROOT / ".env.example").write_text(env_example())
    readme = ROOT / "README.md"
    readme.write_text(readme_with_table(readme.read_text()))


if __name__ == "__main__":
    main()
