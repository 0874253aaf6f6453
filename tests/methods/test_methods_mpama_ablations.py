"""Every row of the MPAMA paper's ablation tables (3, 4, 5, 8), built from the exact options that
methods/mpama/README.md gives for it and fitted on a tiny random CLIP. Each test checks the structure that the row
switches: the perception levels and text prompts built, the global prompts and bridge, the kind and number of
experts, and the parameters each stage's optimiser trains. It also checks what the router sees under pre- and
post-aggregation routing."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from zsadbench.cli.options import key_value
from zsadbench.errors import ConfigError
from zsadbench.methods.anomalyclip.method import AnomalyCLIP
from zsadbench.methods.mpama.config import MPAMAConfig
from zsadbench.methods.mpama.method import MPAMA
from zsadbench.methods.mpama.training import build_moe, stage1, stage2
from zsadbench.runner.plan import check_overrides_used, override_variants

from clip_reference import toy_data
from tiny_configs import TINY

README = Path(__file__).resolve().parents[2] / "methods" / "mpama" / "README.md"
DEFAULT_POOL = ("frozen", "learnable", "learnable", "learnable", "zero")  # the paper's 5 (auxiliary set not VisA)
pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass(frozen=True)
class Row:
    """A row of a paper table: the README's options for it and the structure they must build."""

    name: str
    options: str
    levels: tuple[int, ...] = (1, 2, 3, 4)
    decoupled: bool = True
    experts: tuple[str, ...] | None = DEFAULT_POOL  # None: no MA, no stage 2


def pool(learnable: int) -> tuple[str, ...]:
    return ("frozen",) + ("learnable",) * learnable + ("zero",)


ROWS = [
    Row("table3-T1", "--method mpama --set mpama.decoupled=false --set mpama.moe=false", decoupled=False, experts=None),
    Row("table3-T1-T2", "--method mpama --set mpama.moe=false", experts=None),
    Row("table3-T1-T3", "--method mpama --set mpama.decoupled=false", decoupled=False),
    Row("table3-all", "--method mpama"),
    *[Row(f"table4-{p}", f"--method mpama --set mpama.perceptions={p}", levels=tuple(map(int, p.split(","))))
      for p in ("1", "1,2", "1,2,3", "1,2,3,4", "1,2,3,4,5")],
    *[Row(f"table8-{p}", f"--method mpama --set mpama.perceptions={p}", levels=tuple(map(int, p.split(","))))
      for p in ("2,3,4,5", "3,4,5,6")],
    Row("table5-1", "--method mpama --set mpama.experts=1 --set mpama.single_expert=learnable", experts=("learnable",)),
    Row("table5-2", "--method mpama --set mpama.experts=2", experts=("frozen", "learnable")),
    *[Row(f"table5-{n}", f"--method mpama --set mpama.experts={n}", experts=pool(n - 2)) for n in (3, 4, 5, 6)],
]


