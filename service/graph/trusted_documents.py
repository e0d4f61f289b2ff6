"""Trusted documents: the allow-list mode. With POMREPORT_TRUSTED_DOCUMENTS naming a manifest,
only the documents it holds run, whether a client sends one whole or only its hash.

The manifest is Apollo's persisted query manifest (`{"format": "apollo-persisted-query-manifest",
"version": 1, "operations": [{"id", "name", "type", "body"}]}`) or a plain JSON object of hash to
document; a hash is the SHA-256, in lower-case hex, of the document's exact UTF-8 text (as in
automatic persisted queries). It is read and checked once, at start: every document must hash to
its id, hold one operation, and validate against the schema, or the service does not start.

A request is then answered from a dictionary, before its document is parsed and before any
statement: a hash the manifest lacks is PERSISTED_QUERY_NOT_FOUND (and cannot be registered, so
Apollo's client flow ends at its second request, with FORBIDDEN), a whole document the manifest
lacks is FORBIDDEN.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    parse,
    validate,
)

from service import metrics
from service.errors import HTTPRequestError
from service.graph.persisted_queries import (
    HashMismatchError,
    PersistedQueryNotFoundError,
    document_hash,
    persisted_query_hash,
)

MANIFEST_FORMAT = "apollo-persisted-query-manifest"
MANIFEST_VERSION = 1
# The manifest of the documents pomreport's own clients send: the report page's
# (service/web/static/documents) and the README's examples (docs/queries).
SHIPPED_MANIFEST = Path(__file__).with_suffix(".json")
DOCUMENT_SUFFIX = ".graphql"

FORBIDDEN = "FORBIDDEN"
NOT_TRUSTED_MESSAGE = (
    "this service runs only its trusted documents, and this document is not one of them; "
    "add it to the manifest (pomreport trusted-documents build) and restart the service"
)


class ManifestError(ValueError):
    """A manifest, or a document meant for one, that the service cannot use; says which and why."""


class DocumentNotTrustedError(HTTPRequestError):
    """A document the manifest does not hold."""

    def __init__(self) -> None:
        super().__init__(403, NOT_TRUSTED_MESSAGE, FORBIDDEN)


@dataclass(frozen=True, slots=True)
class TrustedDocument:
    """One operation of the manifest, as clients send it."""

    sha256_hash: str
    # The operation's name (None for an anonymous one) and type: query, mutation or subscription.
    name: str | None
    operation_type: str
    body: str

    def manifest_entry(self) -> dict[str, Any]:
        """The operation as Apollo's manifest lists it."""
        return {
            "id": self.sha256_hash,
            "name": self.name,
            "type": self.operation_type,
            "body": self.body,
        }


class TrustedDocuments:
    """The documents the service runs, by hash; nothing else runs."""

    def __init__(self, documents: Iterable[TrustedDocument]) -> None:
        self._bodies = {document.sha256_hash: document.body for document in documents}

    def __len__(self) -> int:
        return len(self._bodies)

    def resolve(self, query: Any, extensions: Any) -> str:
        """The document a request runs: its own, when trusted, or the trusted one its
        `extensions.persistedQuery` names; PersistedQueryNotFoundError for a hash the manifest
        lacks, DocumentNotTrustedError for a document it lacks."""
        sha256_hash = persisted_query_hash(extensions)
        if query is None and sha256_hash is not None:
            document = self._bodies.get(sha256_hash)
            if document is None:
                metrics.TRUSTED_DOCUMENT_REFUSALS.labels("hash_not_found").inc()
                raise PersistedQueryNotFoundError
            return document
        if not isinstance(query, str):
            raise HTTPRequestError(400, "the request needs a query, as a string")
        actual = document_hash(query)
        if sha256_hash is not None and sha256_hash != actual:
            raise HashMismatchError
        if actual not in self._bodies:
            metrics.TRUSTED_DOCUMENT_REFUSALS.labels("not_trusted").inc()
            raise DocumentNotTrustedError
        return query


def load_trusted_documents(path: Path, schema: GraphQLSchema) -> TrustedDocuments:
    """Read a manifest and check every document in it against the schema."""
    documents = read_manifest(path)
    for document in documents:
        _check_operation(document.body, schema, f"{path}: operation {document.sha256_hash}")
    return TrustedDocuments(documents)


