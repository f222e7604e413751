"""Near-duplicate search primitives against brute force and known transformations."""

from __future__ import annotations

import numpy as np
import pytest

from datacheck.engine.similarity import (
    connected_components,
    pair_similarity,
    phase_shift,
    spectral_descriptors,
    top_k_neighbours,
)


def smooth_images(n: int, side: int = 64, seed: int = 0) -> np.ndarray:
    """Random blob images (N, side, side, 3) uint8 with structure at several scales."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, side // 8, side // 8, 3))
    return (np.kron(coarse, np.ones((1, 8, 8, 1))) * 255).astype(np.uint8)


@pytest.mark.parametrize("dy, dx", [(0, 0), (3, -2), (-4, 4), (1, 0)])
def test_phase_shift_recovers_translation(dy, dx):
    b = np.random.default_rng(1).random((1, 64, 64)).astype(np.float32)
    a = np.roll(b, (dy, dx), axis=(1, 2))
    assert tuple(int(v[0]) for v in phase_shift(a, b, 4)) == (dy, dx)


def test_shifted_and_noisy_copies_are_near_one_and_others_are_not():
    images = smooth_images(20)
    rng = np.random.default_rng(2)
    shifted = np.roll(images[0], (3, -2), axis=(0, 1))
    noisy = np.clip(images[1].astype(int) + rng.integers(-6, 7, images[1].shape), 0, 255).astype(np.uint8)
    thumbs = np.concatenate([images, shifted[None], noisy[None]])
    sims = pair_similarity(thumbs, np.array([0, 1, 0, 2]), np.array([20, 21, 1, 3]))
    assert sims[0] > 0.97 and sims[1] > 0.97
    assert sims[2] < 0.5 and sims[3] < 0.5


def test_top_k_matches_brute_force():
    desc = spectral_descriptors(smooth_images(300, seed=3))
    got = top_k_neighbours(desc, 4)
    sims = desc @ desc.T
    np.fill_diagonal(sims, -np.inf)
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :4]
    # same neighbour sets (ties aside, the similarities must agree)
    np.testing.assert_allclose(np.take_along_axis(sims, got, 1), np.take_along_axis(sims, expected, 1), rtol=1e-5)
    assert (got != np.arange(300)[:, None]).all()


def test_top_k_leaves_out_each_row_even_among_identical_rows():
    desc = spectral_descriptors(smooth_images(20, seed=4))
    desc = np.concatenate([desc, desc[:5], desc[:5]])  # rows 0-4 three times each
    got = top_k_neighbours(desc, 3)
    assert (got != np.arange(30)[:, None]).all()
    for r in range(5):  # each copy's two nearest are its two other copies
        assert set(got[r, :2]) == {r + 20, r + 25}


def test_connected_components():
    labels = connected_components(6, np.array([[4, 1], [1, 2], [5, 3]]))
    assert labels.tolist() == [0, 1, 1, 3, 1, 3]


def _components_by_search(n: int, pairs: np.ndarray) -> list[int]:
    """The smallest member of each node's component, by a plain graph search."""
    neighbours: list[set] = [set() for _ in range(n)]
    for a, b in pairs.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    labels = [-1] * n
    for start in range(n):  # ascending: a component is first reached from its smallest member
        if labels[start] < 0:
            labels[start], frontier = start, [start]
            while frontier:
                node = frontier.pop()
                for other in neighbours[node]:
                    if labels[other] < 0:
                        labels[other] = start
                        frontier.append(other)
    return labels


def test_connected_components_match_a_graph_search_on_random_graphs():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 80))
        pairs = rng.integers(0, n, size=(int(rng.integers(0, 100)), 2))  # self-loops and repeats too
        assert connected_components(n, pairs).tolist() == _components_by_search(n, pairs)
    chain = rng.permutation(np.stack([np.arange(9_999), np.arange(1, 10_000)], axis=1))  # one long path
    assert (connected_components(10_000, chain) == 0).all()


def _gradient_scene(rng: np.random.Generator, side: int = 32) -> np.ndarray:
    """A small picture whose background is a strong colour gradient (its opposite edges differ)."""
    y, x = np.mgrid[0:side, 0:side] / (side - 1)
    start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = (0.5 + 0.5 * rng.random()) * x + rng.random() * y
    image = start + (end - start) * (t / t.max())[..., None]
    for _ in range(2):  # a few discs on top
        cy, cx = rng.integers(0, side, 2)
        image[(y * (side - 1) - cy) ** 2 + (x * (side - 1) - cx) ** 2 < rng.integers(9, 50)] = rng.integers(0, 256, 3)
    return image.astype(np.uint8)


