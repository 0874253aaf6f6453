"""Transcribe the result tables of the MPAMA and FineGrainedAD papers into reported-number CSVs.

Reads the papers' text (``shared/papers/mpama.md``, ``shared/papers/finegrainedad.md``) and writes one CSV per
source table into this folder, every number as printed. The mapping from the papers' column and row names to
zsadbench names is spelt out below; ``tests/tables/test_tables_reported_data.py`` checks every file against the
numbers of its source table and spot-checks values read from the paper text.

    python leaderboards/reported/transcribe.py ../shared/papers
"""
from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIELDS = ["method", "method_label", "dataset", "category", "shots", "metric", "value", "paper", "table", "variant",
          "setting", "note"]
MPAMA = "MPAMA (ICLR 2026 submission)"
FGAD = "FineGrainedAD (Fan et al.)"
ZERO_SHOT = "zero-shot; methods that train use the MVTec AD test split (the VisA one to evaluate MVTec AD)"
FEW_SHOT = "few-shot, k normal images of the category"

DATASETS = {
    "MVTec AD": "mvtec", "MVTec-AD [4]": "mvtec", "VisA": "visa", "VisA [55]": "visa", "MPDD": "mpdd",
    "BTAD": "btad", "SDD": "sdd", "DAGM": "dagm", "DTD-Synthetic": "dtd", "HeadCT": "headct",
    "BrainMRI": "brainmri", "Br35H": "br35h", "ISIC": "isic", "ColonDB": "colondb", "ClinicDB": "clinicdb",
    "Kvasir": "kvasir", "Endo": "endo",
}
# (method, label, note) per printed column head
MPAMA_METHODS = {
    "WinCLIP": ("winclip", "WinCLIP", ""), "VAND": ("vand", "VAND", "VAND is APRIL-GAN (Chen et al., 2023)"),
    "AdaCLIP": ("adaclip", "AdaCLIP", ""), "AnomalyCLIP": ("anomalyclip", "AnomalyCLIP", ""),
    "FAPrompt": ("faprompt", "FAPrompt", ""), "MPA": ("mpa", "MPA", ""), "MPAMA": ("mpama", "MPAMA", ""),
    "MPL": ("mpa", "MPA", "column printed as MPL; its Mean row equals MPA's numbers in Table 1"),
}
FGAD_METHODS = {
    "RegAD": "regad", "AnomalyGPT": "anomalygpt", "InCTRL": "inctrl", "KAG-Prompt": "kagprompt", "ResAD": "resad",
    "PaDiM": "padim", "SPADE": "spade", "PatchCore": "patchcore", "WinCLIP+": "winclip", "PromptAD": "promptad",
    "FineGrainedAD": "finegrainedad", "Ours": "finegrainedad", "DSR": "dsr", "D3AD": "d3ad", "GLASS": "glass",
}
FGAD_LABELS = {"winclip": "WinCLIP+", "finegrainedad": "FineGrainedAD", "kagprompt": "KAG-Prompt"}
PAIR = re.compile(r"\(\s*([\d.]+|-)\s*,\s*([\d.]+|-)\s*\)")
SLASH = re.compile(r"([\d.]+|-)\s*/\s*([\d.]+|-)")
TAGS = re.compile(r"<[^>]+>")


def block(lines: list[str], number: int, *, before: bool) -> list[list[str]]:
    """The tab-separated lines of Table ``number``: the run of lines with a tab next to its caption."""
    start = next(i for i, line in enumerate(lines) if re.match(rf"Table {number}[.:] ", line))
    step, i = (-1, start - 1) if before else (1, start + 1)
    while not lines[i].strip():
        i += step
    rows = []
    while 0 <= i < len(lines) and "\t" in lines[i]:
        rows.append([TAGS.sub("", c).strip() for c in lines[i].rstrip("\n").split("\t")])
        i += step
    return rows[::-1] if before else rows


def row(method, label, dataset, category, shots, metric, value, paper, table, *, variant="", setting="", note=""):
    return dict(method=method, method_label=label, dataset=dataset, category=category, shots=shots, metric=metric,
                value=value, paper=paper, table=table, variant=variant, setting=setting, note=note)


def pair_values(text: str) -> tuple[str, str]:
    match = PAIR.search(text)
    if not match:
        raise ValueError(f"no (a, b) pair in {text!r}")
    return match.group(1), match.group(2)


