"""`vitbench models [PATTERN]`: what can be profiled; with `--count`, parameters and tokens."""

from __future__ import annotations

import typer

from vitbench.cli.app import app
from vitbench.cli.output import OutputFormat, emit, warn
from vitbench.errors import VitbenchError
from vitbench.model_index import build_index, matching, model_index
from vitbench.model_options import IMPORTS_HELP


@app.command("models")
def models_cmd(
    pattern: str = typer.Argument(None, help="Glob or substring, e.g. 'vit_*' or 'swin'."),
    count: bool = typer.Option(
        False,
        "--count/--no-count",
        help="Also count params and tokens at the default size (meta device, no weights; "
        "about 0.1-1 s a model).",
    ),
    limit: int = typer.Option(200, help="Show at most this many models."),
    imports: list[str] = typer.Option(None, "--import", help=IMPORTS_HELP),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="Output format."),
) -> None:
    """List models that can be profiled, with their aliases (names are cached: no torch import;
    with --import, the zoo is read afresh after importing)."""
    if limit < 1:
        raise VitbenchError(f"limit must be a positive number of models, got {limit}")
    index = _index(imports or [])
    names = matching(list(index), pattern)
    if not names:
        warn(f"no model matches '{pattern}'")
        raise typer.Exit(1)
    if len(names) > limit:
        warn(f"{len(names)} models match; showing the first {limit} (--limit to change)")
        names = names[:limit]
    rows = [{"model": name, "aliases": ", ".join(index[name])} for name in names]
    if count:
        for row in rows:
            row.update(_counted(row["model"]))
    cols = ["model", "aliases"] + (["img_size", "params", "tokens", "tokens_at"] if count else [])
    cols += ["note"] if any("note" in row for row in rows) else []
    emit(rows, fmt, columns=cols, title="models")


def _index(imports: list[str]) -> dict[str, list[str]]:
    """Every name with its aliases: from the cache, or built after importing ``imports``."""
    if not imports:
        return model_index()
    from vitbench.zoo import load_imports

    load_imports(imports)
    return build_index()


def _counted(name: str) -> dict[str, object]:
    """Params and tokens at the default size; a model that cannot be built says so."""
    from vitbench.measure.model_cost import count_model
    from vitbench.zoo import ModelSpec

    try:
        c = count_model(ModelSpec(name), batch_size=1, macs=False)
    except Exception as exc:  # listing goes on past a model that fails
        return {"params": None, "tokens": None, "note": f"cannot build: {type(exc).__name__}"}
    return {
        "img_size": c.input_size[-1] if len(c.input_size) == 3 else None,
        "params": c.params,
        "tokens": c.tokens,
        "tokens_at": c.tokens_at,
    }
