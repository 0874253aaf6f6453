"""Density peaks clustering with k-nearest-neighbour density (DPC-KNN), batched, for token sets.

DPC-KNN (Du, Ding and Jia, Knowledge-Based Systems 99, 2016) on each item of a batch ``x [B, N, C]``:

- distances ``d_ij = scale · ‖x_i − x_j‖₂``;
- density ``ρ_i = exp(−(1/k) Σ_{j ∈ kNN(i)} d_ij²)`` over the ``k`` nearest *other* tokens
  (``include_self=True`` counts the token itself as one of the ``k``, as TCFormer's implementation does);
- distance indicator ``δ_i = min_{j: ρ_j > ρ_i} d_ij``; the densest token gets the largest distance of its item;
- centres: the ``n_clusters`` tokens with the largest ``γ_i = ρ_i · δ_i`` (or the ``centres`` given);
- assignment: ``"parent"`` (the original density-peaks rule: every other token takes the label of its nearest
  denser token, followed up to a centre) or ``"nearest"`` (each token joins its nearest centre).

Densities are kept as ``log ρ`` so they never underflow in high dimensions; ties in density are broken by token
index, so the order is strict and every non-centre token has exactly one parent. ``density="tcformer"`` computes
instead as TCFormer's ``cluster_dpc_knn`` does (the code FineGrainedAD ships): ``ρ`` in float32 plus its noise,
tokens of equal density not denser than each other, ``γ = δ · ρ`` and the ``topk`` of it, so its ties (e.g. every
``ρ = 1`` when ``k = 1`` counts only the token itself) fall the same way. ``exclude`` marks tokens that
may not become centres: they are no one's neighbour or parent either (their density is ``-inf``), but each still
receives the label of its nearest admissible denser token (``"parent"``) or nearest centre (``"nearest"``).
With ``centres`` given (e.g. chosen from outside knowledge), the centres also count as parents of every token: a
token follows whichever is nearer, its nearest denser token or its nearest centre, so a region's own density
peak joins the centre placed in it rather than a denser token elsewhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from .errors import ConfigError

Assign = Literal["parent", "nearest"]
Density = Literal["log", "tcformer"]


@dataclass(frozen=True)
class Clusters:
    """The result of :func:`dpc_knn` for a batch.

    ``labels`` (int64 ``[B, N]``) gives each token's cluster, ``0..n_clusters-1``; cluster ``c`` is the one of
    ``centres[:, c]`` (int64 ``[B, n_clusters]``, token indices, ordered by decreasing ``γ`` when selected).
    ``log_density`` and ``delta`` (float ``[B, N]``) are ``log ρ`` and ``δ`` (``-inf`` and ``0`` for
    excluded tokens).
    """

    labels: torch.Tensor
    centres: torch.Tensor
    log_density: torch.Tensor
    delta: torch.Tensor


def dpc_knn(
    x: torch.Tensor,
    n_clusters: int,
    *,
    k: int = 5,
    exclude: torch.Tensor | None = None,
    centres: torch.Tensor | None = None,
    assign: Assign = "parent",
    include_self: bool = False,
    scale: float = 1.0,
    density_noise: float = 0.0,
    generator: torch.Generator | None = None,
    density: Density = "log",
) -> Clusters:
    """Cluster the tokens of every item of ``x`` (``[B, N, C]``, or ``[N, C]`` for one item); see the module docs.

    ``exclude`` (bool ``[B, N]``): tokens that may not be centres. ``centres`` (int ``[B, n_clusters]``): fixed
    centre indices instead of the ``γ`` ranking. ``density_noise`` adds ``U(0, density_noise)`` to ``ρ`` (TCFormer's
    tie breaker, 1e-6) drawn from ``generator``; with the default 0 the result is deterministic, equivariant to
    permutations of the tokens and the same for a batch as for its items one by one.

    ``density="tcformer"`` (see the module docs) needs ``include_self``, ``assign="nearest"``, no ``centres`` and
    ``scale`` 1/√C; excluded tokens then have density 0 and lie at the largest distance plus one from every token.
    """
    single = x.ndim == 2
    if single:
        x = x.unsqueeze(0)
        exclude = None if exclude is None else exclude.unsqueeze(0)
        centres = None if centres is None else centres.unsqueeze(0)
    batch, count, channels = _check(x, n_clusters, k, exclude, centres, assign)
    x = x.float()
    excluded = torch.zeros(batch, count, dtype=torch.bool, device=x.device) if exclude is None else exclude.to(x.device).bool()
    if density == "tcformer":
        if not include_self or assign != "nearest" or centres is not None or not math.isclose(scale, channels**-0.5):
            raise ConfigError("dpc_knn density='tcformer' runs TCFormer's algorithm: it needs include_self=True, "
                              f"assign='nearest', no centres and scale=1/sqrt({channels})")
        result = _tcformer(x, n_clusters, k, excluded, density_noise, generator)
        return Clusters(*(t[0] for t in result)) if single else Clusters(*result)
    if density != "log":
        raise ConfigError(f"dpc_knn density must be 'log' or 'tcformer', got {density!r}")
    dist = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist") * scale
    log_density = _log_density(dist, excluded, k, include_self, density_noise, generator)
    denser = _denser(log_density, excluded)
    masked = dist.masked_fill(~denser, math.inf)
    delta, parent = masked.min(dim=2)
    peak = ~denser.any(dim=2) & ~excluded
    widest = dist.flatten(1).max(dim=1).values
    delta = torch.where(peak, widest[:, None].expand_as(delta), delta).masked_fill(excluded, 0.0)
    if centres is None:
        score = (log_density + torch.log(delta.clamp_min(1e-30))).masked_fill(excluded, -math.inf)
        score = score.masked_fill(peak, math.inf)  # the densest token always leads a cluster
        centres = score.topk(n_clusters, dim=1).indices
        labels = _assign(dist, parent, denser.any(dim=2), centres, assign)
    else:
        centres = centres.to(x.device).long()
        labels = _assign(dist, parent, denser.any(dim=2), centres, assign, centres_are_parents=True)
    result = Clusters(labels=labels, centres=centres, log_density=log_density, delta=delta)
    if single:
        return Clusters(*(t[0] for t in (result.labels, result.centres, result.log_density, result.delta)))
    return result


def _check(x, n_clusters, k, exclude, centres, assign) -> tuple[int, int, int]:
    if x.ndim != 3:
        raise ConfigError(f"dpc_knn needs tokens [B, N, C] or [N, C], got shape {tuple(x.shape)}")
    batch, count, channels = x.shape
    if assign not in ("parent", "nearest"):
        raise ConfigError(f"dpc_knn assign must be 'parent' or 'nearest', got {assign!r}")
    if k < 1:
        raise ConfigError(f"dpc_knn k must be at least 1, got {k}")
    if exclude is not None and tuple(exclude.shape) != (batch, count):
        raise ConfigError(f"dpc_knn exclude must be [B, N] = [{batch}, {count}], got {tuple(exclude.shape)}")
    admissible = count if exclude is None else int((~exclude.bool()).sum(dim=1).min())
    if centres is None:
        if not 1 <= n_clusters <= admissible:
            raise ConfigError(
                f"dpc_knn n_clusters={n_clusters} needs between 1 and {admissible} admissible tokens per item "
                "(tokens not excluded); lower n_clusters or exclude fewer tokens"
            )
    elif tuple(centres.shape) != (batch, n_clusters):
        raise ConfigError(f"dpc_knn centres must be [B, n_clusters] = [{batch}, {n_clusters}], got {tuple(centres.shape)}")
    elif exclude is not None and bool(torch.gather(exclude.bool(), 1, centres.long()).any()):
        raise ConfigError("dpc_knn centres include excluded tokens; centres must be admissible tokens")
    if k > admissible:
        raise ConfigError(f"dpc_knn k={k} exceeds the {admissible} admissible tokens of an item; lower k")
    return batch, count, channels


def _tcformer(x, n_clusters, k, excluded, noise, generator) -> tuple[torch.Tensor, ...]:
    """TCFormer's arithmetic: ``(labels, centres, log ρ, δ)`` with ρ in float32 (see the module docs)."""
    batch, count, channels = x.shape
    dist = torch.cdist(x, x) / (channels**0.5)
    if bool(excluded.any()):
        dist = torch.where(excluded[:, None, :], dist.max() + 1, dist)
    rho = (-(dist.topk(k, dim=-1, largest=False).values ** 2).mean(dim=-1)).exp()
    if noise > 0:
        rho = rho + torch.rand(rho.shape, generator=generator, device="cpu").to(rho.device) * noise
    rho = rho.masked_fill(excluded, 0.0)
    denser = rho[:, None, :] > rho[:, :, None]
    widest = dist.flatten(1).max(dim=1).values[:, None, None]
    delta = torch.where(denser, dist, widest).min(dim=-1).values
    centres = (delta * rho).topk(n_clusters, dim=-1).indices
    rows = torch.arange(batch, device=x.device)[:, None]
    labels = dist[rows, centres].argmin(dim=1)
    labels[rows, centres] = torch.arange(n_clusters, device=x.device).expand(batch, -1)
    return labels, centres, torch.log(rho), delta


