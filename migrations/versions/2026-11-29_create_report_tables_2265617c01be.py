"""create report tables

Revision ID: 2265617c01be
Revises:
Create Date: 2026-11-29 03:28:14.604148
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2265617c01be"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent")),
    )
    op.create_table(
        "campaign",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column(
            "campaign_type",
            sa.Enum(
                "FINITE",
                "INFINITE",
                name="campaign_type",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("strategy_name", sa.String(length=128), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "RUNNING",
                "TERMINATED",
                "FINISHED",
                name="campaign_state",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(state = 'RUNNING' AND ended_at IS NULL) OR (state <> 'RUNNING' AND ended_at IS NOT NULL)",
            name=op.f("ck_campaign_ended_at_matches_state"),
        ),
        sa.CheckConstraint("max_attempts >= 1", name=op.f("ck_campaign_max_attempts_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign")),
        sa.UniqueConstraint("name", name=op.f("uq_campaign_name")),
    )
    op.create_table(
        "contact",
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("first_name", sa.String(length=128), nullable=False),
        sa.Column("last_name", sa.String(length=128), nullable=False),
        sa.Column("phone_number", sa.String(length=32), nullable=False),
        sa.Column("alternate_phone_number", sa.String(length=32), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("excluded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_contact")),
    )
    op.create_table(
        "job",
        sa.Column("job_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "QUEUED",
                "ACTIVE",
                "PAUSED",
                "STOPPED",
                "CALLBACK",
                "STOPPED_CALLBACK",
                "COMPLETED",
                name="job_state",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.CheckConstraint(
            "ended_at IS NULL OR ended_at >= started_at", name=op.f("ck_job_ends_after_start")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaign.id"], name=op.f("fk_job_campaign_id_campaign")
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job")),
        sa.UniqueConstraint("job_id", "campaign_id", name=op.f("uq_job_job_id_campaign_id")),
    )
    op.create_index(
        op.f("ix_job_campaign_id_started_at"), "job", ["campaign_id", "started_at"], unique=False
    )

    op.create_table(
        "callback",
        sa.Column("callback_id", sa.String(length=64), nullable=False),
        sa.Column(
            "callback_type",
            sa.Enum(
                "AGENT",
                "CAMPAIGN",
                "STANDARD",
                "STRICT_AGENT",
                name="callback_type",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("creator_agent_id", sa.String(length=64), nullable=False),
        sa.Column("created_for_agent_id", sa.String(length=64), nullable=True),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scheduled_start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scheduled_end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "ACTIVE",
                "COMPLETED",
                "EXPIRED",
                "CAMPAIGN_TERMINATED",
                "OVERWRITTEN",
                "CONTACT_EXCLUDED",
                name="callback_status",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("serviced_by_agent_id", sa.String(length=64), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("custom_completion_code", sa.String(length=64), nullable=True),
        sa.Column(
            "system_completion_code",
            sa.Enum(
                "RESTRICTED_DNC",
                "RESTRICTED_OTHER",
                "CALLBACK_EXPIRED",
                "CALLBACK_POSTPONED",
                "CONTACT_EXCLUDED",
                name="system_completion_code",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=True,
        ),
        sa.CheckConstraint(
            "(callback_type IN ('AGENT', 'STRICT_AGENT') AND created_for_agent_id IS NOT NULL) OR (callback_type IN ('CAMPAIGN', 'STANDARD') AND created_for_agent_id IS NULL)",
            name=op.f("ck_callback_created_for_agent_matches_type"),
        ),
        sa.CheckConstraint(
            "last_attempt_at IS NOT NULL OR (serviced_by_agent_id IS NULL AND custom_completion_code IS NULL AND system_completion_code IS NULL)",
            name=op.f("ck_callback_attempt_summary_needs_attempt"),
        ),
        sa.CheckConstraint(
            "scheduled_end_at >= scheduled_start_at",
            name=op.f("ck_callback_schedule_ends_after_start"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaign.id"], name=op.f("fk_callback_campaign_id_campaign")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.contact_id"], name=op.f("fk_callback_contact_id_contact")
        ),
        sa.ForeignKeyConstraint(
            ["created_for_agent_id"],
            ["agent.agent_id"],
            name=op.f("fk_callback_created_for_agent_id_agent"),
        ),
        sa.ForeignKeyConstraint(
            ["creator_agent_id"],
            ["agent.agent_id"],
            name=op.f("fk_callback_creator_agent_id_agent"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id", "campaign_id"],
            ["job.job_id", "job.campaign_id"],
            name=op.f("fk_callback_job_id_campaign_id_job"),
        ),
        sa.ForeignKeyConstraint(
            ["serviced_by_agent_id"],
            ["agent.agent_id"],
            name=op.f("fk_callback_serviced_by_agent_id_agent"),
        ),
        sa.PrimaryKeyConstraint("callback_id", name=op.f("pk_callback")),
    )
    op.create_index(
        op.f("ix_callback_campaign_id_created_at_callback_id"),
        "callback",
        ["campaign_id", "created_at", "callback_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_callback_contact_id_created_at_callback_id"),
        "callback",
        ["contact_id", "created_at", "callback_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_callback_created_at_callback_id"),
        "callback",
        ["created_at", "callback_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_callback_creator_agent_id_created_at_callback_id"),
        "callback",
        ["creator_agent_id", "created_at", "callback_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_callback_job_id_created_at_callback_id"),
        "callback",
        ["job_id", "created_at", "callback_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_callback_serviced_by_agent_id_created_at_callback_id"),
        "callback",
        ["serviced_by_agent_id", "created_at", "callback_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_callback_status_scheduled_end_at"),
        "callback",
        ["status", "scheduled_end_at"],
        unique=False,
    )
    op.create_index(
        "uq_callback_active_per_call",
        "callback",
        ["creator_agent_id", "contact_id", "call_id"],
        unique=True,
        sqlite_where=sa.text("status = 'ACTIVE'"),
        postgresql_where=sa.text("status = 'ACTIVE'"),
    )

    op.create_table(
        "callback_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("callback_id", sa.String(length=64), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("custom_completion_code", sa.String(length=64), nullable=True),
        sa.Column(
            "system_completion_code",
            sa.Enum(
                "RESTRICTED_DNC",
                "RESTRICTED_OTHER",
                "CALLBACK_EXPIRED",
                "CALLBACK_POSTPONED",
                "CONTACT_EXCLUDED",
                name="system_completion_code",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=True,
        ),
        sa.Column("is_dummy", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "NOT is_dummy OR system_completion_code IS NOT NULL",
            name=op.f("ck_callback_attempt_dummy_has_system_code"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agent.agent_id"], name=op.f("fk_callback_attempt_agent_id_agent")
        ),
        sa.ForeignKeyConstraint(
            ["callback_id"],
            ["callback.callback_id"],
            name=op.f("fk_callback_attempt_callback_id_callback"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_attempt")),
    )
    op.create_index(
        op.f("ix_callback_attempt_agent_id"), "callback_attempt", ["agent_id"], unique=False
    )
    op.create_index(
        op.f("ix_callback_attempt_callback_id_attempted_at"),
        "callback_attempt",
        ["callback_id", "attempted_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_callback_attempt_callback_id_attempted_at"), table_name="callback_attempt"
    )
    op.drop_index(op.f("ix_callback_attempt_agent_id"), table_name="callback_attempt")

    op.drop_table("callback_attempt")
    op.drop_index(
        "uq_callback_active_per_call",
        table_name="callback",
        sqlite_where=sa.text("status = 'ACTIVE'"),
        postgresql_where=sa.text("status = 'ACTIVE'"),
    )
    op.drop_index(op.f("ix_callback_status_scheduled_end_at"), table_name="callback")
    op.drop_index(
        op.f("ix_callback_serviced_by_agent_id_created_at_callback_id"), table_name="callback"
    )
    op.drop_index(op.f("ix_callback_job_id_created_at_callback_id"), table_name="callback")
    op.drop_index(
        op.f("ix_callback_creator_agent_id_created_at_callback_id"), table_name="callback"
    )
    op.drop_index(op.f("ix_callback_created_at_callback_id"), table_name="callback")
    op.drop_index(op.f("ix_callback_contact_id_created_at_callback_id"), table_name="callback")
    op.drop_index(op.f("ix_callback_campaign_id_created_at_callback_id"), table_name="callback")

    op.drop_table("callback")
    op.drop_index(op.f("ix_job_campaign_id_started_at"), table_name="job")

    op.drop_table("job")
    op.drop_table("contact")
    op.drop_table("campaign")
    op.drop_table("agent")
