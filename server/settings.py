"""Settings, read from the environment with the prefix ``PAVILION_``.

Nested groups use ``__`` as the delimiter: ``PAVILION_BLOBS__BACKEND=s3``.
Settings are built by :func:`get_settings` (cached) and passed to ``create_app``; nothing reads
the environment at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "pavilion-development-secret-change-me"  # noqa: S105 - refused outside development
DEV_S3_SECRET = "pavilion-dev-s3-secret"  # noqa: S105 - refused outside development


class DatabaseSettings(BaseModel):
    url: str = "sqlite:///var/pavilion.db"
    echo: bool = False
    pool_size: int = 10


class BlobSettings(BaseModel):
    backend: Literal["local", "s3"] = "local"
    local_dir: Path = Path("var/blobs")
    # The URL prefix under which the app serves local blobs.
    local_url_prefix: str = "/blobs"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_bucket: str = "pavilion"
    s3_access_key: str = "pavilion"
    s3_secret_key: SecretStr = SecretStr(DEV_S3_SECRET)
    # Public base URL for published objects (a CDN); presigned GETs are used when empty.
    public_base_url: str | None = None
    presign_get_seconds: int = Field(default=900, ge=1, le=900)
    presign_post_seconds: int = Field(default=300, ge=1, le=300)
    # Create the bucket and set its CORS rules at startup (development; production has an init step).
    s3_create_bucket: bool = False


class AuthSettings(BaseModel):
    secret_key: SecretStr = SecretStr(DEV_SECRET)
    access_token_minutes: int = Field(default=60, ge=1, le=24 * 60)
    guest_token_minutes: int = Field(default=12 * 60, ge=1, le=7 * 24 * 60)
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"


class LimitSettings(BaseModel):
    # Cap on any request body, counted in the ASGI receive path (chunked bodies included).
    max_body_bytes: int = 1024 * 1024
    max_page_size: int = 200


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PAVILION_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    environment: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    var_dir: Path = Path("var")
    web_dist: Path = Path("web/dist")
    cors_origins: list[str] = []
    seed_demo: bool = True
    # Redis for cross-process pubsub and jobs at scale; None keeps them in-process (embedded).
    redis_url: str | None = None
    database: DatabaseSettings = DatabaseSettings()
    blobs: BlobSettings = BlobSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitSettings = LimitSettings()

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.environment != "production":
            return self
        if self.auth.secret_key.get_secret_value() == DEV_SECRET:
            raise ValueError("PAVILION_AUTH__SECRET_KEY must be set outside development")
        if len(self.auth.secret_key.get_secret_value()) < 32:
            raise ValueError("PAVILION_AUTH__SECRET_KEY must be at least 32 characters")
        if (
            self.blobs.backend == "s3"
            and self.blobs.s3_secret_key.get_secret_value() == DEV_S3_SECRET
        ):
            raise ValueError("PAVILION_BLOBS__S3_SECRET_KEY must be set outside development")
        return self


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
