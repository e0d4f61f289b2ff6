"""What each entity can be filtered and sorted by, declared once; the inputs are generated."""

from __future__ import annotations

import datetime as dt

import strawberry

from service.db.models import Agent, Campaign, Contact, Job
from service.db.models.callback import (
    Callback,
    CallbackStatus,
    CallbackType,
    SystemCompletionCode,
)
from service.db.models.campaign import CampaignState, CampaignType
from service.db.models.job import JobState
from service.graph.filtering import (
    EntityQueryDeclaration,
    FilterField,
    OrderDirection,
    OrderField,
    RelationFilter,
    declare,
)

# The ORM enums are the GraphQL enums; registering them keeps one definition of each.
for _enum_type, _description in (
    (CallbackType, "Who may service a callback (SPEC 2.2)."),
    (CallbackStatus, "Where a callback stands; ACTIVE is the only one that can still change."),
    (SystemCompletionCode, "Dispositions the system sets, mostly on dummy attempts."),
    (CampaignType, "Finite campaigns run through their list; infinite ones wait for more."),
    (CampaignState, "Whether a campaign still runs."),
    (JobState, "POM's job states."),
):
    strawberry.enum(_enum_type, description=_description)

ASC = OrderDirection.ASC


def campaign_declaration() -> EntityQueryDeclaration:
    """Campaign."""
    return CAMPAIGN


def job_declaration() -> EntityQueryDeclaration:
    """Job."""
    return JOB


def agent_declaration() -> EntityQueryDeclaration:
    """Agent."""
    return AGENT


def contact_declaration() -> EntityQueryDeclaration:
    """Contact."""
    return CONTACT


CAMPAIGN = declare(
    EntityQueryDeclaration(
        name="Campaign",
        fields={
            "name": FilterField(Campaign.name, str),
            "campaign_type": FilterField(Campaign.campaign_type, CampaignType),
            "strategy_name": FilterField(Campaign.strategy_name, str),
            "max_attempts": FilterField(Campaign.max_attempts, int),
            "state": FilterField(Campaign.state, CampaignState),
            "end_time": FilterField(Campaign.ended_at, dt.datetime, nullable=True),
        },
        order_fields={
            "NAME": OrderField("name", Campaign.name, str),
            "CAMPAIGN_TYPE": OrderField("campaign_type", Campaign.campaign_type, CampaignType),
            "STRATEGY_NAME": OrderField("strategy_name", Campaign.strategy_name, str),
            "STATE": OrderField("state", Campaign.state, CampaignState),
        },
        unique_key=OrderField("name", Campaign.name, str),
        default_order=[("NAME", ASC)],
    )
)

JOB = declare(
    EntityQueryDeclaration(
        name="Job",
        fields={
            "job_id": FilterField(Job.job_id, int),
            "start_time": FilterField(Job.started_at, dt.datetime),
            "end_time": FilterField(Job.ended_at, dt.datetime, nullable=True),
            "state": FilterField(Job.state, JobState),
        },
        relations={
            "campaign": RelationFilter(
                "Campaign", campaign_declaration, Job.campaign_id, Campaign.id
            )
        },
        order_fields={
            "JOB_ID": OrderField("job_id", Job.job_id, int),
            "START_TIME": OrderField("started_at", Job.started_at, dt.datetime),
            "STATE": OrderField("state", Job.state, JobState),
        },
        unique_key=OrderField("job_id", Job.job_id, int),
        default_order=[("JOB_ID", ASC)],
    )
)

AGENT = declare(
    EntityQueryDeclaration(
        name="Agent",
        fields={
            "agent_id": FilterField(Agent.agent_id, str),
            "name": FilterField(Agent.name, str),
        },
        order_fields={
            "AGENT_ID": OrderField("agent_id", Agent.agent_id, str),
            "NAME": OrderField("name", Agent.name, str),
        },
        unique_key=OrderField("agent_id", Agent.agent_id, str),
        default_order=[("AGENT_ID", ASC)],
    )
)

