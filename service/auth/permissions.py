"""Which operations a principal may run: checked once per operation, before anything runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import OperationDefinitionNode, OperationType
from strawberry.extensions import SchemaExtension

from service.auth.api_keys import Principal
from service.errors import ClientError, ForbiddenError, UnauthenticatedError


def operation_refusal(
    principal: Principal | None,
    document: Any,
    operation_name: str | None,
    *,
    key_refusal: str | None = None,
) -> ClientError | None:
    """Why `principal` may not run the chosen operation of `document`; None when it may.

    `key_refusal` says why a WebSocket's key stopped working, when it did.
    """
    if principal is None:
        if key_refusal is not None:
            return UnauthenticatedError(key_refusal)
        return UnauthenticatedError(
            "this operation needs an API key: send 'Authorization: Bearer <key>' "
            "(on WebSockets, in the connection_init payload)"
        )
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation_name is not None and (
            definition.name is None or definition.name.value != operation_name
        ):
            continue
        if definition.operation is OperationType.MUTATION and not principal.role.may_mutate:
            return ForbiddenError(
                f"an API key with role {principal.role.value} may not run mutations; "
                "operator and admin keys may"
            )
        return None
    return None  # no such operation: validation reports it


class OperationAuthorization(SchemaExtension):
    """Refuses an operation its caller may not run, before limits, validation and execution."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None and not context.pre_execution_errors:
            refusal = operation_refusal(
                getattr(context.context, "principal", None),
                context.graphql_document,
                context.operation_name,
                key_refusal=getattr(getattr(context.context, "caller", None), "refusal", None),
            )
            if refusal is not None:
                # Errors set here skip validation and execution alike.
                context.pre_execution_errors = [refusal]
        yield
