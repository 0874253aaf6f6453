"""``zsadbench efficiency``: parameters, GFLOPs, throughput, peak memory and training time of methods on this
device, as a table like the MPAMA paper's Table 7 (rich, Markdown, CSV, LaTeX).

:mod:`.measure` holds the measurements (and their exact definitions), :mod:`.table` the formats. The names below
are imported on first use, so the table formats never load torch.
"""
from ..lazy import surface

_WHERE = {
    "DeviceInfo": ".table",
    "EfficiencyReport": ".table",
    "EfficiencyRow": ".table",
    "FORMATS": ".table",
    "Settings": ".measure",
    "measure_method": ".measure",
    "method_specs": ".measure",
    "render": ".table",
}

__all__ = sorted(_WHERE)

__getattr__ = surface(__name__, _WHERE)
