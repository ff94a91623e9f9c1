"""Which environment each stored row came from, and warnings where environments are mixed.

Rows carry ``env_*`` columns (see :func:`vitbench.environment.environment`) and, for measurements
that have one, a ``precision``. Two rows come from the same environment when the fields of
:data:`KEY_FIELDS` agree; each distinct environment gets a short label (E1, E2, ...) that the
report's tables print next to the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from vitbench.missing import MISSING, is_missing

#: stored column -> the name the report prints
ENV_FIELDS: dict[str, str] = {
    "env_device": "device",
    "env_device_type": "type",
    "env_threads": "threads",
    "env_torch": "torch",
    "env_timm": "timm",
    "env_python": "Python",
    "env_cuda": "CUDA",
    "env_cudnn": "cuDNN",
    "env_tf32_matmul": "TF32 matmul",
    "env_vitbench": "vitbench",
    "env_platform": "platform",
    "env_host": "host",
}

#: fields that make two environments different for the purpose of comparing their numbers
KEY_FIELDS = (
    "env_device",
    "env_device_type",
    "env_threads",
    "env_torch",
    "env_timm",
    "env_python",
    "env_cuda",
    "env_tf32_matmul",
)

#: on/off fields: a bool, or its text where the column also holds "" (SQLite stores 1 and 0)
FLAGS = {"env_tf32_matmul"}
_FLAG_TEXT = {"1": "on", "true": "on", "0": "off", "false": "off"}
ENV_COLUMN = "env"


def _text(value: object) -> str:
    """A stored cell as printed: ``-`` for missing (None, NaN, or the empty text of CUDA on a
    CPU run), whole floats without their ``.0``."""
    if is_missing(value) or value == "":
        return MISSING
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _field(row: Mapping[str, object], name: str) -> str:
    """One ``env_*`` field of a row as printed; flags read the same whichever way stored."""
    text = _text(row.get(name))
    return _FLAG_TEXT.get(text.lower(), text) if name in FLAGS else text


def _key(row: Mapping[str, object]) -> tuple[str, ...]:
    return tuple(_field(row, f) for f in KEY_FIELDS)


@dataclass
class Environments:
    """Distinct environments across the tables of a report, in order of first appearance."""

    keys: list[tuple[str, ...]] = field(default_factory=list)
    details: dict[str, dict[str, str]] = field(default_factory=dict)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # label -> table -> count
    stores: dict[str, set[str]] = field(default_factory=dict)
    precisions: dict[str, set[str]] = field(default_factory=dict)

    def label(self, row: Mapping[str, object]) -> str:
        key = _key(row)
        if key not in self.keys:
            self.keys.append(key)
            name = f"E{len(self.keys)}"
            self.details[name] = {f: _field(row, f) for f in ENV_FIELDS}
            self.rows[name], self.stores[name], self.precisions[name] = {}, set(), set()
        return f"E{self.keys.index(key) + 1}"

    def tag(self, df: pd.DataFrame, table: str) -> pd.DataFrame:
        """A copy of ``df`` with an ``env`` column; the rows are counted under ``table``."""
        if df.empty:
            return df
        out = df.copy()
        labels = [self.label(row) for row in out.to_dict("records")]
        out[ENV_COLUMN] = labels
        for label, store, precision in zip(
            labels,
            out.get("store", pd.Series([MISSING] * len(out))),
            out.get("precision", pd.Series([None] * len(out))),
            strict=True,
        ):
            self.rows[label][table] = self.rows[label].get(table, 0) + 1
            self.stores[label].add(_text(store))
            if _text(precision) != MISSING:
                self.precisions[label].add(_text(precision))
        return out

    def __len__(self) -> int:
        return len(self.keys)

    def table(self) -> pd.DataFrame:
        """One row per environment: where it ran, with what, and what it produced."""
        records = []
        for label, detail in self.details.items():
            rec = {"env": label}
            rec.update({name: detail[f] for f, name in ENV_FIELDS.items()})
            rec["precision"] = ", ".join(sorted(self.precisions[label])) or MISSING
            rec["stores"] = ", ".join(sorted(self.stores[label]))
            rec["rows"] = ", ".join(f"{t} {n}" for t, n in self.rows[label].items())
            records.append(rec)
        df = pd.DataFrame(records)
        # drop columns no environment records (e.g. CUDA when every run was on a CPU)
        keep = [c for c in df.columns if not (df[c] == MISSING).all()]
        return df[keep]


def differing_fields(envs: Environments, labels: list[str]) -> list[str]:
    """Printed names of the key fields that differ between the given environments."""
    out = []
    for f in KEY_FIELDS:
        if len({envs.details[label][f] for label in labels}) > 1:
            out.append(ENV_FIELDS[f])
    return out


def mixed_warning(envs: Environments, df: pd.DataFrame, what: str) -> str | None:
    """A warning when the rows of ``df`` (tagged by :meth:`Environments.tag`) are not alike.

    Rows differ when they come from different environments or ran at different precisions.
    """
    if df.empty or ENV_COLUMN not in df:
        return None
    labels = list(dict.fromkeys(df[ENV_COLUMN]))
    precisions = (
        sorted({_text(p) for p in df["precision"]} - {MISSING}) if "precision" in df else []
    )
    parts = []
    if len(labels) > 1:
        fields = ", ".join(differing_fields(envs, labels))
        parts.append(
            f"rows from {len(labels)} environments ({', '.join(labels)}) that differ in {fields}"
        )
    if len(precisions) > 1:
        parts.append(f"rows at different precisions ({', '.join(precisions)})")
    if not parts:
        return None
    return (
        f"{what} compares {' and '.join(parts)}; "
        "timings are comparable only within one environment (see *Environments*)."
    )
