"""Reading stores: one table from one or more stores, as a pandas DataFrame."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from vitbench.store.database import Store, open_store, resolve_url

if TYPE_CHECKING:  # pandas is imported when a table is read, not by every writer
    import pandas as pd


def open_stores(targets: Iterable[str | os.PathLike | Store]) -> list[Store]:
    """Open stores for reading, each once however often it is listed."""
    seen: dict[str, Store] = {}
    for target in targets:
        if isinstance(target, Store):
            seen.setdefault(str(target.url), target)
            continue
        url = resolve_url(target)
        if url not in seen:
            seen[url] = open_store(url, create=False)
    return list(seen.values())


def read_table(
    stores: str | os.PathLike | Store | Iterable[str | os.PathLike | Store], table: str
) -> pd.DataFrame:
    """One table from one or more stores, in write order, with a ``store`` column saying which."""
    import pandas as pd

    if isinstance(stores, (str, os.PathLike, Store)):
        stores = [stores]
    frames = []
    for st in open_stores(stores):
        df = st.read(table)
        if not df.empty:
            df.insert(0, "store", st.label)
            frames.append(df)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True, sort=False)
