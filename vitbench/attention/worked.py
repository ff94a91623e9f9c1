"""Scaled dot-product attention worked by hand: the scores, weights and context of every query.

    scores  = q k^T * scale          (n, m)   scale = 1 / sqrt(d_k) unless given
    weights = softmax(scores, keys)  (n, m)   each row sums to one
    context = weights v              (n, d_v)

For checking a lecture's or a textbook's table from weights the user gives
(`vitbench analyze attention --qkv FILE`); a JSON file holds ``q``, ``k``, ``v`` and an optional
``scale``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitbench.errors import VitbenchError

KEYS = ("q", "k", "v")
#: every key a qkv file may hold
FILE_KEYS = (*KEYS, "scale")


@dataclass(frozen=True)
class WorkedAttention:
    """Every step of one attention: scores (n, m), weights (n, m), context (n, d_v)."""

    scores: np.ndarray
    weights: np.ndarray
    context: np.ndarray
    scale: float

    def rows(self) -> list[dict[str, Any]]:
        """One record per query row: its scores, weights and context as lists."""
        return [
            {
                "query": i,
                "scale": self.scale,
                "scores": self.scores[i].tolist(),
                "weights": self.weights[i].tolist(),
                "context": self.context[i].tolist(),
            }
            for i in range(len(self.scores))
        ]


def _matrix(name: str, value: object) -> np.ndarray:
    """``value`` as a non-empty 2-D float array, or one line naming ``name``."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise VitbenchError(
            f"{name} must be a matrix of numbers with rows of equal length"
        ) from None
    if array.ndim != 2 or array.size == 0:
        raise VitbenchError(
            f"{name} must be a non-empty matrix (a list of rows), got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise VitbenchError(f"{name} holds a value that is not a finite number")
    return array


def _check_shapes(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
    """q (n, d), k (m, d), v (m, d_v)."""
    if q.shape[1] != k.shape[1]:
        raise VitbenchError(
            f"q and k must have as many columns (d_k): q is {q.shape}, k is {k.shape}"
        )
    if k.shape[0] != v.shape[0]:
        raise VitbenchError(
            f"k and v must have as many rows (keys): k is {k.shape}, v is {v.shape}"
        )


def _scale(scale: object, d_k: int) -> float:
    """``scale``, checked, or 1 / sqrt(d_k)."""
    if scale is None:
        return 1 / math.sqrt(d_k)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise VitbenchError(f"scale must be a positive number, got {scale!r}")
    return float(scale)


def scaled_dot_product_attention_table(
    q: object, k: object, v: object, scale: float | None = None
) -> WorkedAttention:
    """softmax(q k^T * scale) v, step by step, in float64 (``scale`` defaults to 1/sqrt(d_k))."""
    q, k, v = (_matrix(name, x) for name, x in zip(KEYS, (q, k, v), strict=True))
    _check_shapes(q, k, v)
    factor = _scale(scale, q.shape[1])
    scores = q @ k.T * factor  # (n, m)
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights = exp / exp.sum(axis=1, keepdims=True)  # (n, m)
    return WorkedAttention(scores, weights, weights @ v, factor)


def load_qkv(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None]:
    """q, k, v and the scale (None: 1/sqrt(d_k)) from a JSON file
    ``{"q": [[...]], "k": [[...]], "v": [[...]], "scale": 0.5}``, checked."""
    path = Path(path)
    if not path.is_file():
        raise VitbenchError(f"qkv file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VitbenchError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise VitbenchError(f"{path} must hold a JSON object with keys q, k, v (and scale)")
    unknown = [key for key in data if key not in FILE_KEYS]
    if unknown:
        raise VitbenchError(
            f"{path}: unknown key(s) {', '.join(unknown)} (it holds q, k, v, scale)"
        )
    missing = [key for key in KEYS if key not in data]
    if missing:
        raise VitbenchError(f"{path} lacks {', '.join(missing)}: it needs q, k and v")
    q, k, v = (_matrix(key, data[key]) for key in KEYS)
    _check_shapes(q, k, v)
    scale = data.get("scale")
    _scale(scale, q.shape[1])
    return q, k, v, scale