def mpama_main(lines, number):
    """Tables 1 and 2: method columns, dataset rows, (AUROC, AP) image pairs and (AUROC, PRO) pixel pairs."""
    rows = block(lines, number, before=False)
    heads = [h.split(" (")[0] for h in rows[0][2:]]
    out, task = [], ""
    for cells in rows[1:]:
        task = cells[0] or task
        metrics = ("image_auroc", "image_ap") if task.startswith("Image") else ("pixel_auroc", "aupro_anomalyclip")
        for head, cell in zip(heads, cells[2:]):
            method, label, note = MPAMA_METHODS[head]
            dagger = "† in the source: taken from the method's own paper" if "†" in cell else ""
            for metric, value in zip(metrics, pair_values(cell)):
                if value != "-":
                    out.append(row(method, label, DATASETS[cells[1]], "mean", 0, metric, value, MPAMA,
                                   f"Table {number}", setting=ZERO_SHOT, note="; ".join(n for n in (note, dagger) if n)))
    return out


ABLATION_COLUMNS = [("mvtec", ("pixel_auroc", "aupro_anomalyclip")), ("mvtec", ("image_auroc", "image_ap")),
                    ("visa", ("pixel_auroc", "aupro_anomalyclip")), ("visa", ("image_auroc", "image_ap"))]


def mpama_ablation(lines, number, variant_of):
    """Tables 3, 4, 5, 8: one row per MPAMA variant; MVTec AD pixel, image, then VisA pixel, image pairs."""
    rows = block(lines, number, before=False)
    out = []
    for cells in rows:
        pairs = [c for c in cells if PAIR.search(c)]
        if len(pairs) != 4:
            continue
        variant, note = variant_of(cells)
        for (dataset, metrics), cell in zip(ABLATION_COLUMNS, pairs):
            for metric, value in zip(metrics, pair_values(cell)):
                out.append(row("mpama", "MPAMA", dataset, "mean", 0, metric, value, MPAMA, f"Table {number}",
                               variant=variant, setting=ZERO_SHOT, note=note))
    return out


def modules_variant(cells):
    names = ["M0", "T1", "T2", "T3"]  # the first mark column has no heading in the source text
    checked = [n for n, c in zip(names, cells[:4]) if c == "✓"]
    note = "the first row matches AnomalyCLIP's numbers in Table 1" if not checked else ""
    return "modules=" + ("+".join(checked) or "none"), note


def set_variant(key):
    def variant_of(cells):
        text = cells[0].strip("{}")
        return f"{key}={','.join(v.strip() for v in text.split(','))}", ""
    return variant_of


def mpama_overhead(lines):
    """Table 7: inference time, FPS and peak GPU memory (A100, batch 1), plus the MVTec AD / VisA pairs."""
    rows = block(lines, 7, before=False)
    out = []
    for cells in rows:
        if cells[0] not in MPAMA_METHODS:
            continue
        method, label, note = MPAMA_METHODS[cells[0]]
        for metric, text in zip(("inference_time_s", "fps", "peak_gpu_memory_mb"), cells[1:4]):
            out.append(row(method, label, "", "mean", 0, metric, re.sub(r"MB$", "", text), MPAMA, "Table 7",
                           setting="one NVIDIA A100, batch size 1", note=note))
        for (dataset, metrics), cell in zip(ABLATION_COLUMNS, cells[4:8]):
            for metric, value in zip(metrics, pair_values(cell)):
                out.append(row(method, label, dataset, "mean", 0, metric, value, MPAMA, "Table 7",
                               setting=ZERO_SHOT, note=note))
    return out


PER_CATEGORY = re.compile(r"\((AUROC|PRO|AP)\) for anomaly (segmentation|classification) on (.+)\.$")
PER_CATEGORY_METRIC = {("AUROC", "segmentation"): "pixel_auroc", ("PRO", "segmentation"): "aupro_anomalyclip",
                       ("AUROC", "classification"): "image_auroc", ("AP", "classification"): "image_ap"}


def mpama_per_category(lines, number):
    """Tables 9-20: one metric on one dataset, category rows, method columns."""
    caption = next(line for line in lines if line.startswith(f"Table {number}: "))
    what, task, name = PER_CATEGORY.search(caption.strip()).groups()
    rows = block(lines, number, before=False)
    out = []
    for cells in rows[1:]:
        category = "mean" if cells[0] == "Mean" else cells[0].lower()
        for head, value in zip(rows[0][1:], cells[1:]):
            method, label, note = MPAMA_METHODS[head]
            out.append(row(method, label, DATASETS[name], category, 0, PER_CATEGORY_METRIC[(what, task)], value,
                           MPAMA, f"Table {number}", setting=ZERO_SHOT, note=note))
    return out


