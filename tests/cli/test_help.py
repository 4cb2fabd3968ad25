"""`pulserec --help` lists every command and an example for each."""

import typer
from typer.testing import CliRunner

from pulserec.cli.examples import command_examples, examples_epilog
from pulserec.cli.main import app


def test_help_ends_with_an_example_for_every_command():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    examples = command_examples(app)
    for name in names:
        assert name in result.output
        assert any(line.split()[1] == name for line in examples), f"no example for `pulserec {name}`"
        assert f"pulserec {name} " in result.output


def test_examples_are_read_from_docstrings():
    demo = typer.Typer()

    @demo.command()
    def alpha() -> None:
        """Do alpha.

        Example: pulserec alpha --fast
        """

    @demo.command()
    def beta() -> None:
        """Do beta (no example)."""

    assert command_examples(demo) == ["pulserec alpha --fast"]
    assert "pulserec alpha --fast" in examples_epilog(demo)
    assert examples_epilog(typer.Typer()) == ""
