"""`vitbench analyze attention`: its flags are AttentionOptions' fields, parsed into the library.

The library call is replaced by a stand-in that keeps what it was given, so these tests build
no model; `tests/attention/test_attention_analysis.py` runs the command end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vitbench.attention import AttentionAnalysis, AttentionOptions, ImageSource
from vitbench.cli import main

MODEL = "scratch_vit_tiny_patch16_224"
ROW = {"model": MODEL, "layer": 0, "head": 0, "n_images": 2, "mean_distance_px": 1.0}


@pytest.fixture
def calls(monkeypatch) -> list[dict]:
    """The arguments of every analyze_attention call the command makes."""
    import vitbench.attention.analysis as analysis

    seen: list[dict] = []

    def fake(model, source, opts, **kwargs) -> AttentionAnalysis:
        seen.append(dict(model=model, source=source, opts=opts, **kwargs))
        return AttentionAnalysis(model, [dict(ROW)], notes=["a note"], run_id="r1")

    monkeypatch.setattr(analysis, "analyze_attention", fake)
    return seen


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", "attention", *args])
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


def test_no_flags_give_the_library_defaults(calls, capsys):
    code, out, err = run([MODEL, "--no-save", "--format", "json"], capsys)
    assert code == 0, err
    (call,) = calls
    assert call["opts"] == AttentionOptions()
    assert call["model"] == MODEL and call["source"] == ImageSource("digits")
    assert call["store"] is None and call["plots_dir"] is None
    assert json.loads(out.splitlines()[0])["mean_distance_px"] == 1.0
    assert f"{MODEL}: a note" in err


def test_every_flag_reaches_its_field(calls, capsys, tmp_path):
    ckpt = tmp_path / "w.safetensors"
    ckpt.write_bytes(b"")
    args = [MODEL, "-n", "3", "-b", "2", "--img-size", "8", "--num-classes", "10"]
    args += ["--model-kwargs", "depth=1,qkv_bias=false", "--renormalise", "--fusion", "max"]
    args += ["--discard-ratio", "0.1", "--importance", "none", "--projection", "tsne"]
    args += ["--clusters", "2", "--overlays", "1", "--device", "cpu", "--pretrained"]
    args += ["--checkpoint", str(ckpt), "--sample-images", "--no-save"]
    code, _, err = run(args, capsys)
    assert code == 0, err
    expected = AttentionOptions(
        n_images=3,
        batch_size=2,
        img_size=8,
        num_classes=10,
        model_kwargs={"depth": 1, "qkv_bias": False},
        renormalise=True,
        fusion="max",
        discard_ratio=0.1,
        importance="none",
        projection="tsne",
        n_clusters=2,
        n_overlays=1,
        device="cpu",
        pretrained=True,
        checkpoint=ckpt,
    )
    assert calls[0]["opts"] == expected and calls[0]["source"] == ImageSource("sample")


def test_an_alias_is_resolved_and_the_store_is_opened(calls, capsys, tmp_path):
    code, _, err = run(["vit-s", "--images", str(tmp_path), "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert calls[0]["model"] == "vit_small_patch16_224"
    assert calls[0]["source"] == ImageSource("files", tmp_path)
    assert calls[0]["store"] is not None and "written to" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fusion", "median"], "fusion must be one of mean, max, min"),
        (["--model-kwargs", "depth"], "model kwarg 'depth' is not of the form key=value"),
        (["--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["--images", ".", "--sample-images"], "choose one image source"),
    ],
)
def test_bad_options_are_one_line_before_the_store_is_opened(
    args, message, calls, capsys, tmp_path
):
    out = tmp_path / "results"
    code, _, err = run([MODEL, *args, "--out", str(out)], capsys)
    assert code == 2 and message in err and not calls and not out.exists()


def test_the_command_line_loads_no_torch_until_a_command_runs():
    code = (
        "import sys; from vitbench.cli import app; import vitbench.attention.options; "
        "print(sorted(m for m in ('torch', 'timm', 'numpy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
