"""`vitbench profile --metrics params,flops`: where `tokens` was read and the operators left
uncounted are fields of the stored record, so json, csv and the store all carry them."""

from __future__ import annotations

import csv
import io
import json

import pytest

from vitbench.cli import main
from vitbench.store import read_table

#: CrossViT's second branch is resized bicubically, an operator neither we nor fvcore count
CROSSVIT = ["profile", "crossvit_tiny_240", "--img-size", "120", "--metrics", "params,flops"]
#: 120 px in 12 px patches and, resized to 112, in 16 px patches; each branch a class token
TOKENS = (10 * 10 + 1) + (7 * 7 + 1)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_json_and_the_store_carry_uncounted_operators_and_tokens_at(capsys, store) -> None:
    code, out, err = run(capsys, *CROSSVIT, "--format", "json", "--out", str(store))
    assert code == 0, err
    row = json.loads(out)
    assert row["uncounted_ops"] == "upsample_bicubic2dx1"
    assert (row["tokens"], row["tokens_at"]) == (TOKENS, "blocks.0")
    stored = read_table(store, "profile").iloc[0]
    assert stored["uncounted_ops"] == "upsample_bicubic2dx1"
    assert (stored["tokens"], stored["tokens_at"]) == (TOKENS, "blocks.0")


def test_csv_carries_them_and_the_table_warns(capsys) -> None:
    code, out, err = run(capsys, *CROSSVIT, "--format", "csv", "--no-save")
    assert code == 0, err
    row = next(csv.DictReader(io.StringIO(out)))
    assert row["uncounted_ops"] == "upsample_bicubic2dx1" and row["tokens_at"] == "blocks.0"
    code, out, err = run(capsys, *CROSSVIT, "--no-save")
    assert code == 0 and "operators not counted: upsample_bicubic2dx1" in err
