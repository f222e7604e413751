"""Exact duplicates, near duplicates and train/val/test leakage, as groups.

Exact duplicates share a hash of their decoded pixels, so a PNG saved again with other
compression settings still matches. Near duplicates (resized, re-compressed, slightly
shifted copies) are found by :mod:`datacheck.engine.similarity`: candidate neighbours by a
translation-tolerant descriptor, verified by shift-tolerant correlation of colour and
edges. Both kinds are merged into groups (connected components); each group keeps one
representative (the largest image, then the one in ``train``, then the first sample id)
and flags the rest.

An audit of arrays (any modality) finds the same groups on its embeddings: exact duplicates
are identical vectors, near duplicates are pairs of the audit's kNN graph whose cosine
similarity reaches the cut, and leaks are such groups across splits (given by a manifest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..engine.image_stats import THUMB_SIDE
from ..engine.similarity import (
    connected_components,
    pair_similarity,
    top_k_neighbours,
    unit_rows,
)
from ..features.knn import MAX_NEIGHBOURS
from ..manifest import Manifest
from ..validation import Boolean, Interval
from .base import AuditContext, Detector, json_records, partial_findings
from .registry import register_detector

_SPLIT_RANK = {"train": 0, "val": 1, "test": 2}
_MAX_LISTED = 5  # ids listed per group in details
_MAX_CUT = 0.99  # the data-adaptive cut never rises above this
_SCREEN_MARGIN = 0.15  # pairs this far below min_similarity at half size are not compared in full
#: Embeddings: near duplicates are closer than this fraction of the median nearest-neighbour
#: distance (cleanlab Datalab's ``near_duplicate`` default, 0.13).
_RELATIVE_RADIUS = 0.13
#: Most of the samples of locally uniform data a near-duplicate cut on embeddings may flag by chance.
_CHANCE_SHARE = 0.001
_EMBEDDING_INPUTS = frozenset({"embeddings", "knn_graph"})
_SAME_DISTANCE = 1e-6  # cosine distance of identical vectors, up to float rounding


@dataclass
class DuplicateGroups:
    """Duplicate structure over the readable images (arrays are indexed by manifest row)."""

    rows: np.ndarray  # (R,) manifest rows of readable images
    pixel_id: np.ndarray  # (N,) id of the decoded-pixel hash, -1 if unreadable
    group: np.ndarray  # (N,) representative row of the sample's group (itself if alone), -1 if unreadable
    rank: np.ndarray  # (N,) preference for keeping a sample: lower is kept first
    has_content: np.ndarray  # (N,) bool: compared for near duplicates
    nearest: np.ndarray  # (N,) highest similarity to a candidate with different pixels (-1 if none)
    nearest_other_split: np.ndarray  # (N,) highest similarity to a candidate in another split (-1 if none)
    threshold: float  # similarity cut used for near duplicates
    chance_similarity: float  # 99th percentile of the similarity to the k-th candidate
    search: dict  # how the candidates were searched (method, recall)


def duplicate_groups(ctx: AuditContext, min_similarity: float, k: int, use_embeddings: bool) -> DuplicateGroups:
    """Compute (once per audit and parameter set) the duplicate groups of the dataset."""
    return ctx.memo(("duplicate_groups", min_similarity, k, use_embeddings),
                    lambda: _compute_groups(ctx, min_similarity, k, use_embeddings))


@dataclass
class _Pairs:
    """Candidate pairs of duplicates, from pixels or from embeddings, and what decides between them."""

    readable: np.ndarray  # (N,) bool: compared at all
    content_id: np.ndarray  # (N,) id of identical content (pixels or embedding), -1 where not readable
    has_content: np.ndarray  # (N,) bool: compared for near duplicates
    a: np.ndarray  # (P,) manifest rows
    b: np.ndarray  # (P,) manifest rows
    sims: np.ndarray  # (P,) similarity of each pair
    rank: np.ndarray  # (N,) which copy to keep, lower first
    chance: float  # the similarity that unrelated neighbours reach in this dataset
    cut: float  # the data-adaptive cut derived from it (min_similarity still applies)
    search: dict  # how the candidates were searched (method, recall), for the summary


def _compute_groups(ctx: AuditContext, min_similarity: float, k: int, use_embeddings: bool) -> DuplicateGroups:
    pairs = _embedding_pairs(ctx, k) if _on_embeddings(ctx.available()) else _pixel_pairs(ctx, min_similarity, k, use_embeddings)
    frame = ctx.manifest.frame
    n = len(frame)
    split_codes = pd.factorize(frame["split"].fillna("(none)"))[0]
    threshold = max(min_similarity, pairs.cut)

    a, b, sims, content_id = pairs.a, pairs.b, pairs.sims, pairs.content_id
    nearest = _max_per_pair_member(n, a, b, sims, content_id[a] != content_id[b])
    nearest_other = _max_per_pair_member(n, a, b, sims, split_codes[a] != split_codes[b])
    near = sims >= threshold
    near_pairs = np.stack([a[near], b[near]], axis=1)
    component = connected_components(n, np.concatenate([near_pairs, _chain_pairs(content_id, pairs.readable)]))

    # Each component's representative: its member of lowest rank.
    order = np.argsort(pairs.rank, kind="stable")
    first = np.unique(component[order], return_index=True)[1]
    representative = np.empty(n, dtype=np.int64)
    representative[component[order[first]]] = order[first]
    group = np.where(pairs.readable, representative[component], -1)
    return DuplicateGroups(np.flatnonzero(pairs.readable), content_id, group, pairs.rank, pairs.has_content, nearest,
                           nearest_other, threshold, pairs.chance, pairs.search)


def _pixel_pairs(ctx: AuditContext, min_similarity: float, k: int, use_embeddings: bool) -> _Pairs:
    """Images: candidates by a translation-tolerant descriptor (and the model's embeddings, if
    asked), verified by shift-tolerant pixel similarity."""
    stats = ctx.get("image_stats")
    thumbs = ctx.get("thumbnails")  # (N, S, S, 3), by manifest row; maybe a memory map, never copied whole
    readable, pixel_id = _pixel_ids(stats)
    has_content = stats["has_content"].to_numpy(dtype=bool) & readable
    local = np.flatnonzero(has_content)  # local index -> manifest row
    # Descriptors made by the workers that decoded the images: (M, D), in memory.
    descriptors = np.asarray(ctx.get("thumbnail_descriptors")[local], dtype=np.float32)
    neighbours, search = _descriptor_neighbours(descriptors, k, ctx)  # (M, k) local indices
    found = neighbours >= 0
    a = np.repeat(np.arange(len(local)), neighbours.shape[1]).reshape(neighbours.shape)[found]
    b = neighbours[found]
    candidates = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)
    extra = _embedding_candidates(ctx.get("embeddings"), local, k, ctx.device) if use_embeddings else np.empty((0, 2), np.int64)
    pairs, inverse = np.unique(np.concatenate([candidates, extra]), axis=0, return_inverse=True)
    # Screen generously below the cut: a copy's half-size colour correlation is far above it.
    screen = min_similarity - _SCREEN_MARGIN
    enlarged = ((stats["width"] < THUMB_SIDE) | (stats["height"] < THUMB_SIDE)).to_numpy(dtype=bool)
    reduced = ((stats["width"] > THUMB_SIDE) | (stats["height"] > THUMB_SIDE)).to_numpy(dtype=bool)
    sims = pair_similarity(thumbs, local[pairs[:, 0]], local[pairs[:, 1]], screen=screen, workers=ctx.workers,
                           enlarged=enlarged, quarters=ctx.get("thumbnail_quarters"), reduced=reduced)
    # Similarity of row i to its r-th descriptor candidate (NaN where the search found fewer).
    sim_ab = np.full(neighbours.shape, np.nan)
    sim_ab[found] = sims[inverse.ravel()[: len(candidates)]]
    # Chance level: the k-th candidate is a close but (almost always) different image, so the
    # cut must stay clearly above what 1 % of those reach in this dataset.
    last = sim_ab[:, -1][found[:, -1]] if sim_ab.size else np.empty(0)
    chance = float(np.quantile(last, 0.99)) if len(last) else -1.0
    area = (stats["width"] * stats["height"]).to_numpy(dtype=float)
    return _Pairs(readable, pixel_id, has_content, local[pairs[:, 0]], local[pairs[:, 1]], sims,
                  _keep_rank(ctx.manifest, area), chance, min(chance, _MAX_CUT), search)


def _descriptor_neighbours(desc: np.ndarray, k: int, ctx: AuditContext) -> tuple[np.ndarray, dict]:
    """Each image's ``k`` nearest by its descriptor (M, D): ``(indices (M, k), how)``.

    Exact search up to the kNN graph's exact limit (faiss, no torch); above it, exact search
    grows as N² (100k images: most of the audit), so the audit's graph builder makes the
    graph (an inverted file). Its recall target is set on each image's nearest neighbour,
    not its k-th: a copy is its original's nearest, and the k-th of these descriptors lies
    among many look-alikes that need far more lists probed. The nprobe and recall reached are
    recorded (``candidate_search`` in ``summary.json``). Indices are -1 where the approximate
    search found fewer than k.
    """
    from ..features.knn import EXACT_MAX, build_knn_graph

    if len(desc) <= EXACT_MAX:
        return top_k_neighbours(desc, k), {"method": "exact", "k": min(k, max(len(desc) - 1, 0)), "samples": len(desc)}
    graph = build_knn_graph(desc, k, ctx.device, seed=ctx.seed, recall_k=1)
    return graph.indices, graph.info


def _embedding_pairs(ctx: AuditContext, k: int) -> _Pairs:
    """Arrays: candidates are the samples' nearest neighbours in the audit's kNN graph, and a
    pair's similarity is the cosine similarity of their embeddings.

    The cut is relative to the data's density, as cleanlab's Datalab draws it: a pair is
    closer than :func:`relative_radius` times the median distance to the nearest neighbour
    (in 8 dimensions, unrelated random vectors reach a cosine of 0.97; in a well-spread
    512-dimensional embedding, 0.5)."""
    readable, content_id = ctx.memo(("embedding_ids",), lambda: _embedding_ids(ctx))
    graph, embeddings = ctx.get("knn_graph"), ctx.get("embeddings")
    radius = relative_radius(embeddings.shape[1])
    k = min(k, graph.k)
    distances, neighbours = graph.first(k)
    found = neighbours >= 0
    # reshaped by the row count: a graph of one sample has k = 0, and reshape(-1, 0) raised
    a = np.repeat(graph.rows, k).reshape(len(graph.rows), k)[found]
    b = graph.rows[neighbours[found]]
    if radius < _RELATIVE_RADIUS:
        # So tight a cut is below what the graph's float32 distances resolve (near 0 their
        # step is 6e-8, an angle of 3.5e-4 rad: 300 random 2-D vectors had pairs at "0"):
        # the candidate pairs are measured again in float64 (few dimensions: cheap).
        distances = distances.astype(np.float64)
        distances[found] = _cosine_distances(embeddings, a, b)
    sims = 1.0 - distances[found].astype(np.float64)
    nearest = distances[:, 0][found[:, 0]] if k else np.empty(0)
    chance = 1.0 - float(np.median(nearest)) if len(nearest) else -1.0
    cut = 1.0 - radius * (1.0 - chance) if len(nearest) else 1.0
    return _Pairs(readable, content_id, readable.copy(), a, b, sims, _keep_rank(ctx.manifest), chance, cut,
                  graph.info)


def relative_radius(dimensions: int) -> float:
    """The near-duplicate cut on embeddings of ``dimensions`` values, as a fraction of the
    median cosine distance to the nearest neighbour: :data:`_RELATIVE_RADIUS`, or less where
    so few dimensions make unrelated samples that close by chance.

    Unit vectors of D values lie on a sphere of D - 1 dimensions, and a cosine distance
    grows as the square of the angle, so where the data are locally uniform the share of
    samples whose nearest neighbour is closer than ``r`` times the median distance is
    ``1 - 2 ** -(r ** ((D - 1) / 2))``: under 0.1 % at r = 0.13 from D = 8 on, but 22 % at
    D = 2 (random 2-D embeddings had 12 of 60 samples flagged). The radius is capped so
    that share stays at most :data:`_CHANCE_SHARE`; exact and nearly exact copies are closer
    than any of these radii.
    """
    sphere = max(int(dimensions) - 1, 1)
    return float(min(_RELATIVE_RADIUS, (_CHANCE_SHARE / np.log(2)) ** (2.0 / sphere)))


def _cosine_distances(embeddings: np.ndarray, a: np.ndarray, b: np.ndarray, block: int = 65_536) -> np.ndarray:
    """Cosine distance of rows ``a`` and ``b`` (P,) of ``embeddings`` (N, D), in float64, (P,)."""
    out = np.empty(len(a))
    for s in range(0, len(a), block):
        x = unit_rows(np.asarray(embeddings[a[s : s + block]], np.float64))
        y = unit_rows(np.asarray(embeddings[b[s : s + block]], np.float64))
        out[s : s + block] = np.maximum(1.0 - np.einsum("pd,pd->p", x, y), 0.0)
    return out


def _embedding_ids(ctx: AuditContext) -> tuple[np.ndarray, np.ndarray]:
    """(embedded (N,) bool, id of identical embeddings (N,) int, -1 where not embedded).

    Identical vectors are at cosine distance 0, so they are among each other's nearest
    neighbours: the graph's zero-distance pairs, confirmed equal value by value, are linked.
    (More than ``k + 1`` copies of one vector are linked as far as the graph reaches them.)"""
    graph = ctx.get("knn_graph")
    embeddings = ctx.get("embeddings")
    n = len(ctx.manifest)
    readable = np.zeros(n, bool)
    readable[graph.rows] = True
    close = (graph.distances <= _SAME_DISTANCE) & (graph.indices >= 0)
    a = np.repeat(graph.rows, graph.k).reshape(len(graph.rows), graph.k)[close]  # k = 0 for one sample
    b = graph.rows[graph.indices[close]]
    same = np.array([np.array_equal(embeddings[i], embeddings[j]) for i, j in zip(a, b)], dtype=bool)
    zero = _zero_rows(embeddings, graph)
    a = np.concatenate([a[same], np.full(max(len(zero) - 1, 0), zero[0] if len(zero) else 0)])
    component = connected_components(n, np.stack([a, np.concatenate([b[same], zero[1:]])], axis=1))
    return readable, np.where(readable, pd.factorize(component)[0], -1)


def _zero_rows(embeddings: np.ndarray, graph, block: int = 65_536) -> np.ndarray:
    """The rows (manifest rows, sorted) of the graph whose embedding is all zeros.

    A zero vector has no direction: its cosine distance to every vector, a copy of itself too,
    is 1, so the graph never links its copies. Rows of zeros (a featuriser that failed, a
    preallocated array left unfilled) are identical vectors all the same, one group: 150 such
    rows of 300 were no exact duplicates, and, half of the data, no outliers either. Only the
    rows whose nearest neighbour lies that far are read.
    """
    if not graph.k:
        return np.empty(0, np.int64)
    far = graph.rows[graph.distances[:, 0] >= 1.0 - _SAME_DISTANCE]
    zero = [rows[~np.asarray(embeddings[rows]).any(axis=1)] for rows in np.array_split(far, len(far) // block + 1)]
    return np.sort(np.concatenate(zero)).astype(np.int64)


def _content_ids(ctx: AuditContext) -> tuple[np.ndarray, np.ndarray]:
    """(readable (N,) bool, id of identical content (N,)): decoded pixels, or embeddings for arrays."""
    if _on_embeddings(ctx.available()):  # shared with the near-duplicate groups: computed once per audit
        return ctx.memo(("embedding_ids",), lambda: _embedding_ids(ctx))
    return _pixel_ids(ctx.get("image_stats"))


def _embedding_candidates(embeddings: np.ndarray | None, local: np.ndarray, k: int, device: str) -> np.ndarray:
    """Candidate pairs (P, 2) of local indices from the model's embeddings (N, D), if any.

    The model sees through changes of scale, crop and exposure that move the pixel
    descriptor, so its nearest neighbours add candidates; all are verified on pixels alike.
    """
    from ..engine.knn import knn_cosine  # torch: only when embeddings are used

    if embeddings is None:
        return np.empty((0, 2), np.int64)
    embeddings = embeddings[local]
    usable = np.flatnonzero(np.isfinite(embeddings).all(axis=1))
    if len(usable) <= k:
        return np.empty((0, 2), np.int64)
    _, idx = knn_cosine(embeddings[usable], k, device=device)
    a = np.repeat(usable, idx.shape[1])
    b = usable[idx.ravel()]
    return np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)


def _on_embeddings(available: frozenset | None) -> bool:
    """Whether duplicates are found on embeddings: an audit of arrays (no images) that has them."""
    return available is not None and "image_stats" not in available and _EMBEDDING_INPUTS <= available


def _pixel_ids(stats: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(readable (N,) bool, id of the decoded pixels (N,) int, -1 where unreadable)."""
    readable = (stats["error"] == "").to_numpy()
    return readable, np.where(readable, pd.factorize(stats["pixel_hash"])[0], -1)


