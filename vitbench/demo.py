"""The demo: vitbench's main job on embedded defaults, ending in a report.

Each step calls the library entry point a user would (never a subprocess), and that entry point
writes its own records to one results store as it goes; the last step writes ``report.md`` from
that store. Step estimates are seconds measured
on a shared 2-core CPU and drive the time-left display.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vitbench.measure.options import ProfileOptions
from vitbench.pretrain.config import SAMPLE, MAEConfig
from vitbench.reference import BENCHMARK_TABLE
from vitbench.report.build import REPORT_NAME, build_report
from vitbench.store import Store

Note = Callable[[str], None]

#: seconds of "as estimated" that the time-left pace starts from
PRIOR_S = 30.0


#: the demo's MAE: ViT-Ti's family at 64 px in 8 x 8 patches, 2-D sin-cos positions (MAE's),
#: on 1,024 crops for 20 epochs: about a minute on one CPU thread
MAE = MAEConfig(
    dataset=SAMPLE,
    model="scratch_vit_tiny_patch16_224",
    model_kwargs=dict(
        patch_size=8, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0, pos_embed="sincos2d"
    ),
    epochs=20,
    batch_size=32,
    lr=3e-3,
    device="cpu",
)


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs. The defaults take a few minutes on a 2-core CPU.

    One CPU thread by default: on a 2-core machine shared with other work, two threads contend
    with it and medians swing by an order of magnitude; one thread gives stable numbers.
    """

    benchmark_models: Sequence[str] = BENCHMARK_TABLE
    small_vit: str = "vit_small_patch16_224"
    batch_sizes: Sequence[int] = (1, 4, 16)
    train_batch_sizes: Sequence[int] = (1, 4)  # training steps of small_vit at 224 px
    sweep_img_sizes: Sequence[int] = (32, 64, 96, 128, 160, 224)
    timing_budget_s: float = ProfileOptions.budget_s  # `vitbench profile`'s default
    timing_rounds: int = ProfileOptions.rounds  # `vitbench profile`'s default
    train_epochs: int = 50
    attention_images: int = 32
    threads: int | None = 1
    train_cost_model: str = "vit_tiny_patch16_224"
    train_cost_img_sizes: Sequence[int] = (32, 64, 96, 128)
    train_cost_batch_size: int = 2
    train_cost_budget_s: float = 0.5  # the step is about memory: shorter timing than the others
    # token merging on the trained digits model: its 17 tokens in 4 blocks allow r <= 3
    merging_r: Sequence[int] = (0, 2, 3)
    prune_keep: float = 0.7
    merging_batch_sizes: Sequence[int] = (1, 64)
    merging_budget_s: float = 0.2  # a tiny model: each call takes a millisecond or a few
    # MAE on crops of the sample photographs; its encoder's attention on such crops
    mae: MAEConfig = field(default_factory=lambda: replace(MAE))
    # attention on sentences: vitbench's BERT-base, random init, two classes for importance
    text_model: str = "scratch_bert_base"
    text_model_kwargs: dict[str, Any] = field(default_factory=dict)
    sentences: Sequence[str] = ("I liked the movie I saw in the cinema", "I like pizza")

    @classmethod
    def quick(cls) -> DemoConfig:
        """A configuration of seconds, for tests: one counted model, ViT-Ti, short timing in
        one round."""
        return cls(
            benchmark_models=("vit_base_patch16_224",),
            small_vit="vit_tiny_patch16_224",
            batch_sizes=(1, 2),
            train_batch_sizes=(1,),
            sweep_img_sizes=(32, 48, 64),
            timing_budget_s=0.05,
            timing_rounds=1,
            train_epochs=2,
            attention_images=4,
            train_cost_img_sizes=(32, 48),
            train_cost_batch_size=1,
            train_cost_budget_s=0.05,
            merging_budget_s=0.05,
            mae=replace(MAE, model_kwargs={**MAE.model_kwargs, "depth": 1}, epochs=1, subset=16),
            text_model_kwargs=dict(embed_dim=32, depth=2, num_heads=4, seq_len=16),
        )


@dataclass(frozen=True)
class Step:
    """One stage of the demo; ``run(note)`` does it, calling ``note`` with sub-progress."""

    name: str
    estimate_s: float
    run: Callable[[Note], object]


@dataclass
class Progress:
    """How far the demo is: steps done, time spent, and an estimate of the time left."""

    steps: Sequence[Step]
    started: float = field(default_factory=time.perf_counter)
    done: int = 0
    spent_on_done: float = 0.0

    def finish_step(self, seconds: float) -> None:
        self.done += 1
        self.spent_on_done += seconds

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    @property
    def left_s(self) -> float:
        """The remaining steps' estimates, scaled by how fast the finished ones went.

        The pace (time spent over time estimated) starts from ``PRIOR_S`` seconds at the
        estimated speed, so one short step that ran slow does not swing the whole estimate.
        """
        remaining = sum(s.estimate_s for s in self.steps[self.done :])
        estimated_done = sum(s.estimate_s for s in self.steps[: self.done])
        pace = (self.spent_on_done + PRIOR_S) / (estimated_done + PRIOR_S)
        in_step = self.elapsed_s - self.spent_on_done
        return max(0.0, remaining * pace - in_step)


