"""published hall manifests: the history of versions and each hall's current pointer

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 00:22:00.520233
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "published_manifests",
        sa.Column("hall_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("keys", sa.JSON(), nullable=False),
        sa.Column("records", sa.JSON(), nullable=False),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["hall_id"],
            ["halls.id"],
            name=op.f("fk_published_manifests_hall_id_halls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_published_manifests")),
        sa.UniqueConstraint("hall_id", "version", name=op.f("uq_published_manifests_hall_id")),
    )
    with op.batch_alter_table("published_manifests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_published_manifests_hall_id"), ["hall_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_published_manifests_superseded_at"), ["superseded_at"], unique=False
        )

    op.create_table(
        "hall_manifests",
        sa.Column("hall_id", sa.Uuid(), nullable=False),
        sa.Column("manifest_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["hall_id"],
            ["halls.id"],
            name=op.f("fk_hall_manifests_hall_id_halls"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["manifest_id"],
            ["published_manifests.id"],
            name=op.f("fk_hall_manifests_manifest_id_published_manifests"),
        ),
        sa.PrimaryKeyConstraint("hall_id", name=op.f("pk_hall_manifests")),
    )


def downgrade() -> None:
    op.drop_table("hall_manifests")
    with op.batch_alter_table("published_manifests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_published_manifests_superseded_at"))
        batch_op.drop_index(batch_op.f("ix_published_manifests_hall_id"))
    op.drop_table("published_manifests")
