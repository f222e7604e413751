"""Near-duplicate search over small RGB thumbnails, without any N x N matrix.

Two stages, both pure functions over arrays:

1. **Candidates**: every image's ``k`` most similar images by a translation-tolerant
   descriptor (log-magnitude of the low-frequency 2-D Fourier spectrum of the thumbnail;
   the magnitude does not change when the content shifts), found exactly by
   :func:`top_k_neighbours` or, for large datasets, by the audit's kNN-graph builder.
2. **Verification**: for each candidate pair, the normalised cross-correlation (NCC) of
   the RGB thumbnails *and* of their edge maps, maximised over small shifts (coarse on a
   half-size copy, refined at full size). Requiring both keeps apart images that merely
   share a background (colour NCC high, edges differ) or a shape (edges match, colours differ).
   A pair with a grey image compares luminance instead of colour: a greyscale copy of a
   colour picture is its near duplicate. A pair with a thumbnail reduced from a larger image
   is aligned to a fraction of a pixel (a copy moved by whole pixels of the image is moved
   by a fraction of a thumbnail pixel).
"""

from __future__ import annotations

import numpy as np

from .memory import release_rows

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
#: How far below the half-size screen a pair may score at quarter size and still be compared at half size.
_QUARTER_MARGIN = 0.3
#: Thumbnails per block of descriptor and quarter-size computation (64x64 RGB: 12 KB each),
#: at most and (where there are as many) at least.
_BLOCK = 4096
_MIN_BLOCK = 512
#: Pairs compared in full at once (:func:`_verify`).
_VERIFY_BLOCK = 64


def spectral_descriptors(thumbs: np.ndarray) -> np.ndarray:
    """Unit-norm translation-tolerant descriptors, shape (N, D), float32 (D = :func:`descriptor_size`).

    Each row depends on its own thumbnail only, so descriptors computed a batch at a time (as
    the image-statistics workers do, :func:`datacheck.engine.image_stats.analyze_batch`) equal
    those of the whole array.

    Parameters
    ----------
    thumbs : ndarray of shape (N, S, S, 3), uint8
        Read :data:`_BLOCK` rows at a time, so temporaries stay bounded.
    """
    return describe_thumbnails(thumbs)[0]


