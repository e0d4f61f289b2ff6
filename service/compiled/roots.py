"""Plans for the root fields of a query: the report and its summary, the root connections,
lookups by key and `node(id:)`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from graphql import GraphQLField, GraphQLObjectType
from graphql.execution.collect_fields import FieldDetails
from sqlalchemy import ColumnElement, Select, and_

from service.compiled.entities import ENTITY_TYPES, EntityType
from service.compiled.rows import (
    Compilation,
    ConnectionBuilder,
    NotCompilableError,
    RowShape,
    Run,
    connection_request,
    count_visible,
    entity_builder,
    fetch_children,
    object_type_of,
    page_and_count,
    plain_builder,
    root_connection_statement,
    strawberry_python_name,
    visible_in,
    visible_rows,
)
from service.compiled.templates import StatementParts, StatementTemplates
from service.db.models.callback import Callback
from service.errors import BadUserInputError
from service.graph import declarations
from service.graph.filtering import EntityQueryDeclaration
from service.graph.nodes import parse_global_id
from service.graph.pagination import Page, page_of
from service.reports.callbacks_scheduled_details.csv_links import signed_csv_path
from service.reports.callbacks_scheduled_details.query import report_header
from service.reports.callbacks_scheduled_summary.groups import (
    gather_summary_groups,
    summary_statement,
)
from service.reports.callbacks_scheduled_summary.query import check_group_by


class RootPlan:
    """One root field of the operation."""

    async def resolve(self, run: Run) -> Any:
        raise NotImplementedError


class TypeNamePlan(RootPlan):
    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    async def resolve(self, run: Run) -> Any:
        return self.type_name


class RootConnectionPlan(RootPlan):
    """A top-level connection: one statement for the page (with every to-one relation the
    selection reaches joined), one per level below it, and one for the count if selected."""

    def __init__(
        self,
        compilation: Compilation,
        declaration: EntityQueryDeclaration,
        field: GraphQLField,
        details: list[FieldDetails],
    ) -> None:
        self.declaration = declaration
        self.arguments = compilation.arguments(field, details)
        self.shape = RowShape(compilation, ENTITY_TYPES[declaration.name])
        self.connection = ConnectionBuilder(
            compilation, object_type_of(field.type), details, self.shape.root
        )

    async def resolve(self, run: Run) -> Any:
        connection, _count = await self.page_with_count(run)
        return connection

    async def page_with_count(
        self,
        run: Run,
        condition: ColumnElement[bool] | None = None,
        count: Callable[[bool], Coroutine[Any, Any, int]] | None = None,
    ) -> tuple[Any, int | None]:
        """The connection over the rows that match `condition` too, and a count run beside
        its page: its own totalCount, or `count`, one the caller wants (the report's total)."""
        request = connection_request(
            self.declaration, self.arguments.values(run), run.settings.max_page_size
        )
        if condition is not None:
            request = replace(request, condition=and_(request.condition, condition))

        async def fetch_page() -> Page | None:
            if not self.connection.needs_page:
                return None
            statement = root_connection_statement(self.shape, self.declaration, request, run)
            page = page_of(list(await run.rows(*statement)), request.page)
            await fetch_children(self.shape, run, page.rows)
            # Every row is in; the connection goes back before the response is built, so
            # under load requests hold connections only while their statements run.
            await run.close()
            return page

        def count_rows(beside: bool) -> Coroutine[Any, Any, int]:
            return count_visible(run, self.declaration, request.condition, beside=beside)

        def build(page: Page | None) -> dict[str, Any]:
            return self.connection.build(page, None, request.keys, run.results)

        connection, total = await page_and_count(
            fetch_page, count_rows if self.connection.needs_count else count, build
        )
        if self.connection.needs_count:
            self.connection.set_count(connection, total)
        return connection, total


# How a plan makes the detail of a field it fills in itself: from the schema field and its nodes.
PlannedField = Callable[[GraphQLField, list[FieldDetails]], Any]


def _nothing_to_plan(_field: GraphQLField, _details: list[FieldDetails]) -> None:
    return None


class HeaderObject:
    """The selected fields of an object answered from a report's header (the report, the
    summary): `__typename`, the header's own fields (plain values, built without resolvers),
    and the fields the plan fills in, each with the detail `planned[name]` made for it."""

    def __init__(
        self,
        compilation: Compilation,
        object_type: GraphQLObjectType,
        details: list[FieldDetails],
        planned: dict[str, PlannedField],
    ) -> None:
        self.planned = planned
        # (response key, field name, detail): for the header's fields, the Python name and
        # the value's builder.
        self.fields: list[tuple[str, str, Any]] = []
        for key, name, field_details in compilation.selections(object_type, details):
            if name == "__typename":
                self.fields.append((key, name, object_type.name))
                continue
            field = object_type.fields[name]
            if name in planned:
                self.fields.append((key, name, planned[name](field, field_details)))
            else:
                header = plain_builder(compilation, field.type, field_details)
                self.fields.append((key, strawberry_python_name(field), header))

    def selects(self, *names: str) -> bool:
        """Whether any of these fields is selected."""
        return any(name in names for _, name, _ in self.fields)

    def build(self, header: Any, planned: Callable[[str, str, Any], Any]) -> dict[str, Any]:
        """The object: the header's fields from `header`, the others from `planned(response
        key, field name, detail)`."""
        built: dict[str, Any] = {}
        for key, name, detail in self.fields:
            if name == "__typename":
                built[key] = detail
            elif name in self.planned:
                built[key] = planned(key, name, detail)
            else:
                built[key] = detail(getattr(header, name))
        return built


class ReportPlan(RootPlan):
    """`callbacksScheduledDetails`: the header from the arguments, the rows and the total from
    the condition they share."""

    def __init__(
        self, compilation: Compilation, field: GraphQLField, details: list[FieldDetails]
    ) -> None:
        self.arguments = compilation.arguments(field, details)

        def rows(rows_field: GraphQLField, rows_details: list[FieldDetails]) -> RootConnectionPlan:
            return RootConnectionPlan(compilation, declarations.CALLBACK, rows_field, rows_details)

        self.report = HeaderObject(
            compilation,
            object_type_of(field.type),
            details,
            {"rows": rows, "totalRecords": _nothing_to_plan, "csvUrl": _nothing_to_plan},
        )

    async def resolve(self, run: Run) -> Any:
        arguments = self.arguments.values(run)
        header = report_header(run.settings, arguments.get("time_period"), arguments.get("filters"))

        def count_records(beside: bool) -> Coroutine[Any, Any, int]:
            return count_visible(run, declarations.CALLBACK, header.condition, beside=beside)

        # The total runs beside the first page of rows: they share the report's condition.
        total: int | None = None
        wants_total = self.report.selects("totalRecords")
        pages: dict[str, Any] = {}
        for key, name, detail in self.report.fields:
            if name == "rows":
                beside = count_records if wants_total and total is None else None
                pages[key], counted = await detail.page_with_count(run, header.condition, beside)
                if beside is not None:
                    total = counted
        if wants_total and total is None:
            total = await count_records(False)

        def planned(key: str, name: str, _detail: Any) -> Any:
            if name == "rows":
                return pages[key]
            if name == "totalRecords":
                return total
            return signed_csv_path(
                header.csv_parameters,
                principal=run.require_principal(),
                settings=run.settings,
                now=header.query_time,
            )

        return self.report.build(header, planned)


class SummaryPlan(RootPlan):
    """`callbacksScheduledSummary`: the report's header from the arguments, and the groups and
    their total from one statement (only when either is selected), built without resolvers."""

    def __init__(
        self, compilation: Compilation, field: GraphQLField, details: list[FieldDetails]
    ) -> None:
        self.arguments = compilation.arguments(field, details)

        def groups(groups_field: GraphQLField, groups_details: list[FieldDetails]) -> Any:
            return plain_builder(compilation, groups_field.type, groups_details)

        self.summary = HeaderObject(
            compilation,
            object_type_of(field.type),
            details,
            {"totalRecords": _nothing_to_plan, "groups": groups},
        )
        self.counts = self.summary.selects("totalRecords", "groups")
        self.statements = StatementTemplates(_summary)

    async def resolve(self, run: Run) -> Any:
        arguments = self.arguments.values(run)
        group_by = list(arguments["group_by"])
        check_group_by(group_by)
        header = report_header(run.settings, arguments.get("time_period"), arguments.get("filters"))
        counts = None
        if self.counts:
            # The caller's scope as the report's rows have it (the general path's sessions add
            # the same rule).
            parts = (header.condition, *run.scope_parts([Callback]))
            rows = await run.rows(*self.statements.statement(tuple(group_by), parts))
            await run.close()
            counts = gather_summary_groups(rows, group_by, header.time_period.time_zone)

        def planned(_key: str, name: str, detail: Any) -> Any:
            if name == "totalRecords":
                return counts.total if counts is not None else None
            return detail(counts.groups if counts is not None else None)

        return self.summary.build(header, planned)


def _summary(group_by: Any, parts: StatementParts) -> Select[Any]:
    """The summary's statement, from its dimensions and parts (see `StatementTemplates`)."""
    condition, *scope_parts = parts
    visible = visible_in([Callback], scope_parts)
    return summary_statement(and_(condition, visible(Callback)), group_by)


class EntityLookup:
    """One entity by its key: one statement, with its relations joined, and one per level of
    what it has many of."""

    def __init__(
        self,
        compilation: Compilation,
        entity: EntityType,
        object_type: GraphQLObjectType,
        details: list[FieldDetails],
    ) -> None:
        self.entity = entity
        self.shape = RowShape(compilation, entity)
        self.build = entity_builder(compilation, object_type, details, self.shape.root)
        self.statements = StatementTemplates(self._statement)

    def _statement(self, statics: Any, parts: StatementParts) -> Select[Any]:
        """The row with this key, from the statement's parts (see `StatementTemplates`)."""
        found_by_key, *scope_parts = parts
        visible = visible_in(self.shape.scoped_models, scope_parts)
        found = visible_rows(self.entity.model, visible, found_by_key).subquery("found")
        # The row is found first and its relations joined to it alone (as for a page).
        return self.shape.select_from(found, visible)

    async def load(self, run: Run, key: Any) -> Any:
        model = self.entity.model
        found_by_key = getattr(model, self.entity.key) == key
        scope_parts = run.scope_parts(self.shape.scoped_models)
        rows = await run.rows(*self.statements.statement(None, (found_by_key, *scope_parts)))
        if rows:
            await fetch_children(self.shape, run, rows)
        await run.close()  # as for a page: no connection held while building
        return self.build(rows[0], run.results) if rows else None


class LookupPlan(RootPlan):
    """`campaign(name:)`, `callback(callbackId:)` and the like: null when nothing (that the
    caller may see) has the key."""

    def __init__(
        self,
        compilation: Compilation,
        entity: EntityType,
        field: GraphQLField,
        details: list[FieldDetails],
    ) -> None:
        self.arguments = compilation.arguments(field, details)
        self.lookup = EntityLookup(compilation, entity, object_type_of(field.type), details)

    async def resolve(self, run: Run) -> Any:
        (key,) = self.arguments.values(run).values()
        return await self.lookup.load(run, key)


class NodePlan(RootPlan):
    """`node(id:)`: a lookup planned for every type the ID may name."""

    def __init__(
        self, compilation: Compilation, field: GraphQLField, details: list[FieldDetails]
    ) -> None:
        self.arguments = compilation.arguments(field, details)
        self.lookups = {
            name: EntityLookup(compilation, entity, object_type, details)
            for name, entity in ENTITY_TYPES.items()
            if isinstance(object_type := compilation.schema.get_type(name), GraphQLObjectType)
        }

    async def resolve(self, run: Run) -> Any:
        value = str(self.arguments.values(run)["id"])
        type_name, key = parse_global_id(value)
        lookup = self.lookups.get(type_name)
        if lookup is None:
            raise BadUserInputError(f"id {value!r} is not an ID this API issued")
        try:
            typed_key = lookup.entity.key_type(key)
        except ValueError:
            raise BadUserInputError(f"id {value!r} is not an ID this API issued") from None
        return await lookup.load(run, typed_key)


def root_plan(
    compilation: Compilation, query_type: GraphQLObjectType, details: list[FieldDetails]
) -> RootPlan:
    """The plan for one root field, or NotCompilableError for one the path does not cover
    (introspection among them)."""
    name = details[0].node.name.value
    if name == "__typename":
        return TypeNamePlan(query_type.name)
    field = query_type.fields.get(name)
    if field is None:
        raise NotCompilableError(f"root field {name}")
    python_name = strawberry_python_name(field)
    if python_name == "callbacks_scheduled_details":
        return ReportPlan(compilation, field, details)
    if python_name == "callbacks_scheduled_summary":
        return SummaryPlan(compilation, field, details)
    if python_name == "node":
        return NodePlan(compilation, field, details)
    returned = object_type_of(field.type)
    if returned.name in ENTITY_TYPES and len(field.args) == 1:
        return LookupPlan(compilation, ENTITY_TYPES[returned.name], field, details)
    node_name = returned.name.removesuffix("Connection")
    entity = ENTITY_TYPES.get(node_name)
    if returned.name.endswith("Connection") and entity and entity.declaration is not None:
        return RootConnectionPlan(compilation, entity.declaration, field, details)
    raise NotCompilableError(f"root field {name}")
