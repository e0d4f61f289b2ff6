"""The GraphQL object types: Campaign, Job, Agent, Contact, Callback, CallbackAttempt.

Each wraps its ORM row; related objects come through the request's loaders, never lazily.
They live in one module because every type refers to the others (callbacks everywhere).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any, TypeVar

import strawberry
from aiodataloader import DataLoader

from service.db.models import Agent, Callback, CallbackAttempt, Campaign, Contact, Job
from service.db.models.callback import (
    CallbackStatus,
    CallbackType,
    SystemCompletionCode,
    created_for_agent,
)
from service.db.models.campaign import CampaignState, CampaignType, campaign_display_name
from service.db.models.job import JobState
from service.db.models.status_change import StatusChangeEntry
from service.errors import BadUserInputError
from service.graph import declarations
from service.graph.connections import nested_connection_field
from service.graph.context import Info

KeyT = TypeVar("KeyT")
RowT = TypeVar("RowT")


def global_id(type_name: str, key: object) -> strawberry.ID:
    """Relay global ID: the type name and natural key, base64-encoded."""
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode())


def parse_global_id(value: str) -> tuple[str, str]:
    """Split a global ID into type name and key; a malformed one is the client's mistake."""
    try:
        type_name, key = base64.urlsafe_b64decode(value.encode()).decode().split(":", 1)
    except (ValueError, binascii.Error, UnicodeError):
        raise BadUserInputError(f"id {value!r} is not an ID this API issued") from None
    return type_name, key


@strawberry.interface(description="An object with a global ID, fetchable with `node(id:)`.")
class Node:
    id: strawberry.ID = strawberry.field(description="Global ID (opaque).")


def _callbacks_field(parent_attribute: str, key: str, description: str) -> Any:
    """A node's connection of the callbacks whose `parent_attribute` is its row's `key`."""
    return nested_connection_field(
        declarations.CALLBACK,
        "CallbackNode",
        parent_attribute,
        lambda parent: getattr(parent.row, key),
        lambda row: CallbackNode.from_row(row[0]),
        description=description,
    )


@strawberry.type(name="Campaign", description="An outbound campaign, known by its unique name.")
class CampaignNode(Node):
    row: strawberry.Private[Campaign]
    name: str = strawberry.field(description="Unique campaign name.")
    display_name: str = strawberry.field(
        description="Name with type and strategy in front, as the report shows it."
    )
    campaign_type: CampaignType
    strategy_name: str
    max_attempts: int = strawberry.field(
        description="Attempts a strict-agent callback goes to its assigned agent first."
    )
    state: CampaignState
    end_time: dt.datetime | None = strawberry.field(
        description="When the campaign was terminated or finished; null while running."
    )

    @classmethod
    def from_row(cls, row: Campaign) -> CampaignNode:
        return cls(
            id=global_id("Campaign", row.name),
            row=row,
            display_name=row.display_name,
            **declarations.CAMPAIGN.values(row),
        )

    jobs = nested_connection_field(
        declarations.JOB,
        "JobNode",
        "campaign_id",
        lambda campaign: campaign.row.id,
        lambda row: JobNode.from_row(row[0]),
        description="The campaign's jobs.",
    )

    callbacks = _callbacks_field("campaign_id", "id", "Callbacks scheduled in the campaign.")


@strawberry.type(name="Job", description="A running session of a campaign, by POM's job ID.")
class JobNode(Node):
    row: strawberry.Private[Job]
    job_id: int
    start_time: dt.datetime
    end_time: dt.datetime | None = strawberry.field(description="Null while the job runs.")
    state: JobState

    @classmethod
    def from_row(cls, row: Job) -> JobNode:
        return cls(id=global_id("Job", row.job_id), row=row, **declarations.JOB.values(row))

    @strawberry.field(description="The campaign the job runs.")
    async def campaign(self, info: Info) -> CampaignNode:
        return CampaignNode.from_row(
            await _required(info.context.loaders.campaign_by_id, self.row.campaign_id)
        )

    callbacks = _callbacks_field("job_id", "job_id", "Callbacks scheduled during the job.")


