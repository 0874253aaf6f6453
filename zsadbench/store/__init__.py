"""The results store: one SQLite row per finished cell plus per-image artifacts on disk."""
from .db import ResultStore
from .schema import Cell, Provenance, StoredCell

__all__ = ["Cell", "Provenance", "ResultStore", "StoredCell"]
