"""The smallest configuration of each built-in method, for the common checks (test_common.py), the precision
test and the determinism sweeps; a new built-in must be added here.

FineGrainedAD's ``captions_dir`` is the placeholder ``"CAPTIONS"``: test_common.py puts the toy captions folder
there, and runs on the synthetic set leave it out (shipped captions cover that set).
"""
from __future__ import annotations

_CLIP_PROMPTS = {"backbone": "zsad-tiny-14-336", "image_size": 56, "vv_last": 3, "deep_depth": 2, "epochs": 1}
_FEW_SHOT = {"backbone": "zsad-tiny-16-240", "image_size": 64, "memory_layers": (1, 2), "epochs_seg": 1,
             "epochs_cls": 1, "map_size": 64}
TINY = {
    "winclip": {"backbone": "zsad-tiny-16-240"},
    "visualad": {"backbone": "zsad-tiny-14-336", "image_size": 56, "layers": (2, 4), "epochs": 1},
    "anomalyclip": {**_CLIP_PROMPTS, "layers": (4,)},
    "mpa": {**_CLIP_PROMPTS, "layer": 4},
    "mpama": {**_CLIP_PROMPTS, "layer": 4, "stage2_epochs": 1},
    "promptad": _FEW_SHOT,
    "finegrainedad": {**_FEW_SHOT, "cluster_size": 128, "query_heads": 2, "captions_dir": "CAPTIONS"},
    "patchcore": {"backbone": "resnet18", "image_size": 64, "layer_dim": 64, "feature_dim": 64},
    "padim": {"backbone": "resnet18", "image_size": 64, "n_features": 32},
    "spade": {"backbone": "resnet18", "image_size": 64},
    "vand": {"backbone": "zsad-tiny-14-336", "image_size": 56, "layers": (2, 4), "memory_layers": (1, 3), "epochs": 1},
    "inctrl": {"backbone": "zsad-tiny-16-240", "image_size": 64, "layers": (1, 2, 3), "epochs": 1, "steps_per_epoch": 2,
               "batch_size": 4},
    "adaclip": {"backbone": "zsad-tiny-14-336", "image_size": 56, "layers": (2, 4), "prompting_depth": 2,
                "prompting_length": 2, "k_clusters": 2, "epochs": 1, "batch_size": 2},
    "faprompt": {**_CLIP_PROMPTS, "layer": 4},
}
