"""A small markdown document: headings, paragraphs, pipe tables, warnings and image links."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from vitbench.files import atomic_write


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def pipe_table(df: pd.DataFrame) -> str:
    """A GitHub pipe table of already formatted cells (numbers right-aligned by the reader)."""
    header = "| " + " | ".join(_cell(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df.to_numpy().tolist()]
    return "\n".join([header, rule, *body])


class Document:
    """Markdown blocks in order; images are linked relative to the document's directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.blocks: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(f"{'#' * level} {text}")

    def comment(self, text: str) -> None:
        """An HTML comment: kept in the file, not shown by a markdown viewer."""
        self.blocks.append(f"<!-- {text} -->")

    def paragraph(self, text: str) -> None:
        self.blocks.append(text.strip())

    def numbered(self, items: list[str]) -> None:
        if items:
            self.blocks.append("\n".join(f"{i}. {item}" for i, item in enumerate(items, 1)))

    def warning(self, text: str | None) -> None:
        if text:
            self.blocks.append(f"> **Warning:** {text}")

    def table(self, df: pd.DataFrame) -> None:
        if not df.empty:
            self.blocks.append(pipe_table(df))

    def image(self, path: Path, alt: str) -> None:
        """Link a PNG by its path relative to the document."""
        rel = Path(os.path.relpath(path, self.path.parent)).as_posix()
        self.blocks.append(f"![{alt}]({rel})")

    def text(self) -> str:
        return "\n\n".join(self.blocks) + "\n"

    def write(self) -> Path:
        """Write the document whole, replacing the last one only once it is written."""
        text = self.text()
        return atomic_write(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
