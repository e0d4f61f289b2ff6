"""Filter and order inputs generated from one declaration per entity, and their SQL.

Each domain declares its filterable fields, relations and sortable fields once in an
`EntityQueryDeclaration`; this module turns that into the GraphQL inputs `<Entity>Filter`,
`<Entity>OrderField` and `<Entity>Order`, and turns a received filter into one SQL condition.

Null semantics are two-valued so that `not` behaves: a null never equals, compares or matches
anything, and `ne` / `notIn` include nulls.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import strawberry
from sqlalchemy import ColumnElement, and_, false, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean

from service.errors import BadUserInputError
from service.graph.pagination import SortKey, SqlColumn


@strawberry.enum(description="Sort direction.")
class OrderDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@dataclass(frozen=True, slots=True)
class FilterField:
    """A filterable field: its column and Python type (str, int, datetime, bool or an enum)."""

    column: SqlColumn
    value_type: type
    nullable: bool = False

    @property
    def attribute(self) -> str:
        """The ORM attribute the field reads, e.g. `created_at` for `creation_time`."""
        return str(self.column.key)


@dataclass(frozen=True, slots=True)
class DerivedField:
    """A filterable field no column stores but the row's columns determine, e.g. a contact's
    `excluded` (its `excluded_at` is set).

    The rule is written twice, side by side, because it runs in two places: `expression` in
    SQL for filters, `compute` in Python over the `inputs` attributes' values for rows already
    read (the general path reads ORM rows, the compiled path plain rows; both call it). Not
    sortable: cursors carry stored values.
    """

    expression: ColumnElement[Any]
    value_type: type
    inputs: tuple[str, ...]
    compute: Callable[..., Any]
    description: str

    @property
    def column(self) -> ColumnElement[Any]:
        """The SQL expression filters compare, as a stored field's column."""
        return self.expression

    @property
    def nullable(self) -> bool:
        """A derived value is never null: its rule always gives one."""
        return False

    def value(self, row: Any) -> Any:
        """The field's value on an ORM row."""
        return self.compute(*(getattr(row, attribute) for attribute in self.inputs))


@dataclass(frozen=True, slots=True)
class RelationFilter:
    """A filter on a related entity: rows whose `local` column is among the related `remote` ids."""

    target_name: str
    target: Callable[[], EntityQueryDeclaration]
    local: SqlColumn
    remote: SqlColumn
    nullable: bool = False


@dataclass(slots=True)
class EntityQueryDeclaration:
    """Everything filterable and sortable about one entity, declared once.

    `fields` maps each GraphQL field (by its Python name) to the column it reads, and
    `derived_fields` each field computed from columns to its rule; the node types take their
    values from both (`values`), so the map is written nowhere else. `order_fields` names the
    stored fields lists sort by; `<Entity>OrderField` has each in capitals.
    """

    name: str
    model: type[Any]
    fields: dict[str, FilterField]
    order_fields: Sequence[str]
    unique_key: str
    default_order: Sequence[tuple[str, OrderDirection]]
    root_list_description: str
    relations: dict[str, RelationFilter] = field(default_factory=dict)
    derived_fields: dict[str, DerivedField] = field(default_factory=dict)
    filter_input: type = field(init=False)
    order_field_enum: type[enum.Enum] = field(init=False)
    order_input: type = field(init=False)

    def values(self, row: Any) -> dict[str, Any]:
        """A row's value of every declared field, by field name."""
        values = {name: getattr(row, field.attribute) for name, field in self.fields.items()}
        values.update((name, derived.value(row)) for name, derived in self.derived_fields.items())
        return values


def declare(declaration: EntityQueryDeclaration) -> EntityQueryDeclaration:
    """Generate the GraphQL filter and order inputs of an entity declaration."""
    named = [*declaration.order_fields, declaration.unique_key]
    named += [name.lower() for name, _direction in declaration.default_order]
    unknown = sorted(set(named) - set(declaration.fields))
    if unknown:  # a typo fails at import, not on a client's first request
        raise ValueError(
            f"{declaration.name} orders by undeclared or derived fields: {', '.join(unknown)}"
        )
    twice = sorted(set(declaration.derived_fields) & set(declaration.fields))
    if twice:
        raise ValueError(f"{declaration.name} declares fields twice: {', '.join(twice)}")
    declaration.filter_input = _filter_input(declaration)
    declaration.order_field_enum = _order_field_enum(declaration)
    declaration.order_input = _order_input(declaration)
    return declaration


def _register(cls: type) -> type:
    # Generated inputs refer to each other by name; Strawberry resolves those names in the
    # namespace of the class's module, so they live in this module's globals.
    cls.__module__ = __name__
    globals()[cls.__name__] = cls
    return cls


