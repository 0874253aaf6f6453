"""Cells that cannot go stale: the method version, the weights' checksum, the precision and the data are part of
a cell's identity; support draws are recorded relative to the data root, once each, and can be replayed."""
from __future__ import annotations

import json
import shutil

import pytest

from zsadbench import registry
from zsadbench.cli.main import main
from zsadbench.store import ResultStore
from zsadbench.store.manifest import SupportManifest

import toy_plugins
from runner_helpers import run


class ToyV2(toy_plugins.ToyMethod):
    version = "2"


def ids(out) -> dict[str, str]:
    return {r.category: r.cell_id for r in ResultStore(out).rows()}


def test_a_new_method_version_recomputes_instead_of_reusing(data_root, tmp_path, monkeypatch):
    out = tmp_path / "out"
    common = ("--method", "toy", "--datasets", "toy", "--data-root", str(data_root), "--out", str(out))
    assert run("--plugin", "toy_plugins:ToyMethod", *common) == 0
    old = ids(out)
    monkeypatch.setattr(toy_plugins, "ToyMethod", ToyV2)
    assert run("--plugin", "toy_plugins:ToyMethod", *common) == 0
    rows = ResultStore(out).rows()
    assert len(rows) == 4 and {r.method_version for r in rows} == {"1", "2"}
    assert not set(old.values()) & {r.cell_id for r in rows if r.method_version == "2"}


def test_a_local_weights_file_is_identified_by_its_checksum(data_root, tmp_path):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"first")
    out = tmp_path / "out"
    common = ("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--pretrained",
              str(weights), "--data-root", str(data_root), "--out", str(out))
    assert run(*common) == 0
    first = ids(out)
    assert run(*common) == 0 and ids(out) == first  # same file: reused
    weights.write_bytes(b"second")  # same path, other content
    assert run(*common) == 0
    rows = ResultStore(out).rows()
    assert len(rows) == 4 and len({r.weights_id for r in rows}) == 2
    assert all(r.weights_id.startswith("sha256:") for r in rows)



