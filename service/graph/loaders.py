"""DataLoaders, built fresh for every request: one statement per batch, results in key order."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Hashable
from functools import cached_property
from typing import Any

from aiodataloader import DataLoader
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db.models import Agent, Callback, CallbackAttempt, Campaign, Contact, Job

BatchLoad = Callable[[list[Any]], Coroutine[Any, Any, list[Any]]]


def rows_by_key(
    session_maker: async_sessionmaker[AsyncSession], model: type[Any], key_attribute: str
) -> BatchLoad:
    """Batch function: the row for each key (None when missing), in the order of the keys."""
    key_column = getattr(model, key_attribute)

    async def load(keys: list[Any]) -> list[Any]:
        async with session_maker() as session:
            rows = await session.scalars(select(model).where(key_column.in_(keys)))
            found = {getattr(row, key_attribute): row for row in rows}
        return [found.get(key) for key in keys]

    return load


def attempts_by_callback_id(
    session_maker: async_sessionmaker[AsyncSession],
) -> Callable[[list[str]], Coroutine[Any, Any, list[list[CallbackAttempt]]]]:
    """Batch function: each callback's attempts, oldest first."""

    async def load(callback_ids: list[str]) -> list[list[CallbackAttempt]]:
        async with session_maker() as session:
            rows = await session.scalars(
                select(CallbackAttempt)
                .where(CallbackAttempt.callback_id.in_(callback_ids))
                .order_by(CallbackAttempt.attempted_at, CallbackAttempt.id)
            )
            grouped: dict[str, list[CallbackAttempt]] = {key: [] for key in callback_ids}
            for attempt in rows:
                grouped[attempt.callback_id].append(attempt)
        return [grouped[key] for key in callback_ids]

    return load


class Loaders:
    """The request's loaders: to-one lookups by key, attempts, and nested connection pages.

    Each loader is built on first use: a request (or a subscription event) pays only for the
    loaders its selection needs.
    """

    def __init__(self, session_maker: async_sessionmaker[AsyncSession]) -> None:
        self.session_maker = session_maker
        self._by_arguments: dict[Hashable, DataLoader[Any, Any]] = {}

    @cached_property
    def campaign_by_id(self) -> DataLoader[int, Campaign | None]:
        return DataLoader(rows_by_key(self.session_maker, Campaign, "id"))

    @cached_property
    def campaign_by_name(self) -> DataLoader[str, Campaign | None]:
        return DataLoader(rows_by_key(self.session_maker, Campaign, "name"))

    @cached_property
    def job_by_id(self) -> DataLoader[int, Job | None]:
        return DataLoader(rows_by_key(self.session_maker, Job, "job_id"))

    @cached_property
    def agent_by_id(self) -> DataLoader[str, Agent | None]:
        return DataLoader(rows_by_key(self.session_maker, Agent, "agent_id"))

    @cached_property
    def contact_by_id(self) -> DataLoader[str, Contact | None]:
        return DataLoader(rows_by_key(self.session_maker, Contact, "contact_id"))

    @cached_property
    def callback_by_id(self) -> DataLoader[str, Callback | None]:
        return DataLoader(rows_by_key(self.session_maker, Callback, "callback_id"))

    @cached_property
    def attempt_by_id(self) -> DataLoader[int, CallbackAttempt | None]:
        return DataLoader(rows_by_key(self.session_maker, CallbackAttempt, "id"))

    @cached_property
    def attempts_by_callback_id(self) -> DataLoader[str, list[CallbackAttempt]]:
        return DataLoader(attempts_by_callback_id(self.session_maker))

    def for_arguments(self, key: Hashable, batch: BatchLoad) -> DataLoader[Any, Any]:
        """The loader for one nested connection and its arguments, shared by all parents."""
        loader = self._by_arguments.get(key)
        if loader is None:
            loader = self._by_arguments[key] = DataLoader(batch)
        return loader
