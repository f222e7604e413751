"""Robust statistics for data-adaptive thresholds."""

from __future__ import annotations

import math

import numpy as np

# MAD → standard deviation for normally distributed data.
MAD_TO_STD = 1.4826


def robust_z(values: np.ndarray, min_scale: float, upper: bool = False) -> tuple[np.ndarray, float, float]:
    """Modified z-scores (Iglewicz & Hoaglin): ``(x - median) / (1.4826 * MAD)``.

    Parameters
    ----------
    values : ndarray of shape (N,)
        NaNs are ignored for the statistics and stay NaN in the result.
    min_scale : float
        Lower bound on the scale, in the units of ``values``. When most samples share one
        value (every image 64x64) the MAD is 0 and any difference would be "infinitely"
        unusual; the floor says how big a difference must be to count at all.
    upper : bool, default False
        Take the MAD of the values above the median only (a semi-MAD): for a right tail of a
        skewed bulk, whose long left side would widen the scale and hide it.

    Returns
    -------
    z : ndarray of shape (N,)
    median, scale : float
    """
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.full(values.shape, np.nan), float("nan"), float(min_scale)
    median = float(np.median(finite))
    deviations = finite[finite > median] - median if upper else np.abs(finite - median)
    scale = max(MAD_TO_STD * float(np.median(deviations)) if deviations.size else 0.0, float(min_scale))
    return (values - median) / scale, median, scale


def threshold_score(badness: np.ndarray, threshold: float) -> np.ndarray:
    """Map a badness (robust z in the bad direction) to a score in [0, 1], lower = worse.

    ``1 / (1 + (max(b, 0) / threshold) ** 2)``: 1 for typical samples, exactly 0.5 at the
    threshold (so ``score < 0.5`` ⇔ flagged) and towards 0 for extreme ones, keeping the
    ranking among the flagged samples (a normal CDF would round them all to 0).
    """
    b = np.clip(np.nan_to_num(np.asarray(badness, dtype=float), nan=0.0, posinf=1e12), 0.0, 1e12)
    # A tiny threshold (z_threshold = 1e-300 is > 0, so allowed) makes the ratio or its square
    # overflow to inf, and 1 / (1 + inf) = 0 is the right score to float precision (the exact
    # one is below 1e-308): the overflow is expected, not a warning for the user's stderr.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + (b / threshold) ** 2)


def tail_cut(z: np.ndarray, floor: float, ceiling: float, fdr: float) -> float:
    """A z cut that adapts to how many samples stand out: Benjamini-Hochberg on the robust null.

    Under the bulk's robust normal fit (median, MAD: :func:`robust_z`) a clean sample exceeds
    ``z`` with probability ``sf(z)``; the cut is the lowest at which the samples beyond it
    hold at most a share ``fdr`` of expected clean ones (Benjamini & Hochberg, 1995, with
    ``p = sf(z)``), kept within ``[floor, ceiling]``: a dataset with many outliers is cut
    lower than ``ceiling``, never below ``floor``; one without any keeps ``ceiling``.

    Parameters
    ----------
    z : ndarray of shape (N,)
        Robust z-scores, bad direction positive; NaN ignored.

    Returns
    -------
    float
        The cut: flag ``z > cut``.
    """
    finite = np.sort(z[np.isfinite(z)])[::-1]  # most extreme first
    if finite.size == 0:
        return float(ceiling)
    ranks = np.arange(1, finite.size + 1)
    passing = np.flatnonzero(normal_sf(finite) <= fdr * ranks / finite.size)
    if passing.size == 0:
        return float(ceiling)
    # Just below the least extreme selected sample, so that it is flagged by ``z > cut``.
    cut = float(np.nextafter(finite[passing[-1]], -np.inf))
    return float(min(ceiling, max(floor, cut)))


def expected_beyond(cut: float, n: int) -> float:
    """Clean samples expected beyond ``cut`` among ``n`` under the robust normal null."""
    return float(n * normal_sf(cut))


def normal_sf(x):
    """The standard normal's survival function, ``0.5 * erfc(x / sqrt(2))``, accurate far into
    the upper tail, from the C library's ``erfc``: scipy (``scipy.special.ndtr``, the same
    function to a few units in the last place) costs a quick audit half a second to import."""
    values = np.asarray(x, dtype=float)
    return 0.5 * np.asarray(_ERFC(values / math.sqrt(2.0)), dtype=float)


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def count_cut(values: np.ndarray, count: int) -> float:
    """A cut with exactly the ``count`` lowest ``values`` below it (fewer on ties)."""
    if count <= 0:
        return float(values.min())
    ordered = np.sort(values)
    if count >= len(ordered):
        return float(np.nextafter(ordered[-1], np.inf))
    return float((ordered[count - 1] + ordered[count]) / 2)
