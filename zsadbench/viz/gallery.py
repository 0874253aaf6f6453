"""The HTML gallery (one table per category: image, ground truth and each variant's anomaly map, one row per case)
with the small image files it links, and the optional matplotlib figure of a category."""
from __future__ import annotations

import hashlib
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from PIL import Image

from ..errors import ConfigError, DataError
from ..plots._cells import finished, plt, safe, save, variants
from ..store import ResultStore, StoredCell
from .cases import Case, pick_cases

#: Side (pixels) of the image, mask and map files the page links; larger evaluation sizes are shrunk to it.
TILE = 256
COLORMAP = "jet"


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


def short_name(key: str) -> str:
    """The last folder and file name of a stored key, as rows are labelled."""
    return "/".join(Path(key.partition("@")[0]).parts[-2:])


def map_range(arrays: dict) -> tuple[float, float]:
    """The range the maps of a cell are coloured on: its lowest and highest map value."""
    return float(arrays["map_min"].min()), float(arrays["map_max"].max())


def _scaled(amap: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (amap - lo) / (hi - lo) if hi > lo else np.zeros_like(amap)


def gallery_figure(arrays: dict, cases: list[Case], title: str, root: str | Path = ""):
    """A matplotlib figure: one row per case (its kind and file name to the left), maps coloured on the
    category's own min-max range, shown by a colour bar."""
    maps = arrays["anomaly_map"]
    lo, hi = map_range(arrays)
    size = maps.shape[-1]
    fig, axes = plt.subplots(len(cases), 3, figsize=(8.4, 2.1 * len(cases) + 0.6), squeeze=False,
                             layout="constrained")
    for row, case in zip(axes, cases):
        image = load_original(case.key, size, root)
        row[0].imshow(image)
        row[1].imshow(arrays["gt_mask"][case.index], cmap="gray", vmin=0, vmax=1)
        row[2].imshow(image)
        row[2].imshow(_scaled(maps[case.index], lo, hi), cmap=COLORMAP, alpha=0.5, vmin=0, vmax=1)
        row[0].set_ylabel(f"{case.kind}\n{short_name(case.key)}\nscore {case.score:.3g}", rotation=0,
                          ha="right", va="center", fontsize=9, labelpad=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, head in zip(axes[0], ("image", "ground truth", "anomaly map")):
        ax.set_title(head, fontsize=10)
    fig.colorbar(ScalarMappable(Normalize(lo, hi), COLORMAP), ax=axes[:, 2].tolist(), shrink=0.8,
                 label="anomaly map (the category's range)")
    fig.suptitle(title, fontsize=10)
    return fig


@dataclass(frozen=True)
class _Column:
    """One variant's cell of a category as the page shows it."""

    label: str
    cell: StoredCell
    arrays: dict
    cases: list[Case]

    def index_of(self, key: str) -> int | None:
        found = np.flatnonzero(self.arrays["image_keys"] == key)
        return int(found[0]) if len(found) else None


def write_galleries(out: str | Path, dest: str | Path | None = None, per_kind: int = 2,
                    progress: Callable[[int, int], None] = lambda done, total: None,
                    methods: Sequence[str] | None = None, figures: bool = False) -> list[Path]:
    """``dest/gallery.html`` (``dest`` defaults to ``OUT/viz``) with the image files it links under
    ``dest/images`` and ``dest/maps``; returns the files written, the page last.

    Without ``methods`` the page has a section per variant; with ``methods`` (method names or variant labels)
    one section shows the chosen variants side by side: the same image rows (each variant's cases together), a
    map column per variant. ``figures`` also writes a PNG and a PDF figure per variant and category.
    ``progress(done, total)`` is called before each cell read, then at the end."""
    store = ResultStore(out)
    if not store.exists():
        raise ConfigError(f"no results in {out}: run `zsadbench run ... --out {out}` first")
    dest = Path(dest) if dest is not None else Path(out) / "viz"
    shown = {label: _first_seed(cells) for label, cells in variants([c for c in finished(store) if c.artifact]).items()}
    groups = [_chosen(shown, methods)] if methods else [[label] for label in shown]
    total, done = sum(len(shown[label]) for group in groups for label in group), 0
    writer = _Tiles(dest)
    sections, written = [], []
    for group in groups:
        by_category: dict[tuple[str, str], list[tuple[str, StoredCell]]] = {}
        for label in group:
            for cell in shown[label]:
                by_category.setdefault((cell.dataset, cell.category), []).append((label, cell))
        blocks = []
        for members in by_category.values():
            columns = []
            for label, cell in members:
                progress(done, total)
                done += 1
                arrays = store.load_cell_arrays(cell.cell_id)
                cases = pick_cases(arrays["image_keys"], arrays["pred_score"], arrays["gt_label"], per_kind)
                cases = [case for case in cases if arrays["map_kept"][case.index]]  # --keep-maps gallery/none
                columns.append(_Column(label, cell, arrays, cases))
                if figures and cases:
                    fig = gallery_figure(arrays, cases, f"{label}: {_title(cell)}", cell.provenance.data_root or "")
                    written += save(fig, dest / safe(label), _figure_name(cell))
            if any(column.cases for column in columns):
                blocks.append(_block(writer, columns))
        if blocks:
            random_init = any(cell.random_init for label in group for cell in shown[label])
            sections.append((group, random_init, blocks))
    progress(total, total)
    page = dest / "gallery.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(_page(Path(out).resolve().name, sections), encoding="utf-8")
    return [*written, *writer.written, page]


def _first_seed(cells: list[StoredCell]) -> list[StoredCell]:
    """The cells of the lowest seed, by dataset, category and shots: one gallery per category."""
    seed = min(c.seed for c in cells)
    return sorted((c for c in cells if c.seed == seed), key=lambda c: (c.dataset, c.category, c.shots))


def _chosen(shown: dict[str, list[StoredCell]], methods: Sequence[str]) -> list[str]:
    """The variant labels that ``methods`` name (a method name picks each of its variants), in that order."""
    labels: list[str] = []
    for name in methods:
        matching = [label for label, cells in shown.items() if name == label or name == cells[0].method]
        if not matching:
            held = sorted({*shown, *(cells[0].method for cells in shown.values())})
            raise ConfigError(f"--methods: {name!r} is not in these results' maps; they hold {', '.join(held)}")
        labels += [label for label in matching if label not in labels]
    return labels


def _title(cell: StoredCell) -> str:
    shots = f", {cell.shots}-shot" if cell.shots else ""
    return f"{cell.dataset_label} / {cell.category}{shots} (seed {cell.seed})"


def _figure_name(cell: StoredCell) -> str:
    return f"{safe(cell.dataset)}-{safe(cell.category)}" + (f"-{cell.shots}shot" if cell.shots else "")


class _Tiles:
    """Writes the image, mask and map files of the page once each, named by what they show."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.written: list[Path] = []
        self._seen: set[Path] = set()

    def _path(self, folder: Path, key: str, size: int, root: str, suffix: str) -> Path:
        digest = hashlib.sha1(f"{root}\0{key}\0{size}".encode()).hexdigest()[:10]
        return self.dest / folder / f"{safe(short_name(key).rsplit('.', 1)[0].replace('/', '_'))}-{digest}{suffix}"

    def _write(self, path: Path, image: Image.Image) -> str:
        if path not in self._seen:
            self._seen.add(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".jpg":
                image.save(path, quality=85)
            else:
                image.save(path, optimize=True)
            self.written.append(path)
        return quote(path.relative_to(self.dest).as_posix())

    def image(self, folder: Path, key: str, size: int, root: str) -> tuple[str, np.ndarray]:
        """The tile of an original image: its URL and its pixels (RGB floats)."""
        pixels = load_original(key, size, root)
        path = self._path(folder, key, size, root, ".jpg")
        return self._write(path, Image.fromarray(np.round(pixels * 255).astype(np.uint8))), pixels

    def mask(self, folder: Path, key: str, size: int, root: str, mask: np.ndarray) -> str:
        image = Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
        return self._write(self._path(folder, key, size, root, "-mask.png"), image)

    def overlay(self, folder: Path, key: str, size: int, root: str, pixels: np.ndarray, amap: np.ndarray) -> str:
        """The map (scaled to [0, 1]) coloured and laid over the image at half opacity."""
        shrunk = np.asarray(Image.fromarray(amap.astype(np.float32)).resize((size, size), Image.BILINEAR))
        coloured = colormaps[COLORMAP](np.clip(shrunk, 0, 1))[..., :3]
        blended = np.round((0.5 * pixels + 0.5 * coloured) * 255).astype(np.uint8)
        return self._write(self._path(folder, key, size, root, ".jpg"), Image.fromarray(blended))


def _block(writer: _Tiles, columns: list[_Column]) -> str:
    """One category: a table of the cases of every column, rows in the order the columns picked them."""
    first = columns[0].cell
    rows: dict[str, list[tuple[str, Case]]] = {}
    for column in columns:
        for case in column.cases:
            rows.setdefault(case.key, []).append((column.label, case))
    folder = Path("images") / safe(first.dataset) / safe(first.category)
    head = ["<th>case</th><th>image</th><th>ground truth</th>"]
    for column in columns:
        lo, hi = map_range(column.arrays)
        head.append(
            f"<th>{html.escape(column.label)}<div class='setting'>{html.escape(_setting(column.cell))}</div>"
            f"<div class='cbar' title='map colours: the lowest to the highest map value of the category'>"
            f"<span class='lo'>{lo:.4g}</span><span class='ramp'></span><span class='hi'>{hi:.4g}</span></div></th>"
        )
    body = []
    for key, picks in rows.items():
        reference = next(c for c in columns if c.index_of(key) is not None)
        index = reference.index_of(key)
        size = min(reference.arrays["anomaly_map"].shape[-1], TILE)
        root = reference.cell.provenance.data_root or ""
        image_url, pixels = writer.image(folder, key, size, root)
        mask_url = writer.mask(folder, key, size, root, reference.arrays["gt_mask"][index])
        name = html.escape(short_name(key))
        kinds = "".join(
            f"<span class='kind'>{html.escape(case.kind)}"
            + (f" <span class='by'>by {html.escape(label)}</span>" if len(columns) > 1 else "") + "</span>"
            for label, case in picks
        )
        truth = "anomalous" if int(reference.arrays["gt_label"][index]) == 1 else "normal"
        cells = [f"<th scope='row'>{kinds}<span class='file' title='{html.escape(key, quote=True)}'>{name}</span>"
                 f"<span class='truth'>{truth}</span></th>",
                 f"<td><img src='{image_url}' width='{size}' height='{size}' alt='image {name}'></td>",
                 f"<td><img src='{mask_url}' width='{size}' height='{size}' alt='ground truth {name}'></td>"]
        for column in columns:
            i = column.index_of(key)
            if i is None:
                cells.append("<td class='absent'>not in this variant's run</td>")
                continue
            score = f"<div class='score'>score {float(column.arrays['pred_score'][i]):.4g}</div>"
            if not column.arrays["map_kept"][i]:
                cells.append(f"<td class='absent'>map not kept (--keep-maps){score}</td>")
                continue
            lo, hi = map_range(column.arrays)
            url = writer.overlay(Path("maps") / safe(column.label) / folder.relative_to("images"), key, size,
                                 column.cell.provenance.data_root or "", pixels,
                                 _scaled(column.arrays["anomaly_map"][i], lo, hi))
            cells.append(f"<td class='map' data-variant='{html.escape(column.label, quote=True)}'>"
                         f"<img src='{url}' width='{size}' height='{size}' alt='{html.escape(column.label)} map "
                         f"{name}'>{score}</td>")
        body.append(f"<tr data-key='{html.escape(key, quote=True)}'>{''.join(cells)}</tr>")
    return (f"<h3>{html.escape(first.dataset_label)} / {html.escape(first.category)}</h3>"
            f"<table class='cases'><thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _setting(cell: StoredCell) -> str:
    return (f"{cell.shots}-shot" if cell.shots else "zero-shot") + f", seed {cell.seed}, {cell.eval_size} px"


def _ramp() -> str:
    """The colour map as a CSS gradient, for the colour bars."""
    stops = np.linspace(0, 1, 11)
    return ", ".join(f"rgb({r * 255:.0f},{g * 255:.0f},{b * 255:.0f}) {100 * t:.0f}%"
                     for (r, g, b, _), t in zip(colormaps[COLORMAP](stops), stops))


def _page(run: str, sections) -> str:
    body = []
    for group, random_init, blocks in sections:
        heading = " vs ".join(group)
        body.append(f"<section><h2>{html.escape(heading)}</h2>")
        if random_init:
            body.append("<p class='note'>Randomly initialised weights: these maps exercise the pipeline; "
                        "they are not results.</p>")
        body += [*blocks, "</section>"]
    if not sections:
        body.append("<p>No stored anomaly maps in this results folder.</p>")
    return "\n".join([
        "<!DOCTYPE html>", "<html lang='en'>", "<head>", "<meta charset='utf-8'>",
        f"<title>zsadbench gallery: {html.escape(run)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;color:#222}"
        "table.cases{border-collapse:collapse;margin-bottom:2em}"
        "table.cases th,table.cases td{padding:4px 6px;vertical-align:middle;text-align:center}"
        "thead th{font-size:0.95em;vertical-align:bottom}"
        "table.cases tbody th{text-align:left;font-weight:normal;font-size:0.95em;max-width:14em;overflow-wrap:anywhere}"
        "tbody tr{border-top:1px solid #ddd}"
        "img{width:180px;height:180px;display:block}"
        ".kind{display:block;font-weight:bold}.by{font-weight:normal;color:#555}"
        ".file{display:block;font-family:monospace;font-size:1.05em}.truth{display:block;color:#555}"
        ".score{font-size:0.85em;color:#333}.setting{font-weight:normal;font-size:0.85em;color:#555}"
        ".absent{color:#888;font-size:0.85em;width:180px}"
        ".cbar{display:flex;align-items:center;gap:4px;font-weight:normal;font-size:0.8em;margin-top:3px}"
        f".ramp{{flex:1;height:10px;min-width:100px;background:linear-gradient(to right, {_ramp()})}}"
        ".note{color:#a00}</style>",
        "</head>", "<body>", f"<h1>Gallery of {html.escape(run)}</h1>",
        "<p>Per category: the best cases (anomalous images with the highest scores) and the worst (anomalous "
        "images with the lowest scores, normal images with the highest). Columns: image, ground truth, and each "
        "variant's anomaly map over the image, coloured on the range of that variant's maps of the category "
        "(the colour bar above the column).</p>",
        *body, "</body>", "</html>", "",
    ])
