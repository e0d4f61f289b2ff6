"""Which JSON media type a GraphQL response goes out as (GraphQL over HTTP, "Accept")."""

from __future__ import annotations

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
# Media types that ask for a stream rather than one JSON document (subscriptions over HTTP).
STREAMING = ("text/event-stream", "multipart/mixed")


def response_media_type(accept: str | None) -> str:
    """application/graphql-response+json when the client prefers it to application/json (by
    quality, then by order), else application/json: what legacy clients, and clients sending no
    Accept or a wildcard, expect."""
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept or "").split(",")):
        media, *parameters = (piece.strip().lower() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        if media == GRAPHQL_RESPONSE_JSON:
            choices.append((-quality, position, GRAPHQL_RESPONSE_JSON))
        elif media in (JSON, "application/*", "*/*"):
            choices.append((-quality, position, JSON))
    return min(choices)[2] if choices else JSON


def wants_stream(accept: str | None) -> bool:
    """Whether the client asks for a streamed answer (Server-Sent Events or multipart)."""
    lowered = (accept or "").lower()
    return any(media in lowered for media in STREAMING)


def without_streams(accept: str | None) -> str | None:
    """The Accept header without its streaming media types, when what remains still admits a
    JSON answer (else None): what a query or mutation is answered by, since a stream of one
    result helps nobody and some clients list a stream type on every request."""
    kept = [
        part
        for part in (accept or "").split(",")
        if not any(media in part.lower() for media in STREAMING)
    ]
    narrowed = ",".join(kept).strip()
    admits_json = any(
        part.split(";")[0].strip().lower() in (GRAPHQL_RESPONSE_JSON, JSON, "application/*", "*/*")
        for part in kept
    )
    return narrowed if admits_json else None
