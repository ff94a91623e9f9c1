"""One test of missing values for the store's, pandas' and numpy's markers."""

from __future__ import annotations

import decimal
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from vitbench.missing import is_missing


@pytest.mark.parametrize(
    "value",
    [None, math.nan, np.float32("nan"), np.float64("nan"), decimal.Decimal("nan"), pd.NA, pd.NaT],
)
def test_missing_values(value: object) -> None:
    assert is_missing(value)


@pytest.mark.parametrize(
    "value",
    [
        0,
        0.0,
        False,
        "",
        "-",
        math.inf,
        np.int64(3),
        10**400,
        [math.nan],
        {},
        np.array([1.0, math.nan]),
    ],
)
def test_present_values(value: object) -> None:
    assert not is_missing(value)


def test_imports_neither_pandas_nor_torch() -> None:
    code = "import sys, vitbench.missing; print(sorted({'pandas', 'torch'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
