"""Exact duplicates, near duplicates and train/val/test leakage, as groups.

Exact duplicates share a hash of their decoded pixels, so a PNG saved again with other
compression settings still matches. Near duplicates (resized, re-compressed, slightly
shifted copies) are found by :mod:`datacheck.engine.similarity`: candidate neighbours by a
translation-tolerant descriptor, verified by shift-tolerant correlation of colour and
edges. Both kinds are merged into groups (connected components); each group keeps one
representative (the largest image, then the one in ``train``, then the first sample id)
and flags the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..engine.image_stats import THUMB_SIDE
from ..engine.similarity import (
    connected_components,
    decode_thumbnails,
    pair_similarity,
    spectral_descriptors,
    top_k_neighbours,
)
from ..validation import Boolean, Interval
from .base import AuditContext, Detector, partial_findings
from .registry import register_detector

_SPLIT_RANK = {"train": 0, "val": 1, "test": 2}
_MAX_LISTED = 5  # ids listed per group in details
_MAX_CUT = 0.99  # the data-adaptive cut never rises above this
_SCREEN_MARGIN = 0.15  # pairs this far below min_similarity at half size are not compared in full


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


def duplicate_groups(ctx: AuditContext, min_similarity: float, k: int, use_embeddings: bool) -> DuplicateGroups:
    """Compute (once per audit and parameter set) the duplicate groups of the dataset."""
    return ctx.memo(("duplicate_groups", min_similarity, k, use_embeddings),
                    lambda: _compute_groups(ctx, min_similarity, k, use_embeddings))


def _compute_groups(ctx: AuditContext, min_similarity: float, k: int, use_embeddings: bool) -> DuplicateGroups:
    stats = ctx.get("image_stats")
    frame = ctx.manifest.frame
    n = len(stats)
    readable, pixel_id = _pixel_ids(stats)
    has_content = stats["has_content"].to_numpy(dtype=bool) & readable
    split_codes = pd.factorize(frame["split"].fillna("(none)"))[0]

    local = np.flatnonzero(has_content)  # local index -> manifest row
    thumbs = decode_thumbnails(stats["thumbnail"].to_numpy()[local], THUMB_SIDE)
    neighbours = top_k_neighbours(spectral_descriptors(thumbs), k)  # (M, k) local indices
    a = np.repeat(np.arange(len(local)), neighbours.shape[1])
    b = neighbours.ravel()
    candidates = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)
    extra = _embedding_candidates(ctx.get("embeddings"), local, k, ctx.device) if use_embeddings else np.empty((0, 2), np.int64)
    pairs, inverse = np.unique(np.concatenate([candidates, extra]), axis=0, return_inverse=True)
    # Screen generously below the cut: a copy's half-size colour correlation is far above it.
    screen = min_similarity - _SCREEN_MARGIN
    sims = pair_similarity(thumbs, pairs[:, 0], pairs[:, 1], screen=screen) if len(pairs) else np.empty(0)
    # Similarity of row i to its r-th descriptor candidate.
    sim_ab = sims[inverse.ravel()[: len(candidates)]].reshape(neighbours.shape)

    # Chance level: the k-th candidate is a close but (almost always) different image, so the
    # cut must stay clearly above what 1 % of those reach in this dataset.
    chance = float(np.quantile(sim_ab[:, -1], 0.99)) if sim_ab.size else -1.0
    threshold = max(min_similarity, min(chance, _MAX_CUT))

    pair_a, pair_b = local[pairs[:, 0]], local[pairs[:, 1]]
    nearest = _max_per_pair_member(n, pair_a, pair_b, sims, pixel_id[pair_a] != pixel_id[pair_b])
    nearest_other = _max_per_pair_member(n, pair_a, pair_b, sims, split_codes[pair_a] != split_codes[pair_b])
    near_pairs = local[pairs[sims >= threshold]] if len(pairs) else np.empty((0, 2), np.int64)
    component = connected_components(n, np.concatenate([near_pairs, _chain_pairs(pixel_id, readable)]))

    rank = _keep_rank(stats, frame)
    representative = {}
    for row in np.argsort(rank):
        representative.setdefault(component[row], row)
    group = np.array([representative[c] if readable[r] else -1 for r, c in enumerate(component)], dtype=np.int64)
    return DuplicateGroups(np.flatnonzero(readable), pixel_id, group, rank, has_content, nearest, nearest_other,
                           threshold, chance)


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


def _pixel_ids(stats: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(readable (N,) bool, id of the decoded pixels (N,) int, -1 where unreadable)."""
    readable = (stats["error"] == "").to_numpy()
    return readable, np.where(readable, pd.factorize(stats["pixel_hash"])[0], -1)


