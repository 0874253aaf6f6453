"""DPC-KNN (zsadbench.clustering.dpc_knn) against hand-computed cases, a loop reference and its invariants."""
from __future__ import annotations

import math

import pytest
import torch

from zsadbench.clustering import dpc_knn
from zsadbench.errors import ConfigError, ZsadError


def blobs(seed: int, sizes=(30, 40, 25), spread=0.3, dim=4):
    """Gaussian blobs around well separated modes; returns points [N, dim], blob ids [N] and the modes."""
    g = torch.Generator().manual_seed(seed)
    modes = torch.tensor([[0.0] * dim, [6.0] + [0.0] * (dim - 1), [0.0, 6.0] + [0.0] * (dim - 2)])[: len(sizes)]
    points = torch.cat([m + spread * torch.randn(n, dim, generator=g) for m, n in zip(modes, sizes)])
    ids = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    return points, ids, modes


def reference_dpc(points: torch.Tensor, n_clusters: int, k: int) -> tuple[list[int], list[int]]:
    """Density peaks clustering written out with loops, as in the papers (kNN density, parent chain)."""
    n = len(points)
    d = [[float(torch.dist(points[i], points[j])) for j in range(n)] for i in range(n)]
    rho = []
    for i in range(n):
        others = sorted(d[i][j] for j in range(n) if j != i)[:k]
        rho.append(math.exp(-sum(v * v for v in others) / k))
    order = sorted(range(n), key=lambda i: (-rho[i], i))
    delta, parent = [0.0] * n, [-1] * n
    for rank, i in enumerate(order):
        if rank == 0:
            delta[i] = max(max(row) for row in d)
            continue
        j = min(order[:rank], key=lambda j: d[i][j])
        delta[i], parent[i] = d[i][j], j
    centres = sorted(range(n), key=lambda i: -rho[i] * delta[i])[:n_clusters]
    labels = [-1] * n
    for c, i in enumerate(centres):
        labels[i] = c
    for i in order:
        if labels[i] < 0:
            labels[i] = labels[parent[i]]
    return labels, centres


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(((a[:, None] == a[None, :]) == (b[:, None] == b[None, :])).all())


