"""The examples block of `pulserec --help`, gathered from each command's docstring."""

from __future__ import annotations

import re

import typer

#: A command line quoted in a docstring: "pulserec <command> ..." (after "Example:" or on its own line).
_EXAMPLE = re.compile(r"(?:^|Example:\s*|Examples:\s*)\s*(pulserec\s+[a-z][\w-]*(?:\s+[^\n]*)?)$", re.MULTILINE)


def command_examples(app: typer.Typer) -> list[str]:
    """One or more example command lines per registered command, in registration order."""
    lines: list[str] = []
    for command in app.registered_commands:
        doc = command.help or (command.callback.__doc__ if command.callback else None) or ""
        for match in _EXAMPLE.finditer(doc):
            line = match.group(1).strip().rstrip(".")
            if line not in lines:
                lines.append(line)
    return lines


def examples_epilog(app: typer.Typer) -> str:
    """Plain-text epilog: every command's examples, one per line (click keeps a paragraph that starts
    with \\b as it is instead of re-flowing it)."""
    examples = command_examples(app)
    if not examples:
        return ""
    body = "\n".join(f"  {line}" for line in examples)
    return f"Examples (more with `pulserec COMMAND --help`):\n\n\b\n{body}"
