"""Settings from the environment: the PAVILION_ prefix, ``__`` nesting, aliases, secret checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from server.settings import DEV_S3_SECRET, DEV_SECRET, AuthSettings, BlobSettings, Settings

STRONG_SECRET = "a-production-secret-that-is-long-enough-0123456789"
STRONG_S3_SECRET = "a-production-s3-secret-0123456789"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PAVILION_* variable of the caller's shell (the Makefile exports PAVILION_PORT) leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("PAVILION_") or name.upper() == "PORT":
            monkeypatch.delenv(name)


def test_defaults_describe_the_embedded_development_mode() -> None:
    settings = Settings()
    assert settings.environment == "development"
    assert settings.port == 8000
    assert settings.database.url == "sqlite:///var/pavilion.db"
    assert settings.blobs.backend == "local"
    assert settings.blobs.local_dir == Path("var/blobs")
    assert settings.auth.secret_key.get_secret_value() == DEV_SECRET


def test_prefixed_variables_set_top_level_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAVILION_HOST", "10.1.2.3")
    monkeypatch.setenv("PAVILION_LOG_LEVEL", "debug")
    monkeypatch.setenv("PAVILION_CORS_ORIGINS", '["https://a.example", "https://b.example"]')
    settings = Settings()
    assert settings.host == "10.1.2.3"
    assert settings.log_level == "debug"
    assert settings.cors_origins == ["https://a.example", "https://b.example"]


def test_unprefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST", "10.1.2.3")
    monkeypatch.setenv("ENVIRONMENT", "production")
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.environment == "development"


def test_double_underscore_sets_nested_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAVILION_DATABASE__URL", "postgresql+psycopg://u@db:5432/pavilion")
    monkeypatch.setenv("PAVILION_DATABASE__POOL_SIZE", "25")
    monkeypatch.setenv("PAVILION_BLOBS__BACKEND", "s3")
    monkeypatch.setenv("PAVILION_BLOBS__S3_ENDPOINT_URL", "http://s3:8333")
    monkeypatch.setenv("PAVILION_BLOBS__LOCAL_DIR", "/srv/blobs")
    monkeypatch.setenv("PAVILION_AUTH__ACCESS_TOKEN_MINUTES", "15")
    settings = Settings()
    assert settings.database.url == "postgresql+psycopg://u@db:5432/pavilion"
    assert settings.database.pool_size == 25
    assert settings.blobs.backend == "s3"
    assert settings.blobs.s3_endpoint_url == "http://s3:8333"
    assert settings.blobs.local_dir == Path("/srv/blobs")
    assert settings.auth.access_token_minutes == 15
    # Unset fields of a group keep their defaults.
    assert settings.blobs.s3_bucket == "pavilion"
    assert settings.database.echo is False


def test_a_single_underscore_does_not_reach_a_nested_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAVILION_BLOBS_BACKEND", "s3")
    assert Settings().blobs.backend == "local"


def test_flat_port_alias_sets_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAVILION_PORT", "9123")
    assert Settings().port == 9123


def test_an_invalid_nested_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAVILION_BLOBS__BACKEND", "ftp")
    with pytest.raises(ValidationError, match=r"blobs\.backend"):
        Settings()


@pytest.mark.parametrize("port", ["0", "65536", "-1", "eighty"])
def test_an_invalid_port_is_refused(monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    monkeypatch.setenv("PAVILION_PORT", port)
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_an_invalid_port_passed_in_code_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(port=70000)


def test_production_refuses_the_default_auth_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAVILION_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="PAVILION_AUTH__SECRET_KEY must be set"):
        Settings()


def test_production_refuses_a_short_auth_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAVILION_ENVIRONMENT", "production")
    monkeypatch.setenv("PAVILION_AUTH__SECRET_KEY", "x" * 31)
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings()


def test_production_refuses_the_default_s3_secret_with_the_s3_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAVILION_ENVIRONMENT", "production")
    monkeypatch.setenv("PAVILION_AUTH__SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("PAVILION_BLOBS__BACKEND", "s3")
    with pytest.raises(ValidationError, match="PAVILION_BLOBS__S3_SECRET_KEY must be set"):
        Settings()


def test_production_ignores_the_s3_secret_with_the_local_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAVILION_ENVIRONMENT", "production")
    monkeypatch.setenv("PAVILION_AUTH__SECRET_KEY", STRONG_SECRET)
    settings = Settings()
    assert settings.blobs.backend == "local"
    assert settings.blobs.s3_secret_key.get_secret_value() == DEV_S3_SECRET


def test_production_accepts_proper_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAVILION_ENVIRONMENT", "production")
    monkeypatch.setenv("PAVILION_AUTH__SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("PAVILION_BLOBS__BACKEND", "s3")
    monkeypatch.setenv("PAVILION_BLOBS__S3_SECRET_KEY", STRONG_S3_SECRET)
    settings = Settings()
    assert settings.environment == "production"
    assert settings.auth.secret_key.get_secret_value() == STRONG_SECRET
    assert settings.blobs.s3_secret_key.get_secret_value() == STRONG_S3_SECRET


def test_production_checks_also_apply_to_settings_built_in_code() -> None:
    with pytest.raises(ValidationError, match="PAVILION_AUTH__SECRET_KEY"):
        Settings(environment="production")
    settings = Settings(
        environment="production",
        auth=AuthSettings(secret_key=SecretStr(STRONG_SECRET)),
        blobs=BlobSettings(backend="s3", s3_secret_key=SecretStr(STRONG_S3_SECRET)),
    )
    assert settings.environment == "production"


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_test_accept_the_default_secrets(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("PAVILION_ENVIRONMENT", environment)
    monkeypatch.setenv("PAVILION_BLOBS__BACKEND", "s3")
    settings = Settings()
    assert settings.environment == environment
    assert settings.auth.secret_key.get_secret_value() == DEV_SECRET
    assert settings.blobs.s3_secret_key.get_secret_value() == DEV_S3_SECRET


def test_secrets_do_not_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAVILION_AUTH__SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("PAVILION_BLOBS__S3_SECRET_KEY", STRONG_S3_SECRET)
    text = repr(Settings())
    assert STRONG_SECRET not in text
    assert STRONG_S3_SECRET not in text
