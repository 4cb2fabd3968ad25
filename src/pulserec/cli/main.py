"""Entry point: `pulserec --help` lists every command."""

from __future__ import annotations

import importlib
import os
import sys

import typer

from pulserec.cli.common import console, help_settings
from pulserec.cli.examples import examples_epilog

app = typer.Typer(
    name="pulserec",
    help="pulserec: a real-time recommendation engine. Start with `pulserec demo`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # click's plain help: flags show as flags (typer's rich panels print `--help <bool>`), and
    # help_settings() keeps lines whole when the output is not a terminal.
    rich_markup_mode=None,
    context_settings=help_settings(),
)

#: Command modules; each exposes register(app).
COMMANDS = ("demo", "importing", "serve", "generate", "train", "evaluate", "replay", "updater", "snapshot")

for _name in COMMANDS:
    try:
        _module = importlib.import_module(f"pulserec.cli.{_name}")
    except ModuleNotFoundError as exc:  # an optional command whose module is not present
        if exc.name != f"pulserec.cli.{_name}":
            raise
        continue
    _module.register(app)

app.info.epilog = examples_epilog(app)  # `pulserec --help` ends with every command's examples


def main() -> None:
    """Run the CLI; errors are one clear line (set PULSEREC_DEBUG=1 for the traceback)."""
    try:
        app(standalone_mode=False)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except typer.Abort:
        console.print("[red]aborted[/]")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if os.environ.get("PULSEREC_DEBUG"):
            raise
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        console.print(f"[red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
