"""The one object every command receives: global options, settings, runtime, output.

Nothing is resolved until a command asks for it, so `--help` and usage errors
never read a config file or open a database.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from basecone_migrate.cli.output import Output
    from basecone_migrate.runtime import Runtime
    from basecone_migrate.settings import Settings

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout, nothing else.")
]
AsOption = Annotated[
    str | None,
    typer.Option("--as", metavar="EMAIL", help="Act as this user (same as the global --as)."),
]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print nothing but warnings and errors (and --json's document).")]
NoInputOption = Annotated[bool, typer.Option(
    "--no-input", help="Never ask: what an option leaves out is an error that names the option.")]


class CLI:
    def __init__(
        self,
        options: dict[str, str | None],
        config: Path | None,
        json_mode: bool,
        quiet: bool = False,
        no_input: bool = False,
    ) -> None:
        self.options = options
        self.config = config
        self.json_mode = json_mode
        self.quiet = quiet
        self.no_input = no_input

    def use(self, *, json: bool = False, as_: str | None = None, quiet: bool = False,
            no_input: bool = False) -> CLI:
        """Apply a command's own --json / --as / --quiet / --no-input on top of the global ones."""
        self.json_mode = self.json_mode or json
        self.quiet = self.quiet or quiet
        self.no_input = self.no_input or no_input
        if as_:
            self.options["user"] = as_
        return self

    @cached_property
    def settings(self) -> Settings:
        from basecone_migrate.settings import Settings

        settings = Settings.load(self.options, config_path=self.config)
        for warning in settings.warnings:
            self.out.warn(warning)
        return settings

    @cached_property
    def runtime(self) -> Runtime:
        from basecone_migrate.runtime import Runtime

        return Runtime(self.settings)

    @cached_property
    def out(self) -> Output:
        from basecone_migrate.cli.output import Output

        return Output(self.json_mode, quiet=self.quiet, no_input=self.no_input)

    def close(self) -> None:
        if "runtime" in self.__dict__:
            self.runtime.close()


def get(ctx: typer.Context, *, json: bool = False, as_: str | None = None) -> CLI:
    cli: Any = ctx.find_root().obj
    return cli.use(json=json, as_=as_)


def with_common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The command with --quiet/-q and --no-input after its name too (as --json and --as),
    applied to the run's CLI object before the command body runs."""
    signature = inspect.signature(command)
    if "quiet" in signature.parameters:
        return command

    @functools.wraps(command)
    def wrapper(*args: Any, quiet: bool = False, no_input: bool = False, **kwargs: Any) -> Any:
        ctx = kwargs.get("ctx") or next(a for a in args if isinstance(a, typer.Context))
        ctx.find_root().obj.use(quiet=quiet, no_input=no_input)
        return command(*args, **kwargs)

    extra = [inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False,
                               annotation=QuietOption),
             inspect.Parameter("no_input", inspect.Parameter.KEYWORD_ONLY, default=False,
                               annotation=NoInputOption)]
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *extra])
    wrapper.__annotations__ = {**command.__annotations__, "quiet": QuietOption,
                               "no_input": NoInputOption}
    return wrapper