@strawberry.type(name="Agent", description="A contact-centre agent, by POM's agent ID.")
class AgentNode(Node):
    row: strawberry.Private[Agent]
    agent_id: str
    name: str

    @classmethod
    def from_row(cls, row: Agent) -> AgentNode:
        return cls(id=global_id("Agent", row.agent_id), row=row, **declarations.AGENT.values(row))

    created_callbacks = _callbacks_field(
        "creator_agent_id",
        "agent_id",
        "Callbacks this agent scheduled (the report's Creator Agent).",
    )

    serviced_callbacks = _callbacks_field(
        "serviced_by_agent_id", "agent_id", "Callbacks whose latest attempt this agent handled."
    )


@strawberry.type(name="Contact", description="A person campaigns call, by POM's contact ID.")
class ContactNode(Node):
    row: strawberry.Private[Contact]
    contact_id: str
    first_name: str
    last_name: str
    phone_number: str
    alternate_phone_number: str | None
    email: str | None
    time_zone: str = strawberry.field(description="IANA time zone of the contact.")
    excluded: bool = strawberry.field(description="Whether the contact is on the exclusion list.")
    excluded_time: dt.datetime | None = strawberry.field(description="When it was excluded.")

    @classmethod
    def from_row(cls, row: Contact) -> ContactNode:
        return cls(
            id=global_id("Contact", row.contact_id),
            row=row,
            alternate_phone_number=row.alternate_phone_number,
            **declarations.CONTACT.values(row),
        )

    callbacks = _callbacks_field(
        "contact_id", "contact_id", "Callbacks scheduled for this contact."
    )


@strawberry.type(
    name="CallbackAttempt",
    description="An attempt on a callback: a real call, or a dummy one the system recorded.",
)
class CallbackAttemptNode(Node):
    row: strawberry.Private[CallbackAttempt]
    attempt_time: dt.datetime
    agent_id: str | None = strawberry.field(description="Agent who handled it; null for dummies.")
    custom_completion_code: str | None = strawberry.field(description="Set by the agent.")
    system_completion_code: SystemCompletionCode | None = strawberry.field(
        description="Set by the system."
    )
    dummy: bool = strawberry.field(description="Recorded by the system without dialling.")

    @classmethod
    def from_row(cls, row: CallbackAttempt) -> CallbackAttemptNode:
        return cls(
            id=global_id("CallbackAttempt", row.id),
            row=row,
            attempt_time=row.attempted_at,
            agent_id=row.agent_id,
            custom_completion_code=row.custom_completion_code,
            system_completion_code=row.system_completion_code,
            dummy=row.is_dummy,
        )

    @strawberry.field(description="Agent who handled the attempt.")
    async def agent(self, info: Info) -> AgentNode | None:
        return await _agent(info, self.row.agent_id)


@strawberry.type(
    name="StatusChange",
    description="One status change of a callback, as the change log keeps it.",
)
class StatusChangeNode:
    change_id: strawberry.ID = strawberry.field(
        description=(
            "The change's position in the change log, in commit order: the changeId that "
            "callbackStatusChanged carries (filter on it as a number)."
        )
    )
    previous_status: CallbackStatus | None = strawberry.field(
        description="Null when the change scheduled the callback."
    )
    status: CallbackStatus
    changed_at: dt.datetime
    made_by: str = strawberry.field(
        description="The mutation that made the change (its field name), or 'expiry sweep'."
    )

    @classmethod
    def from_row(cls, row: StatusChangeEntry) -> StatusChangeNode:
        values = declarations.STATUS_CHANGE.values(row)
        values["change_id"] = strawberry.ID(str(row.id))
        return cls(**values)


