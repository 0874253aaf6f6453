"""The results store: one SQLite row per finished cell plus per-image artifacts on disk."""
from .db import ResultStore, StoredCell

__all__ = ["ResultStore", "StoredCell"]
