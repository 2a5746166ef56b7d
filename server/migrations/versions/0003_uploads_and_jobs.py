"""upload sessions, jobs and asset error codes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 00:39:11.806594
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "jobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "failed",
                name="jobstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("step", sa.String(length=40), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("worker", sa.String(length=120), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("sha256", name=op.f("uq_jobs_sha256")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_heartbeat_at"), ["heartbeat_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_state"), ["state"], unique=False)

    op.create_table(
        "upload_sessions",
        sa.Column("booth_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("model", "photo", "logo", name="assetkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "method",
            sa.Enum("presigned", "resumable", name="uploadmethod", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("asset_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["product_assets.id"],
            name=op.f("fk_upload_sessions_asset_id_product_assets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["booth_id"],
            ["booths.id"],
            name=op.f("fk_upload_sessions_booth_id_booths"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_upload_sessions_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_upload_sessions_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_sessions")),
        sa.UniqueConstraint("key", name=op.f("uq_upload_sessions_key")),
    )
    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upload_sessions_booth_id"), ["booth_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_upload_sessions_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_upload_sessions_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_upload_sessions_product_id"), ["product_id"], unique=False
        )

    with op.batch_alter_table("product_assets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_code", sa.String(length=64), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("product_assets", schema=None) as batch_op:
        batch_op.drop_column("error_code")

    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upload_sessions_product_id"))
        batch_op.drop_index(batch_op.f("ix_upload_sessions_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_upload_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_upload_sessions_booth_id"))

    op.drop_table("upload_sessions")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_state"))
        batch_op.drop_index(batch_op.f("ix_jobs_heartbeat_at"))

    op.drop_table("jobs")
