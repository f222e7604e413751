"""Which RandAugment operations make copies that the audit itself would flag as junk.

RandAugment's operations were chosen for photographs. On other images some of them destroy
the picture: ``Solarize`` inverts every pixel above its threshold, so a drawing on white paper
becomes a white drawing on black, which the audit's ``dark`` check flags (on the roman
numerals at the default magnitude, 11 % of a run's copies were flagged ``dark``). ``fix``
therefore tries each operation alone, at the configured magnitude, on a seeded sample of the
training images, measures the copies with the image statistics of the ``image_properties``
check, and leaves out the operations whose copies cross that audit's own cuts (``dark``,
``light``, ``blurry``, ``noisy``, ``low_information``) clearly more often than the originals do:

    flagged share of the operation's copies > flagged share of the originals + :data:`TOLERANCE`

The rule, the shares and what was left out are recorded (``summary.json``: ``choices``).

Even with the operations screened, a few of thousands of copies still cross a cut (a strong
``Brightness`` draw on a pale scan), and a mild draw leaves a copy so close to its source that
the audit's ``near_duplicates`` check pairs them. :class:`CopyScreen` checks each copy as it is
made, against the same audit: a copy past a cut its source is not past, or at least as similar
to its source (or to an earlier copy of it) as the audit's near-duplicate cut, is drawn again
from a seed derived from its own (at most :data:`MAX_DRAWS` draws; the seed used and the
number of draws are in the copy's provenance). So ``fix`` does not add what its own final
audit would report.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .transforms import RANDAUGMENT_OPS, augment_image, copy_seed, open_source, validate_spec

#: The image-property checks a copy is screened with: check -> (statistic, side of the cut that is bad).
SCREENED_CHECKS = {"dark": ("brightness_high", "below"), "light": ("brightness_low", "above"),
                   "blurry": ("sharpness", "below"), "noisy": ("speckle", "above"),
                   "low_information": ("entropy", "below")}
#: Training images each operation is tried on.
SAMPLE = 100
#: How much more often than the originals an operation's copies may be flagged.
TOLERANCE = 0.05


def audit_cuts(checks: dict) -> dict:
    """The cuts of :data:`SCREENED_CHECKS` from an audit's ``summary.json`` ``checks``:
    ``{check: (statistic, side, value)}``, only those the audit applied."""
    cuts = {}
    for check, (stat, side) in SCREENED_CHECKS.items():
        value = (checks.get(check) or {}).get("threshold", {}).get(side)
        if value is not None and np.isfinite(value):
            cuts[check] = (stat, side, float(value))
    return cuts


def flagged_by(stats: dict, cuts: dict) -> list[str]:
    """The checks of ``cuts`` whose cut the image with ``stats`` (a
    :func:`datacheck.engine.image_stats.measure_image` row) crosses. A flat image is
    ``low_information`` only, as the audit reports it."""
    if not stats["has_content"]:
        return ["low_information"] if "low_information" in cuts else []
    out = []
    for check, (stat, side, value) in cuts.items():
        v = stats[stat]
        if np.isfinite(v) and (v < value if side == "below" else v > value):
            out.append(check)
    return out


#: Draws a copy gets before it is kept as it is: its own seed, then seeds derived from it.
MAX_DRAWS = 8


def redraw_seed(seed: int, draw: int) -> int:
    """The seed of a copy's ``draw``-th draw (0 = its own ``seed``): a 63-bit hash."""
    if draw == 0:
        return seed
    digest = hashlib.blake2b(f"{seed}|draw|{draw}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True)
class CopyScreen:
    """What an augmented copy must not be, by the cuts of the audit its plan came from.

    Attributes
    ----------
    cuts : dict
        :func:`audit_cuts`: a copy past one of them that its source is not past is junk.
    near_cut : float or None
        The audit's near-duplicate similarity cut: a copy at least this similar to its source
        adds nothing a second copy of the source would not (None: the audit had no such check).
    """

    cuts: dict
    near_cut: float | None = None

    @staticmethod
    def measure(image) -> dict:
        """What :meth:`faults` reads of an image (a :func:`~datacheck.engine.image_stats.measure_image` row)."""
        from ..engine.image_stats import measure_image

        return measure_image(image)

    @classmethod
    def from_summary(cls, checks: dict) -> "CopyScreen":
        """The screen of an audit's ``summary.json`` ``checks``. A near-duplicate cut on
        embeddings (an audit given ``--embeddings``: a cosine, another scale) is not a pixel
        similarity, so it is not used."""
        threshold = (checks.get("near_duplicates") or {}).get("threshold", {})
        near = None if "on" in threshold else threshold.get("min_similarity")
        return cls(audit_cuts(checks), float(near) if near is not None and np.isfinite(near) else None)

    def faults(self, source: dict, copy: dict, siblings: list[dict] = ()) -> list[str]:
        """Why a copy is rejected: the checks it fails that its source passes, and
        ``near_duplicates`` when it is a near duplicate of the source or of a sibling.

        Parameters
        ----------
        source, copy : dict
            :meth:`measure` of the source and the copy.
        siblings : list of dict
            :meth:`measure` of other copies of the source it must not be a near duplicate of.
        """
        from ..engine.image_stats import THUMB_SIDE
        from ..engine.similarity import pair_similarity

        faults = sorted(set(flagged_by(copy, self.cuts)) - set(flagged_by(source, self.cuts)))
        others = [row for row in (source, *siblings) if row["has_content"]]
        if self.near_cut is not None and copy["has_content"] and others:
            thumbs = np.stack([np.frombuffer(row["thumbnail"], np.uint8).reshape(THUMB_SIDE, THUMB_SIDE, 3)
                               for row in (copy, *others)])
            small = min(source["width"], source["height"]) < THUMB_SIDE  # copies keep their source's size
            similarity = pair_similarity(thumbs, np.zeros(len(others), np.int64), np.arange(1, len(thumbs)),
                                         screen=self.near_cut - 0.15, enlarged=np.full(len(thumbs), small))
            if (similarity >= self.near_cut).any():
                faults.append("near_duplicates")
        return faults


class LastSource:
    """The source image last opened, and its :meth:`CopyScreen.measure` when screening: the
    copies (and boosting candidates) of one source come one after another, so it is decoded
    and measured once for all of them."""

    def __init__(self, screen: CopyScreen | None):
        self.screen, self.path, self.image, self.measured = screen, None, None, None

    def open(self, path: str) -> tuple:
        """``(image, measurement or None)`` of the source at ``path``; raises the decode errors."""
        if path != self.path:
            image = open_source(path)
            self.path, self.image = path, image
            self.measured = self.screen.measure(image) if self.screen is not None else None
        return self.image, self.measured


def screened_copy(image, spec: dict, seed: int, screen: CopyScreen | None, source: dict | None = None,
                  siblings: list[dict] = (), *, measure: bool = False):
    """:func:`~datacheck.actions.transforms.augment_image`, drawn again while ``screen`` rejects it.

    ``source`` is :meth:`CopyScreen.measure` of ``image`` when the caller has it already;
    ``siblings`` (measurements) are other copies of it the copy must not be a near duplicate of.

    Returns
    -------
    image : PIL.Image.Image
        The first accepted draw, or the last one after :data:`MAX_DRAWS`.
    params : dict
        The drawn parameters, plus ``seed`` (the one used), ``draws`` and, when no draw was
        accepted, ``faults`` (the last draw's).
    measured : dict or None
        With ``measure``: :meth:`CopyScreen.measure` of the copy (None without a screen).
    """
    if screen is not None and source is None:
        source = screen.measure(image)
    measured = None
    for draw in range(MAX_DRAWS):
        used = redraw_seed(seed, draw)
        copy, drawn = augment_image(image, spec, used)
        if screen is None:
            break
        measured = screen.measure(copy)
        faults = screen.faults(source, measured, siblings)
        if not faults:
            break
    params = {**drawn, "seed": used, "draws": draw + 1, **({"faults": faults} if screen is not None and faults else {})}
    return (copy, params, measured) if measure else (copy, params)


def screen_operations(ids: list[str], paths: list[str], spec: dict, cuts: dict, seed: int, *,
                      sample: int = SAMPLE) -> dict:
    """Try each RandAugment operation of ``spec`` alone on a seeded sample of ``paths``.

    Parameters
    ----------
    ids, paths : list of str
        Sample ids and files (absolute paths) of the training images the copies will be made
        from. The sample and the copies are seeded by the ids, so the screen does not depend on
        where the files lie.
    spec : dict
        A validated augmentation spec; its ``magnitude`` is the one tried, its ``exclude_ops``
        stay excluded.
    cuts : dict
        :func:`audit_cuts` of the audit whose cuts define junk.
    seed : int
        Seeds the sample and the copies.

    Returns
    -------
    dict
        ``exclude_ops`` (the spec's and the newly excluded, canonical order), ``originals_flagged``
        (share of the sampled originals past a cut), ``flagged`` (share per operation tried),
        ``sample`` (images tried), ``magnitude``, ``tolerance``, ``cuts`` and the ``rule``.
    """
    from ..engine.image_stats import DECODE_ERRORS, measure_image

    already = set(spec.get("exclude_ops", ()))
    record = {"exclude_ops": list(spec.get("exclude_ops", ())), "originals_flagged": None, "flagged": {},
              "sample": 0, "magnitude": spec["magnitude"], "tolerance": TOLERANCE,
              "cuts": {c: {"statistic": s, side: v} for c, (s, side, v) in cuts.items()},
              "rule": f"an operation is left out when its copies cross the audit's {', '.join(cuts) or '(no)'} cuts "
                      f"more than {TOLERANCE:g} more often than the originals"}
    if spec["policy"] not in ("randaugment", "both") or not cuts or not paths:
        record["rule"] = "not screened: " + ("the policy has no RandAugment" if spec["policy"] == "affine" else
                                             "the audit applied no image-property cut" if not cuts else
                                             "no training image")
        return record
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(paths), size=min(sample, len(paths)), replace=False).tolist())
    images = []
    for i in chosen:
        try:
            images.append((ids[i], open_source(paths[i])))
        except DECODE_ERRORS:  # an unreadable source is never copied either
            continue
    if not images:
        record["rule"] = "not screened: no readable training image in the sample"
        return record
    base = np.mean([bool(flagged_by(measure_image(im), cuts)) for _, im in images])
    excluded = set(already)
    for op in RANDAUGMENT_OPS:
        if op in already:
            continue
        alone = validate_spec({**spec, "policy": "randaugment", "num_ops": 1,
                               "exclude_ops": [o for o in RANDAUGMENT_OPS if o != op]})
        share = np.mean([bool(flagged_by(measure_image(augment_image(im, alone, copy_seed(seed, sid, 0))[0]), cuts))
                         for sid, im in images])
        record["flagged"][op] = round(float(share), 4)
        if share > base + TOLERANCE:
            excluded.add(op)
    if excluded >= set(RANDAUGMENT_OPS):  # nothing survives: keep the least harmful one
        excluded.discard(min(record["flagged"], key=record["flagged"].get))
    record.update(exclude_ops=[op for op in RANDAUGMENT_OPS if op in excluded], originals_flagged=round(float(base), 4),
                  sample=len(images))
    return record