def test_another_precision_computes_its_own_cells_instead_of_reusing(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    common = ("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
              "--data-root", str(data_root), "--out", str(out))
    assert run(*common) == 0
    fp32 = ids(out)
    capsys.readouterr()
    assert run(*common, "--precision", "bf16") == 0
    assert "2 cells computed, 0 reused" in capsys.readouterr().err
    rows = ResultStore(out).rows()
    assert len(rows) == 4 and not set(fp32.values()) & {r.cell_id for r in rows if r.precision == "bf16"}
    assert all(r.provenance.precision == r.precision for r in rows)
    assert run(*common, "--precision", "bf16") == 0  # the bf16 cells are reused in turn
    assert "0 cells computed, 2 reused" in capsys.readouterr().err

def test_planning_builds_no_method_instance(data_root, tmp_path, monkeypatch):
    built = []
    original = toy_plugins.ToyMethod.__init__

    def counting(self, *args, **kwargs):
        built.append(kwargs.get("pretrained"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(toy_plugins.ToyMethod, "__init__", counting)
    common = ("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
              "--data-root", str(data_root), "--out", str(tmp_path / "out"), "--pretrained", "none")
    assert run(*common, "--dry-run") == 0 and built == []
    assert run(*common) == 0 and built == ["none"]  # one fit group: one instance, built with the resolved weights
    assert {r.random_init for r in ResultStore(tmp_path / "out").rows()} == {True}


def test_changed_data_recomputes_only_the_changed_category(data_root, tmp_path):
    out = tmp_path / "out"
    common = ("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
              "--data-root", str(data_root), "--out", str(out))
    assert run(*common) == 0
    first = ids(out)
    shutil.copy(data_root / "toy" / "beta" / "test" / "good" / "000.png", data_root / "toy" / "beta" / "test" / "good" / "009.png")
    assert run(*common) == 0
    rows = ResultStore(out).rows()
    assert len(rows) == 3
    assert {r.cell_id for r in rows if r.category == "alpha"} == {first["alpha"]}
    # moving the whole tree elsewhere keeps the identity: paths are taken relative to the root
    moved = tmp_path / "moved"
    shutil.copytree(data_root, moved)
    assert run(*common[:-3], str(moved), "--out", str(out)) == 0
    assert len(ResultStore(out).rows()) == 3


def test_support_manifest_is_relative_deduplicated_and_replayable(data_root, tmp_path):
    out = tmp_path / "out"
    common = ("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--shots", "1,2",
              "--seeds", "0,1,2")
    assert run(*common, "--data-root", str(data_root), "--out", str(out)) == 0
    assert run(*common, "--data-root", str(data_root), "--out", str(out), "--force") == 0
    records = SupportManifest(out).records()
    assert len(records) == 2 * 2 * 3  # one record per draw, even after recomputing every cell
    for record in records:
        assert all(f.startswith(f"{record['category']}/train/good/") for f in record["files"])

    # replayed on a copy of the data elsewhere, into a fresh folder: the same draws and the same numbers
    moved = tmp_path / "elsewhere"
    shutil.copytree(data_root, moved)
    replay = tmp_path / "replay"
    manifest = out / "manifests" / "support.jsonl"
    assert run(*common, "--data-root", str(moved), "--out", str(replay), "--support-manifest", str(manifest)) == 0
    assert SupportManifest(replay).records() == records
    key = lambda r: (r.category, r.shots, r.seed)  # noqa: E731
    assert sorted((key(r), r.metrics) for r in ResultStore(replay).rows()) == \
        sorted((key(r), r.metrics) for r in ResultStore(out).rows())


def test_a_promptad_seed_folder_replays_its_indices_into_the_sorted_images(data_root, tmp_path):
    seeds = tmp_path / "seeds_toy"
    for category, lines in (("alpha", "#1: 2\n#2: 0 2\n"), ("beta", "#1: 1\n#2: 1 0\n")):
        (seeds / category).mkdir(parents=True)
        (seeds / category / "selected_samples_per_run.txt").write_text(lines)
    out = tmp_path / "out"
    assert run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--shots", "1,2",
               "--seeds", "0,1", "--support-manifest", str(seeds), "--data-root", str(data_root),
               "--out", str(out)) == 0
    drawn = {(r["category"], r["shots"], r["seed"]): r["files"] for r in SupportManifest(out).records()}
    for seed in (0, 1):  # a seed file has no seed: it applies to every seed
        assert drawn[("alpha", 1, seed)] == ["alpha/train/good/002.png"]
        assert drawn[("alpha", 2, seed)] == ["alpha/train/good/000.png", "alpha/train/good/002.png"]
        assert drawn[("beta", 2, seed)] == ["beta/train/good/001.png", "beta/train/good/000.png"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [("#2: 0\n", "lists 1 indices; it needs 2"), ("#1: 7\n", "index 7 is outside the 3 normal training images"),
     ("one two\n", "expected a line like"), ("#1: 0\n#1: 1\n", "a second draw for toy/alpha 1-shot every seed"),
     ("#2: 1 1\n#1: 0\n", "lists index 1 twice")],
)
def test_bad_seed_files_name_the_file_and_line(data_root, tmp_path, capsys, content, expected):
    seeds = tmp_path / "seeds_toy"
    for category, text in (("alpha", content), ("beta", "#1: 0\n")):
        (seeds / category).mkdir(parents=True)
        (seeds / category / "selected_samples_per_run.txt").write_text(text)
    code = run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--shots", "1",
               "--support-manifest", str(seeds), "--data-root", str(data_root), "--out", str(tmp_path / "out"))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and expected in err and "selected_samples_per_run.txt" in err


def test_a_bad_manifest_line_is_named(data_root, tmp_path, capsys):
    manifest = tmp_path / "support.jsonl"
    manifest.write_text(json.dumps({"dataset": "toy", "category": "alpha"}) + "\n")
    code = run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--shots", "1",
               "--support-manifest", str(manifest), "--data-root", str(data_root), "--out", str(tmp_path / "out"))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and f"{manifest}:1" in err and "shots" in err


