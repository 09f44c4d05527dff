"""The one object every command receives: global options, settings, runtime, output.

Nothing is resolved until a command asks for it, so `--help` and usage errors
never read a config file or open a database.
"""

from __future__ import annotations

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


class CLI:
    def __init__(
        self,
        options: dict[str, str | None],
        config: Path | None,
        json_mode: bool,
    ) -> None:
        self.options = options
        self.config = config
        self.json_mode = json_mode

    def use(self, *, json: bool = False, as_: str | None = None) -> CLI:
        """Apply a command's own --json / --as on top of the global ones."""
        if json:
            self.json_mode = True
        if as_:
            self.options["user"] = as_
        return self

    @cached_property
    def settings(self) -> Settings:
        from basecone_migrate.settings import Settings

        return Settings.load(self.options, config_path=self.config)

    @cached_property
    def runtime(self) -> Runtime:
        from basecone_migrate.runtime import Runtime

        return Runtime(self.settings)

    @cached_property
    def out(self) -> Output:
        from basecone_migrate.cli.output import Output

        return Output(self.json_mode)

    def close(self) -> None:
        if "runtime" in self.__dict__:
            self.runtime.close()


def get(ctx: typer.Context, *, json: bool = False, as_: str | None = None) -> CLI:
    cli: Any = ctx.find_root().obj
    return cli.use(json=json, as_=as_)
