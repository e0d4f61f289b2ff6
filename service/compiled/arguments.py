"""Field arguments converted to Python values by converters made once per field.

Strawberry's `convert_arguments` works out, on every call, what each argument's type is
(optional, list, scalar, enum, input object, lazy) and how each input field is named; for a
report request that took about a tenth of the service's time. The same decisions are made
here once, when a plan is compiled, into closures that only build the values: the same
values, by the same rules (`convert_argument` is followed case by case). A type these
closures do not cover (`Maybe`, a global ID, an input type with its own `from_input`) leaves
the whole field to Strawberry's function.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING
from typing import TYPE_CHECKING, Any

from strawberry.relay.types import GlobalID
from strawberry.types.arguments import (
    StrawberryArgument,
    _is_leaf_type,
    _is_optional_leaf_type,
)
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import has_enum_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

if TYPE_CHECKING:
    import strawberry

Converter = Callable[[Any], Any]


class UnsupportedArgumentError(Exception):
    """An argument type the converters leave to Strawberry."""


class ArgumentConverters:
    """Makes the converters of a schema's argument types, each input type's once."""

    def __init__(self, scalar_registry: Mapping[object, Any], config: Any) -> None:
        self.scalar_registry = scalar_registry
        self.config = config
        self._objects: dict[type, Converter] = {}

    def field(self, arguments: Sequence[StrawberryArgument]) -> Converter | None:
        """A converter of a field's raw argument values (by GraphQL name) to its resolver's
        keyword arguments (by Python name), or None to leave them to Strawberry."""
        made_before = dict(self._objects)
        try:
            converters = [
                (
                    self.config.name_converter.from_argument(argument),
                    argument.python_name,
                    self.value(argument.type),
                )
                for argument in arguments
            ]
        except UnsupportedArgumentError:
            # Converters made on the way may refer to an unfinished one: none is kept.
            self._objects = made_before
            return None

        def convert(raw: dict[str, Any]) -> dict[str, Any]:
            return {
                python_name: convert_value(raw[name])
                for name, python_name, convert_value in converters
                if name in raw
            }

        return convert

    def value(self, type_: Any) -> Converter:
        """The converter of one value of `type_` (see strawberry's `convert_argument`)."""
        if isinstance(type_, StrawberryMaybe):
            raise UnsupportedArgumentError("Maybe")
        if isinstance(type_, StrawberryOptional):
            return self.value(type_.of_type)
        if isinstance(type_, StrawberryList):
            return self._list(type_)
        if _is_leaf_type(type_, self.scalar_registry):
            if type_ is GlobalID:
                raise UnsupportedArgumentError("GlobalID")
            return _unless_missing(_same)
        if isinstance(type_, LazyType):
            return self.value(type_.resolve_type())
        if has_enum_definition(type_):
            return _unless_missing(_same)  # graphql-core gives the member already
        if has_object_definition(type_):
            return self._object(type_)
        raise UnsupportedArgumentError(str(type_))

    def _list(self, type_: StrawberryList) -> Converter:
        item_type = type_.of_type
        if _is_leaf_type(
            item_type, self.scalar_registry, skip_classes=(GlobalID,)
        ) or _is_optional_leaf_type(item_type, self.scalar_registry, skip_classes=(GlobalID,)):
            # A copy all the same: graphql-core shares one default list between requests.
            return _unless_missing(list)
        item = self.value(item_type)
        return _unless_missing(lambda values: [item(value) for value in values])

    def _object(self, type_: type) -> Converter:
        # Input types may contain themselves (a filter's `and`, `or`, `not`): each is made
        # once, and found here while its fields are being made.
        made = self._objects.get(type_)
        if made is not None:
            return made
        definition = type_.__strawberry_definition__  # type: ignore[attr-defined]
        if definition.from_input is not None:
            raise UnsupportedArgumentError(f"{type_.__name__} builds its own value")
        # Fields without a default of their own are None unless given (graphql-core has
        # checked that the required ones are).
        defaults = {
            field.python_name: None
            for field in definition.fields
            if definition.is_input
            and field.default_value is MISSING
            and field.default_factory is MISSING
        }
        fields: list[tuple[str, str, Converter]] = []

        def convert(value: Mapping[str, Any]) -> Any:
            keywords = dict(defaults)
            for name, python_name, convert_field in fields:
                if name in value:
                    keywords[python_name] = convert_field(value[name])
            return type_(**keywords)

        # Kept before its fields are made, for the fields that contain it; `field` drops it
        # again if one of them cannot be converted here.
        self._objects[type_] = made = _unless_missing(convert)
        for field in definition.fields:
            field_type = field.resolve_type(type_definition=definition)
            name = self.config.name_converter.from_field(field)
            fields.append((name, field.python_name, self.value(field_type)))
        return made


def _same(value: Any) -> Any:
    return value


def _unless_missing(convert: Converter) -> Converter:
    """`convert`, with null and UNSET passed through as they are."""

    def converted(value: Any) -> Any:
        if value is None or value is UNSET:
            return value
        return convert(value)

    return converted


_CONVERTERS: weakref.WeakKeyDictionary[strawberry.Schema, ArgumentConverters] = (
    weakref.WeakKeyDictionary()
)


def argument_converters(schema: strawberry.Schema) -> ArgumentConverters:
    """The converters of a schema's argument types (made once per schema)."""
    converters = _CONVERTERS.get(schema)
    if converters is None:
        converters = ArgumentConverters(schema.schema_converter.scalar_registry, schema.config)
        _CONVERTERS[schema] = converters
    return converters