def _operator_filter(
    name: str,
    value_type: str,
    description: str,
    *,
    compares: bool = True,
    orders: bool = False,
    matches_text: bool = False,
) -> type:
    """Generate the operator input of one value type, e.g. `IntFilter`; `value_type` is the
    annotation of a value (a name this module knows)."""
    one, many = f"{value_type} | None", f"list[{value_type}] | None"
    fields: dict[str, tuple[str, Any]] = {"eq": (one, None)}
    if compares:
        fields["ne"] = (one, None)
        fields["in_"] = (many, strawberry.field(name="in", default=None))
        fields["not_in"] = (many, None)
    if orders:
        fields.update((operator, (one, None)) for operator in ("lt", "lte", "gt", "gte"))
    if matches_text:
        fields["contains"] = (
            one,
            strawberry.field(default=None, description="Case-sensitive substring."),
        )
        fields["starts_with"] = (
            one,
            strawberry.field(default=None, description="Case-sensitive prefix."),
        )
    fields["is_null"] = ("bool | None", None)
    namespace: dict[str, Any] = {key: default for key, (_, default) in fields.items()}
    namespace["__annotations__"] = {key: annotation for key, (annotation, _) in fields.items()}
    return strawberry.input(_register(type(name, (), namespace)), description=description)


_SCALAR_FILTERS: dict[type, type] = {
    str: _operator_filter(
        "StringFilter",
        "str",
        "Conditions on a text field; all given conditions must hold.",
        orders=True,
        matches_text=True,
    ),
    int: _operator_filter(
        "IntFilter",
        "int",
        "Conditions on a whole-number field; all given conditions must hold.",
        orders=True,
    ),
    dt.datetime: _operator_filter(
        "DateTimeFilter",
        "dt.datetime",
        "Conditions on a time field; times without an offset are UTC.",
        orders=True,
    ),
    bool: _operator_filter(
        "BooleanFilter", "bool", "Conditions on a true/false field.", compares=False
    ),
}
_ENUM_FILTERS: dict[type[enum.Enum], type] = {}


def _enum_filter(enum_type: type[enum.Enum]) -> type:
    if enum_type not in _ENUM_FILTERS:
        globals()[enum_type.__name__] = enum_type  # named by the generated annotations
        _ENUM_FILTERS[enum_type] = _operator_filter(
            f"{enum_type.__name__}Filter",
            enum_type.__name__,
            f"Conditions on a {enum_type.__name__} field.",
        )
    return _ENUM_FILTERS[enum_type]


def _operator_input(value_type: type) -> type:
    """The operator input of a value type, e.g. `IntFilter` for int."""
    if issubclass(value_type, enum.Enum):
        return _enum_filter(value_type)
    return _SCALAR_FILTERS[value_type]


def _filter_input(declaration: EntityQueryDeclaration) -> type:
    name = f"{declaration.name}Filter"
    annotations: dict[str, str] = {}
    namespace: dict[str, Any] = {}
    for field_name, filter_field in declaration.fields.items():
        annotations[field_name] = f"{_operator_input(filter_field.value_type).__name__} | None"
        namespace[field_name] = None
    for field_name, derived in declaration.derived_fields.items():
        annotations[field_name] = f"{_operator_input(derived.value_type).__name__} | None"
        namespace[field_name] = strawberry.field(default=None, description=derived.description)
    for relation_name, relation in declaration.relations.items():
        # Named, not referenced: the target's input may be generated later (or be this one).
        annotations[relation_name] = f"{relation.target_name}Filter | None"
        namespace[relation_name] = None
    annotations["and_"] = f"list[{name}] | None"
    annotations["or_"] = f"list[{name}] | None"
    annotations["not_"] = f"{name} | None"
    namespace["and_"] = strawberry.field(name="and", default=None, description="All must hold.")
    namespace["or_"] = strawberry.field(name="or", default=None, description="Any must hold.")
    namespace["not_"] = strawberry.field(name="not", default=None, description="Must not hold.")
    namespace["__annotations__"] = annotations
    cls = _register(type(name, (), namespace))
    return strawberry.input(
        cls, description=f"Conditions on {declaration.name} objects; all given ones must hold."
    )


def _order_field_enum(declaration: EntityQueryDeclaration) -> type[enum.Enum]:
    members = {name.upper(): name.upper() for name in declaration.order_fields}
    enum_type = enum.Enum(f"{declaration.name}OrderField", members)  # type: ignore[misc]
    _register(enum_type)
    return strawberry.enum(enum_type, description=f"Fields {declaration.name} lists sort by.")


def _order_input(declaration: EntityQueryDeclaration) -> type:
    name = f"{declaration.name}Order"
    namespace: dict[str, Any] = {
        "__annotations__": {
            "field": f"{declaration.name}OrderField",
            "direction": "OrderDirection",
        },
        "direction": OrderDirection.ASC,
    }
    cls = _register(type(name, (), namespace))
    return strawberry.input(
        cls,
        description=f"One sort key for {declaration.name} lists; later keys break ties, and "
        "the unique ID breaks any tie left.",
    )


