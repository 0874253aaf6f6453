"""Result rows for the table, plot and store tests, built through the one result schema."""
from __future__ import annotations

import itertools
from typing import Any

from zsadbench.store.schema import Provenance, StoredCell

_ids = itertools.count()

DEFAULTS: dict[str, Any] = dict(
    method="winclip", method_label="WinCLIP", config_hash="0123456789abcdef", config_json="{}", dataset="mvtec",
    dataset_label="MVTec AD", domain="industrial", category="bottle", shots=0, seed=0, aux="", eval_size=518,
    pretrained="openai", precision="fp32", random_init=False, status="ok",
)


def stored_cell(*, provenance: dict[str, Any] | None = None, **fields: Any) -> StoredCell:
    """A :class:`StoredCell` with ``fields`` over :data:`DEFAULTS` (a fresh ``cell_id`` unless given)."""
    fields.setdefault("cell_id", f"c{next(_ids)}")
    return StoredCell(**{**DEFAULTS, **fields}, provenance=Provenance.from_dict(provenance or {}))


def frame_row(**fields: Any) -> dict[str, Any]:
    """One row of the tables' frame, as ``ResultStore.to_frame`` gives it (see :func:`stored_cell`)."""
    return stored_cell(**fields).frame_record()
