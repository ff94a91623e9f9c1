"""Shared test set-up: a non-interactive plot backend and a fresh results store per test."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the hub

import pytest  # noqa: E402


@pytest.fixture
def store(tmp_path):
    """An empty results store directory."""
    path = tmp_path / "results"
    path.mkdir()
    return path
