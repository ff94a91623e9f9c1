"""`vitbench models`: names from a cache without torch, counts only when asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vitbench.cli import main
from vitbench.model_index import CACHE_ENV, made_from, matching, model_index
from vitbench.zoo import list_models
from vitbench.zoo.aliases import aliases_by_target

#: runs `vitbench models` and says on stderr which heavy packages it imported
LIST_AND_REPORT_IMPORTS = """
import json, sys
from vitbench.cli import main
try:
    main(["models", "--limit", "2000", "--format", "json"])
finally:
    heavy = [m for m in ("torch", "timm", "torchvision") if m in sys.modules]
    print("imported=" + json.dumps(heavy), file=sys.stderr)
"""


def _imported(stderr: str) -> list[str]:
    line = [s for s in stderr.splitlines() if s.startswith("imported=")][-1]
    return json.loads(line.removeprefix("imported="))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache directory for each test."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_listing_from_the_cache_imports_no_torch(cache: Path) -> None:
    env = {**os.environ, CACHE_ENV: str(cache)}
    listings = []
    for _ in range(2):  # the first run builds the cache, the second reads it
        proc = subprocess.run(
            [sys.executable, "-c", LIST_AND_REPORT_IMPORTS], capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, proc.stderr
        listings.append(([json.loads(line)["model"] for line in proc.stdout.splitlines()], proc))
    (built, first), (cached, second) = listings
    assert "torch" in _imported(first.stderr)  # building the cache needs the zoo
    assert _imported(second.stderr) == []
    assert cached == built == list_models()


def test_names_and_aliases_are_the_zoos() -> None:
    by_target = aliases_by_target()
    assert model_index() == {name: by_target.get(name, []) for name in list_models()}


@pytest.mark.parametrize(
    ("pattern", "glob"), [("swin", "*swin*"), ("vit_*_patch16_224", None), ("deit_[bs]*", None)]
)
def test_patterns_match_timm_names_as_timm_matches_them(pattern: str, glob: str | None) -> None:
    import timm

    timm_names = set(timm.list_models())
    ours = [n for n in matching(list(model_index()), pattern) if n in timm_names]
    assert sorted(ours) == sorted(timm.list_models(glob or pattern))  # timm sorts naturally


def test_a_cache_from_other_versions_is_built_again(cache: Path, capsys) -> None:
    stale = {**made_from(), "timm": "0.0.1"}
    cache.mkdir()
    (cache / "models.json").write_text(json.dumps({"made_from": stale, "models": {"ghost": []}}))
    code, out, err = run(capsys, "models", "--limit", "2000", "--format", "json")
    assert code == 0, err
    names = [json.loads(line)["model"] for line in out.splitlines()]
    assert "ghost" not in names and "vit_base_patch16_224" in names
    assert json.loads((cache / "models.json").read_text())["made_from"] == made_from()


def test_names_only_unless_counting_is_asked(capsys) -> None:
    code, out, err = run(capsys, "models", "deit_base_patch16_224", "--format", "json")
    assert code == 0, err
    assert json.loads(out) == {"model": "deit_base_patch16_224", "aliases": "deit-b, deit-base"}
    code, out, err = run(capsys, "models", "deit_base_patch16_224", "--count", "--format", "json")
    assert code == 0, err
    row = json.loads(out)
    # timm's published 86.57M parameters; 14 x 14 patches and the class token
    assert row["params"] == 86_567_656 and row["img_size"] == 224
    assert (row["tokens"], row["tokens_at"]) == (197, "blocks.0.attn")


def test_no_match_is_one_warning(capsys) -> None:
    code, out, err = run(capsys, "models", "no_such_family_xyz")
    assert code == 1 and out == "" and "no model matches 'no_such_family_xyz'" in err
