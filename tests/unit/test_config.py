"""Settings: defaults, provider choice, and start-up errors that name the variable."""

from __future__ import annotations

import pytest

from webapp.config import SETTINGS, ConfigError, Settings, describe, load_settings


def test_defaults_use_the_scripted_model_without_a_key() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert (settings.provider, settings.model, settings.heartbeat_seconds) == ("scripted", "scripted", 15.0)


def test_openai_is_the_default_provider_when_a_key_is_set() -> None:
    settings = load_settings({"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert (settings.provider, settings.model, settings.openai_base_url) == ("openai", "gpt-4o-mini", "http://127.0.0.1:9/v1")
    assert load_settings({"OPENAI_API_KEY": "k", "WEBAPP_PROVIDER": "scripted"}).provider == "scripted"


def test_values_are_parsed_and_typed() -> None:
    settings = load_settings(
        {
            "WEBAPP_HEARTBEAT_SECONDS": "0.5",
            "WEBAPP_WATCH_DISCONNECT": "off",
            "WEBAPP_MAX_BODY_BYTES": "2048",
            "WEBAPP_LOG_LEVEL": "debug",
            "WEBAPP_MODEL": " my-model ",
        }
    )
    assert settings.heartbeat_seconds == 0.5 and settings.watch_disconnect is False
    assert settings.max_body_bytes == 2048 and settings.log_level == "DEBUG" and settings.model == "my-model"


def test_empty_values_keep_defaults() -> None:
    assert load_settings({"WEBAPP_HEARTBEAT_SECONDS": "", "OPENAI_API_KEY": ""}) == Settings()


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("WEBAPP_HEARTBEAT_SECONDS", "abc", "from 0 to 300"),
        ("WEBAPP_HEARTBEAT_SECONDS", "-1", "from 0 to 300"),
        ("WEBAPP_HEARTBEAT_SECONDS", "nan", "from 0 to 300"),
        ("WEBAPP_HEARTBEAT_SECONDS", "inf", "from 0 to 300"),
        ("WEBAPP_HEARTBEAT_SECONDS", "301", "from 0 to 300"),
        ("WEBAPP_MAX_BODY_BYTES", "1.5", "whole number"),
        ("WEBAPP_MAX_BODY_BYTES", "10", "from 1024"),
        ("WEBAPP_RETRY_MS", "soon", "whole number"),
        ("WEBAPP_WATCH_DISCONNECT", "maybe", "true/false"),
        ("WEBAPP_PROVIDER", "anthropic", "scripted, openai"),
        ("WEBAPP_LOG_LEVEL", "loud", "DEBUG"),
        ("WEBAPP_MAX_STREAM_SECONDS", "0", "from 0.001"),
        ("WEBAPP_UPSTREAM_MAX_RETRIES", "11", "from 0 to 10"),
    ],
)
def test_bad_values_name_the_variable_and_the_accepted_range(variable: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value})
    assert variable in str(caught.value) and says in str(caught.value)


def test_openai_provider_without_a_key_is_a_start_up_error() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        load_settings({"WEBAPP_PROVIDER": "openai"})


def test_every_setting_is_documented_and_secrets_are_masked() -> None:
    assert all(setting.doc and setting.env for setting in SETTINGS.values())
    shown = describe(load_settings({"OPENAI_API_KEY": "sk-secret"}))
    assert shown["openai_api_key"] == "***" and "sk-secret" not in repr(load_settings({"OPENAI_API_KEY": "sk-secret"}))


def test_the_configuration_page_lists_every_setting() -> None:
    from tests.support.servers import ROOT

    page = (ROOT / "docs" / "configuration.md").read_text()  # generated from SETTINGS: tests/unit/test_docs.py
    missing = [s.env for s in SETTINGS.values() if f"| `{s.env}` |" not in page]
    assert not missing, f"docs/configuration.md lacks {missing}"
