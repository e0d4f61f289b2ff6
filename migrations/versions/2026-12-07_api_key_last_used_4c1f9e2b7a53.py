"""API key last use: when a request last used each key (written at most once a minute)

Revision ID: 4c1f9e2b7a53
Revises: a9a2019e6fbe
Create Date: 2026-12-07 05:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4c1f9e2b7a53"
down_revision: str | None = "a9a2019e6fbe"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: a key issued before this revision has no recorded use until its next one.
    op.add_column("api_key", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("api_key", "last_used_at")
