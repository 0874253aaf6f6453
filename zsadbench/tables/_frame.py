"""The results of an output folder as the DataFrame the tables take."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..store import ResultStore


def results_frame(out: str | Path) -> pd.DataFrame:
    """``ResultStore(out).to_frame()``: one row per cell, as :meth:`StoredCell.frame_record` gives it."""
    return ResultStore(out).to_frame()
