"""`vitbench demo`: profile, sweep, train, analyze attention and report, on embedded data."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import typer
from rich.progress import TextColumn

from vitbench.cli.app import app
from vitbench.cli.output import info, progress_bar
from vitbench.cli.store_options import open_for_writing, store_option
from vitbench.errors import VitbenchError


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("results/demo"), "--out", help="A new results store."),
    quick: bool = typer.Option(False, "--quick", help="A seconds-long run with tiny inputs."),
    threads: int = typer.Option(
        None, help="CPU threads (default: 1, which gives stable timings on a busy box)."
    ),
    url: str = store_option(),
) -> None:
    """The main job on embedded defaults, ending in OUT/report.md (a few minutes on 2 cores)."""
    from vitbench.demo import DemoConfig, run_demo

    store = open_for_writing(out, url)
    taken = [name for name, n in store.counts().items() if n]
    if taken:
        raise VitbenchError(
            f"{store.label} already holds results ({', '.join(taken)}); "
            "the demo writes a fresh store: remove it or choose another --out"
        )
    config = DemoConfig.quick() if quick else DemoConfig()
    if threads is not None:
        config = dataclasses.replace(config, threads=threads)
    t0 = time.perf_counter()
    with progress_bar(
        TextColumn("about {task.fields[left]} left"), counter="step {task.fields[step]}"
    ) as bar:
        task = bar.add_task("demo", total=None, left="?", step="-")

        def show(progress, text: str) -> None:
            bar.update(
                task,
                description=text,
                completed=progress.done,
                total=len(progress.steps),
                step=f"{min(progress.done + 1, len(progress.steps))}/{len(progress.steps)}",
                left=f"{progress.left_s:.0f} s",
            )

        report = run_demo(config, store, out, show)
    info(f"demo done in {time.perf_counter() - t0:.0f} s; report: {report}")
    typer.echo(str(report))
