"""Adversarial checks of facility location above ``part_max`` (helper-60, 6 December).

Random parts, each with its share of the budget (ca4755e), lost clusters of a few
near-duplicates (a cluster dealt into several parts got a medoid in none, or in each) and
spent the budget on a dense blob in proportion to its size; it now counts gains within
compact regions and lets the budget go where it gains most.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from datacheck.engine import facility
from datacheck.engine.facility import _deal, facility_location, selection_method

from .test_coreset import record_cdist_blocks


def near_duplicates(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` points (n, 10): ``n / size`` centres, each ``size`` times with noise 0.002."""
    rng = np.random.default_rng(seed)
    centres = rng.dirichlet(np.full(10, 0.3), n // size)
    x = (np.repeat(centres, size, axis=0) + rng.normal(0, 0.002, (n, 10))).astype(np.float32)
    return x[rng.permutation(n)]


def blob_and_sheet(n: int, dense_share: float = 0.9, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A tight blob of ``dense_share`` of the points beside a 3-d sheet of the rest; and which are the blob's."""
    rng = np.random.default_rng(seed)
    k = int(n * dense_share)
    sheet = rng.uniform(-1, 1, (n - k, 3)) @ rng.normal(size=(3, 10)) + 3
    x = np.vstack([rng.normal(0, 0.001, (k, 10)), sheet]).astype(np.float32)
    order = rng.permutation(n)
    return x[order], order < k


def nearest_distance(x: np.ndarray, medoids: np.ndarray) -> np.ndarray:
    return np.sqrt(((x[:, None] - x[medoids][None]) ** 2).sum(-1)).min(axis=1)


def bound_of(x: np.ndarray) -> float:
    return float(2 * np.linalg.norm(x - x.mean(0), axis=1).max())


def test_clusters_of_four_near_duplicates_are_covered_as_undivided():
    """250 clusters of 4 at a budget of half, 8 regions of 125. Random parts with shares of the
    budget (ca4755e) left the points 9.2 x farther from their nearest medoid than the
    undivided selection, and 31 x from the medoid they were assigned; regions: 0.98 x and 1.5 x."""
    x = near_duplicates(1000, 4)
    undivided = facility_location(x, 500)
    selected, medoid, distance = facility_location(x, 500, part_max=125)
    assert nearest_distance(x, selected).mean() <= 1.02 * nearest_distance(x, undivided[0]).mean()
    assert distance.mean() <= 1.6 * undivided[2].mean()
    assert np.bincount(medoid, minlength=1000).sum() == 1000


def test_a_dense_blob_beside_a_sheet_is_assigned_about_as_undivided():
    """900 near-identical points beside 100 spread ones, budget 100, 8 regions of 125: the
    points' distance to their assigned medoid 2.6 x the undivided selection's in random parts
    (1.13 x to the nearest of all), 1.21 x in regions; the blob gets 29 medoids (undivided 23)."""
    x, in_blob = blob_and_sheet(1000)
    undivided = facility_location(x, 100)
    selected, _, distance = facility_location(x, 100, part_max=125)
    assert distance.mean() <= 1.3 * undivided[2].mean()
    assert in_blob[undivided[0]].sum() == 23 and in_blob[selected].sum() <= 35


@pytest.mark.parametrize("n, budget", [(101, 1), (101, 2), (101, 100), (101, 101), (1000, 1), (1000, 9), (1000, 10),
                                       (1000, 11), (1000, 100), (1000, 101), (1000, 999), (1000, 1000), (1050, 12),
                                       (1050, 525)])
def test_every_budget_above_part_max_selects_distinct_medoids_whose_weights_sum_to_n(n, budget):
    """Budgets 1, below / at / above the number of regions (10; 11 of 95-96 for 1,050), at and
    above part_max (100: then assigned within regions), and N."""
    x = np.random.default_rng(n + budget).normal(size=(n, 4)).astype(np.float32)
    selected, medoid, distance = facility_location(x, budget, part_max=100)
    weight = np.bincount(medoid, minlength=n)
    assert len(np.unique(selected)) == budget and (medoid[selected] == selected).all()
    assert weight.sum() == n and (weight[selected] >= 1).all() and weight[np.setdiff1d(np.arange(n), selected)].sum() == 0
    assert np.allclose(distance, np.linalg.norm(x - x[medoid], axis=1) / bound_of(x), atol=1e-5)
    if budget <= 100:  # at most part_max medoids: each point's nearest of all
        assert np.allclose(distance * bound_of(x), nearest_distance(x, selected), atol=1e-4)


def test_no_distance_block_above_a_region_squared(monkeypatch):
    largest = record_cdist_blocks(monkeypatch)
    x = np.random.default_rng(0).normal(size=(3000, 5)).astype(np.float32)
    for budget in (7, 150, 1500):  # below the regions, at most part_max (all medoids), above (within regions)
        facility_location(x, budget, part_max=200)
    assert max(largest) <= 200 * 200 < 3000 * 3000


@pytest.mark.parametrize("x", [np.ones((1000, 3), np.float32), np.linspace(0, 1, 1000)[:, None],
                               np.repeat(np.eye(4, dtype=np.float16), 250, axis=0)])
def test_regions_cover_every_row_once_and_are_at_most_ceil_n_over_parts(x):
    parts = _deal(np.asarray(x, np.float32), 7, np.random.default_rng(0))
    assert sorted(np.concatenate(parts).tolist()) == list(range(1000))
    assert max(len(p) for p in parts) == math.ceil(1000 / 7) and min(len(p) for p in parts) >= 1000 // 7


def test_identical_points_and_duplicates():
    selected, medoid, distance = facility_location(np.ones((1000, 3)), 10, part_max=100)
    assert len(set(selected)) == 10 and (distance == 0).all() and np.bincount(medoid).sum() == 1000
    # 50 points 20 times each, budget 50: one medoid each (random parts: mean distance 0.15 of the bound)
    x = np.repeat(np.random.default_rng(0).normal(size=(50, 3)), 20, axis=0)
    assert facility_location(x, 50, part_max=100)[2].mean() < 1e-3


def test_same_seed_same_selection_another_seed_another():
    x = near_duplicates(2000, 4, seed=3)
    first = facility_location(x, 300, part_max=300, seed=5)
    again = facility_location(x, 300, part_max=300, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(facility_location(x, 300, part_max=300, seed=6)[0], first[0])
    assert len(facility_location(x, 300, part_max=300, seed=2**63 + 1)[0]) == 300


def test_a_nan_row_is_refused_instead_of_looping_for_ever():
    """Lazy greedy's heap never settled on a NaN gain: facility_location hung."""
    x = np.random.default_rng(0).normal(size=(200, 3))
    x[5, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        facility_location(x, 20)
    with pytest.raises(ValueError, match="finite"):
        facility_location(np.full((50, 3), 1e30), 5)  # squares overflow float32


def test_the_exact_path_takes_any_seed():
    """The generator was made for every call: a negative seed failed even where none is drawn."""
    x = np.random.default_rng(0).normal(size=(50, 3))
    assert np.array_equal(facility_location(x, 5, seed=-1)[0], facility_location(x, 5, seed=0)[0])


def test_selection_method_names_the_regions():
    assert selection_method(facility.PART_MAX) == "stochastic greedy"
    assert selection_method(facility.PART_MAX + 1) == "stochastic greedy in 2 regions"
    assert selection_method(262_144) == "stochastic greedy in 32 regions"
    assert selection_method(300, exact_max=4096, part_max=100) == "stochastic greedy in 3 regions"
