"""`pulserec --help` lists every command and an example for each; flags show as flags; output that
is not a terminal is not wrapped."""

import subprocess
import sys

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


def cli(*args: str, code: str | None = None) -> str:
    """Run the real command with its output into a pipe (not a terminal) and no COLUMNS set."""
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "pulserec.cli.main", *args]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_flags_show_as_flags_and_help_lines_are_not_wrapped():
    out = cli("demo", "--help")
    assert "<bool>" not in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip().startswith("--")}
    assert lines["--keep-serving"].split()[:2] == ["--keep-serving", "Keep"]
    assert lines["--help"].split()[:2] == ["--help", "Show"]
    assert lines["--events"].split()[1] == "<int"  # options that take a value still name it
    # a long docstring sentence stays on one line in a pipe (it would wrap at 80 columns)
    assert any("so you can watch them change. Example: pulserec demo --events 50000" in line for line in out.splitlines())


def test_console_output_into_a_pipe_is_not_wrapped():
    url = "http://127.0.0.1:8000/users/" + "u" * 150 + "/recommendations?strategy=als"
    code = f"from pulserec.cli.common import console; console.print('served at {url} - done')"
    assert cli(code=code).splitlines() == [f"served at {url} - done"]