def test_a_set_grid_expands_into_variants_each_with_its_own_cells(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    common = ("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--data-root",
              str(data_root), "--out", str(out))
    assert run(*common, "--set", "gain=1,2,3", "--dry-run") == 0
    printed = capsys.readouterr().out
    assert all(f"toy[gain={g}]" in printed for g in (1, 2, 3))
    assert run(*common, "--set", "toy.gain=1,2,3") == 0
    lines = " ".join(capsys.readouterr().err.split())
    assert all(f"toy toy/{c} 0-shot seed=0 [gain={g}]" in lines for c in ("alpha", "beta") for g in (1, 2, 3))
    rows = ResultStore(out).rows()
    assert sorted({r.method_label for r in rows}) == ["Toy [gain=1]", "Toy [gain=2]", "Toy [gain=3]"]
    assert len({r.config_hash for r in rows}) == 3 and len(rows) == 6
    gains = {json.loads(r.config_json)["gain"] for r in rows}
    assert gains == {1.0, 2.0, 3.0}
    registry.reset()
    capsys.readouterr()
    assert main(["table", "--out", str(out), "--metrics", "image_auroc"]) == 0
    printed = capsys.readouterr().out
    # labels are text, not rich markup (which would swallow "[gain=1]"); a narrow header may break after "Toy"
    assert all(f"[gain={g}]" in printed for g in (1, 2, 3)) and "Toy" in printed


def test_reused_cells_of_another_thread_count_or_batch_size_are_named(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    common = ("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
              "--data-root", str(data_root), "--out", str(out))
    assert run(*common, "--threads", "1", "--batch-size", "2") == 0
    capsys.readouterr()
    assert run(*common, "--threads", "1", "--batch-size", "2") == 0
    assert "were computed with" not in capsys.readouterr().err  # same settings: nothing to say
    assert run(*common, "--threads", "2", "--batch-size", "2") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "2 of the 2 cells reused" in err and "with 1 thread (" in err and "2 threads, batch size 2)" in err and "--force" in err
    assert "batch size 2 (" not in err.split("this run:")[0]  # the batch size matched, so it is not named


def _record(category: str, shots: int, seed: int, files: list[str]) -> str:
    return json.dumps({"dataset": "toy", "category": category, "shots": shots, "seed": seed, "files": files})


FULL = [_record(c, 1, 0, [f"{c}/train/good/000.png"]) for c in ("alpha", "beta")]


@pytest.mark.parametrize(
    ("lines", "args", "expected"),
    [
        (FULL, ("--seeds", "1"), "holds no draw for toy/alpha 1-shot seed=1"),
        (FULL, ("--shots", "1,2"), "holds no draw for toy/alpha 2-shot seed=0"),
        (FULL[:1], (), "holds no draw for toy/beta 1-shot seed=0 (it holds toy/alpha 1-shot seed=0)"),
        ([_record("gamma", 1, 0, ["gamma/train/good/000.png"])], (), "holds no draw for toy/alpha 1-shot seed=0"),
        ([], (), "the file holds no support records"),
        (FULL + FULL[:1], (), "a second draw for toy/alpha 1-shot seed=0 (the first is at"),
        ([_record("alpha", 2, 0, ["alpha/train/good/000.png"] * 2)], ("--shots", "2"),
         "lists file alpha/train/good/000.png twice"),
    ],
)
def test_a_manifest_replays_every_draw_or_refuses_with_one_line(data_root, tmp_path, capsys, lines, args, expected):
    manifest = tmp_path / "support.jsonl"
    manifest.write_text("".join(line + "\n" for line in lines))
    options = {"--shots": "1", "--seeds": "0", **dict(zip(args[::2], args[1::2]))}
    code = run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
               *(x for pair in options.items() for x in pair), "--support-manifest", str(manifest),
               "--data-root", str(data_root), "--out", str(tmp_path / "out"))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and expected in err and "Traceback" not in err
    assert not (tmp_path / "out" / "results.sqlite").exists()  # refused before anything ran


def test_a_manifest_that_is_not_utf8_is_named(data_root, tmp_path, capsys):
    manifest = tmp_path / "support.jsonl"
    manifest.write_bytes(FULL[0].encode() + b"\n\xff\xfe\n")
    code = run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--shots", "1",
               "--support-manifest", str(manifest), "--data-root", str(data_root), "--out", str(tmp_path / "out"))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and f"{manifest}: not UTF-8 text" in err


def test_finegrainedad_realiad_shot_files_replay_their_top_view_images(tmp_path):
    import fake_trees

    fake_trees.make_realiad(tmp_path / "data" / "realiad")
    seeds = tmp_path / "seeds_realiad"
    seeds.mkdir()
    lines = []
    for cat in ("audiojack", "pcb"):  # a side view first: only top-view (C1) lines count, in file order
        lines += [f"{cat}/OK/S0002/{cat}_0002_OK_C2_20231021132201.jpg",
                  f"{cat}/OK/S0002/{cat}_0002_OK_C1_20231021132201.jpg",
                  f"{cat}/OK/S0001/{cat}_0001_OK_C1_20231021132200.jpg"]
    (seeds / "1_shot.txt").write_text("\n".join(lines) + "\n")
    (seeds / "2_shot.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "realiad", "--shots", "1,2",
               "--support-manifest", str(seeds), "--data-root", str(tmp_path / "data"), "--out", str(out)) == 0
    drawn = {(r["category"], r["shots"]): [f.rsplit("/", 4)[-4:] for f in r["files"]]
             for r in SupportManifest(out).records()}
    for cat in ("audiojack", "pcb"):
        assert drawn[(cat, 1)] == [[cat, "OK", "S0002", f"{cat}_0002_OK_C1_20231021132201.jpg"]]
        assert [f[2] for f in drawn[(cat, 2)]] == ["S0002", "S0001"]


def test_a_realiad_shot_file_with_too_few_top_view_images_is_named(tmp_path, capsys):
    import fake_trees

    fake_trees.make_realiad(tmp_path / "data" / "realiad")
    seeds = tmp_path / "seeds_realiad"
    seeds.mkdir()
    (seeds / "2_shot.txt").write_text("pcb/OK/S0001/pcb_0001_OK_C1_20231021132200.jpg\n"
                                      "pcb/OK/S0001/pcb_0001_OK_C2_20231021132200.jpg\n")
    assert run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "realiad", "--shots", "2",
               "--support-manifest", str(seeds), "--data-root", str(tmp_path / "data"),
               "--out", str(tmp_path / "out")) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"{seeds / '2_shot.txt'}: lists 1 top-view (C1) images of pcb; 2-shot needs 2" in err
