"""Refuse expensive operations before any resolver (or SQL) runs.

One walk over the chosen operation measures its depth, aliases and complexity, following
fragment spreads through a memo, so a document that spreads one fragment thousands of times is
measured in time proportional to its size, not to its expansion. Complexity counts every field
once and multiplies what is under a list field by the page size it asks for (`first`/`last`,
else the default page); page sizes over the maximum, or negative, are refused here too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension

from service.errors import PageSizeError, QueryTooComplexError
from service.graph.pagination import DEFAULT_PAGE_SIZE
from service.settings import QueryLimits


@dataclass(frozen=True, slots=True)
class _Measure:
    depth: int
    aliases: int
    complexity: int
    # __schema fields: each answers the whole schema (MBs for a few tokens), so one is enough.
    schemas: int = 0


class _Walker:
    def __init__(
        self,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        limits: QueryLimits,
    ) -> None:
        self.fragments = fragments
        self.variables = variables
        self.limits = limits
        self._memo: dict[str, _Measure] = {}
        self._visiting: set[str] = set()

    def selection_set(self, selection_set: SelectionSetNode | None) -> _Measure:
        if selection_set is None:
            return _Measure(0, 0, 0)
        depth = aliases = complexity = schemas = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                measure = self.field(selection)
            elif isinstance(selection, InlineFragmentNode):
                measure = self.selection_set(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                measure = self.fragment(selection.name.value)
            else:  # pragma: no cover - graphql-core has no other selection kinds
                continue
            depth = max(depth, measure.depth)
            aliases += measure.aliases
            complexity += measure.complexity
            schemas += measure.schemas
            self._check(_Measure(depth, aliases, complexity, schemas))
        return _Measure(depth, aliases, complexity, schemas)

    def field(self, field: FieldNode) -> _Measure:
        below = self.selection_set(field.selection_set)
        multiplier = self._page_size(field) if field.selection_set is not None else 1
        return _Measure(
            # ofType chains (introspection's type references) are linear, one type or null a
            # level, and client tools nest them 8 deep: they cost no depth.
            depth=below.depth + (0 if field.name.value == "ofType" else 1),
            aliases=below.aliases + (1 if field.alias is not None else 0),
            complexity=1 + multiplier * below.complexity,
            schemas=below.schemas + (1 if field.name.value == "__schema" else 0),
        )

    def fragment(self, name: str) -> _Measure:
        if name in self._memo:
            return self._memo[name]
        definition = self.fragments.get(name)
        if definition is None or name in self._visiting:
            return _Measure(0, 0, 0)  # validation reports unknown and cyclic fragments
        self._visiting.add(name)
        measure = self.selection_set(definition.selection_set)
        self._visiting.discard(name)
        self._memo[name] = measure
        return measure

    def _page_size(self, field: FieldNode) -> int:
        size = 1
        for argument in field.arguments or ():
            if argument.name.value not in ("first", "last"):
                continue
            value: Any = None
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                value = self.variables.get(argument.value.name.value)
            if isinstance(value, int) and not isinstance(value, bool):
                if value < 0:  # refused here like a page too large: a 400, before anything runs
                    raise PageSizeError(f"{argument.name.value} must not be negative, got {value}")
                if value > self.limits.max_page_size:
                    raise PageSizeError(
                        f"{argument.name.value} must be at most {self.limits.max_page_size}, "
                        f"got {value}; page through with cursors"
                    )
                size = max(size, value)
        if size == 1 and field.name.value in _LIST_FIELDS:
            size = min(DEFAULT_PAGE_SIZE, self.limits.max_page_size)
        return size

    def _check(self, measure: _Measure) -> None:
        limits = self.limits
        if measure.depth > limits.max_depth:
            raise QueryTooComplexError(
                f"the operation nests {measure.depth} levels deep; the limit is {limits.max_depth}"
            )
        if measure.schemas > 1:
            raise QueryTooComplexError("an operation may ask for __schema once")
        if measure.aliases > limits.max_aliases:
            raise QueryTooComplexError(f"the operation uses more than {limits.max_aliases} aliases")
        if measure.complexity > limits.max_complexity:
            raise QueryTooComplexError(
                f"the operation could return about {measure.complexity:,} fields, over the "
                f"budget of {limits.max_complexity:,}; ask for smaller pages or fewer fields"
            )


# Fields that return a page of rows when no first/last is given.
_LIST_FIELDS = frozenset(
    {
        "campaigns",
        "jobs",
        "agents",
        "contacts",
        "callbacks",
        "rows",
        "createdCallbacks",
        "servicedCallbacks",
    }
)


def check_operation(
    document: Any, operation_name: str | None, variables: Mapping[str, Any], limits: QueryLimits
) -> None:
    """Raise QueryTooComplexError when the operation to run is over a limit."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    operations = [
        definition
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    ]
    chosen = [
        operation
        for operation in operations
        if operation_name is None or (operation.name and operation.name.value == operation_name)
    ]
    if not chosen:
        return  # graphql-core reports the missing operation
    _Walker(fragments, variables, limits).selection_set(chosen[0].selection_set)


def query_limits_extension(limits: QueryLimits) -> type[SchemaExtension]:
    """A Strawberry extension enforcing `limits` between validation and execution."""

    class QueryLimitsExtension(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            # Before validation, whose overlapping-fields rule is quadratic in the aliases.
            context = self.execution_context
            if context.graphql_document is not None and not context.pre_execution_errors:
                try:
                    check_operation(
                        context.graphql_document,
                        context.operation_name,
                        context.variables or {},
                        limits,
                    )
                except QueryTooComplexError as error:
                    # Errors set here skip validation and execution alike.
                    context.pre_execution_errors = [error]
            yield

    return QueryLimitsExtension