def _group_details(rows: np.ndarray, groups: dict[int, dict], numbers: dict | None = None) -> pa.Array:
    """The details of ``rows`` (R,): the ``numbers`` (each (R,)) of every row, with the group
    fields of the rows in ``groups``. Most rows are in no group; theirs are built by Arrow,
    without a dict per row (:func:`json_records`)."""
    numbers = numbers or {}
    plain = json_records(numbers) if numbers else pa.array(["{}"] * len(rows), pa.string())
    if not groups:
        return plain
    grouped = pa.array([json.dumps({**{k: float(v[i]) for k, v in numbers.items()}, **groups[r]}, sort_keys=True)
                        if r in groups else None for i, r in enumerate(rows)], pa.string())
    return pc.coalesce(grouped, plain)


def _keep_rank(manifest: Manifest, area: np.ndarray | None = None) -> np.ndarray:
    """Which copy of a duplicate group to keep, as a rank (N,), lower first: the largest
    image (``area``, for images), then ``train`` before val/test (leaks are removed from
    evaluation), then the first id (:attr:`~datacheck.manifest.Manifest.id_rank`: row numbers by value)."""
    area = np.zeros(len(manifest)) if area is None else area
    split_rank = manifest.frame["split"].map(_SPLIT_RANK).fillna(3).to_numpy()
    rank = np.empty(len(manifest), dtype=np.int64)
    rank[np.lexsort((manifest.id_rank, split_rank, -area))] = np.arange(len(manifest))
    return rank