def test_shifted_copies_of_gradient_pictures_match():
    """Phase correlation under a window: without it the edge jump of a gradient background
    pinned the shift at (0, 0), and a quarter of copies moved by 1-2 pixels scored below 0.95."""
    from PIL import Image

    rng = np.random.default_rng(0)
    originals, copies = [], []
    for _ in range(100):
        scene = _gradient_scene(rng)
        dy, dx = rng.integers(1, 3, 2) * rng.choice([-1, 1], 2)
        padded = np.pad(scene, ((2, 2), (2, 2), (0, 0)), mode="edge")
        shifted = padded[2 + dy : 34 + dy, 2 + dx : 34 + dx]
        for image, out in ((scene, originals), (shifted, copies)):  # thumbnails as the audit makes them
            out.append(np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.BILINEAR)))
    thumbs = np.concatenate([originals, copies])
    sims = pair_similarity(thumbs, np.arange(100), np.arange(100, 200))
    assert (sims >= 0.95).mean() >= 0.95
    unrelated = pair_similarity(thumbs, np.arange(99), np.arange(1, 100))
    assert unrelated.max() < 0.6
    # and the descriptor (windowed too) makes each copy one of its original's 5 candidates
    # (the audit's default; unwindowed: 0.93)
    candidates = top_k_neighbours(spectral_descriptors(thumbs), 5)[100:]
    assert (candidates == np.arange(100)[:, None]).any(axis=1).mean() >= 0.97


