"""Gallery figures (image | ground truth | anomaly-map overlay, one row per case) and the HTML page."""
from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError, DataError
from ..plots._cells import finished, plt, safe, save, variants
from ..store import ResultStore
from .cases import Case, pick_cases


def load_original(key: str, size: int, root: str | Path = "") -> np.ndarray:
    """The image of a stored key (``path`` or ``path@top,left,height,width``, relative to the run's data root
    ``root`` unless absolute) as RGB floats ``[size,size,3]``."""
    name, _, crop = key.partition("@")
    path = Path(root) / name
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if crop:
                top, left, height, width = (int(v) for v in crop.split(","))
                img = img.crop((left, top, left + width, top + height))
            return np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise DataError(
            f"{path}: image of a stored result is missing; viz reads the images from the run's data root "
            "(recorded in each cell's provenance), so run it where that data is"
        ) from None


def gallery_figure(arrays: dict, cases: list[Case], title: str, root: str | Path = ""):
    """A matplotlib figure: one row per case, maps coloured on the category's own min-max range."""
    maps = arrays["anomaly_map"]
    lo, hi = float(arrays["map_min"].min()), float(arrays["map_max"].max())
    size = maps.shape[-1]
    fig, axes = plt.subplots(len(cases), 3, figsize=(6.6, 2.25 * len(cases)), squeeze=False)
    for row, case in zip(axes, cases):
        image = load_original(case.key, size, root)
        amap = (maps[case.index] - lo) / (hi - lo) if hi > lo else np.zeros_like(maps[case.index])
        row[0].imshow(image)
        row[1].imshow(arrays["gt_mask"][case.index], cmap="gray", vmin=0, vmax=1)
        row[2].imshow(image)
        row[2].imshow(amap, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        name = "/".join(Path(case.key.partition("@")[0]).parts[-2:])
        row[0].set_ylabel(f"{case.kind}\n{name}", fontsize=7)
        row[2].set_title(f"score {case.score:.3g}", fontsize=7)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, head in zip(axes[0], ("image", "ground truth", "anomaly map")):
        ax.set_title(head if ax is not axes[0][2] else f"{head}\n{ax.get_title()}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def write_galleries(out: str | Path, dest: str | Path | None = None, per_kind: int = 2,
                    progress: Callable[[int, int], None] = lambda done, total: None) -> list[Path]:
    """A PNG (and PDF) per variant, dataset and category under ``dest`` (default ``OUT/viz``), and
    ``dest/gallery.html`` showing them all with the images inlined; returns the files written.
    ``progress(done, total)`` is called after each cell."""
    store = ResultStore(out)
    if not store.exists():
        raise ConfigError(f"no results in {out}: run `zsadbench run ... --out {out}` first")
    dest = Path(dest) if dest is not None else Path(out) / "viz"
    shown = {label: _first_seed(cells) for label, cells in variants([c for c in finished(store) if c.artifact]).items()}
    total, done = sum(len(cells) for cells in shown.values()), 0
    sections, written = [], []
    for label, cells in shown.items():
        figures = []
        for cell in cells:
            progress(done, total)
            done += 1
            arrays = store.load_cell_arrays(cell.cell_id)
            cases = pick_cases(arrays["image_keys"], arrays["pred_score"], arrays["gt_label"], per_kind)
            cases = [case for case in cases if arrays["map_kept"][case.index]]  # --keep-maps gallery/none
            if not cases:
                continue
            shots = f", {cell.shots}-shot" if cell.shots else ""
            title = f"{label}: {cell.dataset_label} / {cell.category}{shots} (seed {cell.seed})"
            fig = gallery_figure(arrays, cases, title, cell.provenance.data_root or "")
            name = f"{safe(cell.dataset)}-{safe(cell.category)}" + (f"-{cell.shots}shot" if cell.shots else "")
            paths = save(fig, dest / safe(label), name)
            written += paths
            figures.append((title, paths[0]))
        if figures:
            sections.append((label, cells[0].random_init, figures))
    progress(total, total)
    page = dest / "gallery.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(_page(Path(out).resolve().name, sections), encoding="utf-8")
    return [*written, page]


def _first_seed(cells: list) -> list:
    """The cells of the lowest seed, by dataset, category and shots: one gallery per category."""
    seed = min(c.seed for c in cells)
    return sorted((c for c in cells if c.seed == seed), key=lambda c: (c.dataset, c.category, c.shots))


def _page(run: str, sections) -> str:
    body = []
    for label, random_init, figures in sections:
        body.append(f"<h2>{html.escape(label)}</h2>")
        if random_init:
            body.append("<p class='note'>Randomly initialised weights: these maps exercise the pipeline; "
                        "they are not results.</p>")
        for title, png in figures:
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            body.append(f"<figure><img alt='{html.escape(title, quote=True)}' src='data:image/png;base64,{data}'>"
                        f"<figcaption>{html.escape(title)}</figcaption></figure>")
    if not sections:
        body.append("<p>No stored anomaly maps in this results folder.</p>")
    return "\n".join([
        "<!DOCTYPE html>", "<html lang='en'>", "<head>", "<meta charset='utf-8'>",
        f"<title>zsadbench gallery: {html.escape(run)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}figure{display:inline-block;margin:0 1em 1em 0;"
        "vertical-align:top}img{max-width:520px;border:1px solid #ccc}figcaption{font-size:0.8em;color:#444}"
        ".note{color:#a00}</style>",
        "</head>", "<body>", f"<h1>Gallery of {html.escape(run)}</h1>",
        "<p>Per category: the best cases (anomalous images with the highest scores) and the worst (anomalous "
        "images with the lowest scores, normal images with the highest). Columns: image, ground truth, anomaly "
        "map over the image, coloured on the category's min-max range.</p>",
        *body, "</body>", "</html>", "",
    ])
