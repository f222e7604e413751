"""Near-duplicate search over small RGB thumbnails, blocked so memory stays O(block x N).

Two stages, both pure functions over arrays:

1. **Candidates**: every image's ``k`` most similar images by a translation-tolerant
   descriptor (log-magnitude of the low-frequency 2-D Fourier spectrum of the thumbnail;
   the magnitude does not change when the content shifts), found by blocked matrix products.
2. **Verification**: for each candidate pair, the normalised cross-correlation (NCC) of
   the RGB thumbnails *and* of their edge maps, maximised over small shifts (coarse on a
   half-size copy, refined at full size). Requiring both keeps apart images that merely
   share a background (colour NCC high, edges differ) or a shape (edges match, colours differ).
"""

from __future__ import annotations

import numpy as np

# Elements of one (block x N) similarity tile: 2**22 float32 ≈ 16 MB.
_TILE = 1 << 22
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def decode_thumbnails(blobs, side: int) -> np.ndarray:
    """Stack thumbnail bytes into an array of shape (N, side, side, 3), uint8."""
    return np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), side, side, 3)


def spectral_descriptors(thumbs: np.ndarray) -> np.ndarray:
    """Unit-norm translation-tolerant descriptors, shape (N, D), float32.

    Parameters
    ----------
    thumbs : ndarray of shape (N, S, S, 3), uint8
    """
    grey = _half(thumbs.astype(np.float32) @ _LUMA)
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    side = grey.shape[1]
    spectrum = np.abs(np.fft.rfft2(grey))[:, : side // 2, : side // 4 + 1]
    desc = np.log1p(spectrum).reshape(len(thumbs), -1).astype(np.float32)
    return _unit_rows(desc - desc.mean(axis=1, keepdims=True))


def top_k_neighbours(desc: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` most similar other rows by cosine, shape (N, k), int64.

    Computed in row blocks, so no N x N matrix is ever held.
    """
    n = len(desc)
    k = min(k, n - 1)
    if k <= 0:
        return np.empty((n, 0), dtype=np.int64)
    out = np.empty((n, k), dtype=np.int64)
    block = max(1, _TILE // n)
    for start in range(0, n, block):
        stop = min(start + block, n)
        sims = desc[start:stop] @ desc.T  # (block, N)
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
        out[start:stop] = np.take_along_axis(part, order, axis=1)
    return out


def pair_similarity(thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, max_shift: int = 4, chunk: int = 2048) -> np.ndarray:
    """Shift-tolerant similarity of image pairs, in [-1, 1] (1 = same picture), shape (P,).

    ``min(NCC of RGB, NCC of edge magnitude)`` at the relative shift (at most ``max_shift``
    pixels each way) that phase correlation of the grey thumbnails finds.

    Parameters
    ----------
    thumbs : ndarray of shape (N, S, S, 3), uint8
    i, j : ndarray of shape (P,), int
        Row pairs to compare.
    """
    out = np.empty(len(i), dtype=np.float64)
    for start in range(0, len(i), chunk):
        a = thumbs[i[start : start + chunk]].astype(np.float32)
        b = thumbs[j[start : start + chunk]].astype(np.float32)
        out[start : start + chunk] = _pair_similarity(a, b, max_shift)
    return out


def _pair_similarity(a: np.ndarray, b: np.ndarray, max_shift: int) -> np.ndarray:
    grey_a, grey_b = a @ _LUMA, b @ _LUMA
    dy, dx = phase_shift(grey_a, grey_b, max_shift)
    edges_a, edges_b = _edges(grey_a), _edges(grey_b)
    result = np.empty(len(a))
    shifts, which = np.unique(np.stack([dy, dx], axis=1), axis=0, return_inverse=True)
    for k, (sy, sx) in enumerate(shifts):
        rows = np.flatnonzero(which.ravel() == k)
        colour = _ncc(a[rows], b[rows], int(sy), int(sx))
        edges = _ncc(edges_a[rows], edges_b[rows], int(sy), int(sx))
        result[rows] = np.minimum(colour, edges)
    return result


def phase_shift(a: np.ndarray, b: np.ndarray, max_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer shifts (dy, dx), each within ±``max_shift``, that best align ``a`` with ``b``.

    Phase correlation: the inverse FFT of the normalised cross-power spectrum peaks at the
    displacement of ``a``'s content relative to ``b``'s (``a[y + dy, x + dx] ≈ b[y, x]``).

    Parameters
    ----------
    a, b : ndarray of shape (P, H, W), float32

    Returns
    -------
    dy, dx : ndarray of shape (P,), int
    """
    h, w = a.shape[1:]
    fa = np.fft.rfft2(a - a.mean(axis=(1, 2), keepdims=True))
    fb = np.fft.rfft2(b - b.mean(axis=(1, 2), keepdims=True))
    cross = fa * np.conj(fb)
    surface = np.fft.irfft2(cross / np.maximum(np.abs(cross), 1e-9), s=(h, w))
    # Only displacements within ±max_shift (indices wrap around) are allowed.
    offsets = np.r_[0 : max_shift + 1, -max_shift:0]
    window = surface[:, offsets[:, None] % h, offsets[None, :] % w]  # (P, 2m+1, 2m+1)
    best = window.reshape(len(a), -1).argmax(axis=1)
    return offsets[best // len(offsets)], offsets[best % len(offsets)]


def _ncc(a: np.ndarray, b: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """NCC of ``a`` and ``b`` shifted by (dy, dx) over their overlap; a, b: (P, H, W[, C])."""
    h, w = a.shape[1], a.shape[2]
    pa = a[:, max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)].reshape(len(a), -1)
    pb = b[:, max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)].reshape(len(b), -1)
    pa = pa - pa.mean(axis=1, keepdims=True)
    pb = pb - pb.mean(axis=1, keepdims=True)
    denom = np.sqrt((pa * pa).sum(axis=1) * (pb * pb).sum(axis=1))
    return np.where(denom > 0, (pa * pb).sum(axis=1) / np.maximum(denom, 1e-12), 0.0)


def _edges(grey: np.ndarray) -> np.ndarray:
    """Central-difference gradient magnitude, same shape as ``grey`` (P, H, W)."""
    gx = np.zeros_like(grey)
    gy = np.zeros_like(grey)
    gx[:, :, 1:-1] = grey[:, :, 2:] - grey[:, :, :-2]
    gy[:, 1:-1, :] = grey[:, 2:, :] - grey[:, :-2, :]
    return np.hypot(gx, gy)


def _half(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling of (P, H, W[, C])."""
    p, h, w = x.shape[:3]
    return x.reshape(p, h // 2, 2, w // 2, 2, *x.shape[3:]).mean(axis=(2, 4))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def connected_components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Component id per node (the smallest member index) for undirected ``pairs`` (P, 2)."""
    parent = np.arange(n)

    def find(a: int) -> int:
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:  # path compression
            parent[a], a = root, parent[a]
        return root

    for a, b in pairs:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)], dtype=np.int64)
