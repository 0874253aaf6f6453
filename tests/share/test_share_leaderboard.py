"""`zsadbench leaderboard`: one self-contained HTML page, driven in headless Chromium (installed by .ci/run;
missing is a failure): it loads without a console message, a click on a column head sorts the rows by it (again
reverses), the group and setting filters hide the other rows, and hovering a number shows its interval."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from zsadbench.cli.main import main
from zsadbench.tables import load_reported

from share_store import Variant, write_folder

REPORTED = Path(__file__).resolve().parents[2] / "leaderboards" / "reported"
VARIANTS = [Variant("winclip", "WinCLIP", 2.0, seeds=(0, 1)), Variant("winclip", "WinCLIP", 1.0, shots=1, salt=1),
            Variant("mpama", "MPAMA", 0.2, pretrained="none", random_init=True)]
DATA = {"mvtec": ("bottle",), "headct": ("brain",), "synthetic": ("tile",)}
METRICS = ["I-AUROC", "I-AP", "I-F1max", "P-AUROC", "P-AP", "P-F1max", "AUPRO", "AUPRO-AC"]

# Put first in <head>: records script errors and console.error, then, once the page has loaded, sorts by
# I-AUROC twice, filters by group and by setting, and reads a hover text; the results go into <pre id="probe">.
PROBE = """<script>
window.problems = [];
window.addEventListener('error', e => window.problems.push('error ' + e.message), true);
const consoleError = console.error;
console.error = (...args) => { window.problems.push('console ' + args.join(' ')); consoleError(...args); };
window.addEventListener('load', () => {
  const body = document.getElementById('board').tBodies[0];
  const heads = Array.from(document.querySelectorAll('#board thead th'));
  const col = heads.findIndex(h => h.textContent === 'I-AUROC');
  const rows = () => Array.from(body.rows);
  const key = r => [0, 1, 3].map(i => r.cells[i].textContent).join('|');
  const visible = () => rows().filter(r => !r.hidden).map(key);
  const out = {initial: rows().map(key)};
  heads[col].click();
  out.first = rows().map(r => [key(r), r.cells[col].dataset.v]);
  heads[col].click();
  out.second = rows().map(r => [key(r), r.cells[col].dataset.v]);
  const group = document.getElementById('filter-group'), setting = document.getElementById('filter-setting');
  group.value = 'medical'; group.dispatchEvent(new Event('change'));
  out.medical = visible();
  out.count = document.getElementById('count').textContent;
  group.value = ''; setting.value = '1-shot'; setting.dispatchEvent(new Event('change'));
  out.oneShot = visible();
  setting.value = ''; setting.dispatchEvent(new Event('change'));
  out.all = visible().length;
  const cell = rows().find(r => key(r) === 'WinCLIP|zero-shot|MVTec AD').cells[col];
  out.title = cell.title;
  out.problems = window.problems;
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict, Path]:
    """A results folder (exported with intervals first, so the page reads them from OUT/stats), its document
    and its page with the reported numbers beside ours."""
    root = tmp_path_factory.mktemp("board")
    write_folder(root / "out", VARIANTS, DATA)
    assert main(["export", "--out", str(root / "out"), "--write", str(root / "r.json"), "--ci",
                 "--resamples", "40"]) == 0
    page = root / "page.html"
    assert main(["leaderboard", "--out", str(root / "out"), "--resamples", "40", "--write", str(page),
                 "--reported", str(REPORTED)]) == 0
    return page, json.loads((root / "r.json").read_text(encoding="utf-8")), root


class Rows(HTMLParser):
    """The table's rows: their data attributes, classes and cell texts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-group" in attrs:
            self.rows.append({**attrs, "cells": [], "titles": []})
        elif tag == "td" and self.rows:
            self._cell = []
            self.rows[-1]["titles"].append(attrs.get("title"))

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1]["cells"].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def expected_reported() -> list[tuple[str, str, str]]:
    """(method label, setting, dataset) of each reported row: a paper's dataset means on our datasets."""
    rep = load_reported(REPORTED)
    rep = rep[(rep["category"] == "mean") & rep["dataset"].isin(["mvtec", "headct"])
              & ~rep["metric"].isin(["inference_time_s", "inference_time_ms", "fps", "peak_gpu_memory_mb"])]
    keys = rep[["method", "method_label", "variant", "shots", "paper", "dataset"]].drop_duplicates()
    papers = list(dict.fromkeys(keys["paper"]))
    return [(r.method_label + (f" [{r.variant}]" if r.variant else "") + f" †{papers.index(r.paper) + 1}",
             "zero-shot" if r.shots == 0 else f"{r.shots}-shot", r.dataset) for r in keys.itertuples()]


def test_the_page_is_self_contained_and_shows_ours_beside_the_reported_numbers(built):
    page, doc, _ = built
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert "<link" not in text and "<script src" not in text
    rows = Rows(text).rows
    ours = [r for r in rows if "reported" not in r.get("class", "")]
    reported = [r for r in rows if "reported" in r.get("class", "")]
    assert len(ours) == 3 * 3
    assert sorted((r["cells"][0], r["cells"][1], r["data-dataset"]) for r in reported) == sorted(expected_reported())
    random = [r for r in ours if "random" in r.get("class", "")]
    assert len(random) == 3 and all(r["cells"][0] == "MPAMA (random init)random init" for r in random)
    assert "are not results" in text
    assert all(t.startswith("as reported in ") for r in reported for t in r["titles"][4:] if t)
    winclip = next(r for r in ours if r["cells"][:2] == ["WinCLIP", "zero-shot"] and r["data-dataset"] == "mvtec")
    summary = doc["variants"][0]["datasets"]["mvtec"]["metrics"]["image_auroc"]
    assert float(winclip["cells"][4]) == round(100 * summary["mean"], 1)
    assert winclip["titles"][4] == (f"95% CI [{100 * summary['ci']['lo']:.1f}, {100 * summary['ci']['hi']:.1f}]; "
                                    f"± {100 * summary['std']:.1f} std over 2 seeds")


def probe(page: Path, tmp_path: Path) -> dict:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is missing: apt-get install chromium"
    copy = page.with_name("probe.html")
    copy.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0", "--dump-dom", copy.as_uri()]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert "CONSOLE" not in run.stderr, [line for line in run.stderr.splitlines() if "CONSOLE" in line]
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, run.stdout[-2000:] + run.stderr[-2000:]
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


def test_chromium_sorts_filters_and_shows_the_interval_on_hover(built, tmp_path):
    page, doc, _ = built
    rows = Rows(page.read_text(encoding="utf-8")).rows
    result = probe(page, tmp_path)
    assert result["problems"] == []
    keys = [f"{r['cells'][0]}|{r['cells'][1]}|{r['cells'][3]}" for r in rows]
    assert len(set(keys)) == len(keys)  # several sources of one method are told apart (†1, †2)
    values = [r["cells"][4] for r in rows]
    numbers = sorted((float(v) for v in values if v != "–"), reverse=True)
    missing = values.count("–")
    for order, expected in (("first", numbers), ("second", numbers[::-1])):
        shown = [float(v) for _, v in result[order] if v != ""]
        assert sorted(k for k, _ in result[order]) == sorted(result["initial"]) == sorted(keys)  # every row, once
        assert [round(v, 1) for v in shown] == expected, order  # best first, then reversed
        assert all(v == "" for _, v in result[order][len(shown):]) and len(result[order]) - len(shown) == missing
    medical = [k for k, r in zip(keys, rows) if r["data-group"] == "medical"]
    assert sorted(result["medical"]) == sorted(medical) and all(k.endswith("|HeadCT") for k in medical)
    assert result["count"] == f"{len(medical)} of {len(rows)} rows"
    one_shot = [k for k in keys if k.split("|")[1] == "1-shot"]
    assert sorted(result["oneShot"]) == sorted(one_shot) and len(one_shot) >= 3
    assert result["all"] == len(rows)
    ci = doc["variants"][0]["datasets"]["mvtec"]["metrics"]["image_auroc"]["ci"]
    assert f"95% CI [{100 * ci['lo']:.1f}, {100 * ci['hi']:.1f}]" in result["title"]


def test_export_merge_and_leaderboard_load_no_model_library(built, tmp_path):
    """Like `table`, the sharing commands start without torch, open_clip, timm or transformers."""
    _, _, root = built
    code = (
        "import sys\n"
        "from zsadbench.cli.main import main\n"
        f"assert main(['export', '--out', {str(root / 'out')!r}, '--write', {str(tmp_path / 'r.json')!r}]) == 0\n"
        f"assert main(['merge', {str(tmp_path / 'r.json')!r}, '--write', {str(tmp_path / 'board')!r}]) == 0\n"
        f"assert main(['leaderboard', '--out', {str(tmp_path / 'board')!r}, '--write', {str(tmp_path / 'p.html')!r},"
        f" '--ci', '--resamples', '40']) == 0\n"
        "print('LOADED', *[m for m in ('torch', 'open_clip', 'timm', 'transformers') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ZSADBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("LOADED")[-1].split() == []
