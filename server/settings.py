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
    # Uploads (docs/api.md "Uploads"). One multipart request carries a file up to this size.
    max_upload_bytes: int = Field(default=25 * 1024**2, ge=1)
    # Larger files go through a presigned POST (S3) or a resumable upload (local store); the
    # pipeline refuses inputs over 200 MiB anyway (pipeline.limits.Limits.max_input_bytes).
    max_large_upload_bytes: int = Field(default=200 * 1024**2, ge=1)
    # One resumable chunk; also the body cap of the chunk route.
    upload_chunk_bytes: int = Field(default=8 * 1024**2, ge=64 * 1024)
    # How long a resumable upload may take to receive all its chunks.
    resumable_upload_seconds: int = Field(default=24 * 3600, ge=60)
    # Where resumable chunks are staged; default ``<blobs.local_dir>/~staging`` ("~" never
    # starts a blob key segment, so the local store never lists it).
    upload_staging_dir: Path | None = None
    # Per exhibitor organisation: stored bytes of its assets plus open uploads' declared sizes,
    # products, and uploads open at once.
    organisation_quota_bytes: int = Field(default=5 * 1024**3, ge=0)
    organisation_quota_products: int = Field(default=500, ge=0)
    organisation_open_uploads: int = Field(default=20, ge=0)
    # The janitor deletes unreferenced uploads and expired sessions this long after the fact.
    upload_grace_hours: float = Field(default=24.0, ge=0)


class JobSettings(BaseModel):
    """Processing uploads (server/processing.py, server/jobs/)."""

    # Jobs run at once: threads of the API process (embedded) or of each worker process.
    workers: int = Field(default=1, ge=1, le=64)
    # Limits of one conversion's child process (pipeline/sandbox.py).
    sandbox_memory_bytes: int = Field(default=3 * 1024**3, ge=64 * 1024**2)
    sandbox_cpu_seconds: int = Field(default=300, ge=1)
    sandbox_wall_seconds: float = Field(default=600.0, gt=0)
    # How often the API looks for jobs whose worker died, or whose enqueue was lost.
    reaper_seconds: float = Field(default=30.0, gt=0)
    # How often the API runs the uploads janitor (server/janitor.py); 0 leaves it to
    # `python -m server janitor` (cron, or one replica of several).
    janitor_seconds: float = Field(default=3600.0, ge=0)
    # Redis queue (saq): its name (the API and its workers must agree), and how long a job's
    # worker may be silent before the job is given to another worker.
    redis_queue: str = Field(default="pavilion-jobs", min_length=1, max_length=100)
    redis_heartbeat_seconds: int = Field(default=60, ge=5)


class TourSettings(BaseModel):
    """The tour websocket server (docs/protocol.md)."""

    enabled: bool = True
    # The websockets server listens here; None: the API's host and port + 1.
    host: str | None = None
    port: int | None = Field(default=None, ge=0, le=65535)
    # What browsers connect to (the ticket's `url`), e.g. wss://expo.example.com behind a proxy;
    # None: ws://<host>:<port> as listened on.
    public_url: str | None = None
    # Exact Origin values allowed on the handshake; empty: the API's own origins + cors_origins.
    origins: list[str] = []
    hall_capacity: int = Field(default=2000, ge=1)
    tick_hz: float = Field(default=15.0, gt=0, le=60)
    send_buffer_bytes: int = Field(default=256 * 1024, ge=4096)
    ping_interval: float = Field(default=20.0, gt=0)
    ping_timeout: float = Field(default=20.0, gt=0)
    hello_seconds: float = Field(default=10.0, gt=0)
    resume_seconds: float = Field(default=30.0, gt=0)
    ticket_seconds: float = Field(default=30.0, gt=0, le=300)
    # How often a live hall re-reads its schedule of tours and its manifest.
    refresh_seconds: float = Field(default=30.0, gt=0)
    # gc.freeze() the start-up objects (shorter full collections during ticks).
    gc_freeze: bool = True


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
    jobs: JobSettings = JobSettings()
    tours: TourSettings = TourSettings()

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
