"""initial expo schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 21:25:41.938190
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "expos",
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expos")),
        sa.UniqueConstraint("slug", name=op.f("uq_expos_slug")),
    )
    op.create_table(
        "organisations",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("website", sa.String(length=2000), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organisations_country"), ["country"], unique=False)

    op.create_table(
        "halls",
        sa.Column("expo_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("width", sa.Float(), nullable=False),
        sa.Column("depth", sa.Float(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["expo_id"], ["expos.id"], name=op.f("fk_halls_expo_id_expos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_halls")),
        sa.UniqueConstraint("expo_id", "name", name=op.f("uq_halls_expo_id")),
    )
    op.create_table(
        "users",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "admin", "exhibitor", "guide", "visitor", name="role", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("organisation_id", sa.Uuid(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_users_organisation_id_organisations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_users_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "booth_slots",
        sa.Column("hall_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column(
            "template",
            sa.Enum(
                "shell", "corner", "island", name="boothtemplate", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("width", sa.Float(), nullable=False),
        sa.Column("depth", sa.Float(), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("z", sa.Float(), nullable=False),
        sa.Column("rotation", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["hall_id"], ["halls.id"], name=op.f("fk_booth_slots_hall_id_halls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booth_slots")),
        sa.UniqueConstraint("hall_id", "number", name=op.f("uq_booth_slots_hall_id")),
    )
    op.create_table(
        "guides",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("bio", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_guides_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guides")),
        sa.UniqueConstraint("user_id", name=op.f("uq_guides_user_id")),
    )
    op.create_table(
        "booths",
        sa.Column("slot_id", sa.Uuid(), nullable=False),
        sa.Column("hall_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("fascia_name", sa.String(length=80), nullable=False),
        sa.Column("tagline", sa.String(length=200), nullable=False),
        sa.Column("primary_color", sa.String(length=7), nullable=False),
        sa.Column("accent_color", sa.String(length=7), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["hall_id"], ["halls.id"], name=op.f("fk_booths_hall_id_halls"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_booths_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"],
            ["booth_slots.id"],
            name=op.f("fk_booths_slot_id_booth_slots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booths")),
        sa.UniqueConstraint("slot_id", name=op.f("uq_booths_slot_id")),
    )
    with op.batch_alter_table("booths", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_booths_hall_id"), ["hall_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_booths_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "tours",
        sa.Column("hall_id", sa.Uuid(), nullable=False),
        sa.Column("guide_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("route", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "scheduled",
                "live",
                "ended",
                "cancelled",
                name="tourstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["guide_id"], ["guides.id"], name=op.f("fk_tours_guide_id_guides"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["hall_id"], ["halls.id"], name=op.f("fk_tours_hall_id_halls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tours")),
    )
    with op.batch_alter_table("tours", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tours_guide_id"), ["guide_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tours_hall_id"), ["hall_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tours_starts_at"), ["starts_at"], unique=False)

    op.create_table(
        "products",
        sa.Column("booth_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("link", sa.String(length=2000), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booth_id"],
            ["booths.id"],
            name=op.f("fk_products_booth_id_booths"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("booth_id", "name", name=op.f("uq_products_booth_id")),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_products_category"), ["category"], unique=False)
        batch_op.create_index(batch_op.f("ix_products_country"), ["country"], unique=False)

    op.create_table(
        "product_assets",
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("booth_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("model", "photo", "logo", name="assetkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "processing",
                "ready",
                "failed",
                name="assetstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("blob_key", sa.String(length=512), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booth_id"],
            ["booths.id"],
            name=op.f("fk_product_assets_booth_id_booths"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_assets_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_assets")),
    )
    with op.batch_alter_table("product_assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_product_assets_booth_id"), ["booth_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_product_assets_product_id"), ["product_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_product_assets_sha256"), ["sha256"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("product_assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_assets_sha256"))
        batch_op.drop_index(batch_op.f("ix_product_assets_product_id"))
        batch_op.drop_index(batch_op.f("ix_product_assets_booth_id"))

    op.drop_table("product_assets")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_products_country"))
        batch_op.drop_index(batch_op.f("ix_products_category"))

    op.drop_table("products")
    with op.batch_alter_table("tours", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tours_starts_at"))
        batch_op.drop_index(batch_op.f("ix_tours_hall_id"))
        batch_op.drop_index(batch_op.f("ix_tours_guide_id"))

    op.drop_table("tours")
    with op.batch_alter_table("booths", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_booths_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_booths_hall_id"))

    op.drop_table("booths")
    op.drop_table("guides")
    op.drop_table("booth_slots")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_organisation_id"))

    op.drop_table("users")
    op.drop_table("halls")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organisations_country"))

    op.drop_table("organisations")
    op.drop_table("expos")
