"""``--precision bf16`` reaches each built-in method's backbone: outputs change a little, not a lot."""
from __future__ import annotations

import pytest
import torch

from zsadbench import registry
from zsadbench.method import FitData
from zsadbench.types import Batch

from tiny_configs import TINY


@pytest.mark.parametrize("name", ["winclip", "visualad"])
def test_bf16_changes_the_maps_within_bf16_precision(name):
    cls = registry.methods().get(name)
    config = cls.config_class().replace(**TINY[name])
    torch.manual_seed(0)
    images = torch.rand(2, 3, config.image_size, config.image_size)
    maps = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        method = cls(config, pretrained="none", precision=precision).setup()
        if method.trains_on_auxiliary:
            method.load_state_dict(method.state_dict())  # the initial head: the same for both precisions
        else:
            method.fit(FitData("none"))
        with torch.inference_mode():
            maps[precision] = method.predict(Batch(image=images, category="bottle")).anomaly_map
    assert maps["bf16"].dtype == torch.float32
    assert not torch.equal(maps["fp32"], maps["bf16"])
    scale = maps["fp32"].abs().max()
    assert (maps["fp32"] - maps["bf16"]).abs().max() < 0.1 * scale


def test_a_visualad_state_trained_in_fp32_runs_in_bf16():
    cls = registry.methods().get("visualad")
    config = cls.config_class().replace(**{**TINY["visualad"], "epochs": 2})
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(4, 3, config.image_size, config.image_size, generator=generator)
    masks = torch.zeros(4, config.image_size, config.image_size, dtype=torch.bool)
    masks[1::2, 10:30, 12:28] = True
    labels = torch.tensor([0, 1, 0, 1])

    def batches(batch_size, shuffle=False, seed=0):
        for start in range(0, 4, batch_size):
            part = slice(start, start + batch_size)
            yield Batch(image=images[part], category="toy", gt_label=labels[part], gt_mask=masks[part])

    torch.manual_seed(0)
    trained = cls(config, pretrained="none").setup().fit(FitData("auxiliary", batches, 4, "toy"))
    state = trained.state_dict()
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    torch.manual_seed(0)
    in_bf16 = cls(config, pretrained="none", precision="bf16").setup()
    in_bf16.load_state_dict(state)
    batch = Batch(image=images, category="toy")
    with torch.inference_mode():
        fp32, bf16 = trained.predict(batch), in_bf16.predict(batch)
    assert bf16.anomaly_map.dtype == torch.float32 and torch.isfinite(bf16.anomaly_map).all()
    assert not torch.equal(fp32.anomaly_map, bf16.anomaly_map)  # the backbone did run in bf16
    scale = fp32.anomaly_map.abs().max()
    assert (fp32.anomaly_map - bf16.anomaly_map).abs().max() < 0.1 * scale
    # the score is a mean of map values, so it cannot move further than the maps do
    assert (fp32.pred_score - bf16.pred_score).abs().max() <= (fp32.anomaly_map - bf16.anomaly_map).abs().max()
