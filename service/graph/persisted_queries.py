"""Automatic persisted queries, as Apollo's clients speak them: a request may send
`extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}` instead of its document.

A hash the service does not know is answered with PERSISTED_QUERY_NOT_FOUND, and the client
sends it again with the document, which is checked against the hash, stored, and run. The
documents live in a table, so that every instance over the database knows them, with a small
bounded cache in front so that a known hash costs no statement.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db.models import PersistedQuery
from service.errors import HTTPRequestError

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
# The message Apollo's clients look for (with the code) before sending the document.
NOT_FOUND_MESSAGE = "PersistedQueryNotFound"
SUPPORTED_VERSION = 1
CACHE_SIZE = 1000


class PersistedQueryNotFoundError(HTTPRequestError):
    """A hash without its document that no instance has been sent yet."""

    def __init__(self) -> None:
        super().__init__(200, NOT_FOUND_MESSAGE, PERSISTED_QUERY_NOT_FOUND)


class PersistedQueries:
    """The stored documents by hash: a table shared by instances, and a bounded LRU cache."""

    def __init__(
        self,
        read_session_maker: async_sessionmaker[AsyncSession],
        write_session_maker: async_sessionmaker[AsyncSession],
        *,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.read_session_maker = read_session_maker
        self.write_session_maker = write_session_maker
        self.cache_size = cache_size
        self._cache: OrderedDict[str, str] = OrderedDict()

    async def get_document(self, sha256_hash: str) -> str | None:
        """The document stored under a hash, or None."""
        document = self._cache.get(sha256_hash)
        if document is not None:
            self._cache.move_to_end(sha256_hash)
            return document
        async with self.read_session_maker() as session:
            document = await session.scalar(
                select(PersistedQuery.document).where(PersistedQuery.sha256_hash == sha256_hash)
            )
        if document is not None:
            self._remember(sha256_hash, document)
        return document

    async def create(self, sha256_hash: str, document: str) -> None:
        """Store a document under its (checked) hash; a no-op when it is already stored."""
        if sha256_hash in self._cache:
            self._cache.move_to_end(sha256_hash)
            return
        values = {
            "sha256_hash": sha256_hash,
            "document": document,
            "created_at": dt.datetime.now(dt.UTC),
        }
        async with self.write_session_maker() as session, session.begin():
            dialect = session.get_bind().dialect.name
            statement: Any
            if dialect == "postgresql":
                statement = postgresql_insert(PersistedQuery).on_conflict_do_nothing()
            elif dialect == "sqlite":
                statement = sqlite_insert(PersistedQuery).on_conflict_do_nothing()
            else:  # pragma: no cover - the service runs on these two
                statement = insert(PersistedQuery)
            await session.execute(statement.values(**values))
        self._remember(sha256_hash, document)

    def _remember(self, sha256_hash: str, document: str) -> None:
        self._cache[sha256_hash] = document
        self._cache.move_to_end(sha256_hash)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


class HashMismatchError(HTTPRequestError):
    """A hash sent beside a document that is not the document's."""

    def __init__(self) -> None:
        super().__init__(
            400,
            "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query "
            "(hash the query's exact UTF-8 text, in lower-case hex)",
        )


def document_hash(document: str) -> str:
    """The SHA-256 of a document's exact UTF-8 text, in lower-case hex: its persisted query
    hash."""
    return hashlib.sha256(utf8_document(document)).hexdigest()


def utf8_document(document: str) -> bytes:
    """A document's UTF-8 text; HTTPRequestError (400) for one that has none: JSON may carry
    a lone surrogate (`"\\ud800"`), which no UTF-8 text holds, so no hash can name it."""
    try:
        return document.encode("utf-8")
    except UnicodeEncodeError:
        raise HTTPRequestError(
            400, "the query is not Unicode text: it holds a lone surrogate (\\ud800-\\udfff)"
        ) from None


def persisted_query_hash(extensions: Any) -> str | None:
    """The hash a request's extensions ask for, checked, or None when they ask for none."""
    if not isinstance(extensions, dict) or "persistedQuery" not in extensions:
        return None
    persisted = extensions["persistedQuery"]
    if not isinstance(persisted, dict):
        raise HTTPRequestError(400, "extensions.persistedQuery must be a JSON object")
    version = persisted.get("version")
    if version != SUPPORTED_VERSION:
        raise HTTPRequestError(
            400,
            f"unsupported persisted query version {version!r}: "
            f"only version {SUPPORTED_VERSION} is supported",
        )
    sha256_hash = persisted.get("sha256Hash")
    if not (
        isinstance(sha256_hash, str)
        and len(sha256_hash) == 64
        and all(c in "0123456789abcdefABCDEF" for c in sha256_hash)
    ):
        raise HTTPRequestError(
            400, "extensions.persistedQuery.sha256Hash must be a SHA-256 hash in hex"
        )
    return sha256_hash.lower()


async def resolve_document(
    store: PersistedQueries, sha256_hash: str, query: Any, *, max_bytes: int
) -> str:
    """The document a persisted-query request runs: the one it sent (checked against its hash
    and stored), or the stored one; PersistedQueryNotFoundError when neither."""
    if query is None:
        document = await store.get_document(sha256_hash)
        if document is None:
            raise PersistedQueryNotFoundError
        return document
    if not isinstance(query, str):
        raise HTTPRequestError(400, "the request needs a query, as a string")
    encoded = utf8_document(query)
    if len(encoded) > max_bytes:
        raise HTTPRequestError(413, f"the query is larger than {max_bytes} bytes")
    if hashlib.sha256(encoded).hexdigest() != sha256_hash:
        raise HashMismatchError
    await store.create(sha256_hash, query)
    return query