def profile_into(
    models: Sequence[Any], opts: Any, store: Store, note: Note, model_name: str | None = None
) -> None:
    """`vitbench profile` as a library call (names, or built modules called ``model_name``):
    points and power-law fits into ``store``."""
    from vitbench.measure.profile import profile

    profile(
        list(models),
        opts,
        store=store,
        on_step=lambda text, _done: note(text),
        model_name=model_name,
    )


def train_cost_options(config: DemoConfig) -> ProfileOptions:
    """Training steps of the training-cost model over its image sizes, at one batch size."""
    return ProfileOptions(
        modes=("train",),
        img_sizes=tuple(config.train_cost_img_sizes),
        batch_sizes=(config.train_cost_batch_size,),
        device="cpu",
        threads=config.threads,
        budget_s=config.train_cost_budget_s,
        rounds=config.timing_rounds,
    )


def train_cost_into(model: str, opts: ProfileOptions, store: Store, note: Note) -> None:
    """`vitbench profile --mode train` run twice: eager attention, then fused."""
    for fused in (False, True):
        profile_into([model], replace(opts, fused_attn=fused), store, note)


def analyze_into(
    model: Any,
    store: Store,
    note: Note,
    n_images: int,
    checkpoint: Path | None = None,
    tome: tuple[int, ...] = (),
    source: str = "digits",
    importance: str = "gradient",
) -> None:
    """`vitbench analyze attention` on ``source`` images, plain and (``tome``) with that many
    tokens merged per block: heads and the rollout overlay into ``store``; ``importance``
    "none" for an encoder without a classifier."""
    from vitbench.attention import AttentionOptions, ImageSource, analyze_attention_points

    opts = AttentionOptions(
        checkpoint=checkpoint,
        n_images=n_images,
        batch_size=8,
        device="cpu",
        tome=tome or None,
        importance=importance,
    )
    analyze_attention_points(
        model,
        ImageSource(source),
        opts,
        store=store,
        on_progress=lambda done, total, phase: note(f"{phase} {done}/{total} images"),
    )


def analyze_text_into(config: DemoConfig, store: Store, note: Note) -> None:
    """`vitbench analyze attention MODEL --text ...`: each head on each sentence, tokenized
    over the sentences' own words, into ``store``."""
    from vitbench.attention import AttentionOptions, TextSource, analyze_text_attention

    opts = AttentionOptions(num_classes=2, model_kwargs=config.text_model_kwargs, device="cpu")
    analyze_text_attention(
        config.text_model,
        TextSource(tuple(config.sentences)),
        opts,
        store=store,
        on_progress=lambda done, total, _phase: note(f"sentence {done}/{total}"),
    )


def merging_options(config: DemoConfig) -> ProfileOptions:
    """The trained digits model's latency with token merging at each r and batch size."""
    return ProfileOptions(
        metrics=frozenset({"params", "flops", "latency"}),
        tome=tuple(config.merging_r),
        batch_sizes=tuple(config.merging_batch_sizes),
        device="cpu",
        threads=config.threads,
        budget_s=config.merging_budget_s,
        rounds=config.timing_rounds,
    )


def train_and_analyze_into(config: DemoConfig, store: Store, note: Note) -> None:
    """`vitbench train` with its defaults (a small ViT on digits), tested with token merging
    and pruning; then its attention, plain and merged, and its latency merged."""
    from vitbench.train import TrainConfig, train
    from vitbench.train.checkpoint import WEIGHTS_FILE

    cfg = TrainConfig(
        epochs=config.train_epochs,
        device="cpu",
        tome=tuple(config.merging_r),
        prune=(config.prune_keep,),
    )
    result = train(
        cfg,
        store=store,
        on_epoch=lambda rec: note(
            f"epoch {rec['epoch']}/{config.train_epochs}, val accuracy {rec['val_acc']:.1%}"
        ),
    )
    rec = result.record
    spec = result.config.model_spec(rec["img_size"], rec["in_chans"], rec["num_classes"])
    weights = result.run_dir / WEIGHTS_FILE
    analyze_into(spec, store, note, config.attention_images, weights, (max(config.merging_r),))
    note("timing token merging")
    profile_into([result.model], merging_options(config), store, note, cfg.model)


