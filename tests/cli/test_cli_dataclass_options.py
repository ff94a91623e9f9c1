"""Options written once: the dataclass fields are the command's options, defaults included."""

from __future__ import annotations

import dataclasses

import pytest
import typer
from typer.testing import CliRunner

from vitbench.attention.options import AttentionOptions
from vitbench.cli import app
from vitbench.cli.dataclass_options import with_options
from vitbench.measure.options import ProfileOptions
from vitbench.options import option_spec
from vitbench.train.config import TrainConfig


def _received(cls: type, args: list[str]) -> object:
    """The options object a command decorated with ``with_options(cls)`` receives for ``args``."""
    probe = typer.Typer()
    got: list[object] = []

    @probe.command()
    @with_options(cls)
    def command(opts: object) -> None:
        got.append(opts)

    @probe.command()
    def other() -> None:  # a second command, so the probe takes the command's name
        pass

    result = CliRunner().invoke(probe, ["command", *args])
    assert result.exit_code == 0, result.output
    return got[0]


@pytest.mark.parametrize("cls", [ProfileOptions, TrainConfig, AttentionOptions])
def test_no_flags_give_the_library_defaults(cls: type) -> None:
    assert _received(cls, []) == cls()


def test_profile_flags_reach_their_fields() -> None:
    opts = _received(
        ProfileOptions,
        ["-b", "1,8,8", "--img-size", "64,96", "--no-fused-attn", "--budget", "0.5"]
        + ["--metrics", "macs,throughput", "--model-kwargs", "depth=2,qkv_bias=false"],
    )
    assert opts.batch_sizes == (1, 8)
    assert opts.img_sizes == (64, 96)
    assert opts.fused_attn is False
    assert opts.budget_s == 0.5
    assert opts.metrics == {"params", "flops", "latency"}
    assert opts.model_kwargs == {"depth": 2, "qkv_bias": False}


def test_train_flags_reach_their_fields() -> None:
    cfg = _received(TrainConfig, ["-m", "vit-ti", "-d", "photos", "--clip-grad", "0", "-b", "8"])
    assert cfg.model == "vit_tiny_patch16_224"  # the alias, resolved
    assert (cfg.dataset, cfg.batch_size) == ("photos", 8)
    assert cfg.clip_grad is None  # 0 means no clipping, stored as None


@pytest.mark.parametrize(
    ("command", "cls"),
    [
        (["profile"], ProfileOptions),
        (["train"], TrainConfig),
        (["sweep"], TrainConfig),
        (["analyze", "attention"], AttentionOptions),
    ],
)
def test_every_field_is_an_option_of_the_command(command: list[str], cls: type) -> None:
    click_command = typer.main.get_command(app)
    for name in command:
        click_command = click_command.commands[name]
    names = {p.name for p in click_command.params}
    fields = {f.name for f in dataclasses.fields(cls) if option_spec(f) is not None}
    assert fields and fields <= names
