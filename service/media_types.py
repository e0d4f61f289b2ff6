"""Which media type a GraphQL response goes out as (GraphQL over HTTP, "Accept")."""

from __future__ import annotations

import math
from dataclasses import dataclass

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
# Media types that ask for a stream rather than one JSON document (subscriptions over HTTP).
STREAMING = ("text/event-stream", "multipart/mixed")
_JSON_RANGES = (JSON, "application/*", "*/*")


@dataclass(frozen=True, slots=True)
class _Accepted:
    media: str  # lower case, without parameters
    quality: float
    text: str  # as the client wrote it, parameters included


def _accepted(accept: str | None) -> list[_Accepted]:
    """The media ranges of an Accept header the client accepts at all (quality above 0; a
    quality that is not a number from 0 to 1 counts as 0), in the order given."""
    ranges = []
    for part in (accept or "").split(","):
        media, *parameters = part.split(";")
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
                if not (math.isfinite(quality) and 0 <= quality <= 1):
                    quality = 0.0
        if quality > 0 and media.strip():
            ranges.append(_Accepted(media.strip().lower(), quality, part.strip()))
    return ranges


def response_media_type(accept: str | None) -> str:
    """application/graphql-response+json when the client prefers it to application/json (by
    quality, then by order), else application/json: what legacy clients, and clients sending no
    Accept or a wildcard, expect."""
    choices = [
        (-accepted.quality, position, GRAPHQL_RESPONSE_JSON)
        if accepted.media == GRAPHQL_RESPONSE_JSON
        else (-accepted.quality, position, JSON)
        for position, accepted in enumerate(_accepted(accept))
        if accepted.media == GRAPHQL_RESPONSE_JSON or accepted.media in _JSON_RANGES
    ]
    return min(choices)[2] if choices else JSON


def wants_stream(accept: str | None) -> bool:
    """Whether the client accepts a streamed answer (Server-Sent Events or multipart)."""
    return any(accepted.media in STREAMING for accepted in _accepted(accept))


def without_streams(accept: str | None) -> str | None:
    """The Accept header without its streaming media types, when what remains still admits a
    JSON answer (else None): what a query or mutation is answered by, since a stream of one
    result helps nobody and some clients list a stream type on every request."""
    kept = [accepted for accepted in _accepted(accept) if accepted.media not in STREAMING]
    if not any(
        accepted.media == GRAPHQL_RESPONSE_JSON or accepted.media in _JSON_RANGES
        for accepted in kept
    ):
        return None
    return ", ".join(accepted.text for accepted in kept)
