"""Markdown reports with PNG figures, written from stored results only (never re-measured)."""

from vitbench.report.build import build_report

__all__ = ["build_report"]
