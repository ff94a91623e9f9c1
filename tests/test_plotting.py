"""Figures without pyplot, and the layer x head grid of per-head records."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from vitbench.plotting import layer_head_grid

DRAW = """
import sys
from pathlib import Path
from vitbench.plotting import save_png, subplots
fig, ax = subplots(figsize=(2, 1), dpi=50)
ax.plot([0, 1], [1, 0])
save_png(fig, Path({path!r}), 50, tight=True)
print("matplotlib.pyplot" in sys.modules)
"""


def test_figures_are_drawn_without_pyplot(tmp_path: Path) -> None:
    path = tmp_path / "f.png"
    code = DRAW.format(path=str(path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grid_rows_are_layers_present_and_columns_head_indices() -> None:
    records = [
        {"layer": 5, "head": 0, "v": 1.0},
        {"layer": 2, "head": 2, "v": 2.0},
        {"layer": 2, "head": 2, "v": 4.0},  # repeated: the mean
        {"layer": 2, "head": 0, "v": None},
        {"layer": 5, "head": 1, "v": math.nan},
    ]
    grid = layer_head_grid(records, "v")
    expected = np.array([[np.nan, np.nan, 3.0], [1.0, np.nan, np.nan]])
    np.testing.assert_array_equal(grid, expected)


def test_grid_of_no_records_is_empty() -> None:
    assert layer_head_grid([], "v").shape == (0, 0)
