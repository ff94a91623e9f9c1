"""The worked attention table against PyTorch's scaled_dot_product_attention and by-hand values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.nn.functional import scaled_dot_product_attention

from vitbench.attention.worked import load_qkv, scaled_dot_product_attention_table
from vitbench.errors import VitbenchError

LECTURE = {"q": [[1, 0], [0, 1]], "k": [[1, 0], [0, 1]], "v": [[1, 2], [3, 4]]}


def test_the_lectures_example_worked_by_hand():
    worked = scaled_dot_product_attention_table(LECTURE["q"], LECTURE["k"], LECTURE["v"])
    # by hand: scores [1/sqrt 2, 0]; weights e^a / (e^a + 1) with a = 1/sqrt 2
    a = 1 / math.sqrt(2)
    w0 = math.exp(a) / (math.exp(a) + 1)  # 0.669762
    assert worked.scale == pytest.approx(a)
    assert worked.scores[0] == pytest.approx([a, 0])
    assert worked.weights[0] == pytest.approx([w0, 1 - w0])
    assert worked.context[0] == pytest.approx([1 + 2 * (1 - w0), 2 + 2 * (1 - w0)])
    row = worked.rows()[0]
    assert [round(w, 4) for w in row["weights"]] == [0.6698, 0.3302]
    # 1.660477: to four decimals 1.6605 (1.6604 would be the digits cut off, not rounded)
    assert [round(c, 4) for c in row["context"]] == [1.6605, 2.6605]


def test_random_inputs_equal_torch_scaled_dot_product_attention():
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(5, 8)), rng.normal(size=(7, 8)), rng.normal(size=(7, 3))
    for scale in (None, 0.3):
        worked = scaled_dot_product_attention_table(q, k, v, scale=scale)
        expected = scaled_dot_product_attention(
            *(torch.from_numpy(x)[None] for x in (q, k, v)), scale=scale
        )[0].numpy()
        assert worked.context.shape == (5, 3)
        np.testing.assert_allclose(worked.context, expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(worked.weights.sum(axis=1), 1.0)


def test_large_scores_do_not_overflow():
    worked = scaled_dot_product_attention_table([[1000.0]], [[1.0], [0.0]], [[1.0], [2.0]], 1.0)
    np.testing.assert_allclose(worked.weights, [[1.0, 0.0]])


def _file(tmp_path, data) -> str:
    path = tmp_path / "qkv.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_a_file_gives_the_matrices_and_its_scale(tmp_path):
    q, k, v, scale = load_qkv(_file(tmp_path, {**LECTURE, "scale": 0.5}))
    assert scale == 0.5 and q.shape == (2, 2) and v.tolist() == [[1, 2], [3, 4]]
    assert load_qkv(_file(tmp_path, LECTURE))[3] is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "is not valid JSON"),
        ([1, 2], "must hold a JSON object"),
        ({"q": [[1]], "k": [[1]]}, "lacks v"),
        ({**LECTURE, "Scale": 1}, "unknown key(s) Scale"),
        ({**LECTURE, "q": [[1, 0], [1]]}, "q must be a matrix of numbers"),
        ({**LECTURE, "k": [1, 0]}, "k must be a non-empty matrix"),
        ({**LECTURE, "v": [["a", 2], [3, 4]]}, "v must be a matrix of numbers"),
        ({**LECTURE, "k": [[1, 0, 0], [0, 1, 0]]}, "q and k must have as many columns"),
        ({**LECTURE, "v": [[1, 2]]}, "k and v must have as many rows"),
        ({**LECTURE, "scale": -1}, "scale must be a positive number"),
        ({**LECTURE, "scale": "big"}, "scale must be a positive number"),
    ],
)
def test_bad_files_are_one_line(tmp_path, data, message):
    with pytest.raises(VitbenchError, match="^[^\n]*$") as err:
        load_qkv(_file(tmp_path, data))
    assert message in str(err.value)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(VitbenchError, match="qkv file not found"):
        load_qkv(tmp_path / "absent.json")
