"""The Typer application that every command module registers itself on."""

from __future__ import annotations

import typer

from vitbench import __version__

app = typer.Typer(
    name="vitbench",
    help="Benchmark and analyze vision transformers on your own hardware.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vitbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Benchmark and analyze vision transformers on your own hardware."""
