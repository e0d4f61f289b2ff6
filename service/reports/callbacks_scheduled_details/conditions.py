"""The report's period and filters as SQL conditions, and as the header lists the filters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, select, true

from service.db.models.callback import Callback
from service.db.models.campaign import Campaign
from service.errors import BadUserInputError
from service.reports.callbacks_scheduled_details.labels import report_word
from service.reports.callbacks_scheduled_details.types import (
    AppliedFilter,
    CallbacksScheduledDetailsFilters,
)
from service.reports.time_periods import ResolvedTimePeriod


def period_condition(period: ResolvedTimePeriod) -> ColumnElement[bool]:
    """Callbacks created in the period: from <= creation time < to."""
    conditions = []
    if period.start is not None:
        conditions.append(Callback.created_at >= period.start)
    if period.end is not None:
        conditions.append(Callback.created_at < period.end)
    return and_(true(), *conditions)


def filter_conditions(
    filters: CallbacksScheduledDetailsFilters,
) -> tuple[list[AppliedFilter], ColumnElement[bool]]:
    """The filters as the report's header lists them, and as one SQL condition."""
    applied: list[AppliedFilter] = []
    conditions: list[ColumnElement[bool]] = []

    def non_empty(argument: str, values: list[Any] | None) -> list[Any] | None:
        if values is not None and not values:
            raise BadUserInputError(
                f"filters.{argument} is empty; name at least one, or leave it out to include all"
            )
        return values

    if filters.agent_id is not None:
        applied.append(AppliedFilter(name="Agent ID", value=filters.agent_id))
        conditions.append(Callback.creator_agent_id == filters.agent_id)
    if names := non_empty("campaignNames", filters.campaign_names):
        applied.append(AppliedFilter(name="Campaign Name", value=", ".join(names)))
        conditions.append(
            Callback.campaign_id.in_(select(Campaign.id).where(Campaign.name.in_(names)))
        )
    if job_ids := non_empty("jobIds", filters.job_ids):
        applied.append(AppliedFilter(name="Job ID", value=", ".join(map(str, job_ids))))
        conditions.append(Callback.job_id.in_(job_ids))
    if types := non_empty("callbackTypes", filters.callback_types):
        applied.append(
            AppliedFilter(name="Callback Type", value=", ".join(report_word(t) for t in types))
        )
        conditions.append(Callback.callback_type.in_(types))
    if statuses := non_empty("callbackStatuses", filters.callback_statuses):
        applied.append(
            AppliedFilter(name="Callback Status", value=", ".join(report_word(s) for s in statuses))
        )
        conditions.append(Callback.status.in_(statuses))
    if filters.contact_id is not None:
        applied.append(AppliedFilter(name="Contact ID", value=filters.contact_id))
        conditions.append(Callback.contact_id == filters.contact_id)
    if filters.serviced_by_agent_id is not None:
        applied.append(
            AppliedFilter(name="Serviced By Agent ID", value=filters.serviced_by_agent_id)
        )
        conditions.append(Callback.serviced_by_agent_id == filters.serviced_by_agent_id)
    return applied, and_(true(), *conditions)