def test_resized_copies_of_small_pictures_match_on_smoothed_edges():
    """Thumbnails enlarged from 32-pixel pictures: a copy resized to 3/4 and back keeps its
    colours but loses edge detail, so their edges are compared smoothed (``enlarged``)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    originals, copies = [], []
    for _ in range(100):
        scene = Image.fromarray(_gradient_scene(rng))
        resized = scene.resize((24, 24), Image.Resampling.LANCZOS).resize((32, 32), Image.Resampling.LANCZOS)
        for image, out in ((scene, originals), (resized, copies)):
            out.append(np.asarray(image.resize((64, 64), Image.Resampling.BILINEAR)))
    thumbs = np.concatenate([originals, copies])
    pairs = np.arange(100), np.arange(100, 200)
    sharp = pair_similarity(thumbs, *pairs)
    smoothed = pair_similarity(thumbs, *pairs, enlarged=np.ones(200, bool))
    assert (smoothed >= 0.95).mean() >= 0.95 > (sharp >= 0.95).mean()
    unrelated = pair_similarity(thumbs, np.arange(99), np.arange(1, 100), enlarged=np.ones(200, bool))
    assert unrelated.max() < 0.6


def test_greyscale_copies_of_colour_pictures_match_by_luminance():
    """A grey copy has no colour to correlate: its colour NCC with the original was below
    0.95 for most of these pictures. Pairs with a grey image compare luminance instead, and
    that does not make a grey picture match an unrelated colour one."""
    from PIL import Image

    rng = np.random.default_rng(2)
    originals, copies = [], []
    for _ in range(100):
        scene = Image.fromarray(_gradient_scene(rng)).resize((64, 64), Image.Resampling.BILINEAR)
        originals.append(np.asarray(scene))
        copies.append(np.asarray(scene.convert("L").convert("RGB")))  # as the audit thumbnails a grey file
    thumbs = np.concatenate([originals, copies])
    grey = thumbs[100:].astype(np.float32)
    colour_only = np.array([np.corrcoef(thumbs[k].ravel().astype(np.float32), grey[k].ravel())[0, 1] for k in range(100)])
    assert (colour_only >= 0.95).mean() < 0.5  # what the colour NCC alone said
    # (a grey copy of a picture whose colours are nearly all of one luminance is a flat
    # picture: two of these score 0.94)
    sims = pair_similarity(thumbs, np.arange(100), np.arange(100, 200))
    assert (sims >= 0.95).mean() >= 0.95
    unrelated = pair_similarity(thumbs, np.arange(99), np.arange(101, 200))
    assert unrelated.max() < 0.6
    candidates = top_k_neighbours(spectral_descriptors(thumbs), 5)[100:]
    assert (candidates == np.arange(100)[:, None]).any(axis=1).all()


def _line_drawing(rng: np.random.Generator, word: str, layout: np.random.Generator | None = None, side: int = 256):
    """A picture of thin lines and a word on a pale gradient, drawn at 4x the thumbnail side
    (PIL, RGB); ``layout`` draws the lines at other places (the same background and word)."""
    from PIL import Image, ImageDraw, ImageFont

    y, x = np.mgrid[0:side, 0:side] / (side - 1)
    start, end = rng.integers(150, 256, 3), rng.integers(150, 256, 3)
    t = rng.random() * x + rng.random() * y
    image = Image.fromarray((start + (end - start) * (t / max(t.max(), 1e-9))[..., None]).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    lines = layout if layout is not None else rng
    for _ in range(int(rng.integers(4, 8))):  # 2-4 px wide: half a thumbnail pixel to one
        ends = [tuple(int(v) for v in lines.integers(0, side, 2)) for _ in range(2)]
        draw.line(ends, fill=tuple(int(v) for v in rng.integers(0, 120, 3)), width=int(rng.integers(2, 5)))
    try:
        font = ImageFont.load_default(size=int(rng.integers(56, 72)))
    except (TypeError, ImportError, OSError):  # Pillow < 10.1, or without FreeType
        pytest.skip("needs Pillow's scalable default font (Pillow >= 10.1 with FreeType)")
    place = (int(rng.integers(8, 40)), int(rng.integers(20, side - 90)))
    draw.text(place, word, fill=tuple(int(v) for v in rng.integers(0, 100, 3)), font=font)
    return image


def test_copies_shifted_by_a_fraction_of_a_thumbnail_pixel_match():
    """A copy of a 256-px drawing moved by 2-3 px is moved by 1/2-3/4 of a pixel in its 64-px
    thumbnail: aligned to the nearest whole pixel, its thin lines and letters were up to half
    a pixel apart, and the edge correlation of 80 of these 100 fell below 0.95 (colours
    still alike). Aligned to a fraction of a pixel they match, while the same drawing with
    another word, or its lines laid out anew, stays below the cut."""
    from PIL import Image

    def thumbnail(image):  # as the audit makes it
        return np.asarray(image.resize((64, 64), Image.Resampling.BILINEAR, reducing_gap=2.0).convert("RGB"))

    words = ["delta", "ridge", "amber", "lotus", "quartz", "nimbus", "falcon", "cobalt", "meadow", "tundra"]
    originals, copies, retexts, moved = [], [], [], []
    for k in range(100):
        drawing = _line_drawing(np.random.default_rng(k), words[k % 10])
        rng = np.random.default_rng([k, 1])
        dy, dx = rng.integers(2, 4, 2) * rng.choice([-1, 1], 2) * (rng.random(2) < 0.75)
        dy = dy if dy or dx else 2
        padded = np.pad(np.asarray(drawing), ((4, 4), (4, 4), (0, 0)), mode="edge")
        copy = Image.fromarray(padded[4 - dy : 260 - dy, 4 - dx : 260 - dx].copy())
        originals.append(thumbnail(drawing))
        copies.append(thumbnail(copy))
        retexts.append(thumbnail(_line_drawing(np.random.default_rng(k), words[(k + 3) % 10])))
        moved.append(thumbnail(_line_drawing(np.random.default_rng(k), words[k % 10], np.random.default_rng([k, 2]))))
    thumbs = np.concatenate([originals, copies, retexts, moved])
    reduced = np.ones(len(thumbs), dtype=bool)  # 256-px pictures, 64-px thumbnails
    sims = pair_similarity(thumbs, np.arange(100), np.arange(100, 200), reduced=reduced)
    assert (sims >= 0.95).mean() >= 0.9  # 0.96
    assert (pair_similarity(thumbs, np.arange(100), np.arange(100, 200)) >= 0.95).mean() < 0.5  # whole pixels: 0.20
    for others in (200, 300):  # another word (up to 0.94, as before), other lines (0.61)
        assert pair_similarity(thumbs, np.arange(100), np.arange(others, others + 100), reduced=reduced).max() < 0.95
    assert pair_similarity(thumbs, np.arange(99), np.arange(101, 200), reduced=reduced).max() < 0.6  # 0.52
