"""Results people can share: a versioned JSON results file per results folder, merging such files into one
leaderboard folder, and a static HTML leaderboard.

* :mod:`.schema`: the file format (``results.schema.json``) and its versions;
* :mod:`.document` builds a results document from stored cells and gives back the cells of one;
* :mod:`.files` reads and writes results files, checked against the schema and against their cells;
* :mod:`.export`: the document of a results folder, with cached (or bootstrapped) intervals;
* :mod:`.intervals`: the intervals of a folder's numbers, bootstrapped or from a merged folder's file;
* :mod:`.merge`: several files into one leaderboard folder, refusing what cannot be compared;
* :mod:`.page`: the HTML leaderboard.

The CLI commands are ``zsadbench export``, ``merge`` and ``leaderboard``; nothing here imports torch.
"""
from __future__ import annotations

from .document import results_document, stored_cells
from .export import folder_document
from .files import read_results, write_results
from .merge import Source, merged_document, write_leaderboard
from .page import leaderboard_page
from .schema import SCHEMA_PATH, SCHEMA_VERSION

__all__ = ["SCHEMA_PATH", "SCHEMA_VERSION", "Source", "folder_document", "leaderboard_page", "merged_document",
           "read_results", "results_document", "stored_cells", "write_leaderboard", "write_results"]
