"""Lossless codecs for the 16-bit anomaly maps of the per-image artifacts, side by side on the same maps.

The maps are made the way the methods make theirs: a patch grid of scores, upsampled bilinearly to the
evaluation size (518) and Gaussian-smoothed (sigma 4), then quantised to 16 bits between each image's minimum
and maximum as the runner stores them (:func:`zsadbench.store.artifacts.quantize`). Three kinds:

- ``paper grid``: 37 x 37 patches (ViT-L/14 at 518 px), the grey level of real images pooled per patch
  (the MVTec AD samples in ``../shared/real-samples`` when they are there, else generated shading);
- ``demo grid``: 14 x 14 patches (ViT-B/16 at 224 px, the random-weight demo configurations), same images;
- ``noise grid``: 37 x 37 independent random patch scores, a worst case with no spatial correlation.

Candidates: format 1 (zlib npz of the raw levels), zstd alone, blosc2 with byte shuffle / bit shuffle /
shuffle + bytedelta filters, PNG-16, JPEG-LS and JPEG-XL lossless (imagecodecs), the planar predictor
(``a + b - c``, as in lossless JPEG) with zigzag, byte planes and zstd, and format 2 (this version:
:mod:`zsadbench.store.mapcodec`, a least-squares predictor over 20 neighbours). blosc2 and imagecodecs come with the ``bench`` extra; a missing one is
left out with a note. Every candidate's output is decoded and checked against the input.

    python benchmarks/bench_artifacts.py
    python benchmarks/bench_artifacts.py --images 48 --size 518
"""
from __future__ import annotations

import argparse
import glob
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from zsadbench.maps import smooth
from zsadbench.store import mapcodec
from zsadbench.store.artifacts import quantize

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "mvtec_ad_256"
Codec = tuple[Callable[[np.ndarray], bytes], Callable[[bytes, tuple[int, int]], np.ndarray]]


def grey_images(count: int, size: int) -> list[np.ndarray]:
    """``count`` grey images in [0, 1] at ``size`` px: the real samples when present, else generated shading."""
    files = sorted(glob.glob(str(SAMPLES / "*" / "test" / "*" / "*.png")))
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        if files:
            image = Image.open(files[i % len(files)]).convert("L").resize((size, size), Image.BICUBIC)
            out.append(np.asarray(image, np.float32) / 255)
        else:
            yy, xx = np.mgrid[0:size, 0:size] / size
            out.append(np.clip(0.5 + 0.3 * np.sin(6 * xx + i) * np.cos(4 * yy) + rng.normal(0, 0.05, (size, size)),
                               0, 1).astype(np.float32))
    return out


