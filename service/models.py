"""Every domain's ORM models, imported in one place so the metadata is complete."""

from service.agents.models import Agent
from service.auth.models import ApiKey
from service.callbacks.models import Callback, CallbackAttempt
from service.campaigns.models import Campaign
from service.contacts.models import Contact
from service.db import Base
from service.jobs.models import Job

__all__ = ["Agent", "ApiKey", "Base", "Callback", "CallbackAttempt", "Campaign", "Contact", "Job"]
