"""What every report section writes into: the document, the figure folder, environments, sources."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vitbench.report.environment import Environments
from vitbench.report.markdown import Document
from vitbench.report.tables import Sources

FIGURES = "figures"


@dataclass
class Context:
    doc: Document
    envs: Environments = field(default_factory=Environments)
    sources: Sources = field(default_factory=Sources)

    @property
    def figures(self) -> Path:
        return self.doc.path.parent / FIGURES

    def figure(self, name: str) -> Path:
        return self.figures / f"{name}.png"

    @property
    def many_envs(self) -> bool:
        return len(self.envs) > 1