def describe_thumbnails(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`spectral_descriptors` and :func:`quarter_size` thumbnails of ``thumbs``, from one
    2x2 reduction of each (both start from the half-size image).

    The image-statistics workers make both beside each thumbnail, so the near-duplicate
    search neither describes nor reduces the thumbnails again (a pass over 12 KB an image,
    in a pool of its own: 0.14 s of a quick audit of roman's 2,880 images).

    Parameters
    ----------
    thumbs : ndarray of shape (N, S, S, 3), uint8
        Read :data:`_BLOCK` rows at a time, so temporaries stay bounded.

    Returns
    -------
    descriptors : ndarray of shape (N, D), float32
    quarters : ndarray of shape (N, S/4, S/4, 3), uint8
    """
    side = thumbs.shape[1]
    descriptors = np.empty((len(thumbs), descriptor_size(side)), np.float32)
    quarters = np.empty((len(thumbs), side // 4, side // 4, 3), np.uint8)
    for s in range(0, len(thumbs), _BLOCK):
        sums = _half_sums(np.asarray(thumbs[s : s + _BLOCK]))
        descriptors[s : s + _BLOCK] = _descriptor_block(sums)
        quarters[s : s + _BLOCK] = half_size((sums >> 2).astype(np.uint8))
    return descriptors, quarters


class _RowBlocks:
    """``fn`` of the thumbnails of ``rows``, a block of rows at a time, as ``blocks[b]``
    (for :func:`~datacheck.engine.workers.run_in_workers`: forked workers share ``thumbs``,
    a memory map or an array, and return only each block's small result).

    Blocks hold at most :data:`_BLOCK` rows, and fewer where that keeps every worker busy:
    a few thousand images make one block per worker, not one block for one of them.
    """

    def __init__(self, thumbs: np.ndarray, rows: np.ndarray, fn, workers: int):
        self.thumbs, self.rows, self.fn, self.workers = thumbs, rows, fn, workers
        self.block = int(min(_BLOCK, max(_MIN_BLOCK, -(-len(rows) // max(workers, 1)))))

    def __len__(self) -> int:
        return -(-len(self.rows) // self.block)

    def __getitem__(self, b: int) -> np.ndarray:
        return self.fn(self.thumbs[self.rows[b * self.block : (b + 1) * self.block]])

    def gather(self) -> np.ndarray:
        """Every block's result, concatenated in row order (one block: computed here, as a
        worker would take longer to start than to do it)."""
        from .workers import run_in_workers

        return np.concatenate(list(run_in_workers(self, min(self.workers, len(self)) if len(self) > 1 else 0)))


def _descriptor_block(half_sums: np.ndarray) -> np.ndarray:
    """Descriptors (P, D) of thumbnails given by their :func:`_half_sums` (P, S/2, S/2, 3)."""
    grey = (half_sums.astype(np.float32) * 0.25) @ _LUMA
    side = grey.shape[1]
    # Windowed like phase correlation's spectra (:func:`_spectra`): unwindowed, the edges'
    # content, which a shift replaces, weighs as much as the middle's, and a copy of a small
    # picture shifted by 1-2 pixels often fell out of its original's candidates
    # (tests/test_similarity.py: top-5 0.93 unwindowed, 1.0 windowed).
    # The lowest frequencies each way, in every orientation (rows -f..f of the half-spectrum;
    # its columns are the non-negative horizontal ones). Higher frequencies are what a resize
    # blurs away: with rows 0..15 and columns 0..8 of the 32-pixel thumbnail, 1 in 8 copies
    # reduced to 3/4 and enlarged again was not among its original's 5 candidates on
    # benchmarks/scale_images.py's 100k folder; with |frequency| <= 7 all were (shifted
    # copies: 0.969, against 0.991), and the 144 values became 120.
    f = _highest_frequency(side)
    rows = np.r_[0 : f + 1, -f:0]
    spectrum = np.abs(_spectra(grey))[:, rows, : f + 1]
    desc = np.log1p(spectrum).reshape(len(grey), -1).astype(np.float32)
    return unit_rows(desc - desc.mean(axis=1, keepdims=True))


def _highest_frequency(side: int) -> int:
    """Highest spatial frequency (cycles per image) of a ``side``-pixel grey thumbnail's descriptor."""
    return max(1, 7 * side // 32)


def descriptor_size(thumb_side: int) -> int:
    """Values in the descriptor of a ``thumb_side``-pixel thumbnail (120 for 64 pixels)."""
    f = _highest_frequency(thumb_side // 2)
    return (2 * f + 1) * (f + 1)


def half_size(thumbs: np.ndarray) -> np.ndarray:
    """2x2-averaged thumbnails (P, S/2, S/2, 3), uint8."""
    return (_half_sums(thumbs) >> 2).astype(np.uint8)


def quarter_size(thumbs: np.ndarray) -> np.ndarray:
    """:func:`half_size` of the half-size thumbnails (P, S/4, S/4, 3), uint8."""
    return half_size(half_size(thumbs))


def top_k_neighbours(desc: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` most similar other rows by inner product, shape (N, k), int64.

    Exact: faiss's flat index (blocked BLAS products and a heap per query, so no N x N
    matrix is ever held; no torch import for an image-only audit). ``desc`` rows should be
    unit vectors (then the inner product is the cosine).
    """
    import faiss

    n = len(desc)
    k = min(k, n - 1)
    if k <= 0:
        return np.empty((n, 0), dtype=np.int64)
    desc = np.ascontiguousarray(desc, dtype=np.float32)
    index = faiss.IndexFlatIP(desc.shape[1])
    index.add(desc)
    found = index.search(desc, k + 1)[1]
    return found[other_than_self(found, np.arange(n))].reshape(n, k).astype(np.int64)


def other_than_self(found: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Which of each query's k + 1 neighbours to keep: all but its own entry, or, where an
    identical row outranked it (or the search missed it), all but the last.

    Parameters
    ----------
    found : ndarray of shape (Q, k + 1), int
        Neighbour indices, best first.
    positions : ndarray of shape (Q,), int
        Each query's own index.

    Returns
    -------
    ndarray of shape (Q, k + 1), bool
        k True per row.
    """
    is_self = found == positions[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), found.shape[1] - 1)
    keep = np.ones_like(found, dtype=bool)
    keep[np.arange(len(found)), drop] = False
    return keep


def pair_similarity(
    thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, max_shift: int = 4, screen: float = -1.0, chunk: int = 1024,
    workers: int = 0, enlarged: np.ndarray | None = None, quarters: np.ndarray | None = None,
    reduced: np.ndarray | None = None,
) -> np.ndarray:
    """Shift-tolerant similarity of image pairs, in [-1, 1] (1 = same picture), shape (P,).

    ``min(NCC of RGB, NCC of edge magnitude)`` at the relative shift (at most ``max_shift``
    pixels each way) that phase correlation of the grey thumbnails finds. Cheap screens run
    first: the colour NCC of quarter-size thumbnails, then of half-size ones; pairs below
    ``screen`` (at quarter size, ``screen - 0.3``) keep that value and skip the full-size
    comparison (a copy scores far above any sensible screen even half-size, so choose
    ``screen`` well below the similarity cut you apply).

    Parameters
    ----------
    thumbs : ndarray of shape (N, S, S, 3), uint8
    i, j : ndarray of shape (P,), int
        Row pairs to compare.
    workers : int
        Processes comparing chunks of ``chunk`` pairs at once (0: here); every chunk is
        computed alone, so the result does not depend on it. Chunks of 1,024 pairs keep two
        workers evenly busy on a few thousand images (the near-duplicate stage of
        ``benchmarks/image_checks.py --end-to-end`` on roman got faster than with 4,096).
    enlarged : ndarray of shape (N,), bool, optional
        Thumbnails enlarged from smaller images. Their edges are blurred by the enlargement
        however the image was made, so a pair with one compares edges of both thumbnails
        smoothed 1-2-1 each way: resizing a small picture blurs its edges, and unsmoothed the
        edge correlation of 3/4-resized copies of 32-pixel pictures often fell below 0.95
        (tests/test_similarity.py). Thumbnails at full detail keep sharp edges, which tell
        apart look-alike drawings (two circles of one size on similar backgrounds).
    quarters : ndarray of shape (N, S/4, S/4, 3), uint8, optional
        :func:`quarter_size` of ``thumbs``, when already made (:func:`describe_thumbnails`);
        else they are made here for the images in any pair.
    reduced : ndarray of shape (N,), bool, optional
        Thumbnails reduced from larger images. A pair with one is aligned to a fraction of a
        pixel (:func:`_verify`), at half and at full size: a copy of a larger image moved by
        whole pixels is moved by a fraction of a thumbnail pixel. Thumbnails at an image's
        own pixels (or enlarged) are aligned to whole pixels: there a copy's shift is whole,
        and a fraction of a pixel between two of them is what sets apart look-alike drawings
        made separately (sample_data's discs and rings of one size: 0.82-0.94, 0.95-0.96 aligned finer).
    """
    from .workers import run_in_workers

    if not len(i):
        return np.empty(0, dtype=np.float64)
    chunks = _PairChunks(thumbs, i, j, max_shift, screen, chunk, enlarged, workers, quarters, reduced)
    return np.concatenate(list(run_in_workers(chunks, min(workers, len(chunks)))))


class _PairChunks:
    """:func:`pair_similarity` of the c-th chunk of pairs, as ``chunks[c]``.

    Only the quarter-size thumbnails of the paired images are held (768 bytes an image); the
    half-size ones are made, from ``thumbs``, for the pairs of a chunk that pass the quarter
    screen (about 5 % of a large folder's), so 1M images do not hold 3 GB of them.
    """

    def __init__(self, thumbs, i, j, max_shift: int, screen: float, chunk: int, enlarged=None, workers: int = 0,
                 quarters=None, reduced=None):
        self.thumbs, self.i, self.j, self.enlarged, self.reduced = thumbs, i, j, enlarged, reduced
        self.max_shift, self.screen, self.chunk = max_shift, screen, chunk
        self.members = np.unique(np.concatenate([i, j]))  # the images in any pair, sorted
        self.quarters = (np.asarray(quarters[self.members]) if quarters is not None else
                         _RowBlocks(thumbs, self.members, quarter_size, workers).gather())  # (U, S/4, S/4, 3)
        # A grey thumbnail (from a grey image, or a colour one holding only greys) has three
        # equal channels, and so has its quarter (sums of equal values): one flag per member (U,).
        self.grey = ((self.quarters[..., 0] == self.quarters[..., 1])
                     & (self.quarters[..., 1] == self.quarters[..., 2])).reshape(len(self.members), -1).all(axis=1)

    def __len__(self) -> int:
        return -(-len(self.i) // self.chunk)

    def __getitem__(self, c: int) -> np.ndarray:
        ii, jj = self.i[c * self.chunk : (c + 1) * self.chunk], self.j[c * self.chunk : (c + 1) * self.chunk]
        # Quarter size first, far below the screen: a copy's colour NCC there stays high (on
        # benchmarks/scale_images.py's planted copies >= 0.86, shifted by a fraction of a pixel
        # at worst), while about 95 % of unrelated candidates fall below; the half-size screen,
        # 4x dearer, then sees only the rest.
        at_i, at_j = np.searchsorted(self.members, ii), np.searchsorted(self.members, jj)
        grey = self.grey[at_i] | self.grey[at_j]  # (C,) pairs compared by luminance only
        # (C,) pairs aligned to a fraction of a pixel (at half and full size)
        fine = self.reduced[ii] | self.reduced[jj] if self.reduced is not None else np.zeros(len(ii), dtype=bool)
        result = _coarse_similarity(self.quarters, at_i, at_j, max(self.max_shift // 4, 1), grey)
        finer = result >= self.screen - _QUARTER_MARGIN
        if finer.any():
            images = np.unique(np.concatenate([ii[finer], jj[finer]]))
            halves = half_size(self.thumbs[images])  # (V, S/2, S/2, 3), this chunk's only
            result[finer] = _coarse_similarity(halves, np.searchsorted(images, ii[finer]),
                                               np.searchsorted(images, jj[finer]), max(self.max_shift // 2, 1),
                                               grey[finer], fine[finer])
        verify = np.flatnonzero(finer & (result >= self.screen))
        soft = (self.enlarged[ii[verify]] | self.enlarged[jj[verify]] if self.enlarged is not None
                else np.zeros(len(verify), dtype=bool))
        # A few dozen pairs at a time: their float copies (48 KB an image) stay in the CPU's
        # cache through the dozen passes of the comparison, which made it 1.3-1.6x faster
        # than a whole chunk's at once.
        for start in range(0, len(verify), _VERIFY_BLOCK):
            rows, part = verify[start : start + _VERIFY_BLOCK], slice(start, start + _VERIFY_BLOCK)
            result[rows] = _verify(self.thumbs[ii[rows]], self.thumbs[jj[rows]], grey[rows], soft[part],
                                   fine[rows], self.max_shift)
        # The thumbnails read for this chunk leave resident memory (a memory map's pages stay
        # in its file): read for a few pairs each, they piled up in the worker, whose peak
        # on a 1M-image folder was the audit's (11.2 GB).
        release_rows(self.thumbs)
        return result


def _verify(a: np.ndarray, b: np.ndarray, grey: np.ndarray, soft: np.ndarray, fine: np.ndarray,
            max_shift: int) -> np.ndarray:
    """``min(colour NCC, edge NCC)`` of thumbnail pairs ``a``, ``b`` (P, S, S, 3) uint8 aligned by
    phase correlation, shape (P,).

    ``grey`` (P,): compare luminance instead of colour (:func:`_colour_ncc`); ``soft`` (P,):
    compare edges of the thumbnails smoothed 1-2-1 (pairs with an enlarged thumbnail, see
    :func:`pair_similarity`); ``fine`` (P,): align to a fraction of a pixel (pairs with a
    reduced thumbnail), else to whole pixels.

    The fine shift is the phase-correlation peak refined by a parabola through its neighbours
    (:func:`_peak_fraction`), half of its fraction of a pixel moved each way, bilinearly, so
    both thumbnails are interpolated alike. A copy shifted by 2-4 px of a 128-256 px image is
    shifted by a fraction of a thumbnail pixel, which the integer shift alone left, and thin
    edges decorrelate under so small a misalignment: on benchmarks/near_dup_variants.py its
    edge NCC fell to 0.54-0.95 with the colour NCC at 0.94-1.00 (16 of 36 such copies found
    over 3 seeds; 33 aligned to a fraction, no other kind of copy fewer, no look-alike pair of
    different pictures grouped). Only pairs with a reduced thumbnail: between thumbnails at
    their images' own pixels a copy's shift is whole, and aligned finer, different discs of
    one size drawn apart in sample_data scored 0.95-0.96 (0.82-0.94 at whole pixels).
    """
    a, b = a.astype(np.float32), b.astype(np.float32)
    grey_a, grey_b = a @ _LUMA, b @ _LUMA
    dy, dx, fy, fx = phase_shift(grey_a, grey_b, max_shift, refine=True)
    if fine.any():
        # Interpolation is linear, so the luminance of the moved colours is the moved
        # luminance; a grey pair's colours are not compared, and are not moved.
        grey_a[fine], grey_b[fine] = _halfway(grey_a[fine], grey_b[fine], fy[fine], fx[fine])
        moved = fine & ~grey
        if moved.any():
            a[moved], b[moved] = _halfway(a[moved], b[moved], fy[moved], fx[moved])
    colour = _colour_ncc(a, b, grey_a, grey_b, dy, dx, grey)
    if soft.any():
        grey_a[soft], grey_b[soft] = _smooth(grey_a[soft]), _smooth(grey_b[soft])
    return np.minimum(colour, _ncc_at(_edges(grey_a), _edges(grey_b), dy, dx))


def _coarse_similarity(halves: np.ndarray, i: np.ndarray, j: np.ndarray, max_shift: int,
                       grey: np.ndarray, fine: np.ndarray | None = None) -> np.ndarray:
    """Colour NCC of reduced thumbnails (N, s, s, 3) at their phase-correlation shift, shape (P,)
    (the NCC of their luminance for the pairs where ``grey`` (P,) is True, see :func:`_colour_ncc`);
    the pairs where ``fine`` (P,) is True aligned to a fraction of a pixel (:func:`_verify`).

    Each image's spectrum is computed once per chunk, however many pairs it is in.
    """
    images, inverse = np.unique(np.concatenate([i, j]), return_inverse=True)
    half = halves[images].astype(np.float32)  # (U, S/2, S/2, 3)
    luma = half @ _LUMA
    spectra = _spectra(luma)
    a, b = inverse[: len(i)], inverse[len(i) :]
    result = np.empty(len(i))
    whole = np.ones(len(i), dtype=bool) if fine is None else ~fine
    if whole.any():
        dy, dx = _peak_shift(spectra[a[whole]], spectra[b[whole]], half.shape[1:3], max_shift)
        result[whole] = _colour_ncc(half[a[whole]], half[b[whole]], luma[a[whole]], luma[b[whole]], dy, dx,
                                    grey[whole])
    rows = np.flatnonzero(~whole)
    for start in range(0, len(rows), 4 * _VERIFY_BLOCK):
        part = rows[start : start + 4 * _VERIFY_BLOCK]
        dy, dx, fy, fx = _peak_shift(spectra[a[part]], spectra[b[part]], half.shape[1:3], max_shift, refine=True)
        g = grey[part]
        if g.any():  # compared by luminance: only that is moved (a third of the colours' cost)
            lp, lq = _halfway(luma[a[part[g]]], luma[b[part[g]]], fy[g], fx[g])
            result[part[g]] = _ncc_at(lp, lq, dy[g], dx[g])
        if not g.all():
            hp, hq = _halfway(half[a[part[~g]]], half[b[part[~g]]], fy[~g], fx[~g])
            result[part[~g]] = _ncc_at(hp, hq, dy[~g], dx[~g])
    return result


def _colour_ncc(a, b, grey_a, grey_b, dy, dx, grey) -> np.ndarray:
    """NCC of the RGB images ``a``, ``b`` (P, H, W, 3) at their shifts, shape (P,); where
    ``grey`` (P,) is True, that of their luminance ``grey_a``, ``grey_b`` (P, H, W) instead.

    A pair with a grey image (its three channels equal) is compared by luminance: a grey
    image has no colour to compare, and the colour NCC of a photo with its own greyscale
    copy was often below the cut (7 of 10 such copies in sample_data found), so a greyscale
    copy of a training image in the test split was not reported as leaking.
    """
    result = np.empty(len(a))
    colour = ~grey
    if colour.any():
        result[colour] = _ncc_at(a[colour], b[colour], dy[colour], dx[colour])
    if grey.any():
        result[grey] = _ncc_at(grey_a[grey], grey_b[grey], dy[grey], dx[grey])
    return result


def _ncc_at(a: np.ndarray, b: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """NCC of each pair (a[p], b[p]) at its own shift (dy[p], dx[p]), shape (P,)."""
    result = np.empty(len(a))
    shifts, which = np.unique(np.stack([dy, dx], axis=1), axis=0, return_inverse=True)
    for k, (sy, sx) in enumerate(shifts):
        rows = np.flatnonzero(which.ravel() == k)
        result[rows] = _ncc(a[rows], b[rows], int(sy), int(sx))
    return result


def phase_shift(a: np.ndarray, b: np.ndarray, max_shift: int, refine: bool = False) -> tuple:
    """Integer shifts (dy, dx), each within ±``max_shift``, that best align ``a`` with ``b``.

    Phase correlation: the inverse FFT of the normalised cross-power spectrum peaks at the
    displacement of ``a``'s content relative to ``b``'s (``a[y + dy, x + dx] ≈ b[y, x]``).

    Parameters
    ----------
    a, b : ndarray of shape (P, H, W), float32
    refine : bool, default False
        Also return the peak's sub-pixel offsets from (dy, dx) (:func:`_peak_fraction`).

    Returns
    -------
    dy, dx : ndarray of shape (P,), int
    fy, fx : ndarray of shape (P,), float, each in [-0.5, 0.5]
        With ``refine`` only.
    """
    return _peak_shift(_spectra(a), _spectra(b), a.shape[1:], max_shift, refine)


def _spectra(grey: np.ndarray) -> np.ndarray:
    """Spectra of (P, H, W) grey images, mean removed, under a Hann window (for phase
    correlation and the descriptor).

    The FFT treats an image as periodic: without the window, the jump between opposite
    edges (a gradient background) dominates the cross-power spectrum, and it does not move
    when the content shifts, so the peak stays at (0, 0) for a shifted copy."""
    h, w = grey.shape[1:]
    window = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    return np.fft.rfft2((grey - grey.mean(axis=(1, 2), keepdims=True)) * window)


def _peak_shift(fa: np.ndarray, fb: np.ndarray, shape: tuple, max_shift: int, refine: bool = False) -> tuple:
    """Integer shifts (dy, dx) of the phase-correlation peak of spectra ``fa``, ``fb`` (P, H, W/2+1)
    within ±``max_shift``; with ``refine``, also the peak's sub-pixel offsets (fy, fx) from them,
    each in [-0.5, 0.5] (:func:`_peak_fraction`)."""
    h, w = shape
    cross = fa * np.conj(fb)
    surface = np.fft.irfft2(cross / np.maximum(np.abs(cross), 1e-9), s=(h, w))
    # Only displacements within ±max_shift (indices wrap around) are allowed.
    offsets = np.r_[0 : max_shift + 1, -max_shift:0]
    window = surface[:, offsets[:, None] % h, offsets[None, :] % w]  # (P, 2m+1, 2m+1)
    best = window.reshape(len(fa), -1).argmax(axis=1)
    dy, dx = offsets[best // len(offsets)], offsets[best % len(offsets)]
    if not refine:
        return dy, dx
    return (dy, dx) + _peak_fraction(surface, dy, dx)


def _peak_fraction(surface: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel offsets (fy, fx), shape (P,) each, of the peaks at (dy, dx) of correlation
    surfaces (P, H, W): the vertex of the parabola through the peak and its two neighbours
    along each axis (indices wrap around), within ±0.5; 0 where the peak is not a maximum
    of that parabola (a flat surface)."""
    h, w = surface.shape[1:]
    rows = np.arange(len(surface))
    peak = surface[rows, dy % h, dx % w]

    def vertex(before: np.ndarray, after: np.ndarray) -> np.ndarray:
        curvature = before - 2 * peak + after  # < 0 at a maximum
        bent = curvature < 0
        return np.clip(np.where(bent, (before - after) / (2 * np.where(bent, curvature, -1.0)), 0.0), -0.5, 0.5)

    return (vertex(surface[rows, (dy - 1) % h, dx % w], surface[rows, (dy + 1) % h, dx % w]),
            vertex(surface[rows, dy % h, (dx - 1) % w], surface[rows, dy % h, (dx + 1) % w]))


def _halfway(a: np.ndarray, b: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images ``a`` and ``b`` (P, H, W[, C]) float32, with a[p] moved by half of (fy[p], fx[p])
    (:func:`_shift_by_fraction`) and b[p] by the other half the other way, so that
    ``a[y + dy + fy, x + dx + fx] ≈ b[y, x]`` becomes ``a'[y + dy, x + dx] ≈ b'[y, x]``: both
    interpolated alike (by at most a quarter of a pixel each way)."""
    both = _shift_by_fraction(np.concatenate([a, b]), np.concatenate([fy, -fy]) / 2, np.concatenate([fx, -fx]) / 2)
    return both[: len(a)], both[len(a) :]


def _shift_by_fraction(x: np.ndarray, ty: np.ndarray, tx: np.ndarray) -> np.ndarray:
    """Images ``x`` (P, H, W[, C]) float32 resampled bilinearly at (y + ty[p], x + tx[p]),
    |t| <= 1 (edge pixels repeated): ``out[p, y, x] ≈ x[p, y + ty[p], x + tx[p]]``."""
    for axis, t in ((1, ty), (2, tx)):
        t = np.asarray(t, dtype=x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
        ahead, behind = np.maximum(t, 0), np.maximum(-t, 0)  # weights of the next and the previous pixel
        n = x.shape[axis]
        head, tail = [slice(None)] * x.ndim, [slice(None)] * x.ndim
        head[axis], tail[axis] = slice(0, n - 1), slice(1, n)
        head, tail = tuple(head), tuple(tail)
        out = x * (1 - ahead - behind)
        out[head] += ahead * x[tail]
        out[tail] += behind * x[head]
        # the border pixels repeat: their missing neighbour is themselves
        first, last = [slice(None)] * x.ndim, [slice(None)] * x.ndim
        first[axis], last[axis] = slice(0, 1), slice(n - 1, n)
        out[tuple(last)] += ahead * x[tuple(last)]
        out[tuple(first)] += behind * x[tuple(first)]
        x = out
    return x


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


def _smooth(grey: np.ndarray) -> np.ndarray:
    """``grey`` (P, H, W) filtered 1-2-1 along each axis (the borders kept)."""
    rows = grey.copy()
    rows[:, 1:-1] = (grey[:, :-2] + 2 * grey[:, 1:-1] + grey[:, 2:]) * 0.25
    out = rows.copy()
    out[:, :, 1:-1] = (rows[:, :, :-2] + 2 * rows[:, :, 1:-1] + rows[:, :, 2:]) * 0.25
    return out


def _half_sums(x: np.ndarray) -> np.ndarray:
    """Sums of each 2x2 pixel square of uint8 images (P, H, W[, C]): (P, H/2, W/2[, C]), uint16.

    Rows are added in pairs first (whole contiguous rows at a time), then neighbouring pixels
    of the half-height result: exact in uint16, and much faster than a mean over the axes of
    a 6-D reshape or a float64 average (and 1.7x faster than adding four strided 2x2 slices).
    The 2x2 mean is ``sums / 4``.
    """
    rows = np.add(x[:, 0::2], x[:, 1::2], dtype=np.uint16)  # (P, H/2, W[, C])
    pairs = rows.reshape(*rows.shape[:2], rows.shape[2] // 2, 2, *rows.shape[3:])
    return np.add(pairs[:, :, :, 0], pairs[:, :, :, 1])


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (N, D) scaled to unit length, in ``x``'s float type (zero rows stay zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def connected_components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Component id per node (the smallest member index) for undirected ``pairs`` (P, 2).

    Hook-and-compress label propagation in numpy (scipy's ``csgraph`` costs a quick audit a
    quarter of a second to import): every node points at a smaller or equal member of its
    component; each round hooks every root to the smallest root across its edges, then
    points every node straight at its root. A component that still has an edge to another
    merges with at least one other per round, so the rounds are O(log n), each O(n + P).
    The smallest member of a component never gets a parent, so it ends as the root.
    """
    parent = np.arange(n, dtype=np.int64)
    if len(pairs) == 0:
        return parent
    pairs = np.asarray(pairs, dtype=np.int64)
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        root_a, root_b = parent[a], parent[b]
        apart = root_a != root_b
        if not apart.any():
            return parent
        low, high = np.minimum(root_a[apart], root_b[apart]), np.maximum(root_a[apart], root_b[apart])
        np.minimum.at(parent, high, low)
        while True:  # compress: every node to its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