def read_manifest(path: Path) -> list[TrustedDocument]:
    """The documents of a manifest (Apollo's format, or a JSON object of hash to document),
    each checked to hash to its id."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ManifestError(f"cannot read {path}: {error.strerror or error}") from None
    except (ValueError, RecursionError):
        raise ManifestError(f"{path} is not a JSON file") from None
    if isinstance(raw, dict) and "operations" in raw:
        if raw.get("format") != MANIFEST_FORMAT or raw.get("version") != MANIFEST_VERSION:
            raise ManifestError(
                f"{path} is not a manifest pomreport reads: expected format "
                f"{MANIFEST_FORMAT!r}, version {MANIFEST_VERSION}"
            )
        entries = raw["operations"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ManifestError(f"{path}: operations must be a list of objects")
        pairs = [(entry.get("id"), entry.get("body")) for entry in entries]
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        raise ManifestError(
            f"{path} is neither Apollo's persisted query manifest nor an object of hash to document"
        )
    documents = []
    for sha256_hash, body in pairs:
        if not isinstance(sha256_hash, str) or not isinstance(body, str):
            raise ManifestError(f"{path}: every operation needs an id and a body, as strings")
        try:
            actual = document_hash(body)
        except HTTPRequestError as error:
            raise ManifestError(f"{path}: operation {sha256_hash}: {error.message}") from None
        if actual != sha256_hash:
            raise ManifestError(
                f"{path}: operation {sha256_hash} is not the SHA-256 of its body (the hash of "
                "its exact UTF-8 text, in lower-case hex); rebuild the manifest"
            )
        documents.append(_described(sha256_hash, body, f"{path}: operation {sha256_hash}"))
    return documents


def build_manifest(sources: Sequence[Path], schema: GraphQLSchema) -> dict[str, Any]:
    """A manifest of the documents in `sources`: `.graphql` files (each one document, its exact
    text, holding one operation), folders of them (searched recursively), and manifests
    (merged in); every document checked against the schema."""
    documents: dict[str, TrustedDocument] = {}
    for path in _source_files(sources):
        if path.suffix == ".json":
            found = read_manifest(path)
        else:
            try:
                body = path.read_bytes().decode("utf-8")
            except OSError as error:
                raise ManifestError(f"cannot read {path}: {error.strerror or error}") from None
            except UnicodeDecodeError:
                raise ManifestError(f"{path} is not UTF-8 text") from None
            found = [_described(document_hash(body), body, str(path))]
        for document in found:
            _check_operation(document.body, schema, str(path))
            documents[document.sha256_hash] = document
    operations = sorted(documents.values(), key=lambda d: (d.name or "", d.sha256_hash))
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "operations": [document.manifest_entry() for document in operations],
    }


def manifest_text(manifest: Mapping[str, Any]) -> str:
    """A manifest as the build command writes it: stable, so that a rebuild changes nothing."""
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def _source_files(sources: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            found = sorted(source.rglob(f"*{DOCUMENT_SUFFIX}"))
            if not found:
                raise ManifestError(f"{source} holds no {DOCUMENT_SUFFIX} file")
            files += found
        elif source.suffix in (DOCUMENT_SUFFIX, ".json"):
            files.append(source)
        else:
            raise ManifestError(
                f"{source} is neither a {DOCUMENT_SUFFIX} file, a folder of them, nor a manifest "
                "(.json)"
            )
    return files


def _parsed(body: str, where: str) -> DocumentNode:
    try:
        return parse(body, no_location=False)
    except GraphQLError as error:
        raise ManifestError(f"{where} does not parse: {error.message}") from None


def _described(sha256_hash: str, body: str, where: str) -> TrustedDocument:
    """A document with its one operation's name and type; refused when it holds none or more."""
    operations = [
        definition
        for definition in _parsed(body, where).definitions
        if isinstance(definition, OperationDefinitionNode)
    ]
    if len(operations) != 1:
        raise ManifestError(
            f"{where} holds {len(operations)} operations: each document holds one (and the "
            "fragments it uses), as clients send it; put each operation in a file of its own"
        )
    operation = operations[0]
    name = operation.name.value if operation.name else None
    return TrustedDocument(sha256_hash, name, operation.operation.value, body)


def _check_operation(body: str, schema: GraphQLSchema, where: str) -> None:
    errors = validate(schema, _parsed(body, where))
    if errors:
        reasons = "; ".join(error.message for error in errors[:3])
        raise ManifestError(f"{where} does not validate against the schema: {reasons}")


def refused_operation(documents: TrustedDocuments, payload: Any) -> GraphQLError | None:
    """For an operation started over a WebSocket: the error when its document is not
    trusted, else None, its document filled in when it came as a hash alone. A payload that is
    not an object is left to Strawberry, which refuses it."""
    if not isinstance(payload, dict):
        return None
    try:
        payload["query"] = documents.resolve(payload.get("query"), payload.get("extensions"))
    except HTTPRequestError as error:
        return GraphQLError(error.message, extensions={"code": error.code})
    return None
