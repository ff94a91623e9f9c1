"""Fixtures for the report tests: result stores written into temporary directories."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_fixtures import write_profile_store


@pytest.fixture
def profile_store(tmp_path) -> Path:
    """A store with a benchmark-table profile, an image-size sweep and its fits."""
    return write_profile_store(tmp_path / "cpu_results")
