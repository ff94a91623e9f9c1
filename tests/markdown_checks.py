"""Readers for the report's markdown: its pipe tables and image links, for tests that check them."""

from __future__ import annotations

import re

import pandas as pd


def markdown_tables(text: str) -> list[pd.DataFrame]:
    """Every pipe table of a markdown text, parsed; a ragged row fails the test."""
    tables, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            cells = [[c.strip() for c in row.strip().strip("|").split(" | ")] for row in block]
            header, rule, body = cells[0], block[1], cells[2:]
            assert set(rule) <= {"|", "-", ":"}, rule
            assert all(len(row) == len(header) for row in body), block
            tables.append(pd.DataFrame(body, columns=header))
            block = []
    return tables


def image_links(text: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
