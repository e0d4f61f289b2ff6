"""The compiled execution path: queries answered from plans instead of field by field.

Each validated query is compiled once (per document, operation name and the values of the
variables its `@include`/`@skip` read) into a plan of root plans, kept in a bounded cache.
Running a plan opens one connection, runs the statements the selection needs (at most one
per list level, plus counts) and builds the response from the rows directly.

The path answers only what it answers completely. An operation it does not cover
(introspection, mutations, subscriptions, an unknown shape) and any request that raises
while it runs (a bad cursor, a page too large, a missing ID's error, a database error) go
to the general path, which runs them from the start; so every error, with its path and code,
is the general path's own.
"""

from __future__ import annotations

import logging
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    DirectiveNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    Visitor,
    get_operation_ast,
    visit,
)
from graphql.execution.collect_fields import FragmentDetails, collect_fields
from graphql.execution.values import VariableValues, get_variable_values
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, QueuePool
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from service.compiled.roots import RootPlan, root_plan
from service.compiled.rows import Compilation, NotCompilableError, Run
from service.errors import is_service_unavailable
from service.graph.context import Context

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RootField:
    """A root field of the operation: its response key, plan, nullability and nodes."""

    key: str
    plan: RootPlan
    nullable: bool
    nodes: tuple[FieldNode, ...]


@dataclass(frozen=True, slots=True)
class OperationPlan:
    """Every root field's plan, by response key, and how many child slots a run needs."""

    roots: tuple[RootField, ...]
    slots: int

    async def run(self, run: Run) -> ExecutionResult:
        """The response. A root field the database cannot answer now (down, or no connection
        free in time) gets its SERVICE_UNAVAILABLE error here, as the general path would give
        it: running the request again there would only double the client's wait."""
        data: dict[str, Any] = {}
        errors: list[GraphQLError] = []
        for root in self.roots:
            try:
                data[root.key] = await root.plan.resolve(run)
            except Exception as error:
                if not is_service_unavailable(error):
                    raise
                errors.append(GraphQLError(str(error), list(root.nodes), path=[root.key]))
                errors[-1].original_error = error
                if not root.nullable:
                    return ExecutionResult(data=None, errors=errors)
                data[root.key] = None
        return ExecutionResult(data=data, errors=errors or None)


class _DirectiveVariables(Visitor):
    """The variables `@include`/`@skip` read: a plan holds for one set of their values."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def enter_directive(self, node: DirectiveNode, *_args: Any) -> None:
        for argument in node.arguments or ():
            if isinstance(argument.value, VariableNode):
                self.names.append(argument.value.name.value)


@dataclass(slots=True)
class CompiledDocument:
    """A document's operation, its fragments, and its plans by directive variable values."""

    document: DocumentNode
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDetails]
    directive_variables: tuple[str, ...]
    plans: dict[tuple[Any, ...], OperationPlan | None]

    def coerce(
        self, graphql_schema: GraphQLSchema, variables: dict[str, Any]
    ) -> VariableValues | None:
        """The request's variables coerced to the operation's types; None when they do not
        fit (the general path reports why)."""
        coerced = get_variable_values(
            graphql_schema, self.operation.variable_definitions or (), variables
        )
        return coerced if isinstance(coerced, VariableValues) else None

    def plan_key(self, store: str, variable_values: VariableValues) -> tuple[Any, ...]:
        """A plan is made for one store (PostgreSQL aggregates what SQLite fetches apart)
        and one set of the values `@include`/`@skip` read."""
        return (store, *(variable_values.coerced.get(name) for name in self.directive_variables))


@dataclass(frozen=True, slots=True)
class ReadyPlan:
    """A request's plan, found without compiling, and what running and checking it needs."""

    document: DocumentNode
    operation: OperationDefinitionNode
    variable_values: VariableValues
    plan: OperationPlan


