"""Response objects as Python expressions, compiled once per plan.

A plan's node objects are built by one generated function each: a dict display whose values
index the statement's row directly (`{"callbackId": row[0], "creationTime": row[8], ...}`),
with nested to-one objects inlined. Calling one closure per field
per row, as a tree of builders does, costs several times more for the same dict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Expressions:
    """The names a generated function refers to, and the function made from an expression."""

    def __init__(self) -> None:
        self._names: dict[str, Any] = {}

    def name(self, value: Any) -> str:
        """A name the generated source can use for `value` (a function or a constant)."""
        name = f"_v{len(self._names)}"
        self._names[name] = value
        return name

    def function(self, expression: str, parameters: str = "row, results") -> Callable[..., Any]:
        """`lambda <parameters>: <expression>`, with every name given out so far. The source
        holds only row indexes, repr'd GraphQL names and the names given out here."""
        code = compile(f"lambda {parameters}: {expression}", "<compiled plan>", "eval")
        built: Callable[..., Any] = eval(code, dict(self._names))
        return built


def dict_display(entries: list[tuple[str, str]]) -> str:
    """The source of a dict of response keys (repr'd: they are GraphQL names) and values."""
    return "{" + ", ".join(f"{key!r}: {value}" for key, value in entries) + "}"


def unless_null(test: str, expression: str) -> str:
    """`expression`, or None when `test` (a row element) is null."""
    return f"(None if {test} is None else {expression})"
