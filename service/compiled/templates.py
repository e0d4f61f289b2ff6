"""Statements built once per shape and run again with each request's values.

Building a report page's statement with SQLAlchemy Core (forty columns, five joins, a
subquery) and computing its cache key cost more per request than PostgreSQL spends running
it. A plan's statements differ between requests in their values far more often than in
their shape, so each is built from a few small *parts* (the conditions, the cursor's
condition, the limit, the row scope's conditions): only the parts are built per request,
and the statement is made from them once per shape, then run with the parts' values.

What keeps an answer right: a statement is made by a function of its parts and of *statics*
(hashable plan inputs such as the sort keys), nothing else, and it is looked up by the
statics and by SQLAlchemy's own cache key of each part, which names every structural detail
of a part (shared parameters included) and leaves out only its bound values. Before the
statement is made, the parts' parameters are renamed in the order their cache keys list
them (`template_part_0`, `template_part_1`, ...), so each request's values go in by those
names, whichever statement object SQLAlchemy compiled first for that shape.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import replacement_traverse

logger = logging.getLogger(__name__)

StatementParts = Sequence[ColumnElement[Any]]
# Statics and parts in, a statement out; it must read nothing else.
StatementBuild = Callable[[Any, StatementParts], Select[Any]]


class StatementTemplates:
    """The templates of one kind of statement, most recently used kept (`capacity` shapes)."""

    def __init__(self, build: StatementBuild, capacity: int = 64) -> None:
        self._build = build
        self._capacity = capacity
        self._templates: OrderedDict[Hashable, Select[Any] | None] = OrderedDict()
        self.made = 0  # how many statements were built (read by tests)

    def statement(self, statics: Any, parts: StatementParts) -> tuple[Select[Any], dict[str, Any]]:
        """The statement for these parts and the values to run it with."""
        bound: list[BindParameter[Any]] = []
        shape: list[Any] = []
        for part in parts:
            cache_key = part._generate_cache_key()
            if cache_key is None:  # a part SQLAlchemy cannot cache: made as it is
                return self._make(statics, parts), {}
            shape.append(cache_key.key)
            bound.extend(cache_key.bindparams)
        # A parameter object in two parts is one value (and one name) in the template: the
        # parts' own cache keys cannot show that, so the key says where objects repeat.
        positions: dict[int, int] = {}
        repeats = tuple(
            positions.setdefault(id(parameter), number) for number, parameter in enumerate(bound)
        )
        key = (statics, tuple(shape), repeats if len(positions) < len(bound) else None)
        if key in self._templates:
            self._templates.move_to_end(key)
            template = self._templates[key]
        else:
            template = self._template(statics, parts, bound)
            self._templates[key] = template
            if len(self._templates) > self._capacity:
                self._templates.popitem(last=False)
        if template is None:
            return self._make(statics, parts), {}
        return template, {
            _parameter_name(number): parameter.effective_value
            for number, parameter in enumerate(bound)
        }

    def _template(
        self, statics: Hashable, parts: StatementParts, bound: list[BindParameter[Any]]
    ) -> Select[Any] | None:
        """The statement made from the parts with their parameters named by position; None
        if the build did not keep every one of them (it is then made for every request)."""
        names: dict[int, str] = {}
        for number, parameter in enumerate(bound):
            names.setdefault(id(parameter), _parameter_name(number))

        def renamed(element: Any, **_options: Any) -> Any:
            if isinstance(element, BindParameter) and id(element) in names:
                return BindParameter(
                    names[id(element)],
                    element.value,
                    type_=element.type,
                    callable_=element.callable,
                    expanding=element.expanding,
                    literal_execute=element.literal_execute,
                )
            return None

        statement = self._make(statics, [replacement_traverse(part, {}, renamed) for part in parts])
        cache_key = statement._generate_cache_key()
        kept = set() if cache_key is None else {p.key for p in cache_key.bindparams}
        if not kept.issuperset(names.values()):
            logger.warning("a statement's build did not keep its parts' parameters")
            return None
        return statement

    def _make(self, statics: Hashable, parts: StatementParts) -> Select[Any]:
        self.made += 1
        return self._build(statics, parts)


def _parameter_name(number: int) -> str:
    return f"template_part_{number}"