class CompiledQueries:
    """The plan cache and the runner; one per schema."""

    def __init__(self, max_documents: int = 512) -> None:
        self.max_documents = max_documents
        # Queries answered here, and those left to the general path (uncovered or raised);
        # of those answered, how many came through the endpoint with their plan ready.
        self.answered = 0
        self.left = 0
        self.answered_directly = 0
        self._readers: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = (
            weakref.WeakKeyDictionary()
        )
        self._documents: OrderedDict[tuple[str, str | None], CompiledDocument | None] = (
            OrderedDict()
        )

    async def execute(self, execution_context: ExecutionContext) -> ExecutionResult | None:
        """The response for the request, or None to leave it to the general path."""
        result = await self._execute(execution_context)
        if result is None:
            self.left += 1
        else:
            self.answered += 1
        return result

    async def _execute(self, execution_context: ExecutionContext) -> ExecutionResult | None:
        context = execution_context.context
        document = execution_context.graphql_document
        query = execution_context.query
        if not isinstance(context, Context) or document is None or query is None:
            return None
        compiled = self._document(query, execution_context.operation_name, document)
        if compiled is None:
            return None
        variable_values = compiled.coerce(
            execution_context.schema._schema, execution_context.variables or {}
        )
        if variable_values is None:
            return None
        plan = self._plan(compiled, execution_context, variable_values)
        if plan is None:
            return None
        return await self._run(plan, context, variable_values)

    def ready_plan(
        self,
        graphql_schema: GraphQLSchema,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any],
        store: str,
    ) -> ReadyPlan | None:
        """The plan of a document that has been validated and planned before, for these
        variables; None when there is none yet (or the variables are wrong), without
        compiling anything."""
        # A document of one operation is kept under no name (see _operation_key).
        key = (query, operation_name)
        if key not in self._documents:
            key = (query, None)
        compiled = self._documents.get(key)
        if compiled is None or not _names(compiled.operation, operation_name):
            return None
        variable_values = compiled.coerce(graphql_schema, variables)
        if variable_values is None:
            return None
        plan = compiled.plans.get(compiled.plan_key(store, variable_values))
        if plan is None:
            return None
        self._documents.move_to_end(key)
        return ReadyPlan(compiled.document, compiled.operation, variable_values, plan)

    async def run(self, ready: ReadyPlan, context: Context) -> ExecutionResult | None:
        """Run a ready plan for a request; None to leave the request to the general path."""
        result = await self._run(ready.plan, context, ready.variable_values)
        if result is None:
            self.left += 1
        else:
            self.answered += 1
            self.answered_directly += 1
        return result

    def _reader(self, engine: AsyncEngine) -> AsyncEngine:
        """On PostgreSQL, the engine with its connections in autocommit (same pool): the path
        only reads, each of its connections runs one statement (the page with its attempts,
        or a count), and READ COMMITTED gives every statement its own snapshot anyway, so
        BEGIN and ROLLBACK would be two round trips that buy nothing. SQLite sends neither
        for reads."""
        if engine.dialect.name != "postgresql":
            return engine
        reader = self._readers.get(engine)
        if reader is None:
            reader = engine.execution_options(isolation_level="AUTOCOMMIT")
            self._readers[engine] = reader
        return reader

    async def _run(
        self, plan: OperationPlan, context: Context, variable_values: VariableValues
    ) -> ExecutionResult | None:
        engine = reading_engine(context)
        try:
            run = Run(
                self._reader(engine).connect,
                lambda: has_idle_connection(engine.pool),
                context.caller.row_scope,
                variable_values,
                context.settings,
                plan.slots,
                context.principal,
            )
            try:
                return await plan.run(run)
            finally:
                await run.close()
        except Exception as error:
            logger.debug("compiled path left a request to the general path: %r", error)
            return None

    def _document(
        self, query: str, operation_name: str | None, document: DocumentNode
    ) -> CompiledDocument | None:
        key = (query, _operation_key(document, operation_name))
        if key in self._documents:
            self._documents.move_to_end(key)
            cached = self._documents[key]
            return cached if cached and _names(cached.operation, operation_name) else None
        if get_operation_ast(document, operation_name) is None:
            return None  # names no operation of the document: the general path says so
        compiled = _compile_document(document, operation_name)
        self._documents[key] = compiled
        if len(self._documents) > self.max_documents:
            self._documents.popitem(last=False)
        return compiled

    def _plan(
        self,
        compiled: CompiledDocument,
        execution_context: ExecutionContext,
        variable_values: VariableValues,
    ) -> OperationPlan | None:
        store = reading_engine(execution_context.context).dialect.name
        key = compiled.plan_key(store, variable_values)
        if key not in compiled.plans:
            try:
                compiled.plans[key] = _plan_operation(compiled, execution_context, variable_values)
            except NotCompilableError as reason:
                logger.debug("general path for %s: %s", execution_context.operation_name, reason)
                compiled.plans[key] = None
            except Exception:  # a shape the planner mishandles must not cost the answer
                logger.exception("compiling %s failed", execution_context.operation_name)
                compiled.plans[key] = None
        return compiled.plans[key]


