"""Galleries: which cases are picked, and the viz command on runs over the synthetic dataset and the real MVTec AD
samples, with the HTML page loaded in headless Chromium (installed by .ci/run; missing is a failure)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from zsadbench.cli.main import main
from zsadbench.viz import pick_cases

RUN = ["run", "--method", "winclip", "--pretrained", "none", "--set", "backbone=zsad-tiny-16-240", "--no-table"]
CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const out = document.createElement('pre');
  out.id = 'image-check';
  out.textContent = 'loaded ' + ok + ' of ' + imgs.length;
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


def browser_check(page: Path, tmp_path: Path) -> tuple[str, int]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is missing: apt-get install chromium"
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000"]
    dom = subprocess.run([*args, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    shot = tmp_path / "page.png"
    subprocess.run([*args, f"--screenshot={shot}", "--window-size=1200,900", probe.as_uri()],
                   capture_output=True, text=True, timeout=120)
    with Image.open(shot) as img:  # the page renders: not a blank screen
        assert np.asarray(img.convert("L")).std() > 5
    found = re.search(r'<pre id="image-check">loaded (\d+) of (\d+)</pre>', dom.stdout)
    assert found, dom.stdout[-2000:] + dom.stderr[-2000:]
    return found.group(0), int(found.group(2))


def check_gallery(out: Path, tmp_path: Path, expected_pngs: int) -> None:
    pngs = sorted((out / "viz").rglob("*.png"))
    assert len(pngs) == expected_pngs and len(list((out / "viz").rglob("*.pdf"))) == expected_pngs
    for png in pngs:
        with Image.open(png) as img:
            assert img.size[0] > 300
    page = out / "viz" / "gallery.html"
    text = page.read_text(encoding="utf-8")
    assert text.count("src='data:image/png;base64,") == expected_pngs
    assert not re.search(r"(src|href)=['\"](?!data:)", text)  # self-contained: nothing fetched
    assert "not results" in text  # random-init runs say so
    line, total = browser_check(page, tmp_path)
    assert total == expected_pngs and line == f'<pre id="image-check">loaded {total} of {total}</pre>'


def test_viz_of_a_synthetic_run_opens_in_a_browser(tmp_path):
    out = tmp_path / "out"
    assert main([*RUN, "--datasets", "synthetic", "--shots", "0,1", "--eval-size", "32", "--out", str(out)]) == 0
    assert main(["viz", "--out", str(out)]) == 0
    check_gallery(out, tmp_path, expected_pngs=6)  # 3 categories x (zero-shot, 1-shot)
    from zsadbench.viz import write_galleries

    calls = []
    write_galleries(out, tmp_path / "again", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 6) for i in range(7)]  # before each of the 6 cells, then done


def test_viz_of_the_real_mvtec_samples(tmp_path, real_mvtec):
    out = tmp_path / "out"
    assert main([*RUN, "--datasets", "mvtec", "--data-root", str(real_mvtec), "--eval-size", "64", "--out", str(out)]) == 0
    assert main(["viz", "--out", str(out), "--per-kind", "1"]) == 0
    check_gallery(out, tmp_path, expected_pngs=2)  # hazelnut, transistor


def test_viz_names_a_missing_image(tmp_path, capsys, real_mvtec):
    data = tmp_path / "data"
    shutil.copytree(real_mvtec, data / "mvtec")
    out = tmp_path / "out"
    assert main([*RUN, "--datasets", "mvtec", "--data-root", str(data), "--eval-size", "32", "--out", str(out)]) == 0
    shutil.rmtree(data / "mvtec" / "hazelnut" / "test")
    assert main(["viz", "--out", str(out)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "DataError" in err and "hazelnut/test" in err and "is missing" in err
