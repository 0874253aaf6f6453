"""``--precision bf16`` reaches each built-in method's backbone: outputs change a little, not a lot."""
from __future__ import annotations

import pytest
import torch

from zsadbench import registry
from zsadbench.method import FitData
from zsadbench.types import Batch

from test_common import TINY


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
