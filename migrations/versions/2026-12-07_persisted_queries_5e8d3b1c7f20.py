"""Persisted queries: GraphQL documents under their SHA-256 hash (Apollo's automatic persisted
queries), shared by every instance over the database

Revision ID: 5e8d3b1c7f20
Revises: 4c1f9e2b7a53
Create Date: 2026-12-07 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e8d3b1c7f20"
down_revision: str | None = "4c1f9e2b7a53"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "persisted_query",
        sa.Column("sha256_hash", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256_hash", name=op.f("pk_persisted_query")),
    )


def downgrade() -> None:
    op.drop_table("persisted_query")
