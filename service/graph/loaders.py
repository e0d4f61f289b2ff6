"""DataLoaders, built fresh for every request: one statement per batch, results in key order."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Hashable
from functools import cached_property
from typing import Any, Generic, TypeVar, overload

from aiodataloader import DataLoader
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db.models import Agent, Callback, CallbackAttempt, Campaign, Contact, Job

KeyT = TypeVar("KeyT")
RowT = TypeVar("RowT")

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


class RowsByKey(Generic[KeyT, RowT]):
    """A `Loaders` attribute: the loader of `model` rows by `key_attribute` (None for a key
    without a row), made on first use and kept for the rest of the request."""

    def __init__(self, model: type[RowT], key_attribute: str) -> None:
        self._model = model
        self._key_attribute = key_attribute
        self._name = ""

    def __set_name__(self, owner: type[Loaders], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, loaders: None, owner: type[Loaders]) -> RowsByKey[KeyT, RowT]: ...

    @overload
    def __get__(self, loaders: Loaders, owner: type[Loaders]) -> DataLoader[KeyT, RowT | None]: ...

    def __get__(
        self, loaders: Loaders | None, owner: type[Loaders]
    ) -> RowsByKey[KeyT, RowT] | DataLoader[KeyT, RowT | None]:
        if loaders is None:
            return self  # looked up on the class (help, documentation tools)
        loader: DataLoader[KeyT, RowT | None] = DataLoader(
            rows_by_key(loaders.session_maker, self._model, self._key_attribute)
        )
        # Like cached_property: the instance's own attribute hides the descriptor from now on.
        loaders.__dict__[self._name] = loader
        return loader


class Loaders:
    """The request's loaders: to-one lookups by key, attempts, and nested connection pages.

    Each loader is built on first use: a request (or a subscription event) pays only for the
    loaders its selection needs.
    """

    def __init__(self, session_maker: async_sessionmaker[AsyncSession]) -> None:
        self.session_maker = session_maker
        self._by_arguments: dict[Hashable, DataLoader[Any, Any]] = {}

    campaign_by_id = RowsByKey[int, Campaign](Campaign, "id")
    campaign_by_name = RowsByKey[str, Campaign](Campaign, "name")
    job_by_id = RowsByKey[int, Job](Job, "job_id")
    agent_by_id = RowsByKey[str, Agent](Agent, "agent_id")
    contact_by_id = RowsByKey[str, Contact](Contact, "contact_id")
    callback_by_id = RowsByKey[str, Callback](Callback, "callback_id")
    attempt_by_id = RowsByKey[int, CallbackAttempt](CallbackAttempt, "id")

    @cached_property
    def attempts_by_callback_id(self) -> DataLoader[str, list[CallbackAttempt]]:
        return DataLoader(attempts_by_callback_id(self.session_maker))

    def for_arguments(self, key: Hashable, batch: BatchLoad) -> DataLoader[Any, Any]:
        """The loader for one nested connection and its arguments, shared by all parents."""
        loader = self._by_arguments.get(key)
        if loader is None:
            loader = self._by_arguments[key] = DataLoader(batch)
        return loader
