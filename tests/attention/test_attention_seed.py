"""``seed``: random-init analyses repeat to the bit, and the seed is what makes them differ."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vitbench.attention import AttentionOptions, ImageSource, analyze_attention
from vitbench.attention.images import image_batches
from vitbench.errors import VitbenchError

TINY = dict(img_size=32, model_kwargs={"depth": 2}, n_images=2, importance="none")


def distances(seed: int) -> list[float]:
    opts = AttentionOptions(seed=seed, **TINY)
    records = analyze_attention("vit_small_patch16_224", opts=opts).records
    assert {r["seed"] for r in records} == {seed} and {r["weights"] for r in records} == {"random"}
    return [r["mean_distance_px"] for r in records]


def test_one_seed_gives_the_same_distances_to_the_bit_and_another_seed_others():
    first, again, other = distances(0), distances(0), distances(1)
    assert first == again
    assert first != other


def test_the_callers_random_stream_is_left_as_it_was():
    torch.manual_seed(7)
    want = torch.rand(3)
    torch.manual_seed(7)
    distances(3)
    assert torch.equal(torch.rand(3), want)


def test_the_seed_places_the_sample_crops_and_leaves_the_whole_photos():
    def pixels(seed: int) -> np.ndarray:
        batch = next(image_batches(ImageSource("sample"), 4, 4, (3, 32, 32), seed=seed))
        return batch.pixels  # (4, 32, 32, 3): two whole photos, then two crops

    a, b, c = pixels(0), pixels(0), pixels(1)
    assert np.array_equal(a, b)
    assert np.array_equal(a[:2], c[:2]) and not np.array_equal(a[2:], c[2:])


def test_a_negative_seed_is_refused():
    with pytest.raises(VitbenchError, match="seed must be at least 0, got -1"):
        AttentionOptions(seed=-1).validate()


def test_the_command_line_takes_a_seed_and_records_it(tmp_path):
    from typer.testing import CliRunner

    import vitbench.cli.analyze  # noqa: F401  (registers the sub-app)
    from vitbench.cli.app import app

    args = ["analyze", "attention", "vit_small_patch16_224", "--img-size", "32", "-n", "1"]
    args += ["--model-kwargs", "depth=1", "--importance", "none", "--no-save", "--format", "json"]
    result = CliRunner().invoke(app, [*args, "--seed", "5", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert rows and {r["seed"] for r in rows} == {5}
