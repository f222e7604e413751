"""Which RandAugment operations make copies that the audit itself would flag as junk.

RandAugment's operations were chosen for photographs. On other images some of them destroy
the picture: ``Solarize`` inverts every pixel above its threshold, so a drawing on white paper
becomes a white drawing on black, which the audit's ``dark`` check flags (on the roman
numerals at the default magnitude, 11 % of a run's copies were flagged ``dark``). ``fix``
therefore tries each operation alone, at the configured magnitude, on a seeded sample of the
training images, measures the copies with the image statistics of the ``image_properties``
check, and leaves out the operations whose copies cross that audit's own cuts (``dark``,
``light``, ``blurry``, ``noisy``, ``low_information``) clearly more often than the originals do:

    flagged share of the operation's copies > flagged share of the originals + ``tolerance``

The rule, the shares and what was left out are recorded (``summary.json``: ``choices``).
"""

from __future__ import annotations

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


def screen_operations(ids: list[str], paths: list[str], spec: dict, cuts: dict, seed: int, *, sample: int = SAMPLE,
                      tolerance: float = TOLERANCE) -> dict:
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
              "sample": 0, "magnitude": spec["magnitude"], "tolerance": tolerance,
              "cuts": {c: {"statistic": s, side: v} for c, (s, side, v) in cuts.items()},
              "rule": f"an operation is left out when its copies cross the audit's {', '.join(cuts) or '(no)'} cuts "
                      f"more than {tolerance:g} more often than the originals"}
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
        if share > base + tolerance:
            excluded.add(op)
    if excluded >= set(RANDAUGMENT_OPS):  # nothing survives: keep the least harmful one
        excluded.discard(min(record["flagged"], key=record["flagged"].get))
    record.update(exclude_ops=[op for op in RANDAUGMENT_OPS if op in excluded], originals_flagged=round(float(base), 4),
                  sample=len(images))
    return record