def _log_density(dist, excluded, k, include_self, noise, generator) -> torch.Tensor:
    """``log ρ`` from the ``k`` nearest admissible tokens (``-inf`` for excluded tokens)."""
    usable = dist.masked_fill(excluded[:, None, :], math.inf)
    if not include_self:
        usable = usable.masked_fill(torch.eye(dist.shape[1], dtype=torch.bool, device=dist.device), math.inf)
    near = usable.topk(k, dim=2, largest=False).values
    # excluded tokens never count as neighbours; when too few others remain, the rest count as far away
    near = torch.nan_to_num(near, posinf=float(dist.max()) + 1.0)
    log_density = -(near**2).mean(dim=2)
    if noise > 0:
        jitter = torch.rand(dist.shape[:2], generator=generator, device="cpu").to(dist.device) * noise
        log_density = torch.logaddexp(log_density, torch.log(jitter.clamp_min(1e-45)))
    return log_density.masked_fill(excluded, -math.inf)


def _denser(log_density: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
    """``denser[b, i, j]``: token ``j`` is admissible and denser than ``i`` (ties broken by lower index)."""
    count = log_density.shape[1]
    index = torch.arange(count, device=log_density.device)
    ri, rj = log_density[:, :, None], log_density[:, None, :]
    strictly = (rj > ri) | ((rj == ri) & (index[None, None, :] < index[None, :, None]))
    return strictly & ~excluded[:, None, :]


def _assign(dist, parent, has_parent, centres, assign, centres_are_parents=False) -> torch.Tensor:
    batch, count = parent.shape
    n_clusters = centres.shape[1]
    rows = torch.arange(batch, device=dist.device)[:, None]
    to_centres = torch.gather(dist, 1, centres[:, :, None].expand(-1, -1, count))  # [B, c, N]
    nearest = to_centres.argmin(dim=1)
    ids = torch.arange(n_clusters, device=dist.device).expand(batch, -1)
    if assign == "nearest":
        labels = nearest.clone()
        labels[rows, centres] = ids
        return labels
    # parent rule: a token with no admissible denser token (the density peak) hangs from its nearest centre
    link = torch.where(has_parent, parent, centres[rows, nearest])
    if centres_are_parents:
        to_parent = torch.gather(dist, 2, parent[:, :, None])[..., 0].masked_fill(~has_parent, math.inf)
        closer = to_centres.min(dim=1).values < to_parent
        link = torch.where(closer, centres[rows, nearest], link)
    link[rows, centres] = centres
    for _ in range(max(1, math.ceil(math.log2(count))) + 1):
        link = torch.gather(link, 1, link)  # pointer jumping: after these doublings every token points at a centre
    label_of_centre = torch.full((batch, count), -1, dtype=torch.long, device=dist.device)
    label_of_centre[rows, centres] = ids
    return torch.gather(label_of_centre, 1, link)
