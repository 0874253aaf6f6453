"""The results of an output folder as the DataFrame the tables take, with the provenance fields they read."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..store import ResultStore


def results_frame(out: str | Path) -> pd.DataFrame:
    """``ResultStore(out).to_frame()`` plus a ``protocol`` column (the auxiliary pairing each cell was run
    under, from its provenance; "" where none was recorded)."""
    store = ResultStore(out)
    frame = store.to_frame()
    protocol = {cell.cell_id: str(cell.provenance.get("protocol") or "") for cell in store.rows()}
    frame["protocol"] = frame["cell_id"].map(protocol).fillna("")
    return frame
