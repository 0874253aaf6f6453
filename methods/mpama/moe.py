"""MoE adaptation of the visual projection (MPAMA stage 2).

The pool holds a frozen expert (the backbone's projection, a buffer the optimiser never sees), learnable
experts initialised from that projection, and a zero expert whose output is 0 (a pool of one expert holds the
frozen one, or a single learnable one with ``single_expert="learnable"``). A bias-free linear router on
the pre-projection token picks the top-k experts from the softmax over the pool; their gates are
renormalised to sum to 1 (``renormalize``; the zero expert keeps its share, so choosing it scales the token
down), and the output is the gated sum of the chosen experts' outputs. Experts are evaluated densely, which
gives the same result as dispatching tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from zsadbench.errors import ConfigError


def expert_kinds(experts: int, single: str = "frozen") -> list[str]:
    """The pool for a size: 1 → ``single`` (frozen or learnable); 2 → frozen, learnable; n ≥ 3 → frozen,
    n − 2 learnable, zero."""
    if experts < 1:
        raise ConfigError(f"experts must be >= 1, got {experts}")
    if single not in ("frozen", "learnable"):
        raise ConfigError(f"single_expert must be 'frozen' or 'learnable', got {single!r}")
    if experts == 1:
        return [single]
    if experts == 2:
        return ["frozen", "learnable"]
    return ["frozen"] + ["learnable"] * (experts - 2) + ["zero"]


@dataclass
class RoutedTokens:
    """``tokens`` ``[..., D]``: the projected tokens; ``counts`` ``[experts]``: how often each expert was among
    the top-k (long); ``balance``: the Switch-style load term ``E · Σ_e f_e · P_e`` (scalar)."""

    tokens: torch.Tensor
    counts: torch.Tensor
    balance: torch.Tensor


class MoEProjection(nn.Module):
    """Router + expert pool replacing ``x @ proj`` for patch tokens (see the module docstring)."""

    def __init__(
        self,
        projection: torch.Tensor,
        experts: int,
        *,
        top_k: int = 2,
        renormalize: bool = True,
        router_init_std: float = 0.02,
        single_expert: str = "frozen",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        width, dim = projection.shape
        self.kinds = expert_kinds(experts, single_expert)
        self.top_k = min(top_k, experts)
        self.renormalize = renormalize
        self.register_buffer("frozen", projection.detach().clone().float(), persistent=False)
        learnable = self.kinds.count("learnable")
        self.learnable = nn.Parameter(self.frozen.unsqueeze(0).repeat(learnable, 1, 1))
        weight = torch.randn(experts, width, generator=generator) * router_init_std
        self.router = nn.Parameter(weight.to(projection.device))

    @property
    def experts(self) -> int:
        return len(self.kinds)

    def gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(gates [..., E], chosen [..., k], probs [..., E])``: gates are zero outside the top-k."""
        probs = (x.float() @ self.router.T).softmax(dim=-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)
        if self.renormalize:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return torch.zeros_like(probs).scatter(-1, chosen, weights), chosen, probs

    def expert_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., E, D]``: every expert's output for ``[..., W]`` tokens (zeros for the zero expert)."""
        x = x.float()
        outputs, learned = [], 0
        for kind in self.kinds:
            if kind == "frozen":
                outputs.append(x @ self.frozen)
            elif kind == "learnable":
                outputs.append(x @ self.learnable[learned])
                learned += 1
            else:
                outputs.append(x.new_zeros(*x.shape[:-1], self.frozen.shape[1]))
        return torch.stack(outputs, dim=-2)

    def forward(self, x: torch.Tensor, outputs: torch.Tensor | None = None) -> RoutedTokens:
        """Route ``[..., W]`` tokens; ``outputs`` (``[..., E, D]``) are their expert outputs when the caller has
        them already (computed here otherwise)."""
        gates, chosen, probs = self.gates(x)
        outputs = self.expert_outputs(x) if outputs is None else outputs
        tokens = (gates.unsqueeze(-1) * outputs).sum(dim=-2)
        counts = torch.bincount(chosen.reshape(-1), minlength=self.experts)
        share = counts.float() / max(1, chosen.numel())
        balance = self.experts * (share * probs.reshape(-1, self.experts).mean(dim=0)).sum()
        return RoutedTokens(tokens, counts, balance)