def _max_per_pair_member(n: int, a: np.ndarray, b: np.ndarray, sims: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Per row (N,), the highest similarity of the kept pairs it is part of (-1 if none)."""
    out = np.full(n, -1.0)
    np.maximum.at(out, np.concatenate([a[keep], b[keep]]), np.tile(sims[keep], 2))
    return out


def _chain_pairs(pixel_id: np.ndarray, readable: np.ndarray) -> np.ndarray:
    """Pairs linking every row to the next row with the same pixels (enough for components)."""
    rows = np.flatnonzero(readable)
    order = rows[np.argsort(pixel_id[rows], kind="stable")]
    same = pixel_id[order[1:]] == pixel_id[order[:-1]]
    return np.stack([order[:-1][same], order[1:][same]], axis=1)


def _members(groups: DuplicateGroups) -> dict[int, np.ndarray]:
    """Group representative → member rows, for groups of two or more."""
    rows = groups.rows
    keys, inverse, counts = np.unique(groups.group[rows], return_inverse=True, return_counts=True)
    return {int(keys[k]): rows[inverse == k] for k in np.flatnonzero(counts > 1)}


class _DuplicateDetector(Detector):
    """Shared parameters of the hash-based duplicate detectors."""

    requires = frozenset({"image_stats", "thumbnails", "thumbnail_descriptors", "thumbnail_quarters"})
    tags = frozenset({"groups"})
    _parameter_constraints = {"min_similarity": [Interval(float, 0, 1, "neither")],
                              "candidates": [Interval(int, 1, MAX_NEIGHBOURS)],
                              "embedding_candidates": [Boolean()]}

    def __init__(self, *, min_similarity: float = 0.95, candidates: int = 5, embedding_candidates: bool = False):
        self.min_similarity = min_similarity
        self.candidates = candidates
        self.embedding_candidates = embedding_candidates

    def inputs(self, available: frozenset | None = None) -> tuple[frozenset, frozenset]:
        if _on_embeddings(available):
            return _EMBEDDING_INPUTS, frozenset()
        # The model's embeddings add candidates when asked for: then they are required (an
        # image audit trains for them), so the findings never depend on the other checks run.
        requires, optional = super().inputs(available)
        return (requires | {"embeddings"} if self.embedding_candidates else requires), optional

    @property
    def k(self) -> int:
        """Neighbours read from the kNN graph (arrays)."""
        return self.candidates

    def _groups(self, ctx: AuditContext) -> DuplicateGroups:
        groups = duplicate_groups(ctx, self.min_similarity, self.candidates, self.embedding_candidates)
        if _on_embeddings(ctx.available()):
            chance = {"on": "embeddings (cosine)", "median_nearest_similarity": round(groups.chance_similarity, 4),
                      "relative_radius": round(relative_radius(ctx.get("embeddings").shape[1]), 6)}
        else:
            chance = {"chance_similarity_q0.99": round(groups.chance_similarity, 4),
                      "embedding_candidates": self.embedding_candidates}
        self.thresholds_[self.checks[0]] = {"min_similarity": round(groups.threshold, 4), **chance,
                                            "candidates": self.candidates, "candidate_search": groups.search}
        return groups


@register_detector
class ExactDuplicates(Detector):
    """Images whose decoded pixels are identical (for arrays: identical embeddings); all but
    one per group are flagged.

    The copy kept is the largest image, then the one in ``train``, then the first sample id.
    """

    name = "exact_duplicates"
    requires = frozenset({"image_stats"})
    checks = ("exact_duplicates",)
    tags = frozenset({"groups", "duplicates", "drop_candidate"})

    #: Neighbours read from the kNN graph (arrays): identical vectors are found among them.
    k = 5

    def __init__(self):
        pass

    def inputs(self, available: frozenset | None = None) -> tuple[frozenset, frozenset]:
        return (_EMBEDDING_INPUTS, frozenset()) if _on_embeddings(available) else super().inputs(available)

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        frame = ctx.manifest.frame
        on_pixels = not _on_embeddings(ctx.available())
        self.thresholds_[self.name] = {"rule": "identical decoded pixels" if on_pixels else "identical embeddings"}
        ids = frame["sample_id"].to_numpy()
        readable, pixel_id = _content_ids(ctx)
        stats = ctx.get("image_stats") if on_pixels else None
        rank = _keep_rank(ctx.manifest, (stats["width"] * stats["height"]).to_numpy(dtype=float) if on_pixels else None)
        rows = np.flatnonzero(readable)
        if len(rows) == 0:
            self.thresholds_[self.name]["rule"] = "off: no readable image" if on_pixels else "off: no finite embedding"
        score = np.ones(len(frame))
        details: dict[int, dict] = {}
        order = rows[np.argsort(pixel_id[rows], kind="stable")]
        for members in np.split(order, np.flatnonzero(np.diff(pixel_id[order])) + 1):
            if len(members) < 2:
                continue
            keep = members[np.argmin(rank[members])]
            for r in members:
                score[r] = 1.0 if r == keep else 0.0
                details[r] = {"group": ids[keep], "group_size": len(members), "representative": ids[keep],
                              "copies": [ids[m] for m in members if m != r][:_MAX_LISTED]}
        return partial_findings(rows, self.name, score[rows], score[rows] < 0.5, _group_details(rows, details))


@register_detector
class NearDuplicates(_DuplicateDetector):
    """Groups of near-identical images: resized, re-encoded or slightly shifted copies.

    Two images are near duplicates when their shift-tolerant similarity (colour and edge
    correlation, 1 = same picture) reaches the cut. The cut is ``min_similarity`` or, where
    this dataset's unrelated-but-close images are more alike than that, the 99th
    percentile of their similarity (capped at 0.99), so a dataset of look-alike images gets a
    stricter cut automatically. Flat images (no content) are left out.

    For arrays, the similarity is the cosine similarity of the embeddings, the candidates are
    the audit's kNN graph, and the cut is ``min_similarity`` or, in a dense embedding, a
    distance below 0.13 times the median nearest-neighbour distance (as cleanlab's Datalab).

    Parameters
    ----------
    min_similarity : float, default 0.95
        Lowest similarity between near duplicates.
    candidates : int, default 5
        Nearest neighbours per image (by a translation-tolerant descriptor) that are verified, at most 1000.
    embedding_candidates : bool, default False
        Also verify the nearest neighbours in the model's embedding space (which sees through
        rescaling, crops and exposure changes). The check then requires the embeddings, and
        the audit trains the model for them if no other check does; off by default, so that
        a duplicates audit never trains a model unasked (on ``sample_data`` the default
        audit flags the same samples either way).
    """

    name = "near_duplicates"
    checks = ("near_duplicates",)
    tags = _DuplicateDetector.tags | {"duplicates", "drop_candidate"}

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        g = self._groups(ctx)
        ids = ctx.manifest.frame["sample_id"].to_numpy()
        rows = g.rows[g.has_content[g.rows]]
        if len(rows) == 0:  # read as run, scoring nothing
            self.thresholds_[self.name]["rule"] = ("off: no finite embedding" if _on_embeddings(ctx.available())
                                                   else "off: no readable image has content (each is corrupt or one colour)")
        flagged = np.zeros(len(ctx.manifest), bool)
        details: dict[int, dict] = {}
        for rep, members in _members(g).items():
            if len(np.unique(g.pixel_id[members])) < 2:
                continue  # only exact copies: reported by exact_duplicates
            for r in members:
                flagged[r] = g.pixel_id[r] != g.pixel_id[rep]
                details[r] = {"group": ids[rep], "group_size": len(members), "representative": ids[rep],
                              "members": [ids[m] for m in members if m != r][:_MAX_LISTED]}
        score = np.clip(1.0 - g.nearest[rows], 0.0, 1.0)
        out_details = _group_details(rows, details, {"nearest_similarity": np.round(g.nearest[rows], 4)})
        return partial_findings(rows, self.name, score, flagged[rows], out_details)


@register_detector
class SplitLeakage(_DuplicateDetector):
    """Exact or near duplicates that cross splits: the copies outside the group's training split.

    A leak between train and test inflates the test score, so it is reported on its own,
    flagging the val/test member (the one to remove from evaluation).

    Parameters
    ----------
    min_similarity, candidates
        As for ``near_duplicates``.
    """

    name = "split_leakage"
    checks = ("split_leakage",)
    tags = _DuplicateDetector.tags | {"drop_candidate"}

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        frame = ctx.manifest.frame
        split = frame["split"].to_numpy(dtype=object)
        if frame["split"].nunique() < 2:
            return self._off("fewer than two splits")
        g = self._groups(ctx)
        ids = frame["sample_id"].to_numpy()
        rows = g.rows[pd.notna(split[g.rows])]
        flagged = np.zeros(len(frame), bool)
        details: dict[int, dict] = {}
        for rep, members in _members(g).items():
            splits = {s for s in split[members] if pd.notna(s)}
            if len(splits) < 2:
                continue
            anchor = min(splits, key=lambda s: _SPLIT_RANK.get(s, 3))
            for r in members:
                if pd.isna(split[r]):
                    continue
                flagged[r] = split[r] != anchor
                details[r] = {"group": ids[rep], "splits": sorted(splits), "anchor_split": anchor,
                              "matches": [ids[m] for m in members if split[m] != split[r] and pd.notna(split[m])][:_MAX_LISTED]}
        score = np.clip(1.0 - g.nearest_other_split[rows], 0.0, 1.0)
        score = np.where(flagged[rows], np.minimum(score, 1.0 - g.threshold), score)
        out_details = _group_details(rows, details,
                                     {"nearest_other_split_similarity": np.round(g.nearest_other_split[rows], 4)})
        return partial_findings(rows, self.name, score, flagged[rows], out_details)
