"""Leaderboard tables from the results store: rich terminal, Markdown, CSV (wide or long) and LaTeX.

``make_table(df, fmt)`` is pure (DataFrame in, text or a rich renderable out); ``write_tables`` writes the
text formats into a folder such as ``leaderboards/``; ``load_reported`` reads the numbers papers print
(``leaderboards/reported/*.csv``) so they can be shown beside ours, marked †.
"""
from __future__ import annotations

from ._aggregate import variant_labels
from ._coverage import expected_categories
from ._frame import results_frame
from ._reported import load_reported
from .make import FORMATS, make_table, write_tables
from .paper import make_paper_tables

__all__ = ["FORMATS", "expected_categories", "load_reported", "make_paper_tables", "make_table", "results_frame",
           "variant_labels", "write_tables"]
