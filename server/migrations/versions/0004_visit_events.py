"""visit events for booth analytics

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 03:14:26.075534
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "visit_events",
        sa.Column("hall_id", sa.Uuid(), nullable=False),
        sa.Column("booth_id", sa.Uuid(), nullable=True),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("tour_id", sa.Uuid(), nullable=True),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("guest", sa.Boolean(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "enter", "leave", "hotspot", "tour", name="visitkind", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dwell_seconds", sa.Float(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booth_id"],
            ["booths.id"],
            name=op.f("fk_visit_events_booth_id_booths"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["hall_id"],
            ["halls.id"],
            name=op.f("fk_visit_events_hall_id_halls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_events")),
    )
    with op.batch_alter_table("visit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visit_events_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_visit_events_booth_id"), ["booth_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_visit_events_hall_id"), ["hall_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("visit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visit_events_hall_id"))
        batch_op.drop_index(batch_op.f("ix_visit_events_booth_id"))
        batch_op.drop_index(batch_op.f("ix_visit_events_at"))

    op.drop_table("visit_events")
