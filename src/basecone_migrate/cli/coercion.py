"""Typer's value coercion without pydantic where there is nothing to coerce.

Typer 0.29 coerces every parameter value through a pydantic ``TypeAdapter``, built the
first time the parameter is processed, even when the value is ``None`` (an option left
out) or already a ``str`` (what click hands over for a text option). Importing pydantic
and building those adapters was a fifth of the start-up of every command
(`benchmarks/scale.py` measures it against a bare ``import sqlalchemy``).

`install()` gives each parameter a lazy coercion: an absent value and a plain text value
are returned as Typer's own adapter would return them (``None``, ``()``, the same
``str``), and so is a number written in plain digits or an ``int`` default, when in its
range; any other value (an ``int``, a ``Path``, a choice, a list) goes to Typer's
adapter, built then, so its checks and messages are Typer's own. The one thing relied
on is ``_TyperParameter.get_runtime_param`` (Typer pins: ``typer>=0.29,<0.30``), and
`tests/unit/test_coercion.py` checks that values come out exactly as Typer's would.
"""

from typing import Any


class LazyRuntimeParam:
    """Stands in for Typer's ``RuntimeParam`` until a value needs real coercion."""

    __slots__ = ("descriptor", "_real")

    def __init__(self, descriptor: Any) -> None:
        self.descriptor = descriptor
        self._real: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:  # what RuntimeParam.coerce returns before any adapter is asked
            return () if (param.multiple or param.nargs == -1) else None
        if not (param.multiple or param.nargs != 1 or self.descriptor.is_choice):
            annotation = self.descriptor.annotation
            if type(value) is str and annotation is str:
                return value
            if annotation is int:
                if type(value) is str and 0 < len(value) <= 18 and value.isascii() and value.isdigit():
                    value = int(value)  # what pydantic makes of plain digits
                if type(value) is int and self._in_range(value):
                    return value  # plain digits, or a default such as --limit's 100
            if annotation is float and type(value) is float and self._in_range(value):
                return value  # a default such as --interval's 1.0
        if self._real is None:
            from typer._coercion import build_runtime_param

            self._real = build_runtime_param(self.descriptor)
        return self._real.coerce(value, param=param, ctx=ctx)

    def _in_range(self, value: float) -> bool:
        info = self.descriptor.parameter_info
        return ((info.min is None or value >= info.min) and (info.max is None or value <= info.max))


def install() -> None:
    """Make every Typer parameter coerce lazily (idempotent)."""
    from typer.core import _TyperParameter

    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]


def get_runtime_param(self: Any) -> Any:
    """``_TyperParameter.get_runtime_param``, lazily."""
    if self._runtime_param is None:
        self._runtime_param = LazyRuntimeParam(self.type_descriptor)
    return self._runtime_param
