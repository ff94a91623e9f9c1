"""Missing values: what counts as one, and how tables print it.

Rows come from the store (None for NULL), from pandas (NaN, ``pd.NA``, ``pd.NaT``) and from
measurements (a NaN where there was nothing to measure); all of these are missing. Neither torch
nor pandas is imported here: pandas' own markers can only exist once pandas is loaded.
"""

from __future__ import annotations

import numbers
import sys

#: how a table prints a missing value
MISSING = "-"


def is_missing(value: object) -> bool:
    """True for None, a NaN of any number type, and pandas' NA and NaT; False otherwise,
    containers included."""
    if value is None:
        return True
    if isinstance(value, numbers.Number):
        return bool(value != value)  # only NaN differs from itself
    pandas = sys.modules.get("pandas")
    return pandas is not None and (value is pandas.NA or value is pandas.NaT)