def _operation_key(document: DocumentNode, operation_name: str | None) -> str | None:
    """The operation name a document is cached under: none for a document of one operation,
    which a request runs whether it names it or not (Strawberry gives us its name either way;
    the endpoint sees only what the request said)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return None if len(operations) == 1 else operation_name


def _names(operation: OperationDefinitionNode, operation_name: str | None) -> bool:
    """Whether a request naming `operation_name` (or nothing) runs `operation`."""
    return operation_name is None or (
        operation.name is not None and operation.name.value == operation_name
    )


def _compile_document(
    document: DocumentNode, operation_name: str | None
) -> CompiledDocument | None:
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return None
    fragments: dict[str, FragmentDetails] = {}
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            if definition.variable_definitions:
                return None  # fragment variables (experimental) stay general
            fragments[definition.name.value] = FragmentDetails(definition)
    directives = _DirectiveVariables()
    visit(document, directives)
    return CompiledDocument(
        document, operation, fragments, tuple(dict.fromkeys(directives.names)), {}
    )


def _plan_operation(
    compiled: CompiledDocument,
    execution_context: ExecutionContext,
    variable_values: VariableValues,
) -> OperationPlan:
    """The operation's plan, compiled twice: the first compilation selects every column and
    records which ones the selection reads; the second selects only those."""
    first = _compile_operation(compiled, execution_context, variable_values, None)
    used = [frozenset(columns) for columns in first.compilation.recorded_columns]
    return _compile_operation(compiled, execution_context, variable_values, used).plan


@dataclass(frozen=True, slots=True)
class _Compiled:
    plan: OperationPlan
    compilation: Compilation


def _compile_operation(
    compiled: CompiledDocument,
    execution_context: ExecutionContext,
    variable_values: VariableValues,
    used_columns: list[frozenset[str]] | None,
) -> _Compiled:
    strawberry_schema = execution_context.schema
    graphql_schema = strawberry_schema._schema
    query_type = graphql_schema.query_type
    assert query_type is not None
    context = execution_context.context
    assert isinstance(context, Context)
    compilation = Compilation(
        graphql_schema,
        strawberry_schema,
        compiled.fragments,
        variable_values,
        compiled.operation,
        reading_engine(context).dialect,
        used_columns,
    )
    collected = collect_fields(
        graphql_schema, compiled.fragments, variable_values, query_type, compiled.operation
    )
    if collected.new_defer_usages:
        raise NotCompilableError("@defer")
    roots = tuple(
        RootField(
            key,
            root_plan(compilation, query_type, details),
            _is_nullable(query_type, details[0].node.name.value),
            tuple(detail.node for detail in details),
        )
        for key, details in collected.grouped_field_set.items()
    )
    return _Compiled(OperationPlan(roots, compilation.slots), compilation)


def reading_engine(context: Context) -> AsyncEngine:
    """The engine the request's reads go to."""
    engine: AsyncEngine = context.unscoped_session_maker.kw["bind"]
    return engine


def has_idle_connection(pool: Pool) -> bool:
    """Whether a checkout would not wait: an idle connection is pooled, or the pool may open
    one within its size (SQLite's pools without a size never make anyone wait)."""
    if not isinstance(pool, QueuePool):
        return True
    return pool.checkedin() > 0 or pool.checkedout() < pool.size()


def _is_nullable(query_type: GraphQLObjectType, name: str) -> bool:
    field = query_type.fields.get(name)  # None for __typename, which never fails
    return field is not None and not isinstance(field.type, GraphQLNonNull)


def compiled_execution_extension(compiled: CompiledQueries) -> type[SchemaExtension]:
    """The extension that answers queries from plans when it can; the general path (the
    executor Strawberry runs when no extension set a result) answers the rest."""

    class CompiledExecution(SchemaExtension):
        async def on_execute(self) -> AsyncIterator[None]:
            execution_context = self.execution_context
            context = execution_context.context
            if (
                execution_context.result is None
                and isinstance(context, Context)
                and context.settings.compiled_execution
            ):
                execution_context.result = await compiled.execute(execution_context)
            yield

    return CompiledExecution
