"""GraphQL errors a client can act on, each with its SPEC section 4 code."""

from __future__ import annotations

from graphql import GraphQLError


class ClientError(GraphQLError):
    """An error caused by the request; `code` goes to `extensions.code`."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": self.code})


class BadUserInputError(ClientError):
    """An argument has a value the service cannot use; the message says what to fix."""

    code = "BAD_USER_INPUT"


class NotFoundError(ClientError):
    """The request names an object that does not exist."""

    code = "NOT_FOUND"


class ConflictError(ClientError):
    """The request contradicts the current state, e.g. changing a terminal callback."""

    code = "CONFLICT"


class UnauthenticatedError(ClientError):
    """The request carries no API key, or one the service does not know (or has revoked)."""

    code = "UNAUTHENTICATED"


class ForbiddenError(ClientError):
    """The caller's role may not do what the request asks."""

    code = "FORBIDDEN"