def sort_keys(declaration: EntityQueryDeclaration, order_by: Sequence[Any] | None) -> list[SortKey]:
    """The order asked for (or the default), always ending with the unique key."""
    requested = (
        [(entry.field.name, entry.direction) for entry in order_by]
        if order_by
        else list(declaration.default_order)
    )
    keys: list[SortKey] = []
    seen: set[str] = set()
    for field_name, direction in requested:
        if field_name in seen:
            raise BadUserInputError(f"orderBy names {field_name} twice")
        seen.add(field_name)
        ordered = declaration.fields[field_name.lower()]
        keys.append(SortKey(ordered, descending=direction == OrderDirection.DESC))
    unique = declaration.fields[declaration.unique_key]
    if all(key.field.attribute != unique.attribute for key in keys):
        last_descending = keys[-1].descending if keys else False
        keys.append(SortKey(unique, last_descending))
    return keys


def filter_condition(
    declaration: EntityQueryDeclaration, filter_input: Any | None
) -> ColumnElement[bool]:
    """One SQL condition for a received `<Entity>Filter` (true when there is none)."""
    if filter_input is None:
        return true()
    conditions: list[ColumnElement[bool]] = []
    filtered: list[tuple[str, FilterField | DerivedField]] = [
        *declaration.fields.items(),
        *declaration.derived_fields.items(),
    ]
    for field_name, filter_field in filtered:
        operators = getattr(filter_input, field_name)
        if operators is not None:
            conditions.extend(_operator_conditions(filter_field, operators))
    for relation_name, relation in declaration.relations.items():
        related = getattr(filter_input, relation_name)
        if related is not None:
            target = relation.target()
            matching = select(relation.remote).where(filter_condition(target, related))
            condition: ColumnElement[bool] = relation.local.in_(matching)
            if relation.nullable:
                condition = and_(relation.local.is_not(None), condition)
            conditions.append(condition)
    if filter_input.and_ is not None:
        conditions.append(
            and_(true(), *(filter_condition(declaration, f) for f in filter_input.and_))
        )
    if filter_input.or_ is not None:
        conditions.append(
            or_(false(), *(filter_condition(declaration, f) for f in filter_input.or_))
        )
    if filter_input.not_ is not None:
        conditions.append(not_(filter_condition(declaration, filter_input.not_)))
    return and_(true(), *conditions)


def _operator_conditions(
    filter_field: FilterField | DerivedField, operators: Any
) -> list[ColumnElement[bool]]:
    column = filter_field.column
    conditions: list[ColumnElement[bool]] = []

    def present(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        # NULL compared with anything is unknown; make it false so `not` flips it to true.
        return and_(column.is_not(None), condition) if filter_field.nullable else condition

    for operator in ("eq", "lt", "lte", "gt", "gte", "in_", "contains", "starts_with"):
        value = getattr(operators, operator, None)
        if value is None:
            continue
        value = _check_value(value)
        if operator == "eq":
            conditions.append(present(column == value))
        elif operator == "lt":
            conditions.append(present(column < value))
        elif operator == "lte":
            conditions.append(present(column <= value))
        elif operator == "gt":
            conditions.append(present(column > value))
        elif operator == "gte":
            conditions.append(present(column >= value))
        elif operator == "in_":
            conditions.append(present(column.in_(value)))
        elif operator == "contains":
            conditions.append(present(Contains(column, value)))
        else:
            conditions.append(present(StartsWith(column, value)))
    ne = getattr(operators, "ne", None)
    if ne is not None:
        conditions.append(column.is_distinct_from(_check_value(ne)))
    not_in = getattr(operators, "not_in", None)
    if not_in is not None:
        not_among = column.not_in(_check_value(not_in))
        conditions.append(or_(column.is_(None), not_among) if filter_field.nullable else not_among)
    is_null = getattr(operators, "is_null", None)
    if is_null is not None:
        conditions.append(column.is_(None) if is_null else column.is_not(None))
    return conditions


def _check_value(value: Any) -> Any:
    # Times without an offset are UTC (SPEC 3).
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    if isinstance(value, list):
        return [_check_value(item) for item in value]
    return value


class Contains(FunctionElement[bool]):
    """Case-sensitive substring test, the same on both stores (SQLite's LIKE ignores case)."""

    type = Boolean()
    inherit_cache = True
    name = "contains"


class StartsWith(FunctionElement[bool]):
    """Case-sensitive prefix test, the same on both stores."""

    type = Boolean()
    inherit_cache = True
    name = "starts_with"


@compiles(Contains)
def _contains_sqlite(element: Contains, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    return f"(instr({compiler.process(column, **kw)}, {compiler.process(value, **kw)}) > 0)"


@compiles(Contains, "postgresql")
def _contains_postgresql(element: Contains, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    return f"(strpos({compiler.process(column, **kw)}, {compiler.process(value, **kw)}) > 0)"


@compiles(StartsWith)
def _starts_with(element: StartsWith, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    column_sql, value_sql = compiler.process(column, **kw), compiler.process(value, **kw)
    return f"(substr({column_sql}, 1, length({value_sql})) = {value_sql})"
