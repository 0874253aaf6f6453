"""Galleries: which cases are picked, and the viz command on runs over the synthetic dataset and the real MVTec AD
samples: the page links small image files (under 1 MB per category), loads in headless Chromium (installed by
.ci/run; missing is a failure) with every image decoded and no console output, and shows several methods side by
side on the same images."""
from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsadbench.cli.main import main
from zsadbench.errors import ConfigError
from zsadbench.store import ResultStore
from zsadbench.viz import pick_cases, write_galleries

RUN = ["run", "--method", "winclip", "--pretrained", "none", "--set", "backbone=zsad-tiny-16-240", "--no-table"]
MB = 1 << 20
# Put first in <head>: records failed loads (capture phase sees <img> errors), script errors and console.error,
# then, once every image has loaded or failed, counts the decoded images.
PROBE = """<script>
window.problems = [];
window.addEventListener('error', e => window.problems.push(e.target && e.target.src ? 'failed ' + e.target.src : 'error ' + e.message), true);
const consoleError = console.error;
console.error = (...args) => { window.problems.push('console ' + args.join(' ')); consoleError(...args); };
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const out = document.createElement('pre');
  out.id = 'image-check';
  out.textContent = 'loaded ' + ok + ' of ' + imgs.length + '; problems: ' + window.problems.join(' | ');
  document.body.appendChild(out);
});
</script>"""


def test_pick_cases_best_and_worst_by_score():
    keys = [f"k{i}" for i in range(7)]
    scores = np.array([0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.3])
    labels = np.array([1, 1, 1, 1, 0, 0, 0])
    cases = pick_cases(keys, scores, labels, per_kind=2)
    picked = [(c.kind, c.key) for c in cases]
    assert picked == [("detected", "k0"), ("detected", "k3"), ("missed", "k1"), ("missed", "k2"),
                      ("false alarm", "k5"), ("false alarm", "k6")]
    # with few anomalous images, an image is never both detected and missed
    few = pick_cases(keys[:2], scores[:2], np.array([1, 1]), per_kind=2)
    assert [c.kind for c in few] == ["detected", "detected"]


