"""Leaderboard tables from the results store: rich terminal, Markdown, CSV (wide or long) and LaTeX.

``make_table(df, fmt)`` is pure (DataFrame in, text or a rich renderable out); ``write_tables`` writes the
text formats into a folder such as ``leaderboards/``; ``load_reported`` reads the numbers papers print
(``leaderboards/reported/*.csv``) so they can be shown beside ours, marked †. :class:`Intervals` carries
confidence intervals computed elsewhere (:mod:`.intervals` bootstraps them from a results folder) into any
format.
"""
from __future__ import annotations

from ._aggregate import variant_labels
from ._ci import Intervals
from ._coverage import expected_categories
from ._frame import results_frame
from ._reported import load_reported
from .make import FORMATS, make_table, write_tables
from .paper import make_paper_tables

__all__ = ["FORMATS", "Intervals", "expected_categories", "load_reported", "make_paper_tables", "make_table",
           "results_frame", "variant_labels", "write_tables"]
