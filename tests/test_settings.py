"""Every setting is documented where a newcomer looks: .env.example and the README."""

from __future__ import annotations

from pathlib import Path

from jobs.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_and_readme_list_every_setting() -> None:
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        variable = f"BULKSEND_{name.upper()}"
        assert f"{variable}=" in example, variable
        assert f"`{variable}`" in readme, variable


def test_credentials_never_show_in_a_repr() -> None:
    settings = Settings(provider_api_password="s3cret-value", mail_secret_key="k3y-value")
    assert "s3cret-value" not in repr(settings) and "k3y-value" not in repr(settings)