def parse(options: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``--method NAME --set KEY=VALUE ...`` → ``(NAME, ((KEY, VALUE), ...))``, split as the CLI splits them."""
    words = shlex.split(options)
    method = words[words.index("--method") + 1]
    return method, tuple(key_value(word) for flag, word in zip(words, words[1:]) if flag == "--set")


def row_config(options: str) -> MPAMAConfig:
    """The one MPAMA config that ``options`` give the tiny configuration, as the planner derives it."""
    method, overrides = parse(options)
    assert method == "mpama"
    ((_, cfg),) = override_variants(MPAMAConfig(**TINY["mpama"], batch_size=4), method, overrides)
    check_overrides_used({method: cfg}, overrides)
    return cfg


def fitted(cfg: MPAMAConfig) -> MPAMA:
    torch.manual_seed(0)
    method = MPAMA(cfg, pretrained="none").setup()
    return method.fit(toy_data(4))


def part(name: str) -> str:
    """``prompts.shared_normal`` → ``prompts.shared``, ``prompts.bridge.net.0.weight`` → ``prompts.bridge``."""
    owner, attribute = name.split(".")[:2]
    return f"{owner}.{attribute.split('_')[0]}"


def optimised(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Number of parameters ``optimizer`` trains, per part of ``model``."""
    ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
    counts: dict[str, int] = {}
    for name, param in model.named_parameters():
        if id(param) in ids:
            assert param.requires_grad, name
            counts[part(name)] = counts.get(part(name), 0) + param.numel()
    return counts


def expected_prompt_parameters(cfg: MPAMAConfig, row: Row, width: int) -> dict[str, int]:
    """Stage 1's parameters per part: shared prefix, per-level tokens, global prompts, bridge, deep prompts."""
    shared, levels = cfg.shared_prefix, len(row.levels)
    counts = {
        "prompts.shared": 2 * shared * width,
        "prompts.level": 2 * levels * (cfg.n_ctx - shared) * width,
        "prompts.deep": (cfg.deep_depth - 1) * cfg.deep_tokens * width,
    }
    if row.decoupled:
        counts["prompts.global"] = 2 * cfg.n_ctx * width
        counts["prompts.bridge"] = (2 * width * width + width) + (width * width + width)  # hidden width = W
    return counts


# -- the README maps every row to these options ---------------------------------------------------
def test_the_readme_gives_every_row_its_exact_options():
    readme = README.read_text()
    for options in [row.options for row in ROWS] + ["--method anomalyclip"]:
        assert f"`{options}`" in readme, options


def test_an_mpa_prefixed_key_never_reaches_mpama():
    overrides = (("mpa.perceptions", "1"),)
    ((_, cfg),) = override_variants(MPAMAConfig(**TINY["mpama"]), "mpama", overrides)
    assert cfg.perceptions == (1, 2, 3, 4)
    with pytest.raises(ConfigError, match="mpa.perceptions"):
        check_overrides_used({"mpama": cfg}, overrides)


# -- every row's structure ------------------------------------------------------------------------
@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_every_row_builds_the_prompts_it_switches(row):
    cfg = row_config(row.options)
    method = fitted(cfg)
    model, prompts = method.model_, method.model_.prompts
    assert model.layout.levels == row.levels and prompts.level_normal.shape[0] == len(row.levels)
    assert prompts.text.tokens.shape[0] == 2 * (len(row.levels) + row.decoupled)  # prompts through the text tower
    assert hasattr(prompts, "global_normal") == row.decoupled
    assert (prompts.bridge is not None) == row.decoupled
    with torch.no_grad():
        local, global_ = model.text_features()
    assert local.shape[:2] == (len(row.levels), 2)
    if not row.decoupled:  # coupled: the image branch uses the levels' mean
        torch.testing.assert_close(global_, F.normalize(local.mean(dim=0), dim=-1))
    width = model.encoder.width
    stage = stage1(model, toy_data(4), cfg, "cpu", "fp32", "MPAMA")
    assert optimised(model, stage.optimizer) == expected_prompt_parameters(cfg, row, width)


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_every_row_builds_the_experts_it_switches(row):
    cfg = row_config(row.options)
    method = fitted(cfg)
    model, moe = method.model_, method.model_.moe
    if row.experts is None:
        assert moe is None and set(method.history_) == {"stage1"} and method.total_epochs == cfg.epochs
        return
    assert set(method.history_) == {"stage1", "stage2"}
    assert tuple(moe.kinds) == row.experts and moe.top_k == min(2, len(row.experts))
    width, dim = model.backbone.visual.proj.shape
    learnable = row.experts.count("learnable")
    stage = stage2(model, toy_data(4), cfg, "cpu", "fp32", "MPAMA")
    assert optimised(model, stage.optimizer) == {"moe.learnable": learnable * width * dim,
                                                 "moe.router": len(row.experts) * width}
    x = torch.randn(3, width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outputs = moe.expert_outputs(x)
    for i, kind in enumerate(row.experts):
        if kind == "frozen":
            torch.testing.assert_close(outputs[:, i], x @ model.backbone.visual.proj)
        elif kind == "zero":
            assert outputs[:, i].abs().sum() == 0
    usage = method.predict(toy_batch()).stats["expert_usage"]
    assert tuple(usage.shape) == (len(row.levels), len(row.experts))


def toy_batch():
    return next(toy_data(2).batches(2))


def test_the_anomalyclip_baseline_row_has_one_coupled_prompt_pair_and_no_experts():
    torch.manual_seed(0)
    method = AnomalyCLIP(AnomalyCLIP.config_class(**TINY["anomalyclip"]), pretrained="none").setup()
    model = method.model_
    assert model.prompts.text.tokens.shape[0] == 2
    assert not hasattr(model, "moe") and not hasattr(model.prompts, "global_normal")


def test_table5_one_expert_is_the_projection_fine_tuned_while_a_lone_frozen_expert_is_mpa():
    learnable = fitted(row_config("--method mpama --set mpama.experts=1 --set mpama.single_expert=learnable")
                       .replace(stage2_lr=1e-2))
    projection = learnable.model_.backbone.visual.proj
    assert not torch.allclose(learnable.model_.moe.learnable[0], projection)
    frozen = fitted(row_config("--method mpama --set mpama.experts=1").replace(stage2_lr=1e-2))
    assert frozen.model_.moe.kinds == ["frozen"] and frozen.model_.moe.learnable.shape[0] == 0
    x = torch.randn(5, projection.shape[0])
    with torch.no_grad():
        torch.testing.assert_close(frozen.model_.moe(x).tokens, x @ projection)


def test_single_expert_learnable_needs_a_one_expert_pool():
    with pytest.raises(ConfigError, match="single_expert"):
        MPAMAConfig(experts=3, single_expert="learnable")
    with pytest.raises(ConfigError, match="single_expert"):
        MPAMAConfig(experts=1, single_expert="zero")


# -- what the router sees -------------------------------------------------------------------------
def pooled_by_hand(tokens: torch.Tensor, grid: tuple[int, int], p: int) -> torch.Tensor:
    """``[B, N, C]`` → mean over rows and columns i − (p − 1)//2 … i + p//2 inside the grid, by loops."""
    h, w = grid
    cells = tokens.reshape(tokens.shape[0], h, w, -1)
    out = torch.empty_like(cells)
    for i in range(h):
        for j in range(w):
            rows = slice(max(0, i - (p - 1) // 2), min(h, i + p // 2 + 1))
            cols = slice(max(0, j - (p - 1) // 2), min(w, j + p // 2 + 1))
            out[:, i, j] = cells[:, rows, cols].mean(dim=(1, 2))
    return out.reshape(tokens.shape)


@pytest.mark.parametrize("routing", ["pre", "post"])
def test_pre_aggregation_routes_each_levels_pooled_tokens_and_post_routes_the_raw_tokens_once(routing, monkeypatch):
    cfg = MPAMAConfig(**TINY["mpama"], routing=routing)
    model = MPAMA(cfg, pretrained="none").setup().model_
    model.moe = build_moe(model, cfg, 5, seed=0)
    seen: list[torch.Tensor] = []
    gates = model.moe.gates

    def spy(x: torch.Tensor):
        seen.append(x.detach().clone())
        return gates(x)

    monkeypatch.setattr(model.moe, "gates", spy)
    h, w = model.grid
    tokens = torch.randn(2, h * w, model.backbone.visual.proj.shape[0], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.level_tokens(tokens)
    levels = cfg.perceptions
    expected = [pooled_by_hand(tokens, (h, w), p) for p in levels] if routing == "pre" else [tokens]
    assert [tuple(s.shape) for s in seen] == [tuple(tokens.shape)] * len(expected)
    for got, want in zip(seen, expected):
        torch.testing.assert_close(got, want)
    if routing == "pre":  # levels above 1 really are pooled
        assert not torch.allclose(seen[-1], tokens)


@pytest.mark.parametrize("padding", ["valid", "replicate", "zero"])
def test_pre_routing_without_gradients_pools_the_expert_outputs_and_matches_the_per_level_experts(padding):
    cfg = MPAMAConfig(**TINY["mpama"], routing="pre", pool_padding=padding)
    model = MPAMA(cfg, pretrained="none").setup().model_
    model.moe = build_moe(model, cfg, 5, seed=0)
    with torch.no_grad():  # the learnable experts made to differ from the frozen one
        noise = torch.randn(model.moe.learnable.shape, generator=torch.Generator().manual_seed(1))
        model.moe.learnable.add_(0.05 * noise)
    h, w = model.grid
    tokens = torch.randn(2, h * w, model.backbone.visual.proj.shape[0], generator=torch.Generator().manual_seed(0))
    calls = []
    expert_outputs = model.moe.expert_outputs
    model.moe.expert_outputs = lambda x: calls.append(x.shape) or expert_outputs(x)
    per_level, per_level_counts, per_level_balance = model.level_tokens(tokens)  # gradients on: experts per level
    assert len(calls) == len(cfg.perceptions)
    calls.clear()
    with torch.no_grad():
        shared, counts, balance = model.level_tokens(tokens)
    assert len(calls) == 1  # once, on the patch tokens
    assert torch.equal(counts, per_level_counts)  # routing reads the pooled tokens, unchanged
    torch.testing.assert_close(balance, per_level_balance.detach())
    for got, want in zip(shared, per_level):
        torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-6)
