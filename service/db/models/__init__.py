"""Every domain's ORM models, imported in one place so the metadata is complete."""

from service.db.base import Base
from service.db.models.agent import Agent
from service.db.models.api_key import ApiKey
from service.db.models.callback import Callback, CallbackAttempt
from service.db.models.campaign import Campaign
from service.db.models.contact import Contact
from service.db.models.job import Job
from service.db.models.persisted_query import PersistedQuery
from service.db.models.status_change import StatusChangeEntry

__all__ = [
    "Agent",
    "ApiKey",
    "Base",
    "Callback",
    "CallbackAttempt",
    "Campaign",
    "Contact",
    "Job",
    "PersistedQuery",
    "StatusChangeEntry",
]
