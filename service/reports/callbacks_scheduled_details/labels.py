"""How the report writes its columns and its enum values (SPEC 1): one table each, shared by
the header's filter list and the CSV export."""

from __future__ import annotations

from service.db.models.callback import CallbackStatus, CallbackType, SystemCompletionCode

# The report's columns, in SPEC section 1's order: the CSV's header row.
ROW_LABELS = (
    "Campaign Name",
    "Job ID",
    "Creator Agent ID",
    "Callback ID",
    "Callback Type",
    "Created For Campaign/Agent",
    "Contact ID",
    "Creation Time",
    "Scheduled Start Time",
    "Scheduled End Time",
    "Callback Status",
    "Serviced By Agent ID",
    "Interaction Attempt Time",
    "Custom Completion Code",
    "System Completion Code",
)

CALLBACK_TYPE_LABELS = {
    CallbackType.AGENT: "Agent",
    CallbackType.CAMPAIGN: "Campaign",
    CallbackType.STANDARD: "Standard",
    CallbackType.STRICT_AGENT: "Strict agent",
}

CALLBACK_STATUS_LABELS = {
    CallbackStatus.ACTIVE: "Active",
    CallbackStatus.COMPLETED: "Completed",
    CallbackStatus.EXPIRED: "Expired",
    CallbackStatus.CAMPAIGN_TERMINATED: "Campaign Terminated",
    CallbackStatus.OVERWRITTEN: "Overwritten",
    CallbackStatus.CONTACT_EXCLUDED: "Contact Excluded",
}

# "DNC" stays in capitals: it is POM's abbreviation (do not call), not a word.
SYSTEM_COMPLETION_CODE_LABELS = {
    SystemCompletionCode.RESTRICTED_DNC: "Restricted DNC",
    SystemCompletionCode.RESTRICTED_OTHER: "Restricted Other",
    SystemCompletionCode.CALLBACK_EXPIRED: "Callback Expired",
    SystemCompletionCode.CALLBACK_POSTPONED: "Callback Postponed",
    SystemCompletionCode.CONTACT_EXCLUDED: "Contact Excluded",
}


def report_word(value: CallbackType | CallbackStatus | SystemCompletionCode) -> str:
    """How the report writes an enum value: "Campaign Terminated", but "Strict agent"."""
    if isinstance(value, CallbackType):
        return CALLBACK_TYPE_LABELS[value]
    if isinstance(value, CallbackStatus):
        return CALLBACK_STATUS_LABELS[value]
    return SYSTEM_COMPLETION_CODE_LABELS[value]
