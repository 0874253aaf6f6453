"""Per-image artifacts: the lossless map codec, the earlier format still rescored, and ``--keep-maps``."""
from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, zoom

from zsadbench.cli.main import main
from zsadbench.store import ResultStore
from zsadbench.store.artifacts import content_checksum, decode, quantize, unpack_masks
from zsadbench.store.mapcodec import decode_maps, encode_maps

from runner_helpers import run


def toy(data_root, out, *extra):
    return run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
               "--data-root", str(data_root), "--out", str(out), *extra)


def smooth_maps(count: int, size: int = 128, grid: int = 9, seed: int = 0) -> np.ndarray:
    """Maps made the way the methods make them: a patch grid upsampled bilinearly, then Gaussian-smoothed."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        patches = rng.normal(size=(grid, grid)) * 0.1
        if i % 2:
            patches[2:4, 3:6] += 1.0
        out.append(gaussian_filter(zoom(patches, size / grid, order=1)[:size, :size], 4))
    return np.stack(out).astype(np.float32)


@pytest.mark.parametrize("levels", [
    np.random.default_rng(1).integers(0, 65536, (3, 17, 23), dtype=np.uint16),  # no structure at all
    np.zeros((2, 5, 5), np.uint16),
    np.full((2, 4, 6), 65535, np.uint16),
    np.tile(np.array([0, 65535], np.uint16), (1, 8, 4)),  # the largest jumps wrap around
    quantize(smooth_maps(4))[0],
])
def test_the_map_codec_is_lossless_and_reads_any_subset(levels):
    data, offsets, weights = encode_maps(levels)
    assert np.array_equal(decode_maps(data, offsets, weights, levels.shape[1:]), levels)
    subset = decode_maps(data, offsets, weights, levels.shape[1:], [len(levels) - 1, 0])
    assert np.array_equal(subset, levels[[-1, 0]])


def test_the_predictor_of_a_plane_is_exact_and_leaves_nothing_to_store():
    """Inside its margins the least-squares predictor reproduces a linear ramp exactly: every residual is 0."""
    from zsadbench.store._mapcodec_kernels import MARGIN, residuals
    from zsadbench.store.mapcodec import HOOD, fit_weights

    yy, xx = np.mgrid[0:40, 0:50]
    ramp = (1000 + 37 * yy + 11 * xx).astype(np.uint16)
    zigzag = residuals(ramp, HOOD, fit_weights(ramp))
    assert not zigzag[MARGIN:, MARGIN:-MARGIN].any()


def test_smooth_maps_take_a_fraction_of_what_zlib_took():
    levels = quantize(smooth_maps(6))[0]
    data, _, _ = encode_maps(levels)
    assert data.nbytes < 0.25 * len(zlib.compress(levels.tobytes(), 6))


def _as_format_1(arrays: dict) -> dict:
    """An artifact as earlier versions wrote it: plain uint16 maps and packed masks in a zlib npz."""
    size = tuple(int(v) for v in arrays["map_size"])
    return {
        "image_keys": arrays["image_keys"], "pred_score": arrays["pred_score"], "gt_label": arrays["gt_label"],
        "anomaly_map": decode_maps(arrays["map_data"], arrays["map_offsets"], arrays["map_weights"], size),
        "map_min": arrays["map_min"], "map_max": arrays["map_max"],
        "gt_mask": np.packbits(unpack_masks(arrays), axis=-1), "mask_width": arrays["mask_width"],
        "record": arrays["record"],
    }


def test_artifacts_of_the_earlier_format_still_rescore_exactly(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert toy(data_root, out, "--eval-size", "48") == 0
    store = ResultStore(out)
    for row in store.rows():
        arrays = store.load_artifact(row.cell_id)
        assert int(arrays["format"]) == 2 and "anomaly_map" not in arrays
        old = _as_format_1(arrays)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **old)
        store.artifact_path(row.cell_id).write_bytes(buffer.getvalue())
        reread = decode(store.load_artifact(row.cell_id))
        assert np.array_equal(reread["anomaly_map"], decode(arrays)["anomaly_map"])
        assert np.array_equal(reread["gt_mask"], decode(arrays)["gt_mask"])
    capsys.readouterr()
    assert main(["rescore", "--out", str(out)]) == 0
    assert "rescored 2 cells: 0 differ" in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("policy", ["gallery", "none"])
def test_keep_maps_stores_fewer_maps_and_rescore_keeps_their_pixel_metrics(data_root, tmp_path, capsys, monkeypatch,
                                                                          policy):
    from zsadbench.runner import execute

    monkeypatch.setattr(execute, "GALLERY_CASES", 1)  # a toy category has 6 images: keep at most 3 of them
    full, less = tmp_path / "all", tmp_path / policy
    assert toy(data_root, full, "--eval-size", "48") == 0
    assert toy(data_root, less, "--eval-size", "48", "--keep-maps", policy) == 0
    rows = {r.cell_id: r for r in ResultStore(full).rows()}
    for row in ResultStore(less).rows():
        assert row.metrics == rows[row.cell_id].metrics  # what is kept never changes a number
        assert row.provenance.keep_maps == policy and rows[row.cell_id].provenance.keep_maps == "all"
        arrays = decode(ResultStore(less).load_artifact(row.cell_id))
        kept = np.flatnonzero(arrays["map_kept"])
        assert (len(kept) == 0) == (policy == "none") and len(kept) < len(arrays["pred_score"])
        if len(kept):
            whole = ResultStore(full).load_cell_arrays(row.cell_id)["anomaly_map"]
            assert np.array_equal(arrays["anomaly_map"][kept], whole[kept])
        assert row.provenance.artifact_bytes < rows[row.cell_id].provenance.artifact_bytes
    capsys.readouterr()
    assert main(["rescore", "--out", str(less)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "0 differ" in err and "2 cells were stored without every map" in err
    assert main(["viz", "--out", str(less)]) == 0
    figures = list((less / "viz").rglob("*.png"))
    assert bool(figures) == (policy == "gallery")


def test_the_gallery_policy_keeps_every_case_a_default_gallery_shows(data_root, tmp_path):
    from zsadbench.viz import pick_cases

    out = tmp_path / "out"
    assert toy(data_root, out, "--eval-size", "48", "--keep-maps", "gallery") == 0
    for row in ResultStore(out).rows():
        arrays = decode(ResultStore(out).load_artifact(row.cell_id))
        shown = {case.index for case in pick_cases(arrays["image_keys"], arrays["pred_score"], arrays["gt_label"])}
        assert shown and shown <= set(np.flatnonzero(arrays["map_kept"]))


def test_each_cell_records_where_its_time_went(data_root, tmp_path):
    out = tmp_path / "out"
    assert toy(data_root, out, "--workers", "3") == 0
    for row in ResultStore(out).rows():
        stages = row.provenance.stage_seconds
        assert {"load_wait", "predict", "check", "quantise", "metrics", "artifact"} <= set(stages)
        assert all(seconds >= 0 for seconds in stages.values())
        on_the_storing_thread = ("metrics", "artifact")
        assert sum(v for k, v in stages.items() if k not in on_the_storing_thread) <= row.provenance.wall_seconds + 1e-3
        assert row.provenance.workers == 3


def _numpy_quantize(maps: np.ndarray):
    """The statement of the quantisation in NumPy: the reference the compiled pass must equal bitwise."""
    flat = maps.reshape(len(maps), -1).astype(np.float32)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):  # the extreme case overflows as the compiled pass does
        span = (hi - lo).astype(np.float64)
        scale = np.where(span > 0, 65535 / np.where(span > 0, span, 1.0), 0.0)
        levels = np.rint((flat - lo[:, None]) * scale[:, None]).clip(0, 65535).astype(np.uint16)
    return levels.reshape(maps.shape), lo, hi


@pytest.mark.parametrize("maps", [
    np.random.default_rng(2).normal(size=(5, 31, 29)).astype(np.float32) * 1e3,
    smooth_maps(3, size=64),
    np.full((2, 6, 6), 0.25, np.float32),                                   # constant: every level 0
    np.array([[[0.0, 0.5, 1.0], [0.25, 0.75, 1.0 / 3]]], np.float32),       # exact halves round to even
    np.array([[[-3e38, 3e38], [0.0, 1e-45]]], np.float32),                  # extreme range
])
def test_quantisation_equals_its_numpy_statement_bitwise(maps):
    for got, expected in zip(quantize(maps), _numpy_quantize(maps)):
        assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_the_storing_thread_runs_jobs_in_order_and_hands_back_their_errors():
    import threading

    from zsadbench.runner.execute import BackgroundWriter

    done, threads = [], set()

    def job(i):
        threads.add(threading.get_ident())
        done.append(i)

    def broken():
        raise OSError("disk full")

    with BackgroundWriter(depth=2) as writer:
        for i in range(6):
            writer.submit(job, i)
        writer.drain()
        assert done == list(range(6)) and threading.get_ident() not in threads and len(threads) == 1
        writer.submit(broken)
        with pytest.raises(OSError, match="disk full"):
            writer.drain()



def test_the_storing_thread_shares_the_cpus_while_cells_compute_and_takes_them_all_while_the_run_waits(monkeypatch):
    import threading

    import numba

    from zsadbench.runner import execute

    monkeypatch.setattr(execute, "available_cpus", lambda: 4)
    seen, release = [], threading.Event()
    with execute.BackgroundWriter(depth=4) as writer:
        writer.submit(lambda: seen.append(numba.get_num_threads()))
        writer.submit(release.wait, 30)  # holds the thread until the run waits in drain()
        writer.submit(lambda: seen.append(numba.get_num_threads()))

        def once_waiting():
            while not writer._waiting:
                threading.Event().wait(0.01)
            release.set()

        helper = threading.Thread(target=once_waiting)
        helper.start()
        writer.drain()
        helper.join()
    cap = numba.config.NUMBA_NUM_THREADS
    assert seen == [1, min(4, cap)]  # a quarter of 4 CPUs, then all of them


def test_a_fit_group_computes_while_the_one_before_is_stored(data_root, tmp_path, monkeypatch):
    import threading

    from zsadbench.runner import execute

    groups, second_started, waited = [], threading.Event(), []
    compute_group, store_outcome = execute.compute_group, execute.store_outcome

    def counting(plan, group, *args, **kwargs):
        groups.append(group)
        if len(groups) == 2:
            second_started.set()
        yield from compute_group(plan, group, *args, **kwargs)

    def storing(*args):
        if not waited:  # the first cell is stored only once the next fit group is computing
            waited.append(second_started.wait(20))
        store_outcome(*args)

    monkeypatch.setattr(execute, "compute_group", counting)
    monkeypatch.setattr(execute, "store_outcome", storing)
    assert toy(data_root, tmp_path / "out", "--shots", "1") == 0
    assert len(groups) >= 2 and waited == [True]
    assert len([r for r in ResultStore(tmp_path / "out").rows() if r.status == "ok"]) == len(groups)

def test_rescore_names_a_damaged_artifact_and_rescores_the_others(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert toy(data_root, out, "--eval-size", "48") == 0
    store = ResultStore(out)
    damaged, intact = [row.cell_id for row in store.rows()]
    arrays = store.load_artifact(damaged)
    arrays["map_data"] = arrays["map_data"][: len(arrays["map_data"]) // 2]  # a truncated map stream,
    arrays["checksum"] = np.array(content_checksum(arrays))  # damaged before its checksum was taken
    store.save_artifact(damaged, arrays)
    capsys.readouterr()
    assert main(["rescore", "--out", str(out)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "rescored 1 cells: 0 differ" in err
    assert f"damaged cell {damaged}: {store.artifact_path(damaged)} cannot be decoded" in err
    assert intact not in err
