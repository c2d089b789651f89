"""Every setting is documented where a newcomer looks: .env.example and the README."""

from __future__ import annotations

from bulksend.settings_doc import ROOT, env_example, readme_with_table
from jobs.settings import Settings


def test_env_example_and_readme_table_are_generated_from_settings() -> None:
    # Out of date? Run `python -m bulksend.settings_doc`.
    assert (ROOT / ".env.example").read_text() == env_example()
    readme = (ROOT / "README.md").read_text()
    assert readme == readme_with_table(readme)
    for name in Settings.model_fields:
        assert f"`BULKSEND_{name.upper()}`" in readme


def test_credentials_never_show_in_a_repr() -> None:
    settings = Settings(provider_api_password="s3cret-value", mail_secret_key="k3y-value")
    assert "s3cret-value" not in repr(settings) and "k3y-value" not in repr(settings)
