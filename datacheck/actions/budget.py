"""How many rows each group gets under a budget: :func:`datacheck.actions.fix.fix`'s targets.

Water-filling (:func:`fill_counts`: the smallest groups grow first, none shrinks while the
budget exceeds the data, the largest are trimmed first when it does not), growth by one
factor (:func:`proportional_counts`), and both over classes and then their sub-clusters
(:func:`budget_targets`). Ties are broken in a seeded order, so the same seed gives the same
counts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .balance import cap_counts, hash_order


def fill_counts(sizes: dict, room: int, seed: int, growable=None) -> dict:
    """Sizes per group that add up to ``room``: water-filling up, or down.

    Above the current total, every growable group ends at ``max(size, T)`` for the highest
    integer level ``T`` that fits, and the rows left go one each to the groups at the level,
    in a seeded order: the smallest groups grow first, no group shrinks. Below it, groups
    are trimmed largest first (:func:`datacheck.actions.balance.cap_counts`).

    Parameters
    ----------
    sizes : dict of str to int
        Rows per group now.
    room : int
        Rows wanted in all.
    seed : int
    growable : set of str, optional
        Groups that can grow (have a readable source); default all. When none can, the
        sizes are returned as they are (the total is then below ``room``).

    Returns
    -------
    dict of str to int
    """
    names = list(sizes)
    have = np.array([int(sizes[n]) for n in names], dtype=np.int64)
    if room <= have.sum():
        return cap_counts(dict(zip(names, have.tolist())), room, seed)
    grow = np.array([growable is None or n in growable for n in names], dtype=bool)
    if not grow.any():
        return dict(zip(names, have.tolist()))
    fixed = int(have[~grow].sum())
    lo, hi = 0, room
    while lo < hi:  # highest level whose total fits
        mid = (lo + hi + 1) // 2
        if int(np.maximum(have[grow], mid).sum()) + fixed <= room:
            lo = mid
        else:
            hi = mid - 1
    final = have.copy()
    final[grow] = np.maximum(have[grow], lo)
    left = room - int(final.sum())
    level = np.flatnonzero(grow & (have <= lo))  # raising these by one more would not fit
    level = level[np.argsort(hash_order(np.array(names, dtype=object)[level], seed), kind="stable")]
    final[level[:left]] += 1
    return dict(zip(names, final.tolist()))


def proportional_counts(sizes: dict, room: int, seed: int) -> dict:
    """Sizes per group in proportion to the current ones, adding up to ``room`` (largest
    remainder, ties in a seeded order): every group grows or shrinks by the same factor."""
    names = list(sizes)
    have = np.array([int(sizes[n]) for n in names], dtype=np.float64)
    exact = have * room / have.sum()
    final = np.floor(exact).astype(np.int64)
    order = np.lexsort((hash_order(np.array(names, dtype=object), seed), -(exact - final)))
    final[order[: room - int(final.sum())]] += 1
    return dict(zip(names, final.tolist()))


def budget_targets(groups: pd.DataFrame, room: int, seed: int, growable: set, *, by_subcluster: bool = True,
                   grow: bool = True) -> tuple[dict, dict]:
    """Target rows per balanced group so that the groups add up to ``room``.

    Parameters
    ----------
    groups : pandas.DataFrame
        ``group, label, size``: one row per balanced group (class × sub-cluster, or class).
    room : int
        Training rows the budget leaves for the groups.
    seed : int
    growable : set of str
        Groups with a readable source.
    by_subcluster : bool
        True: water-fill over classes, then within each class over its sub-clusters
        (:func:`fill_counts`). False: every class grows or shrinks by the same factor
        (:func:`proportional_counts`).
    grow : bool
        False when no copies can be made: the groups keep their sizes unless the room is
        below them.

    Returns
    -------
    (dict, dict)
        Target per class, target per group.
    """
    class_sizes = groups.groupby("label", sort=True)["size"].sum().astype(int).to_dict()
    total = sum(class_sizes.values())
    if not grow and room >= total:
        return class_sizes, dict(zip(groups["group"], groups["size"].astype(int)))
    if not by_subcluster:
        targets = proportional_counts(class_sizes, room, seed)
        return targets, {g: targets[label] for g, label in zip(groups["group"], groups["label"])}
    class_growable = set(groups.loc[groups["group"].isin(growable), "label"])
    class_targets = fill_counts(class_sizes, room, seed, class_growable if grow else set())
    targets = {}
    for label, mine in groups.groupby("label", sort=True):
        sizes = dict(zip(mine["group"], mine["size"].astype(int)))
        targets.update(fill_counts(sizes, class_targets[label], seed, growable if grow else set()))
    return class_targets, targets