def fgad_table1(lines):
    """Table 1: image/pixel AUROC at 1, 2, 4 shots on MVTec AD and VisA, and the 4-shot inference time."""
    rows = block(lines, 1, before=True)
    columns = [("mvtec", 1), ("mvtec", 2), ("mvtec", 4), ("visa", 1), ("visa", 2), ("visa", 4)]
    out = []
    for cells in rows[2:]:
        method = FGAD_METHODS[cells[0].split(" [")[0]]
        label = FGAD_LABELS.get(method, cells[0].split(" [")[0])
        setting = f"{FEW_SHOT}; backbone {cells[1]}; auxiliary training data: {'yes' if cells[2] == '✓' else 'no'}"
        for (dataset, shots), cell in zip(columns, cells[3:9]):
            image, pixel = SLASH.search(cell).groups()
            for metric, value in (("image_auroc", image), ("pixel_auroc", pixel)):
                if value != "-":
                    out.append(row(method, label, dataset, "mean", shots, metric, value, FGAD, "Table 1",
                                   setting=setting))
        out.append(row(method, label, "", "mean", 4, "inference_time_ms", cells[9], FGAD, "Table 1",
                       setting=setting, note="time per image under the 4-shot setting"))
    return out


def fgad_table2(lines):
    """Table 2: image/pixel AUROC on VisA against many-shot and full-shot methods."""
    rows = block(lines, 2, before=True)
    out = []
    for cells in rows[1:]:
        method = FGAD_METHODS[cells[0].split(" [")[0]]
        label = FGAD_LABELS.get(method, cells[0].split(" [")[0])
        shots = "full" if cells[2] == "full-shot" else cells[2].removesuffix("-shot")
        for metric, value in (("image_auroc", cells[3]), ("pixel_auroc", cells[4])):
            out.append(row(method, label, "visa", "mean", shots, metric, value, FGAD, "Table 2",
                           setting=cells[2] if cells[1] in ("", "-") else f"{cells[2]}; {cells[1]}"))
    return out


def fgad_table4(lines):
    """Table 4: component ablation at 4 shots; MVTec AD image, pixel, then VisA image, pixel AUROC."""
    rows = block(lines, 4, before=True)
    names = rows[1][:4]
    columns = [("mvtec", "image_auroc"), ("mvtec", "pixel_auroc"), ("visa", "image_auroc"), ("visa", "pixel_auroc")]
    out = []
    for cells in rows[2:]:
        variant = "components=" + "+".join(n for n, c in zip(names, cells[:4]) if c == "✓")
        note = "the BL row matches PromptAD's 4-shot numbers in Table 1" if variant == "components=BL" else ""
        for (dataset, metric), value in zip(columns, cells[4:8]):
            out.append(row("finegrainedad", "FineGrainedAD", dataset, "mean", 4, metric, value, FGAD, "Table 4",
                           variant=variant, setting=FEW_SHOT + "; CLIP ViT-B/16+ (laion400m), 240 px", note=note))
    return out


def write(name: str, rows: list[dict]) -> None:
    with open(HERE / name, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{name}: {len(rows)} numbers")


def main(papers: Path) -> None:
    mpama = (papers / "mpama.md").read_text(encoding="utf-8").splitlines()
    fgad = (papers / "finegrainedad.md").read_text(encoding="utf-8").splitlines()
    write("mpama_table1.csv", mpama_main(mpama, 1))
    write("mpama_table2.csv", mpama_main(mpama, 2))
    write("mpama_table3.csv", mpama_ablation(mpama, 3, modules_variant))
    write("mpama_table4.csv", mpama_ablation(mpama, 4, set_variant("perception")))
    write("mpama_table5.csv", mpama_ablation(mpama, 5, set_variant("experts")))
    write("mpama_table7.csv", mpama_overhead(mpama))
    write("mpama_table8.csv", mpama_ablation(mpama, 8, set_variant("perception")))
    for number in range(9, 21):
        write(f"mpama_table{number}.csv", mpama_per_category(mpama, number))
    write("finegrainedad_table1.csv", fgad_table1(fgad))
    write("finegrainedad_table2.csv", fgad_table2(fgad))
    write("finegrainedad_table4.csv", fgad_table4(fgad))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "papers")