def method_maps(patches: torch.Tensor, size: int) -> np.ndarray:
    """Patch scores ``[N,g,g]`` → the methods' post-processing: bilinear to ``size``, Gaussian sigma 4."""
    up = F.interpolate(patches[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return smooth(up, 4.0).numpy()


def map_sets(count: int, size: int) -> dict[str, np.ndarray]:
    grey = torch.from_numpy(np.stack(grey_images(count, size)))[:, None]
    sets = {}
    for name, grid in (("paper grid", 37), ("demo grid", 14)):
        pooled = F.adaptive_avg_pool2d(grey, grid)[:, 0]
        sets[name] = method_maps((pooled - pooled.mean(dim=(1, 2), keepdim=True)).abs(), size)
    noise = torch.from_numpy(np.random.default_rng(1).random((count, 37, 37), dtype=np.float32))
    sets["noise grid"] = method_maps(noise, size)
    return {name: quantize(maps)[0] for name, maps in sets.items()}


def codecs() -> tuple[dict[str, Codec], list[str]]:
    """Name → (encode one map, decode it) for every candidate whose library is installed; and notes."""
    import zstandard

    def npz_zlib(levels: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, anomaly_map=levels)
        return buffer.getvalue()

    def npz_unzlib(data: bytes, shape: tuple[int, int]) -> np.ndarray:
        with np.load(io.BytesIO(data)) as arrays:
            return arrays["anomaly_map"]

    def ours(levels: np.ndarray) -> bytes:
        data, _, weights = mapcodec.encode_maps(levels[None])
        return weights.tobytes() + data.tobytes()  # the weights are stored beside the stream

    def ours_decode(data: bytes, shape: tuple[int, int]) -> np.ndarray:
        weights = np.frombuffer(data[: 8 * len(mapcodec.HOOD)], np.int64)[None]
        blob = np.frombuffer(data[8 * len(mapcodec.HOOD) :], np.uint8)
        return mapcodec.decode_maps(blob, np.array([0, blob.size]), weights, shape)[0]

    def planar(levels: np.ndarray) -> bytes:
        dx = levels.copy()
        dx[:, 1:] -= levels[:, :-1]
        dxy = dx.copy()
        dxy[1:, :] -= dx[:-1, :]
        signed = dxy.view(np.int16)
        zigzag = ((signed << 1) ^ (signed >> 15)).view(np.uint16)
        return zstandard.ZstdCompressor(level=3).compress(np.stack([zigzag & 0xFF, zigzag >> 8]).astype(np.uint8).tobytes())

    def planar_decode(data: bytes, shape: tuple[int, int]) -> np.ndarray:
        planes = np.frombuffer(zstandard.ZstdDecompressor().decompress(data), np.uint8).reshape(2, *shape)
        zigzag = planes[0].astype(np.uint16) | (planes[1].astype(np.uint16) << 8)
        signed = (zigzag >> 1).view(np.int16) ^ -(zigzag & 1).view(np.int16)
        return np.cumsum(np.cumsum(signed.view(np.uint16), axis=0, dtype=np.uint16), axis=1, dtype=np.uint16)

    found: dict[str, Codec] = {
        "format 1: zlib npz (level 6)": (npz_zlib, npz_unzlib),
        "zstd level 3, raw": (lambda a: zstandard.ZstdCompressor(level=3).compress(a.tobytes()),
                              lambda d, s: np.frombuffer(zstandard.ZstdDecompressor().decompress(d), np.uint16).reshape(s)),
        "planar predictor + zigzag + byte planes + zstd 3": (planar, planar_decode),
        "format 2: least-squares predictor + zigzag + bit planes + zstd 3": (ours, ours_decode),
    }
    notes = []
    try:
        import blosc2

        def blosc(filters):
            return (lambda a: blosc2.compress2(a, typesize=2, codec=blosc2.Codec.ZSTD, clevel=5, filters=filters),
                    lambda d, s: np.frombuffer(blosc2.decompress2(d), np.uint16).reshape(s))

        found["blosc2 zstd 5, byte shuffle"] = blosc([blosc2.Filter.SHUFFLE])
        found["blosc2 zstd 5, bit shuffle"] = blosc([blosc2.Filter.BITSHUFFLE])
        found["blosc2 zstd 5, shuffle + bytedelta"] = blosc([blosc2.Filter.SHUFFLE, blosc2.Filter.BYTEDELTA])
    except ImportError:
        notes.append("blosc2 is not installed (pip install blosc2): its rows are left out")
    try:
        import imagecodecs

        found["PNG-16 (imagecodecs, level 6)"] = (lambda a: imagecodecs.png_encode(a, level=6),
                                                   lambda d, s: imagecodecs.png_decode(d))
        found["JPEG-LS lossless (imagecodecs)"] = (lambda a: imagecodecs.jpegls_encode(a),
                                                    lambda d, s: imagecodecs.jpegls_decode(d))
        for effort in (1, 3):
            found[f"JPEG-XL lossless, effort {effort} (imagecodecs)"] = (
                lambda a, e=effort: imagecodecs.jpegxl_encode(a, lossless=True, effort=e),
                lambda d, s: imagecodecs.jpegxl_decode(d))
    except ImportError:
        notes.append("imagecodecs is not installed (pip install imagecodecs): its rows are left out")
    return found, notes


def measure(codec: Codec, maps: np.ndarray) -> tuple[float, float, float]:
    """KB per image, encode and decode ms per image; raises if a map does not come back equal."""
    encode, decode = codec
    decode(encode(np.ascontiguousarray(maps[0])), maps.shape[1:])  # compiles or loads what runs on first use
    started = time.perf_counter()
    blobs = [encode(np.ascontiguousarray(m)) for m in maps]
    encoded = time.perf_counter()
    back = [decode(b, maps.shape[1:]) for b in blobs]
    decoded = time.perf_counter()
    for original, restored in zip(maps, back):
        if not np.array_equal(original, np.asarray(restored).reshape(original.shape)):
            raise AssertionError("a codec did not give the map back exactly")
    count = len(maps)
    return sum(len(b) for b in blobs) / count / 1024, 1e3 * (encoded - started) / count, 1e3 * (decoded - encoded) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="maps per kind (default: 24)")
    parser.add_argument("--size", type=int, default=518, help="evaluation size (default: 518)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sets = map_sets(args.images, args.size)
    found, notes = codecs()
    source = "the real MVTec AD samples" if glob.glob(str(SAMPLES / "*")) else "generated shading (no ../shared)"
    print(f"\n{args.images} maps per kind at {args.size}^2 (raw {args.size ** 2 * 2 / 1024:.0f} KB), images from "
          f"{source}, one thread\n")
    print("| codec | " + " | ".join(f"{name}: KB / enc ms / dec ms" for name in sets) + " |")
    print("|---|" + "---|" * len(sets))
    for name, codec in found.items():
        cells = [measure(codec, maps) for maps in sets.values()]
        print(f"| {name} | " + " | ".join(f"{kb:.1f} / {enc:.1f} / {dec:.1f}" for kb, enc, dec in cells) + " |")
    for note in notes:
        print(f"\nnote: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
