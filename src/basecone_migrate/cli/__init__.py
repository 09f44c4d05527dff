"""The command line: Typer apps, one module per group of commands.

`main()` runs the app in click's non-standalone mode so that every failure comes
back here and leaves as one ``Error: ...`` line on stderr with the contract's exit
code; ``--debug`` adds the traceback. Modules only import Typer at the top: the
database, Alembic, Rich and mail are imported inside the commands that use them.

The command modules do not use ``from __future__ import annotations``: Typer would
evaluate every string annotation when it builds the commands, which tripled that
step (see `benchmarks/bench.py help`, target 1.2x a bare Typer app).
"""


import functools
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from basecone_migrate import __version__
from basecone_migrate.cli.context import CLI

app = typer.Typer(
    name="basecone-migrate",
    help=(
        "Move Basecone administrations between environments, re-link and re-code them.\n\n"
        "Settings come from options, BASECONE_MIGRATE_* variables, a config file, then "
        "defaults: see `basecone-migrate config`."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: no Rich import just to print --help
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"basecone-migrate {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    as_: Annotated[
        str | None,
        typer.Option("--as", metavar="EMAIL", help="Act as this user (env BASECONE_MIGRATE_USER)."),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Database URL or SQLite file (env BASECONE_MIGRATE_DB)."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Archive storage root (env BASECONE_MIGRATE_STORAGE)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(metavar="FILE", readable=False,  # checked when read, as every input file
                     help="Config file (env BASECONE_MIGRATE_CONFIG)."),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="JSON output for every command.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print nothing but warnings and errors (cron).")] = False,
    no_input: Annotated[bool, typer.Option(
        "--no-input", help="Never ask questions (without a terminal nothing is ever asked).")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    cli = CLI({"user": as_, "db": db, "storage": storage}, config, json, quiet=quiet, no_input=no_input)
    ctx.obj = cli
    from basecone_migrate import clock

    warning = clock.warning(os.environ)
    if warning:  # every command, --quiet or not: a clock turned back must never go unnoticed
        sys.stderr.write(f"Warning: {warning}\n")
    ctx.call_on_close(cli.close)


def _register() -> None:
    from basecone_migrate.cli import aftercare, control, mail, migrate, setup, terms
    from basecone_migrate.cli.context import with_common_options
    from basecone_migrate.cli.help import command_class

    setup.register(app)
    migrate.register(app)
    terms.register(app)
    control.register(app)
    aftercare.register(app)
    mail.register(app)
    groups = [("", app)] + [(f"{group.name} ", group.typer_instance) for group in app.registered_groups]
    for prefix, group in groups:
        for command in group.registered_commands:
            if command.callback is not None:
                name = command.name or command.callback.__name__.replace("_", "-")
                command.cls = command_class(prefix + name)
                command.callback = with_common_options(command.callback)


_register()


def _error(message: str) -> None:
    from basecone_migrate.domain.text import one_line

    sys.stderr.write(f"Error: {one_line(message)}\n")
    sys.stderr.flush()


def _interrupted() -> None:
    """Ctrl-C: a terminal's cursor may stand after a question or a "^C", so a new line first."""
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    _error("interrupted")


def _usage_message(exc: typer.TyperException) -> str:
    message = exc.format_message().strip().rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        return f"{message}. See '{ctx.command_path} --help'."
    return f"{message}."


@functools.cache
def _command() -> Any:
    """The click command Typer builds from ``app``: built once a process (it reads every
    command's signature), and reusable, as click's commands are."""
    from typer.main import get_command

    return get_command(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the console script exits with it)."""
    from basecone_migrate.cli.coercion import install
    from basecone_migrate.errors import BaseconeError, ExitCode

    install()

    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args or bool(os.environ.get("BASECONE_MIGRATE_DEBUG"))
    command = _command()
    try:
        _check_arguments(args)
        result = command.main(args=args, prog_name="basecone-migrate", standalone_mode=False)
        if result == ExitCode.INTERRUPTED:  # Typer turns Ctrl-C into this exit code, silently
            _interrupted()
        return result if isinstance(result, int) else 0
    except BaseconeError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _error(exc.message)
        return int(exc.exit_code)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.stderr.write(exc.format_message() + "\n")
            return ExitCode.USAGE
        _error(_usage_message(exc) if getattr(exc, "exit_code", 1) == 2 else exc.format_message())
        return int(getattr(exc, "exit_code", ExitCode.USAGE))
    except (typer.Abort, KeyboardInterrupt):
        _interrupted()
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug or an unreachable service: say so, in one line
        if debug:
            import traceback

            traceback.print_exc()
        _error(f"{_describe(exc)} (run with --debug for the traceback)")
        return ExitCode.INTERNAL


def _check_arguments(args: list[str]) -> None:
    """Text no database can store and no file name can hold is a usage error up front:
    bytes that are not UTF-8 (the shell passes them as surrogates) and NUL characters."""
    from basecone_migrate.domain.text import printable, unstorable
    from basecone_migrate.errors import UsageProblem

    for arg in args:
        problem = unstorable(arg)
        if problem is not None:
            hint = " (check the terminal's or the script's encoding)" if "UTF-8" in problem else ""
            raise UsageProblem(f"argument {printable(arg)!r} {problem}{hint}")


def _describe(exc: Exception) -> str:
    name = type(exc).__name__
    module = type(exc).__module__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if module.startswith("sqlalchemy") or module.startswith("psycopg"):
        return f"database problem: {text}"
    if module.startswith(("botocore", "aiobotocore", "aiohttp", "s3fs")):
        return f"object store problem: {text}"
    return f"unexpected {name}: {text}"
