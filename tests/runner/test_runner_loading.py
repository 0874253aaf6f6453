"""The loader: each batch holds PIL's bicubic resize of each image, scaled to [0,1], in the batch's order."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import toy_plugins
from zsadbench.runner.loading import ImageSet


@pytest.mark.parametrize(("batch_size", "workers", "shuffle"), [(3, 1, False), (4, 3, True), (16, 2, False)])
def test_batches_hold_each_resized_image_in_order(data_root, batch_size, workers, shuffle):
    adapter = toy_plugins.ToyDataset(data_root / "toy")
    category = adapter.categories()[0]
    samples = adapter.select("test", category)
    images = ImageSet(adapter, samples, 23, 11, workers)
    order = np.random.default_rng(5).permutation(len(samples)) if shuffle else np.arange(len(samples))
    seen = []
    for loaded in images.iter_batches(batch_size, shuffle=shuffle, seed=5):
        assert loaded.batch.image.shape[0] == len(loaded.samples) <= batch_size
        assert loaded.masks.shape == (len(loaded.samples), 11, 11)
        for tensor, sample in zip(loaded.batch.image, loaded.samples):
            rgb = Image.open(sample.image_path).convert("RGB").resize((23, 23), Image.BICUBIC)
            expected = np.asarray(rgb, np.float32).transpose(2, 0, 1) / np.float32(255)
            assert np.array_equal(tensor.numpy(), expected)
            seen.append(sample)
    assert seen == [samples[i] for i in order]


class _Recording(toy_plugins.ToyDataset):
    """The toy dataset, noting the order in which images are loaded and failing on the images in ``broken``."""

    def __init__(self, root, broken=()):
        super().__init__(root)
        self.loaded, self.broken = [], set(broken)

    def load_image(self, sample):
        self.loaded.append(sample.image_path)
        if sample.image_path in self.broken:
            raise OSError(f"cannot read {sample.image_path}")
        return super().load_image(sample)


def test_the_next_set_loads_while_the_last_batch_of_this_one_is_used(data_root):
    import threading

    from zsadbench.runner.loading import Prefetcher

    class Announcing(_Recording):
        def load_image(self, sample):
            if sample.image_path == watched:
                started.set()
            return super().load_image(sample)

    adapter = Announcing(data_root / "toy")
    first, second = (adapter.select("test", category) for category in adapter.categories())
    watched, started = second[0].image_path, threading.Event()
    sets = [ImageSet(adapter, first, 16, 8, 2), ImageSet(adapter, second, 16, 8, 2)]
    with Prefetcher(sets, 4) as loads:
        batches = list(loads.batches(0))
        assert [s for b in batches for s in b.samples] == first
        # every batch of the first set is out and the second set was not asked for: its first image is loading
        assert started.wait(30)
        assert [s for b in loads.batches(1) for s in b.samples] == second
        with pytest.raises(ValueError, match="already passed"):
            next(loads.batches(0))


def test_a_set_left_unfinished_is_dropped_and_a_broken_image_fails_only_its_set(data_root):
    from zsadbench.runner.loading import Prefetcher

    probe = toy_plugins.ToyDataset(data_root / "toy")
    alpha, beta = (probe.select("test", category) for category in probe.categories())
    adapter = _Recording(data_root / "toy", broken={beta[0].image_path})
    sets = [ImageSet(adapter, alpha, 16, 8, 2), ImageSet(adapter, beta, 16, 8, 2), ImageSet(adapter, alpha, 16, 8, 2)]
    with Prefetcher(sets, 2) as loads:
        next(loads.batches(0))  # the first set's cell stops after one batch
        with pytest.raises(OSError, match="cannot read"):
            list(loads.batches(1))
        last = [s for b in loads.batches(2) for s in b.samples]
    assert last == alpha
