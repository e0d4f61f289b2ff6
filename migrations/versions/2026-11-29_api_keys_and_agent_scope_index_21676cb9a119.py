"""API keys, and the index that makes an agent key's callback scope an index union

Revision ID: 21676cb9a119
Revises: 2265617c01be
Create Date: 2026-11-29 06:03:52.235757
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "21676cb9a119"
down_revision: str | None = "2265617c01be"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREATED_FOR_INDEX = "ix_callback_created_for_agent_id_created_at_callback_id"


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "VIEWER",
                "AGENT",
                "OPERATOR",
                "ADMIN",
                name="api_key_role",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(role = 'AGENT') = (agent_id IS NOT NULL)",
            name=op.f("ck_api_key_agent_id_only_for_agent_role"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
    )
    op.create_index(
        CREATED_FOR_INDEX,
        "callback",
        ["created_for_agent_id", "created_at", "callback_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(CREATED_FOR_INDEX, table_name="callback")
    op.drop_table("api_key")
