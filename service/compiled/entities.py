"""How each node type's fields come out of its table, for plans that read rows directly.

Plain fields map to the columns the entity's query declaration names, and its derived fields
to its rule over them; this table adds the rest: the global ID, other values computed from
columns (of the row or of a related row), to-one relations (joined into the statement), the
attempts list and the nested connections (one statement per level for all parents).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.db.models import Agent, Callback, CallbackAttempt, Campaign, Contact, Job
from service.db.models.callback import created_for
from service.db.models.campaign import campaign_display_name
from service.graph import declarations
from service.graph.filtering import EntityQueryDeclaration


@dataclass(frozen=True, slots=True)
class Column:
    """The value of one of the row's own columns."""

    attribute: str


@dataclass(frozen=True, slots=True)
class Computed:
    """A value computed from columns; each input is (to-one relation or None, attribute)."""

    inputs: tuple[tuple[str | None, str], ...]
    compute: Callable[..., Any]


@dataclass(frozen=True, slots=True)
class ToOne:
    """The row of `target` whose `remote` column equals this row's `local` column."""

    target: str
    local: str
    remote: str
    nullable: bool


@dataclass(frozen=True, slots=True)
class Attempts:
    """The callback's attempts, oldest first."""


@dataclass(frozen=True, slots=True)
class NestedConnection:
    """A connection of the declared entity's rows whose `parent_attribute` is this row's
    `parent_key`."""

    declaration: EntityQueryDeclaration
    parent_attribute: str
    parent_key: str


FieldSource = Column | Computed | ToOne | Attempts | NestedConnection


@dataclass(frozen=True, slots=True)
class EntityType:
    """A node type: its model, the key its global ID carries, and its fields by Python name."""

    name: str
    model: type[Any]
    key: str
    key_type: type
    declaration: EntityQueryDeclaration | None
    extra_fields: dict[str, FieldSource] = field(default_factory=dict)

    def source(self, python_name: str) -> FieldSource | None:
        """Where a field's value comes from; None for a field this table does not know."""
        if python_name in self.extra_fields:
            return self.extra_fields[python_name]
        if self.declaration is None:
            return None
        if python_name in self.declaration.fields:
            return Column(self.declaration.fields[python_name].attribute)
        derived = self.declaration.derived_fields.get(python_name)
        if derived is not None:
            # The declaration's own rule, so both paths compute the value alike.
            return Computed(tuple((None, name) for name in derived.inputs), derived.compute)
        return None


def _identity(value: Any) -> Any:
    return value


def _callbacks(parent_attribute: str, parent_key: str) -> NestedConnection:
    return NestedConnection(declarations.CALLBACK, parent_attribute, parent_key)


ENTITY_TYPES: dict[str, EntityType] = {
    entity.name: entity
    for entity in (
        EntityType(
            "Campaign",
            Campaign,
            "name",
            str,
            declarations.CAMPAIGN,
            {
                "display_name": Computed(
                    ((None, "campaign_type"), (None, "strategy_name"), (None, "name")),
                    campaign_display_name,
                ),
                "jobs": NestedConnection(declarations.JOB, "campaign_id", "id"),
                "callbacks": _callbacks("campaign_id", "id"),
            },
        ),
        EntityType(
            "Job",
            Job,
            "job_id",
            int,
            declarations.JOB,
            {
                "campaign": ToOne("Campaign", "campaign_id", "id", nullable=False),
                "callbacks": _callbacks("job_id", "job_id"),
            },
        ),
        EntityType(
            "Agent",
            Agent,
            "agent_id",
            str,
            declarations.AGENT,
            {
                "created_callbacks": _callbacks("creator_agent_id", "agent_id"),
                "serviced_callbacks": _callbacks("serviced_by_agent_id", "agent_id"),
            },
        ),
        EntityType(
            "Contact",
            Contact,
            "contact_id",
            str,
            declarations.CONTACT,
            {
                "alternate_phone_number": Column("alternate_phone_number"),
                "callbacks": _callbacks("contact_id", "contact_id"),
            },
        ),
        EntityType(
            "Callback",
            Callback,
            "callback_id",
            str,
            declarations.CALLBACK,
            {
                "campaign": ToOne("Campaign", "campaign_id", "id", nullable=False),
                "campaign_name": Computed((("campaign", "name"),), _identity),
                "campaign_display_name": Computed(
                    (
                        ("campaign", "campaign_type"),
                        ("campaign", "strategy_name"),
                        ("campaign", "name"),
                    ),
                    campaign_display_name,
                ),
                "created_for": Computed(
                    ((None, "callback_type"), (None, "created_for_agent_id"), ("campaign", "name")),
                    created_for,
                ),
                "job": ToOne("Job", "job_id", "job_id", nullable=False),
                "creator_agent": ToOne("Agent", "creator_agent_id", "agent_id", nullable=False),
                "created_for_agent": ToOne(
                    "Agent", "created_for_agent_id", "agent_id", nullable=True
                ),
                "serviced_by_agent": ToOne(
                    "Agent", "serviced_by_agent_id", "agent_id", nullable=True
                ),
                "contact": ToOne("Contact", "contact_id", "contact_id", nullable=False),
                "attempts": Attempts(),
            },
        ),
        EntityType(
            "CallbackAttempt",
            CallbackAttempt,
            "id",
            int,
            None,
            {
                "attempt_time": Column("attempted_at"),
                "agent_id": Column("agent_id"),
                "custom_completion_code": Column("custom_completion_code"),
                "system_completion_code": Column("system_completion_code"),
                "dummy": Column("is_dummy"),
                "agent": ToOne("Agent", "agent_id", "agent_id", nullable=True),
            },
        ),
    )
}
