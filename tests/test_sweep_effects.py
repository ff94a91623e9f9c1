"""Effects of a sweep's hyperparameters: the mean, min and max over the cells sharing a value."""

from __future__ import annotations

import pytest

from vitbench.sweep_effects import effects


def test_effects_are_means_by_value() -> None:
    rows = [
        {"depth": 1, "lr": 1, "test_acc": 0.5, "gmacs": 1.0},
        {"depth": 1, "lr": 2, "test_acc": 0.7, "gmacs": 1.0},
        {"depth": 2, "lr": 1, "test_acc": 0.6, "gmacs": 2.0},
        {"depth": 2, "lr": 2, "test_acc": 0.9, "gmacs": 2.0},
    ]
    table = {(r["hyperparameter"], r["value"]): r for r in effects(rows, ["depth", "lr"])}
    assert table["depth", 2]["mean_test_acc"] == pytest.approx(0.75)
    assert table["lr", 1]["mean_test_acc"] == pytest.approx(0.55)
    assert table["lr", 2]["min_test_acc"] == 0.7 and table["lr", 2]["max_test_acc"] == 0.9
    assert table["depth", 1]["cells"] == 2 and table["depth", 2]["mean_gmacs"] == 2.0


def test_missing_gmacs_are_left_out_of_the_mean() -> None:
    rows = [
        {"depth": 1, "test_acc": 0.5, "gmacs": 1.0},
        {"depth": 1, "test_acc": 0.7, "gmacs": float("nan")},  # a NULL read back by pandas
        {"depth": 2, "test_acc": 0.6, "gmacs": None},
    ]
    table = {r["value"]: r for r in effects(rows, ["depth"])}
    assert table[1]["mean_gmacs"] == 1.0 and table[1]["cells"] == 2
    assert table[2]["mean_gmacs"] is None
