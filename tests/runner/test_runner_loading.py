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
