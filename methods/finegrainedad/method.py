"""The ``finegrainedad`` plugin: FineGrainedAD, few-shot (k = 1, 2, 4) on ViT-B-16-plus-240 / LAION-400M epoch 32.

``fit(FitData("support", ...))`` loads the category's MFSC captions (``captions_dir`` first, then the shipped
ones), builds the multi-level prompts, finds each level's region in the support shots (language-guided
progressive region aggregation at ``cluster_size`` px), trains the prompts, Attr-MoE weights and Query Former on
the shots, and keeps PromptAD's visual memory; ``predict`` scores every token with its own level's prompts.
With ``image_score="eq8"`` the image scores fuse the pixel map's maximum instead of the memory map's (Eq. 8).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from zsadbench.lazy import deferred
from zsadbench.methods.promptad import PromptAD
from zsadbench.types import Batch, Prediction

from .config import FineGrainedADConfig

torch = deferred("torch")
nn = deferred("torch.nn")
Phase = deferred("zsadbench.methods.promptad", "Phase")
VisualFeatures = deferred("zsadbench.methods.promptad", "VisualFeatures")
extract = deferred("zsadbench.methods.promptad", "extract")
smooth = deferred("zsadbench.maps", "smooth")
upsample = deferred("zsadbench.maps", "upsample")
eq8_scores = deferred(".model", "eq8_scores", __package__)
load_captions = deferred(".mfsc", "load_captions", __package__)
FineGrainedADHead = deferred(".model", "FineGrainedADHead", __package__)
paper_regions = deferred(".regions", "paper_regions", __package__)
region_weights = deferred(".regions", "region_weights", __package__)
shipped_regions = deferred(".regions", "shipped_regions", __package__)
tiled_tokens = deferred(".regions", "tiled_tokens", __package__)


class FineGrainedAD(PromptAD):
    """FineGrainedAD; see :class:`~.config.FineGrainedADConfig` for every hyper-parameter."""

    name: ClassVar[str] = "finegrainedad"
    version: ClassVar[str] = "3"
    label: ClassVar[str] = "FineGrainedAD"
    config_class: ClassVar[type[FineGrainedADConfig]] = FineGrainedADConfig
    random_init_overrides: ClassVar[dict[str, Any]] = {
        **PromptAD.random_init_overrides,
        "cluster_size": 448,
        "query_heads": 8,
    }
    paper: ClassVar[str] = "Towards Fine-Grained Vision-Language Alignment for Few-Shot Anomaly Detection (PR 2026)"

    config: FineGrainedADConfig

    def predict(self, batch: Batch) -> Prediction:
        """PromptAD's prediction; with ``image_score="eq8"`` the image scores of Eq. 8 (same maps)."""
        if self.config.image_score == "released":
            return super().predict(batch)
        self.check_fitted()
        self._check_batch(batch)
        cfg = self.config
        scores = self.head_.scores(self._features(self._query_images(batch), None))
        pixel, image = eq8_scores(scores, self.backbone_.grid_size, cfg.image_score_size)
        maps = smooth(upsample(pixel, cfg.map_size)[:, 0], cfg.sigma)
        return Prediction(pred_score=image.float().cpu(), anomaly_map=maps, stats=scores.stats)

    def _build_head(self, dataset: str, category: str, originals: list[Callable[[], torch.Tensor]],
                    state: dict | None = None) -> nn.Module:
        cfg = self.config
        captions = load_captions(dataset, category, cfg.captions_dir or None)
        head = FineGrainedADHead(self.backbone_, cfg, captions).to(self.device)
        if state is None:
            head.weights = self._region_weights(head, [load() for load in originals])
        return head

    def _region_weights(self, head: FineGrainedADHead, originals: list[torch.Tensor]) -> torch.Tensor:
        """Loss weights ``[L, K, N]`` of every level's region in the shots, from the initial prompts."""
        cfg = self.config
        backbone = self.backbone_

        def encode(tiles: torch.Tensor) -> torch.Tensor:
            return extract(backbone, tiles, cfg.memory_layers, memory_tap=cfg.memory_tap, precision=self.precision).patches

        tokens = tiled_tokens(encode, [o.to(self.device) for o in originals], cfg.cluster_size, cfg.image_size)
        with torch.no_grad():
            levels = head.level_features()
        anchor = {name: levels[name].normal_anchor for name in head.levels}
        components = torch.stack([anchor[c] for c in head.components])
        if cfg.as_shipped:
            generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
            masks = shipped_regions(tokens, anchor["background"], components, cfg.cluster_k_stage1,
                                    cfg.cluster_k_stage2, generator)
        else:
            masks = paper_regions(tokens, anchor["foreground"], anchor["background"], components,
                                  cfg.cluster_k_stage1, cfg.cluster_k_stage2)
        self.region_masks_ = masks.cpu()
        return region_weights(masks, backbone.grid_size, cfg.region_weight).to(self.device)

    def _phases(self, shots: VisualFeatures) -> list[Phase]:
        head, cfg = self.head_, self.config
        phases = [Phase("seg", cfg.epochs_seg, head.trained_parameters(), lambda: head.seg_loss(shots))]
        if head.cls is not None:
            phases.append(Phase("cls", cfg.epochs_cls, head.cls_parameters(), lambda: head.cls_loss(shots)))
        return phases