CONTACT = declare(
    EntityQueryDeclaration(
        name="Contact",
        fields={
            "contact_id": FilterField(Contact.contact_id, str),
            "first_name": FilterField(Contact.first_name, str),
            "last_name": FilterField(Contact.last_name, str),
            "phone_number": FilterField(Contact.phone_number, str),
            "email": FilterField(Contact.email, str, nullable=True),
            "time_zone": FilterField(Contact.time_zone, str),
            "excluded_time": FilterField(Contact.excluded_at, dt.datetime, nullable=True),
        },
        order_fields={
            "CONTACT_ID": OrderField("contact_id", Contact.contact_id, str),
            "LAST_NAME": OrderField("last_name", Contact.last_name, str),
            "FIRST_NAME": OrderField("first_name", Contact.first_name, str),
            "TIME_ZONE": OrderField("time_zone", Contact.time_zone, str),
        },
        unique_key=OrderField("contact_id", Contact.contact_id, str),
        default_order=[("CONTACT_ID", ASC)],
    )
)

CALLBACK = declare(
    EntityQueryDeclaration(
        name="Callback",
        fields={
            "callback_id": FilterField(Callback.callback_id, str),
            "callback_type": FilterField(Callback.callback_type, CallbackType),
            "job_id": FilterField(Callback.job_id, int),
            "creator_agent_id": FilterField(Callback.creator_agent_id, str),
            "created_for_agent_id": FilterField(Callback.created_for_agent_id, str, nullable=True),
            "contact_id": FilterField(Callback.contact_id, str),
            "call_id": FilterField(Callback.call_id, str),
            "creation_time": FilterField(Callback.created_at, dt.datetime),
            "scheduled_start_time": FilterField(Callback.scheduled_start_at, dt.datetime),
            "scheduled_end_time": FilterField(Callback.scheduled_end_at, dt.datetime),
            "callback_status": FilterField(Callback.status, CallbackStatus),
            "serviced_by_agent_id": FilterField(Callback.serviced_by_agent_id, str, nullable=True),
            "interaction_attempt_time": FilterField(
                Callback.last_attempt_at, dt.datetime, nullable=True
            ),
            "custom_completion_code": FilterField(
                Callback.custom_completion_code, str, nullable=True
            ),
            "system_completion_code": FilterField(
                Callback.system_completion_code, SystemCompletionCode, nullable=True
            ),
        },
        relations={
            "campaign": RelationFilter(
                "Campaign", campaign_declaration, Callback.campaign_id, Campaign.id
            ),
            "job": RelationFilter("Job", job_declaration, Callback.job_id, Job.job_id),
            "creator_agent": RelationFilter(
                "Agent", agent_declaration, Callback.creator_agent_id, Agent.agent_id
            ),
            "serviced_by_agent": RelationFilter(
                "Agent",
                agent_declaration,
                Callback.serviced_by_agent_id,
                Agent.agent_id,
                nullable=True,
            ),
            "contact": RelationFilter(
                "Contact", contact_declaration, Callback.contact_id, Contact.contact_id
            ),
        },
        order_fields={
            "CREATION_TIME": OrderField("created_at", Callback.created_at, dt.datetime),
            "CALLBACK_ID": OrderField("callback_id", Callback.callback_id, str),
            "SCHEDULED_START_TIME": OrderField(
                "scheduled_start_at", Callback.scheduled_start_at, dt.datetime
            ),
            "SCHEDULED_END_TIME": OrderField(
                "scheduled_end_at", Callback.scheduled_end_at, dt.datetime
            ),
            "CALLBACK_STATUS": OrderField("status", Callback.status, CallbackStatus),
            "CALLBACK_TYPE": OrderField("callback_type", Callback.callback_type, CallbackType),
            "CREATOR_AGENT_ID": OrderField("creator_agent_id", Callback.creator_agent_id, str),
            "CONTACT_ID": OrderField("contact_id", Callback.contact_id, str),
            "JOB_ID": OrderField("job_id", Callback.job_id, int),
        },
        unique_key=OrderField("callback_id", Callback.callback_id, str),
        default_order=[("CREATION_TIME", ASC)],
    )
)

# The generated inputs, by their GraphQL names.
CampaignFilter = CAMPAIGN.filter_input
CampaignOrder = CAMPAIGN.order_input
JobFilter = JOB.filter_input
JobOrder = JOB.order_input
AgentFilter = AGENT.filter_input
AgentOrder = AGENT.order_input
ContactFilter = CONTACT.filter_input
ContactOrder = CONTACT.order_input
CallbackFilter = CALLBACK.filter_input
CallbackOrder = CALLBACK.order_input
