"""API key expiry: when a key stops working (set at creation, or by rotation)

Revision ID: 0d20d46ea726
Revises: 21676cb9a119
Create Date: 2026-12-07 04:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0d20d46ea726"
down_revision: str | None = "21676cb9a119"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, so existing keys keep working as they did: they never expire.
    op.add_column("api_key", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("api_key", "expires_at")