def pretrain_and_analyze_into(config: DemoConfig, store: Store, note: Note) -> None:
    """`vitbench pretrain mae --dataset sample`, then `vitbench analyze attention
    --sample-images` of the encoder it wrote."""
    from vitbench.pretrain import pretrain_mae

    result = pretrain_mae(
        config.mae,
        store=store,
        on_epoch=lambda rec: note(
            f"epoch {rec['epoch']}/{rec['epochs']}, reconstruction loss {rec['val_loss']:.3f}"
        ),
    )
    n = config.attention_images
    analyze_into(
        config.mae.model, store, note, n, result.checkpoint, source=SAMPLE, importance="none"
    )


def demo_steps(config: DemoConfig, store: Store, out: Path) -> list[Step]:
    """The demo's stages, in order, each writing to ``store``; the report goes to ``out``."""
    merged = merging_options(config)
    n_merged = len(config.merging_r) * len(config.merging_batch_sizes)
    # estimates: seconds per unit (per timing round), measured on the shared 2-core CPU with one
    # thread
    return [
        *_profile_steps(config, store),
        Step(
            f"train a small ViT on digits ({config.train_epochs} epochs), test and time it with "
            "token merging and pruning, and analyze its attention",
            3.0 + 0.5 * config.train_epochs + 3.0 + 0.4 * n_merged * merged.rounds,
            lambda note: train_and_analyze_into(config, store, note),
        ),
        Step(
            f"pre-train a small ViT as a masked autoencoder on crops of the sample photographs "
            f"({config.mae.epochs} epochs) and analyze its encoder's attention on such crops",
            5.0 + 3.0 * config.mae.epochs + 0.2 * config.attention_images,
            lambda note: pretrain_and_analyze_into(config, store, note),
        ),
        Step(
            f"analyze the attention of a random-init {config.text_model} on "
            f"{len(config.sentences)} sentences",
            3.0 + 6.0 * len(config.sentences),
            lambda note: analyze_text_into(config, store, note),
        ),
        Step("write the report", 2.0, lambda note: build_report([store], out)),
    ]


def _profile_steps(config: DemoConfig, store: Store) -> list[Step]:
    """The demo's `vitbench profile` stages: counts, timings, the sweep, the training cost."""
    timing = dict(
        device="cpu",
        threads=config.threads,
        budget_s=config.timing_budget_s,
        rounds=config.timing_rounds,
    )
    counts = ProfileOptions(metrics=frozenset({"params", "flops"}))
    timed = ProfileOptions(batch_sizes=tuple(config.batch_sizes), **timing)
    sweep = ProfileOptions(img_sizes=tuple(config.sweep_img_sizes), **timing)
    steps = ProfileOptions(
        modes=("train",), batch_sizes=tuple(config.train_batch_sizes), **{**timing, "warmup": 1}
    )
    train = train_cost_options(config)
    n_bench, n_sizes = len(config.benchmark_models), len(config.sweep_img_sizes)
    n_train = len(config.train_cost_img_sizes)
    # estimates: seconds per unit (per timing round), ViT-S; ViT-Ti training steps
    return [
        Step(
            f"count params and MACs of the benchmark table ({n_bench} models)",
            1.0 * n_bench,
            lambda note: profile_into(config.benchmark_models, counts, store, note),
        ),
        Step(
            f"time {config.small_vit} at batch sizes {', '.join(map(str, config.batch_sizes))}",
            3.0 + 5.0 * len(config.batch_sizes) * timed.rounds,
            lambda note: profile_into([config.small_vit], timed, store, note),
        ),
        Step(
            f"time a training step of {config.small_vit} at batch sizes "
            + ", ".join(map(str, config.train_batch_sizes)),
            3.0 + 4.0 * len(config.train_batch_sizes) * steps.rounds,
            lambda note: profile_into([config.small_vit], steps, store, note),
        ),
        Step(
            f"sweep {config.small_vit} over {n_sizes} image sizes",
            2.0 + 1.7 * n_sizes * sweep.rounds,
            lambda note: profile_into([config.small_vit], sweep, store, note),
        ),
        Step(
            f"training cost of {config.train_cost_model} over {n_train} image sizes, "
            "eager and fused attention",
            4.0 + 1.1 * 2 * n_train * train.rounds,
            lambda note: train_cost_into(config.train_cost_model, train, store, note),
        ),
    ]


def run_demo(
    config: DemoConfig,
    store: Store,
    out: Path,
    on_progress: Callable[[Progress, str], None] | None = None,
) -> Path:
    """Run every step into ``store`` and return the path of ``out/report.md``."""
    import torch

    out = Path(out)
    steps = demo_steps(config, store, out)
    progress = Progress(steps)
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        for step in steps:
            t0 = time.perf_counter()

            def note(text: str, step: Step = step) -> None:
                if on_progress:
                    on_progress(progress, f"{step.name}: {text}")

            note("starting")
            step.run(note)
            progress.finish_step(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    if on_progress:
        on_progress(progress, "done")
    return out / REPORT_NAME
