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
from service.db.models.contact import contact_excluded
from service.db.models.job import JobState
from service.db.models.status_change import StatusChangeEntry
from service.graph.filtering import (
    DerivedField,
    EntityQueryDeclaration,
    FilterField,
    OrderDirection,
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


CAMPAIGN = declare(
    EntityQueryDeclaration(
        name="Campaign",
        model=Campaign,
        root_list_description="Campaigns, filtered and sorted; by name unless told otherwise.",
        fields={
            "name": FilterField(Campaign.name, str),
            "campaign_type": FilterField(Campaign.campaign_type, CampaignType),
            "strategy_name": FilterField(Campaign.strategy_name, str),
            "max_attempts": FilterField(Campaign.max_attempts, int),
            "state": FilterField(Campaign.state, CampaignState),
            "end_time": FilterField(Campaign.ended_at, dt.datetime, nullable=True),
        },
        order_fields=("name", "campaign_type", "strategy_name", "state"),
        unique_key="name",
        default_order=[("NAME", ASC)],
    )
)

JOB = declare(
    EntityQueryDeclaration(
        name="Job",
        model=Job,
        root_list_description="Jobs, filtered and sorted; by job ID unless told otherwise.",
        fields={
            "job_id": FilterField(Job.job_id, int),
            "start_time": FilterField(Job.started_at, dt.datetime),
            "end_time": FilterField(Job.ended_at, dt.datetime, nullable=True),
            "state": FilterField(Job.state, JobState),
        },
        relations={
            "campaign": RelationFilter("Campaign", lambda: CAMPAIGN, Job.campaign_id, Campaign.id)
        },
        order_fields=("job_id", "start_time", "state"),
        unique_key="job_id",
        default_order=[("JOB_ID", ASC)],
    )
)

AGENT = declare(
    EntityQueryDeclaration(
        name="Agent",
        model=Agent,
        root_list_description="Agents, filtered and sorted; by agent ID unless told otherwise.",
        fields={
            "agent_id": FilterField(Agent.agent_id, str),
            "name": FilterField(Agent.name, str),
        },
        order_fields=("agent_id", "name"),
        unique_key="agent_id",
        default_order=[("AGENT_ID", ASC)],
    )
)

CONTACT = declare(
    EntityQueryDeclaration(
        name="Contact",
        model=Contact,
        root_list_description="Contacts, filtered and sorted; by contact ID unless told otherwise.",
        fields={
            "contact_id": FilterField(Contact.contact_id, str),
            "first_name": FilterField(Contact.first_name, str),
            "last_name": FilterField(Contact.last_name, str),
            "phone_number": FilterField(Contact.phone_number, str),
            "email": FilterField(Contact.email, str, nullable=True),
            "time_zone": FilterField(Contact.time_zone, str),
            "excluded_time": FilterField(Contact.excluded_at, dt.datetime, nullable=True),
        },
        derived_fields={
            "excluded": DerivedField(
                Contact.excluded_expression(),
                bool,
                inputs=("excluded_at",),
                compute=contact_excluded,
                description="Whether the contact is on the exclusion list (has an excludedTime).",
            ),
        },
        order_fields=("contact_id", "last_name", "first_name", "time_zone"),
        unique_key="contact_id",
        default_order=[("CONTACT_ID", ASC)],
    )
)

CALLBACK = declare(
    EntityQueryDeclaration(
        name="Callback",
        model=Callback,
        root_list_description="Callbacks, filtered and sorted; by creation time, then callback ID, "
        "unless told otherwise.",
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
                "Campaign", lambda: CAMPAIGN, Callback.campaign_id, Campaign.id
            ),
            "job": RelationFilter("Job", lambda: JOB, Callback.job_id, Job.job_id),
            "creator_agent": RelationFilter(
                "Agent", lambda: AGENT, Callback.creator_agent_id, Agent.agent_id
            ),
            "serviced_by_agent": RelationFilter(
                "Agent",
                lambda: AGENT,
                Callback.serviced_by_agent_id,
                Agent.agent_id,
                nullable=True,
            ),
            "contact": RelationFilter(
                "Contact", lambda: CONTACT, Callback.contact_id, Contact.contact_id
            ),
        },
        order_fields=(
            "creation_time",
            "callback_id",
            "scheduled_start_time",
            "scheduled_end_time",
            "callback_status",
            "callback_type",
            "creator_agent_id",
            "contact_id",
            "job_id",
        ),
        unique_key="callback_id",
        default_order=[("CREATION_TIME", ASC)],
    )
)

STATUS_CHANGE = declare(
    EntityQueryDeclaration(
        name="StatusChange",
        model=StatusChangeEntry,
        root_list_description="Status changes from the change log, in commit order.",
        fields={
            "change_id": FilterField(StatusChangeEntry.id, int),
            "previous_status": FilterField(
                StatusChangeEntry.previous_status, CallbackStatus, nullable=True
            ),
            "status": FilterField(StatusChangeEntry.status, CallbackStatus),
            "changed_at": FilterField(StatusChangeEntry.changed_at, dt.datetime),
            "made_by": FilterField(StatusChangeEntry.made_by, str),
        },
        order_fields=("change_id", "changed_at", "status"),
        unique_key="change_id",
        default_order=[("CHANGE_ID", ASC)],
    )
)

# The report's rows take the callbacks' order input by its GraphQL name.
CallbackOrder = CALLBACK.order_input
