"""A training run stopped by an exception once an epoch is stored, as Ctrl-C would stop it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitbench.store import Store
from vitbench.train import TrainConfig, train


class Interrupt(Exception):
    pass


def interrupted(cfg: TrainConfig, store: Store, after_epoch: int = 1) -> Path:
    """Train ``cfg`` into ``store`` until epoch ``after_epoch`` is stored, then stop it; the
    stopped run's folder (the only one under the store's ``runs``)."""

    def stop(rec: dict) -> None:
        if rec["epoch"] == after_epoch:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(cfg, store=store, on_epoch=stop)
    (run_dir,) = (Path(store.artifacts) / "runs").iterdir()
    return run_dir
