"""What every report section writes into: the document, the figure folder, environments, sources."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vitbench.report.environment import Environments
from vitbench.report.markdown import Document
from vitbench.report.tables import Sources
from vitbench.store import Store

FIGURES = "figures"


@dataclass
class Context:
    doc: Document
    stores: dict[str, Store] = field(default_factory=dict)  # by the name rows carry in `store`
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

    def copy_stored_figure(self, store: str, run_id: str, name: str, target: str) -> Path | None:
        """The PNG a run stored under ``name`` in the ``figures`` table, written to the report's
        figure ``target``; None when the run stored none."""
        st = self.stores.get(store)
        rows = st.rows("figures", run_id=run_id, name=name) if st is not None else []
        if not rows:
            return None
        path = self.figure(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rows[0]["data"])
        return path
