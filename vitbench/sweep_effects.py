"""The effect of each hyperparameter of a sweep: test accuracy over the cells sharing a value.

Plain Python over sweep rows, so both the sweep (``vitbench.train.sweep``) and the report, which
imports nothing that trains, compute the one table the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vitbench.missing import is_missing


def effects(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean, min and max test accuracy (and mean GMACs) for each value of each grid key."""
    out = []
    for key in keys:
        for value in dict.fromkeys(r[key] for r in rows):
            accs = [r["test_acc"] for r in rows if r[key] == value]
            gmacs = [r["gmacs"] for r in rows if r[key] == value and not is_missing(r.get("gmacs"))]
            out.append(
                {
                    "hyperparameter": key,
                    "value": value,
                    "cells": len(accs),
                    "mean_test_acc": sum(accs) / len(accs),
                    "min_test_acc": min(accs),
                    "max_test_acc": max(accs),
                    "mean_gmacs": sum(gmacs) / len(gmacs) if gmacs else None,
                }
            )
    return out