def test_hand_computed_line():
    # points 0, 1, 3 and 10, 11 on a line, k = 1: rho = exp(-d_nn^2) = e^-1, e^-1, e^-4, e^-1, e^-1
    x = torch.tensor([[0.0], [1.0], [3.0], [10.0], [11.0]])
    out = dpc_knn(x, 2, k=1)
    expected_log_rho = torch.tensor([-1.0, -1.0, -4.0, -1.0, -1.0])
    torch.testing.assert_close(out.log_density, expected_log_rho)
    # ties broken by index: token 0 is the peak (delta = widest distance 11); token 1 -> 0 (1), 3 -> 1 (9),
    # 4 -> 3 (1), 2 -> 1 (2). gamma: 0: e^-1*11, 3: e^-1*9, then 2: e^-4*2 -> centres 0 then 3
    torch.testing.assert_close(out.delta, torch.tensor([11.0, 1.0, 2.0, 9.0, 1.0]))
    assert out.centres.tolist() == [0, 3]
    assert out.labels.tolist() == [0, 0, 0, 1, 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_separated_blobs_give_their_clusters_with_centres_near_the_modes(seed):
    points, ids, modes = blobs(seed)
    out = dpc_knn(points, 3, k=5)
    assert same_partition(out.labels, ids)
    centre_points = points[out.centres]
    nearest_mode = torch.cdist(centre_points, modes).min(dim=1)
    assert sorted(nearest_mode.indices.tolist()) == [0, 1, 2]  # one centre per blob
    assert float(nearest_mode.values.max()) < 0.6  # two blob standard deviations (spread 0.3)


@pytest.mark.parametrize("seed", [3, 4])
def test_agrees_with_a_loop_reference(seed):
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(40, 3, generator=g)
    labels, centres = reference_dpc(points, 4, k=4)
    out = dpc_knn(points, 4, k=4)
    assert out.centres.tolist() == centres
    assert out.labels.tolist() == labels


def test_excluded_tokens_are_never_centres():
    points, ids, _ = blobs(5)
    free = dpc_knn(points, 3, k=5)
    exclude = torch.zeros(len(points), dtype=torch.bool)
    exclude[free.centres] = True  # forbid exactly the centres the unconstrained run picks
    exclude[::7] = True
    out = dpc_knn(points, 3, k=5, exclude=exclude)
    assert not exclude[out.centres].any()
    assert torch.isinf(out.log_density[exclude]).all() and (out.log_density[exclude] < 0).all()
    assert same_partition(out.labels, ids)  # the blobs are still found, and excluded tokens still get labels


def test_given_centres_keep_their_ids_and_every_token_reaches_one():
    points, ids, _ = blobs(6)
    chosen = torch.tensor([70, 5, 40])  # one token of blob 2, 0 and 1
    out = dpc_knn(points, 3, k=5, centres=chosen)
    assert out.centres.tolist() == chosen.tolist()
    assert out.labels[chosen].tolist() == [0, 1, 2]
    expected = torch.tensor([1, 2, 0])[ids]  # blob b belongs to the cluster of its chosen centre
    assert torch.equal(out.labels, expected)


def test_nearest_assignment_joins_the_nearest_centre():
    g = torch.Generator().manual_seed(7)
    points = torch.randn(50, 5, generator=g)
    out = dpc_knn(points, 4, k=3, assign="nearest")
    nearest = torch.cdist(points, points[out.centres]).argmin(dim=1)
    nearest[out.centres] = torch.arange(4)
    assert torch.equal(out.labels, nearest)


def test_include_self_with_k_1_makes_density_flat():
    points, _, _ = blobs(8)
    out = dpc_knn(points, 2, k=1, include_self=True)
    assert torch.equal(out.log_density, torch.zeros(len(points)))


def test_permutation_equivariance():
    points, _, _ = blobs(9)
    perm = torch.randperm(len(points), generator=torch.Generator().manual_seed(0))
    out = dpc_knn(points, 3, k=5)
    permuted = dpc_knn(points[perm], 3, k=5)
    assert torch.equal(perm[permuted.centres], out.centres)
    assert torch.equal(permuted.labels, out.labels[perm])
    torch.testing.assert_close(permuted.log_density, out.log_density[perm])


def test_batch_equals_items_one_by_one():
    items = [blobs(seed)[0] for seed in (10, 11, 12)]
    items[1] = items[1] * 3.0  # different scales: the peak's delta is per item
    exclude = torch.zeros(3, len(items[0]), dtype=torch.bool)
    exclude[2, :10] = True
    batch = dpc_knn(torch.stack(items), 3, k=5, exclude=exclude)
    for b, x in enumerate(items):
        one = dpc_knn(x, 3, k=5, exclude=exclude[b])
        assert torch.equal(batch.labels[b], one.labels) and torch.equal(batch.centres[b], one.centres)
        torch.testing.assert_close(batch.delta[b], one.delta)


def test_bad_arguments_raise_one_line_errors():
    x = torch.randn(6, 2)
    with pytest.raises(ConfigError, match="n_clusters=7"):
        dpc_knn(x, 7)
    with pytest.raises(ConfigError, match="k=9"):
        dpc_knn(x, 2, k=9)
    with pytest.raises(ConfigError, match="excluded tokens"):
        dpc_knn(x, 1, k=2, exclude=torch.tensor([True, False, False, False, False, False]), centres=torch.tensor([0]))
    with pytest.raises(ZsadError, match=r"\[B, N, C\]"):
        dpc_knn(torch.randn(2, 3, 4, 5), 2)


def test_tcformer_arithmetic_is_refused_where_it_is_not_defined():
    x = torch.randn(10, 4)
    with pytest.raises(ConfigError, match="density='tcformer'"):
        dpc_knn(x, 2, k=1, assign="parent", include_self=True, scale=0.5, density="tcformer")
    with pytest.raises(ConfigError, match="scale=1/sqrt"):
        dpc_knn(x, 2, k=1, assign="nearest", include_self=True, scale=1.0, density="tcformer")
    with pytest.raises(ConfigError, match="'log' or 'tcformer'"):
        dpc_knn(x, 2, density="linear")


def test_tcformer_ties_leave_equal_densities_undecided():
    # k = 1 counts only the token itself: every density is exactly 1, no token is denser than another, every
    # delta is the widest distance, and the centres are torch.topk's first two of equal scores
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [4.0, 0.0], [4.0, 1.0]])
    out = dpc_knn(x, 2, k=1, include_self=True, assign="nearest", scale=2 ** -0.5, density="tcformer")
    assert torch.equal(out.log_density, torch.zeros(4))
    widest = torch.cdist(x, x).max() / 2 ** 0.5
    torch.testing.assert_close(out.delta, widest.expand(4))
    assert out.centres.tolist() == torch.full((4,), float(widest)).topk(2).indices.tolist()