def _keep_rank(stats: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """Which copy of a duplicate group to keep, as a rank (N,), lower first: the largest
    image, then ``train`` before val/test (leaks are removed from evaluation), then the first id."""
    area = (stats["width"] * stats["height"]).to_numpy(dtype=float)
    split_rank = frame["split"].map(_SPLIT_RANK).fillna(3).to_numpy()
    id_rank = np.argsort(np.argsort(frame["sample_id"].to_numpy(dtype=str), kind="stable"), kind="stable")
    rank = np.empty(len(frame), dtype=np.int64)
    rank[np.lexsort((id_rank, split_rank, -area))] = np.arange(len(frame))
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

    requires = frozenset({"image_stats"})
    tags = frozenset({"groups"})
    _parameter_constraints = {"min_similarity": [Interval(float, 0, 1, "neither")],
                              "candidates": [Interval(int, 1, None)],
                              "embedding_candidates": [Boolean()]}

    def __init__(self, *, min_similarity: float = 0.95, candidates: int = 5, embedding_candidates: bool = False):
        self.min_similarity = min_similarity
        self.candidates = candidates
        self.embedding_candidates = embedding_candidates

    def inputs(self) -> tuple[frozenset, frozenset]:
        # The model's embeddings add candidates when asked for: then they are required (an
        # image audit trains for them), so the findings never depend on the other checks run.
        requires, optional = super().inputs()
        return (requires | {"embeddings"} if self.embedding_candidates else requires), optional

    def _groups(self, ctx: AuditContext) -> DuplicateGroups:
        groups = duplicate_groups(ctx, self.min_similarity, self.candidates, self.embedding_candidates)
        self.thresholds_[self.checks[0]] = {
            "min_similarity": round(groups.threshold, 4),
            "chance_similarity_q0.99": round(groups.chance_similarity, 4),
            "candidates": self.candidates,
            "embedding_candidates": self.embedding_candidates,
        }
        return groups


@register_detector
class ExactDuplicates(Detector):
    """Images whose decoded pixels are identical; all but one per group are flagged.

    The copy kept is the largest image, then the one in ``train``, then the first sample id.
    """

    name = "exact_duplicates"
    requires = frozenset({"image_stats"})
    checks = ("exact_duplicates",)
    tags = frozenset({"groups", "duplicates", "drop_candidate"})

    def __init__(self):
        pass

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        stats = ctx.get("image_stats")
        self.thresholds_[self.name] = {"rule": "identical decoded pixels"}
        ids = ctx.manifest.frame["sample_id"].to_numpy()
        readable, pixel_id = _pixel_ids(stats)
        rank = _keep_rank(stats, ctx.manifest.frame)
        rows = np.flatnonzero(readable)
        score = np.ones(len(stats))
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
        return partial_findings(rows, self.name, score[rows], score[rows] < 0.5, [details.get(r, {}) for r in rows])


@register_detector
class NearDuplicates(_DuplicateDetector):
    """Groups of near-identical images: resized, re-encoded or slightly shifted copies.

    Two images are near duplicates when their shift-tolerant similarity (colour and edge
    correlation, 1 = same picture) reaches the cut. The cut is ``min_similarity`` or, where
    this dataset's unrelated-but-close images are more alike than that, the 99th
    percentile of their similarity (capped at 0.99), so a dataset of look-alike images gets a
    stricter cut automatically. Flat images (no content) are left out.

    Parameters
    ----------
    min_similarity : float, default 0.95
        Lowest similarity between near duplicates.
    candidates : int, default 5
        Nearest neighbours per image (by a translation-tolerant descriptor) that are verified.
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
        out_details = [{"nearest_similarity": round(float(g.nearest[r]), 4), **details.get(r, {})} for r in rows]
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
            self.thresholds_[self.name] = {"rule": "off: fewer than two splits"}
            return partial_findings([], self.name, [], [], [])
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
        out_details = [{"nearest_other_split_similarity": round(float(g.nearest_other_split[r]), 4), **details.get(r, {})}
                       for r in rows]
        return partial_findings(rows, self.name, score, flagged[rows], out_details)
