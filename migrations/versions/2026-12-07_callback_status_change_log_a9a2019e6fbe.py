"""The callback status change log (transactional outbox and each callback's history)

Revision ID: a9a2019e6fbe
Revises: 0d20d46ea726
Create Date: 2026-12-07 05:28:02.586869
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a9a2019e6fbe"
down_revision: str | None = "0d20d46ea726"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = (
    "ACTIVE",
    "COMPLETED",
    "EXPIRED",
    "CAMPAIGN_TERMINATED",
    "OVERWRITTEN",
    "CONTACT_EXCLUDED",
)


def _status(name: str) -> sa.Enum:
    return sa.Enum(*_STATUSES, name=name, native_enum=False, create_constraint=True, length=24)


def upgrade() -> None:
    op.create_table(
        "callback_status_change",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("callback_id", sa.String(length=64), nullable=False),
        sa.Column("previous_status", _status("previous_callback_status"), nullable=True),
        sa.Column("status", _status("callback_status"), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("made_by", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_status_change")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_callback_status_change_callback_id_id"),
        "callback_status_change",
        ["callback_id", "id"],
    )
    op.create_index(
        "ix_callback_status_change_unpublished",
        "callback_status_change",
        ["id"],
        sqlite_where=sa.text("published_at IS NULL"),
        postgresql_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("callback_status_change")