@strawberry.type(name="Callback", description="A callback an agent scheduled: one report row.")
class CallbackNode(Node):
    row: strawberry.Private[Callback]
    callback_id: str
    callback_type: CallbackType
    job_id: int
    creator_agent_id: str = strawberry.field(description="Agent who scheduled the callback.")
    created_for_agent_id: str | None = strawberry.field(
        description="Agent the callback is for (AGENT and STRICT_AGENT types)."
    )
    contact_id: str
    call_id: str = strawberry.field(description="The call the callback was scheduled on.")
    creation_time: dt.datetime
    scheduled_start_time: dt.datetime
    scheduled_end_time: dt.datetime = strawberry.field(description="When it expires.")
    callback_status: CallbackStatus
    serviced_by_agent_id: str | None = strawberry.field(
        description="Agent who handled the latest attempt."
    )
    interaction_attempt_time: dt.datetime | None = strawberry.field(
        description="Time of the latest attempt."
    )
    custom_completion_code: str | None = strawberry.field(
        description="The latest attempt's disposition set by the agent."
    )
    system_completion_code: SystemCompletionCode | None = strawberry.field(
        description="The latest attempt's disposition set by the system."
    )

    @classmethod
    def from_row(cls, row: Callback) -> CallbackNode:
        return cls(
            id=global_id("Callback", row.callback_id),
            row=row,
            **declarations.CALLBACK.values(row),
        )

    async def _campaign(self, info: Info) -> Campaign:
        return await _required(info.context.loaders.campaign_by_id, self.row.campaign_id)

    @strawberry.field(description="The campaign the callback belongs to.")
    async def campaign(self, info: Info) -> CampaignNode:
        return CampaignNode.from_row(await self._campaign(info))

    @strawberry.field(description="Plain campaign name.")
    async def campaign_name(self, info: Info) -> str:
        return (await self._campaign(info)).name

    @strawberry.field(
        description="Campaign name with type and strategy in front, e.g. "
        "`[Finite][Sales_Strategy] Spring Renewals`."
    )
    async def campaign_display_name(self, info: Info) -> str:
        campaign = await self._campaign(info)
        return campaign_display_name(campaign.campaign_type, campaign.strategy_name, campaign.name)

    @strawberry.field(
        description="Created For: the agent ID for AGENT and STRICT_AGENT callbacks, "
        "the campaign name for CAMPAIGN and STANDARD ones."
    )
    async def created_for(self, info: Info) -> str:
        agent_id = created_for_agent(self.row.callback_type, self.row.created_for_agent_id)
        return agent_id if agent_id is not None else (await self._campaign(info)).name

    @strawberry.field(description="The job the callback was scheduled in.")
    async def job(self, info: Info) -> JobNode:
        return JobNode.from_row(await _required(info.context.loaders.job_by_id, self.row.job_id))

    @strawberry.field(description="Agent who scheduled the callback.")
    async def creator_agent(self, info: Info) -> AgentNode:
        agent = await _agent(info, self.row.creator_agent_id)
        assert agent is not None, "foreign key guarantees the creator agent"
        return agent

    @strawberry.field(description="Agent the callback is for (AGENT and STRICT_AGENT types).")
    async def created_for_agent(self, info: Info) -> AgentNode | None:
        return await _agent(info, self.row.created_for_agent_id)

    @strawberry.field(description="Agent who handled the latest attempt.")
    async def serviced_by_agent(self, info: Info) -> AgentNode | None:
        return await _agent(info, self.row.serviced_by_agent_id)

    @strawberry.field(description="The contact to call back.")
    async def contact(self, info: Info) -> ContactNode:
        contact = await _required(info.context.loaders.contact_by_id, self.row.contact_id)
        return ContactNode.from_row(contact)

    @strawberry.field(description="Every attempt on the callback, oldest first.")
    async def attempts(self, info: Info) -> list[CallbackAttemptNode]:
        attempts = await info.context.loaders.attempts_by_callback_id.load(self.row.callback_id)
        return [CallbackAttemptNode.from_row(attempt) for attempt in attempts]

    status_changes = nested_connection_field(
        declarations.STATUS_CHANGE,
        "StatusChangeNode",
        "callback_id",
        lambda callback: callback.row.callback_id,
        lambda row: StatusChangeNode.from_row(row[0]),
        description=(
            "The callback's history: its status changes, oldest first, as long as the change "
            "log keeps them (POMREPORT_CHANGE_LOG_RETENTION_DAYS)."
        ),
    )


async def _agent(info: Info, agent_id: str | None) -> AgentNode | None:
    if agent_id is None:
        return None
    agent = await info.context.loaders.agent_by_id.load(agent_id)
    return AgentNode.from_row(agent) if agent is not None else None


async def _required(loader: DataLoader[KeyT, RowT | None], key: KeyT) -> RowT:
    """Load a row a foreign key guarantees."""
    row = await loader.load(key)
    assert row is not None, f"foreign key guarantees a row for {key!r}"
    return row


# Every node type, for the schema (types reached only through `node(id:)` must be named).
NODE_TYPES = (CampaignNode, JobNode, AgentNode, ContactNode, CallbackNode, CallbackAttemptNode)