class Page(HTMLParser):
    """What a gallery page shows: image sources, category headings, rows (key → cells) and column headers."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[str] = []
        self.categories: list[str] = []
        self.rows: dict[str, list[dict]] = {}
        self.headers: list[str] = []
        self._row: str | None = None
        self._heading: list[str] | None = None
        self._header: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
            if self._row is not None:
                self.rows[self._row][-1]["img"] = attrs["src"]
        elif tag == "tr" and "data-key" in attrs:
            self._row = attrs["data-key"]
            self.rows.setdefault(self._row, [])
        elif tag in ("td", "th") and self._row is not None:
            self.rows[self._row].append({"variant": attrs.get("data-variant"), "text": ""})
        elif tag == "h3":
            self._heading = []
        elif tag == "th" and self._row is None:
            self._header = []

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        elif tag == "h3" and self._heading is not None:
            self.categories.append("".join(self._heading))
            self._heading = None
        elif tag == "th" and self._header is not None:
            self.headers.append(" ".join(" ".join(self._header).split()))
            self._header = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)
        if self._header is not None:
            self._header.append(data)
        if self._row is not None and self.rows[self._row]:
            self.rows[self._row][-1]["text"] += " " + data


def browser_check(page: Path, tmp_path: Path) -> str:
    """Open ``page`` (a probe copy beside it, so its links resolve) in headless Chromium: the page renders, and
    the result line of :data:`PROBE`; asserts the page logged nothing to the console."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is missing: apt-get install chromium"
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0"]
    try:
        dom = subprocess.run([*args, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
        shot = tmp_path / "page.png"
        subprocess.run([*args, f"--screenshot={shot}", "--window-size=1200,900", probe.as_uri()],
                       capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    with Image.open(shot) as img:  # the page renders: not a blank screen
        assert np.asarray(img.convert("L")).std() > 5
    assert "CONSOLE" not in dom.stderr, [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    found = re.search(r'<pre id="image-check">(.*?)</pre>', dom.stdout)
    assert found, dom.stdout[-2000:] + dom.stderr[-2000:]
    return found.group(1)


def check_gallery(out: Path, tmp_path: Path, categories: int, *, dest: Path | None = None) -> Page:
    """The page of ``out``'s gallery: its images are linked files that exist, it and they take under 1 MB per
    category, and Chromium decodes every image without a console message."""
    page = (dest or out / "viz") / "gallery.html"
    text = page.read_text(encoding="utf-8")
    shown = Page(text)
    assert len(shown.categories) == categories and shown.images
    assert "data:" not in text  # nothing inlined
    files = {page.parent / src for src in shown.images}
    assert all(f.is_file() and page.parent in f.resolve().parents for f in files)
    size = page.stat().st_size + sum(f.stat().st_size for f in files)
    assert size < categories * MB, f"{size} bytes for {categories} categories"
    assert "not results" in text  # random-init runs say so
    assert browser_check(page, tmp_path) == f"loaded {len(shown.images)} of {len(shown.images)}; problems: "
    return shown


def test_viz_of_a_synthetic_run_links_small_files_and_opens_in_a_browser(tmp_path):
    out = tmp_path / "out"
    assert main([*RUN, "--datasets", "synthetic", "--eval-size", "256", "--out", str(out)]) == 0
    assert main(["viz", "--out", str(out), "--per-kind", "4"]) == 0
    shown = check_gallery(out, tmp_path, categories=3)
    assert not list((out / "viz").rglob("*.pdf"))  # figures only on request
    store = ResultStore(out)
    for cell in store.rows():
        arrays = store.load_cell_arrays(cell.cell_id)
        lo, hi = arrays["map_min"].min(), arrays["map_max"].max()
        assert f"{lo:.4g} {hi:.4g}" in " ".join(shown.headers)  # the colour bar's ends: the category's map range
        picked = pick_cases(arrays["image_keys"], arrays["pred_score"], arrays["gt_label"], 4)
        for case in picked:
            label = shown.rows[case.key][0]["text"]  # readable row labels: kind, file name, truth
            assert case.kind in label and "/".join(Path(case.key).parts[-2:]) in label
            assert ("anomalous" if case.label else "normal") in label
    calls = []
    write_galleries(out, tmp_path / "again", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 3) for i in range(4)]  # before each of the 3 cells, then done


@pytest.mark.usefixtures("fresh_registry")
def test_viz_shows_two_methods_side_by_side_on_the_same_images(tmp_path):
    out = tmp_path / "out"
    assert main(["run", "--plugin", "toy_plugins:ToyMethod", "--method", "winclip,toy", "--pretrained", "none",
                 "--set", "winclip.backbone=zsad-tiny-16-240", "--no-table", "--datasets", "synthetic",
                 "--eval-size", "64", "--out", str(out)]) == 0
    assert main(["viz", "--out", str(out), "--methods", "winclip,toy", "--figures"]) == 0
    shown = check_gallery(out, tmp_path, categories=3)
    store = ResultStore(out)
    variants = {"winclip": "WinCLIP (random init)", "toy": "Toy (random init)"}  # the labels the table shows
    for cell in store.rows():
        arrays = store.load_cell_arrays(cell.cell_id)
        for case in pick_cases(arrays["image_keys"], arrays["pred_score"], arrays["gt_label"], 2):
            row = shown.rows[case.key]  # every case either method picked is a row of its category
            maps = {c["variant"]: c for c in row if c["variant"]}
            assert set(maps) == set(variants.values())  # both methods' maps of that very image
            assert all(c["img"].startswith("maps/") for c in maps.values())
            assert len({c["img"] for c in maps.values()}) == 2
            score = float(arrays["pred_score"][case.index])
            assert f"score {score:.4g}" in maps[variants[cell.method]]["text"]
    # --figures: a PNG and a PDF per method and category
    assert len(list((out / "viz").rglob("*.pdf"))) == 6 and len(list((out / "viz").glob("*/synthetic-*.png"))) == 6
    with pytest.raises(ConfigError, match="'nosuch' is not in these results"):
        write_galleries(out, tmp_path / "x", methods=["winclip", "nosuch"])


def test_viz_of_the_real_mvtec_samples(tmp_path, real_mvtec):
    out = tmp_path / "out"
    assert main([*RUN, "--datasets", "mvtec", "--data-root", str(real_mvtec), "--eval-size", "256", "--out", str(out)]) == 0
    assert main(["viz", "--out", str(out), "--per-kind", "4", "--write", str(tmp_path / "gallery")]) == 0
    check_gallery(out, tmp_path, categories=2, dest=tmp_path / "gallery")  # hazelnut, transistor


def test_viz_names_a_missing_image(tmp_path, capsys, real_mvtec):
    data = tmp_path / "data"
    shutil.copytree(real_mvtec, data / "mvtec")
    out = tmp_path / "out"
    assert main([*RUN, "--datasets", "mvtec", "--data-root", str(data), "--eval-size", "32", "--out", str(out)]) == 0
    shutil.rmtree(data / "mvtec" / "hazelnut" / "test")
    assert main(["viz", "--out", str(out)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "DataError" in err and "hazelnut/test" in err and "is missing" in err
