"""`vitbench models [PATTERN]`: what can be profiled, with parameters and tokens."""

from __future__ import annotations

import typer

from vitbench.cli.app import app
from vitbench.cli.output import OutputFormat, emit, warn
from vitbench.errors import VitbenchError


@app.command("models")
def models_cmd(
    pattern: str = typer.Argument(None, help="Glob or substring, e.g. 'vit_*' or 'swin'."),
    count: bool = typer.Option(
        True, "--count/--no-count", help="Count params and tokens (on the meta device, no weights)."
    ),
    limit: int = typer.Option(200, help="Show at most this many models."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="Output format."),
) -> None:
    """List models that can be profiled, with params and tokens at the default size."""
    if limit < 1:
        raise VitbenchError(f"limit must be a positive number of models, got {limit}")
    from vitbench.measure.model_cost import count_model
    from vitbench.zoo import ModelSpec, list_models
    from vitbench.zoo.aliases import aliases_by_target

    names = list_models(pattern)
    if not names:
        warn(f"no model matches '{pattern}'")
        raise typer.Exit(1)
    if len(names) > limit:
        warn(f"{len(names)} models match; showing the first {limit} (--limit to change)")
        names = names[:limit]
    by_target = aliases_by_target()
    rows = []
    for name in names:
        row = {"model": name, "aliases": ", ".join(by_target.get(name, []))}
        if count:
            try:
                c = count_model(ModelSpec(name), batch_size=1, macs=False)
                row.update(params=c.params, tokens=c.tokens, img_size=c.input_size[1])
            except Exception as exc:  # listing goes on past a model that fails
                row.update(params=None, tokens=None, note=f"cannot build: {type(exc).__name__}")
        rows.append(row)
    cols = ["model", "aliases"] + (["img_size", "params", "tokens"] if count else [])
    emit(rows, fmt, columns=cols, title="models")
