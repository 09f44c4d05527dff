"""The lazy coercion gives every value exactly what Typer's own adapter gives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from basecone_migrate.cli import coercion
from basecone_migrate.cli.coercion import LazyRuntimeParam


def _app(seen: dict[str, Any]) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def run(
        name: Annotated[str, typer.Argument()],
        text: Annotated[str | None, typer.Option()] = None,
        count: Annotated[int | None, typer.Option()] = None,
        limit: Annotated[int, typer.Option(min=1, max=10)] = 5,
        every: Annotated[float, typer.Option(min=0.5, max=9)] = 1.5,
        path: Annotated[Path | None, typer.Option()] = None,
        many: Annotated[list[str] | None, typer.Option("--many")] = None,
        flag: Annotated[bool, typer.Option("--flag")] = False,
    ) -> None:
        seen.update(name=name, text=text, count=count, limit=limit, path=path, many=many, flag=flag,
                    every=every)

    @app.command()
    def other() -> None:
        pass

    return app


CASES = [
    ["run", "x"],
    ["run", "naïve ünïcode", "--text", "", "--count", "12", "--limit", "3", "--path", "a/b",
     "--many", "one", "--many", "two", "--flag"],
    ["run", "x", "--count", "twelve"],
    ["run", "x", "--limit", "11"],
    ["run", "x", "--limit", "10"],
    ["run", "x", "--limit", "0"],
    ["run", "x", "--count", "0042", "--limit", "07"],
    ["run", "x", "--count", "-3"],
    ["run", "x", "--count", " 5"],
    ["run", "x", "--count", "1_000"],
    ["run", "x", "--count", "٣"],
    ["run", "x", "--every", "2.5"],
    ["run", "x", "--every", "0.1"],
    ["run", "x", "--count", "99999999999999999999999"],
]


def _outcome(args: list[str]) -> tuple[int, dict[str, Any], str]:
    seen: dict[str, Any] = {}
    result = CliRunner().invoke(_app(seen), args)
    return result.exit_code, seen, result.output


@pytest.mark.parametrize("args", CASES, ids=" ".join)
def test_values_and_errors_are_typers_own(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.core import _TyperParameter

    def typers_own(self: Any) -> Any:  # Typer 0.29's get_runtime_param, as shipped
        from typer._coercion import build_runtime_param

        if self._runtime_param is None:
            self._runtime_param = build_runtime_param(self.type_descriptor)
        return self._runtime_param

    monkeypatch.setattr(_TyperParameter, "get_runtime_param", typers_own)
    expected = _outcome(args)
    monkeypatch.setattr(_TyperParameter, "get_runtime_param", coercion.get_runtime_param)
    actual = _outcome(args)
    assert actual == expected
    assert type(actual[1].get("path")) is type(expected[1].get("path"))


def test_absent_and_plain_text_values_need_no_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.core import _TyperParameter

    monkeypatch.setattr(_TyperParameter, "get_runtime_param", coercion.get_runtime_param)
    seen: dict[str, Any] = {}
    command = typer.main.get_command(_app(seen))
    result = CliRunner().invoke(_app(seen), ["run", "x", "--text", "y"])
    assert result.exit_code == 0 and seen["text"] == "y" and seen["count"] is None
    params = {p.name: p for p in command.commands["run"].params}  # type: ignore[attr-defined]
    runtime = params["text"].get_runtime_param()
    assert isinstance(runtime, LazyRuntimeParam)
    assert runtime.coerce("y", params["text"], None) == "y"
    assert runtime.coerce(None, params["text"], None) is None
    assert params["many"].get_runtime_param().coerce(None, params["many"], None) == ()
    assert runtime._real is None  # no pydantic adapter was built for these
    limit = params["limit"].get_runtime_param()
    assert limit.coerce(5, params["limit"], None) == 5 and limit._real is None
    every = params["every"].get_runtime_param()
    assert every.coerce(1.5, params["every"], None) == 1.5 and every._real is None
