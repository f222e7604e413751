"""Sub-clusters of each class in embedding space, and the under-represented ones."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..engine.similarity import connected_components
from ..features.model import scored_rows
from ..validation import Boolean, Interval
from .base import AuditContext, Detector, partial_findings
from .outliers import Outliers
from .registry import register_detector

# Silhouette is averaged over at most this many samples of a class (scikit-learn's
# ``sample_size``): O(n^2) distances otherwise.
_SILHOUETTE_SAMPLE = 2000
# A candidate k needs at least this many fitted samples per cluster on average.
_MIN_PER_CLUSTER = 3
# A class with fewer samples is clustered on the CPU whatever the audit's device: its PCA and
# K-means are a few small products, which a GPU spends more time launching than computing (roman,
# ten classes of ~290, on an H200: 3.4 s on the GPU, 1.5 s on the same machine's CPU).
_DEVICE_MIN_ROWS = 20_000
# Upper bounds of the parameters that size work, checked before any (exit 2): k-means++ holds
# (N, n_init, trials) distances and (n_init, k, D) centres, and choosing k runs K-means and a
# silhouette for each k up to max_k, so n_init = 10**12 was a torch allocation failure (exit 4)
# and max_k = 10**12 an audit that does not end. Each bound is far above any useful setting.
MAX_N_INIT = 100
MAX_K = 1000
MAX_MAX_K = 100
# Neighbours of a sample through which it joins a rare group (the first of its graph row).
_GROUP_LINKS = 5


@register_detector
class Clusters(Detector):
    """Cluster each class in embedding space; flag samples in far-smaller-than-typical sub-clusters.

    Per class: the embeddings are reduced by PCA to ``n_components`` dimensions and clustered
    by K-means (k-means++ seeding, ``n_init`` runs; :func:`datacheck.engine.kmeans.kmeans`).
    ``k`` is chosen per class by the mean silhouette coefficient (Rousseeuw 1987; scikit-learn's
    ``silhouette_score``, on at most 2,000 samples): the k in ``2..max_k`` with the highest
    silhouette, or a single cluster when even that is below ``min_silhouette`` (0.25: the
    level below which Kaufman & Rousseeuw read "no substantial structure"). ``k > 0`` fixes it.
    A class of fewer than 20,000 samples is clustered on the CPU, also when the audit runs on a
    GPU (small problems there cost more in launches than they save).

    The *typical* sub-cluster size of a class is the size of the sub-cluster its median sample
    belongs to (the sample-weighted median size); a sample is flagged when its sub-cluster is
    smaller than ``min_ratio`` x typical: a style of the class that is rare in the data, which
    a model learns badly. ``score = min(1, size / typical)``.

    Samples whose given label the model finds less likely than chance (out-of-fold
    probability below 1/C) are left out of the PCA and K-means fit: they are label-issue
    candidates (``label_issues``), and on a noisy dataset they would otherwise form the small
    clusters. They are assigned to their nearest sub-cluster (and counted in its size) but
    never flagged (``"off_class": true`` in ``details``).

    *Rare groups.* A sub-population of a few samples can be too small to move the silhouette,
    so K-means leaves it inside its class's one cluster. With ``rare_groups``, samples that
    are outlying by the ``outliers`` check's rule (its defaults, on the audit's kNN graph) and
    linked through their 5 nearest neighbours to at least ``min_group - 1`` other outlying
    samples *of the same class* form a sub-cluster of their own (when it is smaller than
    ``min_ratio`` x the class's typical one, it is flagged like any rare sub-cluster). Junk
    scattered through the data is outlying too, but its nearest outlying neighbours are of any
    class and unlike each other; a style that the class holds a few of is outlying alike, and
    its members are each other's neighbours (on ``sample_data``, the 6 down-pointing triangles of
    60 and the 2 in val: found at seeds 0, 1 and 2, where the silhouette saw one cluster).

    Embeddings from cross-validation are the fold models' features side by side, every
    sample embedded by every fold model (one shared space): measured on ``sample_data``,
    clusters carry no information about the fold a sample was held out in (adjusted mutual
    information at the permutation null), so nothing is corrected per fold.

    Parameters
    ----------
    n_components : int, default 32
        PCA dimensions (fewer for a small class: at most its fitted samples - 1).
    k : int, default 0
        Clusters per class, at most 1000; 0 = chosen per class by silhouette (capped at the
        class's fitted samples / 3).
    max_k : int, default 8
        Largest k tried when choosing, at most 100.
    min_silhouette : float, default 0.25
        Below this best silhouette a class is one cluster; in [0, 1) (0: always the best k >= 2).
    min_ratio : float, default 0.25
        Flag sub-clusters smaller than this fraction of the class's typical sub-cluster.
    n_init : int, default 3
        K-means initialisations per (class, k), at most 100.
    rare_groups : bool, default True
        Also find rare groups of outlying same-class samples (reads the kNN graph).
    min_group : int, default 3
        Fewest members of a rare group, at least 2.
    """

    name = "clusters"
    requires = frozenset({"embeddings", "labels", "pred_probs"})
    checks = ("clusters",)
    tags = frozenset({"subgroups"})
    details = {"cluster": int, "cluster_size": int, "class_clusters": int, "typical_size": (int, float)}
    _parameter_constraints = {
        "n_components": [Interval(int, 1, None)],
        "k": [Interval(int, 0, MAX_K)],
        "max_k": [Interval(int, 1, MAX_MAX_K)],
        "min_silhouette": [Interval(float, 0, 1, "left")],
        "min_ratio": [Interval(float, 0, 1, "neither")],
        "n_init": [Interval(int, 1, MAX_N_INIT)],
        "rare_groups": [Boolean()],
        "min_group": [Interval(int, 2, None)],
    }

    def __init__(self, *, n_components: int = 32, k: int = 0, max_k: int = 8, min_silhouette: float = 0.25,
                 min_ratio: float = 0.25, n_init: int = 3, rare_groups: bool = True, min_group: int = 3):
        self.n_components = n_components
        self.k = k
        self.max_k = max_k
        self.min_silhouette = min_silhouette
        self.min_ratio = min_ratio
        self.n_init = n_init
        self.rare_groups = rare_groups
        self.min_group = min_group

    def inputs(self, available: frozenset | None = None) -> tuple[frozenset, frozenset]:
        requires, optional = super().inputs(available)
        return (requires | {"knn_graph"} if self.rare_groups else requires), optional

    @property
    def graph_k(self) -> int:
        # ``k`` is K-means' here; the graph is read as the outliers rule reads it.
        return max(Outliers().k, _GROUP_LINKS)

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        given, probs, embeddings = ctx.get("labels"), ctx.get("pred_probs"), ctx.get("embeddings")
        if embeddings is None:
            return self._off("no embeddings")
        scored = scored_rows(given, probs) & np.isfinite(embeddings).all(axis=1)
        if not scored.any():  # a folder of unlabeled photos embedded by a frozen backbone
            return self._off("no labeled sample with the model's outputs (sub-clusters are per class)")
        n_classes = len(given.classes)
        # Each class's samples in sample-id order, rare groups named by their first member in it:
        # K-means++ and the silhouette sample draw by position, so shuffled rows gave other sub-clusters.
        rank = ctx.manifest.id_rank
        group = self._rare_groups(ctx, given.ids) if self.rare_groups else np.full(len(scored), -1)
        member = group >= 0
        if member.any():
            group = group.copy()
            group[member] = pd.Series(rank[member]).groupby(group[member]).transform("min").to_numpy()
        parts, per_class = [], {}
        for c in range(n_classes):
            rows = np.flatnonzero(scored & (given.ids == c))
            if len(rows) == 0:
                continue
            rows = ctx.manifest.in_id_order(rows)
            in_class = probs[rows, c] >= 1.0 / n_classes
            labels, k, silhouette = self._cluster_class(embeddings[rows], in_class, ctx)
            labels, k, groups = _with_groups(labels, k, group[rows], self.min_ratio)
            parts.append(self._class_rows(rows, labels, k, in_class))
            per_class[given.classes[c]] = {"k": k, "silhouette": None if silhouette is None else round(silhouette, 4),
                                             "typical_size": parts[-1]["typical"], **({"rare_groups": groups} if groups else {})}
        self.thresholds_[self.name] = {
            "rule": f"sub-cluster size < {self.min_ratio} x the class's typical (sample-weighted median) sub-cluster size",
            "k": "silhouette over 2..max_k" if self.k == 0 else self.k,
            **({"rare_groups": f"outlying samples (the outliers rule) linked through their {_GROUP_LINKS} nearest to "
                               f">= {self.min_group - 1} outlying samples of their class"} if self.rare_groups else {}),
            "classes": per_class,
        }
        if not parts:
            return partial_findings([], self.name, [], [], [])
        rows = np.concatenate([p["rows"] for p in parts])
        return partial_findings(rows, self.name, np.concatenate([p["score"] for p in parts]),
                                np.concatenate([p["is_issue"] for p in parts]),
                                [d for p in parts for d in p["details"]])

    def _rare_groups(self, ctx: AuditContext, label_ids: np.ndarray) -> np.ndarray:
        """Each manifest row's rare group (the smallest member's row), -1 outside any: outlying
        samples linked through their first neighbours to outlying samples of their class,
        components of at least ``min_group``."""
        graph = ctx.get("knn_graph")
        group = np.full(len(label_ids), -1, np.int64)
        rule = Outliers()
        if len(graph.rows) <= rule.k:
            return group
        found = rule.outlying_in(ctx)  # shared with the outliers check when it runs
        outlying = found.z > found.cut  # (M,), by graph position
        _, neighbours = graph.first(_GROUP_LINKS)
        a = np.repeat(np.arange(len(graph.rows)), _GROUP_LINKS).reshape(neighbours.shape)
        same = (neighbours >= 0) & outlying[:, None]
        same &= outlying[np.maximum(neighbours, 0)]
        same &= label_ids[graph.rows][:, None] == label_ids[graph.rows[np.maximum(neighbours, 0)]]
        component = connected_components(len(graph.rows), np.stack([a[same], neighbours[same]], axis=1))
        sizes = np.bincount(component, minlength=len(graph.rows))
        member = outlying & (sizes[component] >= self.min_group)
        group[graph.rows[member]] = graph.rows[component[member]]
        return group

    def _cluster_class(self, x: np.ndarray, in_class: np.ndarray, ctx: AuditContext):
        """Cluster ids (n,) of one class's samples, its k, and the chosen k's silhouette (or None)."""
        from ..engine.kmeans import kmeans, pca

        fit = in_class if in_class.sum() >= 2 else np.ones(len(x), bool)
        n_fit = int(fit.sum())
        if n_fit < 2:
            return np.zeros(len(x), np.int64), 1, None
        device = ctx.device if len(x) >= _DEVICE_MIN_ROWS else "cpu"
        points = pca(x, self.n_components, device=device, fit=fit)
        fitted = points[fit]
        if self.k:
            k, silhouette = min(self.k, n_fit), None
            centers = kmeans(fitted, k, n_init=self.n_init, seed=ctx.seed, device=device).centers
        else:
            k, silhouette, centers = self._choose_k(fitted, ctx.seed, device)
        # Every sample (fitted or not) goes to its nearest centre; (n, k) distances, no (n, k, D) array.
        distances = (centers * centers).sum(axis=1)[None, :] - 2.0 * points @ centers.T
        return _by_size(distances.argmin(axis=1), k), k, silhouette

    def _choose_k(self, points: np.ndarray, seed: int, device: str):
        from ..engine.kmeans import kmeans

        n = len(points)
        best = (1, None, points.mean(axis=0, keepdims=True))
        top = min(self.max_k, n // _MIN_PER_CLUSTER, n - 1)
        silhouette = _Silhouette(points, seed) if top >= 2 else None
        for k in range(2, top + 1):
            result = kmeans(points, k, n_init=self.n_init, seed=seed, device=device)
            score = silhouette.score(result.labels)
            if score is None:
                continue
            if best[1] is None or score > best[1]:
                best = (k, score, result.centers)
        if best[1] is None or best[1] < self.min_silhouette:
            return 1, best[1], points.mean(axis=0, keepdims=True)
        return best

    def _class_rows(self, rows: np.ndarray, labels: np.ndarray, k: int, in_class: np.ndarray) -> dict:
        sizes = np.bincount(labels, minlength=k)
        member_size = sizes[labels]
        typical = float(np.median(member_size))
        small = member_size < self.min_ratio * typical
        details = [{"cluster": int(c), "cluster_size": int(s), "class_clusters": int(k), "typical_size": typical,
                    **({} if inside else {"off_class": True})}
                   for c, s, inside in zip(labels, member_size, in_class)]
        return {"rows": rows, "score": np.minimum(1.0, member_size / typical), "is_issue": small & in_class,
                "details": details, "typical": typical}


class _Silhouette:
    """scikit-learn's ``silhouette_score(points, labels, sample_size=min(n, 2000), random_state=seed)``
    of several labelings of the same points, from one matrix of the sample's distances.

    Choosing k scores up to ``max_k - 1`` labelings of each class; scikit-learn measures the
    sample's pairwise distances again for each (7 times per class by default: 30 ms a time
    on 1,000 points, more than the K-means they score). Here they are measured once, in
    float64 as scikit-learn does, and each labeling costs one product with its cluster
    indicator matrix. The sample is scikit-learn's: ``RandomState(seed).permutation(n)[:2000]``.
    """

    def __init__(self, points: np.ndarray, seed: int):
        n = len(points)
        self.sample = np.random.RandomState(seed).permutation(n)[:_SILHOUETTE_SAMPLE]
        x = np.asarray(points, np.float64)[self.sample]
        squared = (x * x).sum(axis=1)
        d2 = squared[:, None] + squared[None, :] - 2.0 * (x @ x.T)
        np.fill_diagonal(d2, 0.0)
        self.distances = np.sqrt(np.maximum(d2, 0.0))  # (S, S), S <= 2,000: at most 32 MB

    def score(self, labels: np.ndarray) -> float | None:
        """The mean silhouette of ``labels`` (N,) over the sample; None where the sample holds
        fewer than 2 clusters (scikit-learn refuses those)."""
        names, sampled = np.unique(labels[self.sample], return_inverse=True)
        if not 2 <= len(names) <= len(sampled) - 1:
            return None
        indicator = np.zeros((len(sampled), len(names)))
        indicator[np.arange(len(sampled)), sampled] = 1.0
        sums = self.distances @ indicator  # (S, C): each sample's summed distance to each cluster
        sizes = indicator.sum(axis=0)
        own = sums[np.arange(len(sampled)), sampled]
        inside = own / np.maximum(sizes[sampled] - 1, 1)  # a: mean distance to the rest of its cluster
        means = sums / sizes
        means[np.arange(len(sampled)), sampled] = np.inf
        nearest = means.min(axis=1)  # b: mean distance to the nearest other cluster
        with np.errstate(divide="ignore", invalid="ignore"):
            values = (nearest - inside) / np.maximum(inside, nearest)
        values[sizes[sampled] == 1] = 0.0  # a sample alone in its cluster scores 0
        return float(np.mean(np.nan_to_num(values)))


def _with_groups(labels: np.ndarray, k: int, group: np.ndarray, min_ratio: float) -> tuple[np.ndarray, int, list]:
    """A class's cluster ids (n,) with its rare groups (``group``, (n,), -1 outside) as
    clusters of their own, where a group is smaller than ``min_ratio`` x the class's typical
    sub-cluster; ``(labels, k, the groups' sizes)``. Ids stay ordered by size."""
    ids, sizes = np.unique(group[group >= 0], return_counts=True)
    typical = float(np.median(np.bincount(labels, minlength=k)[labels])) if len(labels) else 0.0
    kept = [(g, s) for g, s in zip(ids, sizes) if s < min_ratio * typical]
    if not kept:
        return labels, k, []
    labels = labels.copy()
    for new, (g, _) in enumerate(kept, start=k):
        labels[group == g] = new
    present, labels = np.unique(labels, return_inverse=True)  # a cluster the groups emptied is gone
    return _by_size(labels, len(present)), len(present), sorted(int(s) for _, s in kept)


def _by_size(labels: np.ndarray, k: int) -> np.ndarray:
    """Renumber cluster ids by decreasing size (ties: by old id), so ids are deterministic."""
    sizes = np.bincount(labels, minlength=k)
    order = np.lexsort((np.arange(k), -sizes))
    rank = np.empty(k, np.int64)
    rank[order] = np.arange(k)
    return rank[labels]
