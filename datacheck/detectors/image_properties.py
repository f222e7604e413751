"""Image-property checks: corrupt, dark, light, blurry, noisy, low information, odd size/aspect, grayscale.

Every threshold is learned from the dataset itself: a sample is flagged when its statistic
lies more than ``z_threshold`` robust standard deviations (median/MAD) from the dataset's
median in the bad direction. A dataset that is all grayscale handwriting on white paper
therefore sets its own norm instead of being flagged wholesale. Or, with ``cuts_from``, the
norm learned by an earlier audit is applied as it is (scikit-learn's fit, then transform), so
that a new batch, or a repaired version of the data, is judged by the same ruler.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..robust import expected_beyond, robust_z, threshold_score
from ..errors import BadDataError, UsageError
from ..files.json_object import read_json
from ..validation import Interval, Text
from .base import AuditContext, Detector, json_records, partial_findings
from .registry import register_detector

# Statistics are compared on log scales (brightness: of the distance from the clipped end),
# so a ratio means the same thing everywhere. The floors are the smallest robust spread a
# statistic is given: with z_threshold 4, a 1.5x change of exposure or of entropy, a 2.2x
# change of area or a 1.5x change of aspect ratio can count as unusual, never less, even
# when every image in the dataset is identical in that respect (MAD = 0).
_LOG_FLOOR = 0.1
_AREA_FLOOR = 0.2
# Speckle (the fraction of isolated pixels) is compared as log(speckle + 0.1 %). Most images
# have none, so its spread is usually 0 and the floor sets the cut: with z_threshold 4 it
# lies at 0.5 % isolated pixels, where impulse noise or dust is plain to see.
_SPECKLE_EPS = 0.001
_SPECKLE_FLOOR = 0.45
#: A size or aspect ratio held by at least this share of the images, and by at least
#: :data:`MODE_MIN` of them (within half the floor, about 10 % of area or 5 % of aspect ratio),
#: is one of the dataset's own, never odd: with 8 x 8 and 32 x 32 scans half and half, the
#: median lies in one group, the spread is 0, and the other half (898 of 1,797) was flagged
#: "odd" where 0.11 false positives were expected.
MODE_SHARE = 0.05
MODE_MIN = 3
#: Isolated pixels an image must have to count as noisy, whatever their share: in an 8 x 8
#: scan one is 2.8 % of the 36 inner pixels, and a JPEG folder of them had 39 % flagged.
MIN_ISOLATED = 3


@register_detector
class ImageProperties(Detector):
    """Flag unreadable images and images whose basic properties are far from the dataset's norm.

    Parameters
    ----------
    z_threshold : float, default 4.0
        Flag a sample when its robust z-score in the bad direction exceeds this.
    min_color_fraction : float, default 0.5
        The ``grayscale`` check only runs when at least this fraction of readable images
        is in colour (grayscale images in a grayscale dataset are not an issue).
    cuts_from : str, default ""
        An earlier audit's run folder (or its ``summary.json``): apply the median and spread
        each check learned there instead of learning them from this data, so that counts
        compare like with like (``datacheck fix`` judges its result by the re-audit's cuts).
        ``z_threshold`` still sets how far is too far; ``grayscale`` is not a learned cut.
    """

    name = "image_properties"
    requires = frozenset({"image_stats"})
    checks = ("corrupt", "dark", "light", "blurry", "noisy", "low_information", "odd_size", "odd_aspect_ratio", "grayscale")
    tags = frozenset({"image_quality"})
    # An unreadable file leaves the training set; an image too dark, bright, blurred or empty
    # to show its content makes the model's label suggestion for it untrustworthy.
    check_tags = {"corrupt": {"drop_candidate", "unreliable_input"}, "dark": {"unreliable_input"},
                  "light": {"unreliable_input"}, "blurry": {"unreliable_input"},
                  "noisy": {"unreliable_input"},
                  "low_information": {"unreliable_input"}}
    _parameter_constraints = {"z_threshold": [Interval(float, 0, None, "neither")],
                              "min_color_fraction": [Interval(float, 0, 1, "right")],
                              "cuts_from": [Text()]}

    def __init__(self, *, z_threshold: float = 4.0, min_color_fraction: float = 0.5, cuts_from: str = ""):
        self.z_threshold = z_threshold
        self.min_color_fraction = min_color_fraction
        self.cuts_from = cuts_from

    def _check_params(self) -> None:
        # Read when the parameters are checked, before any work: an unusable reference is a
        # usage error then, and the reference may be the run folder this audit writes (its
        # own --out), which the audit clears before the checks run.
        self._learned_cuts()

    def _learned_cuts(self) -> dict[str, tuple[float, float]]:
        """:func:`learned_cuts` of ``cuts_from`` ({} without it), kept from its last read: read
        again when ``cuts_from`` was set to another reference, or its file changed since (an
        instance reused after the reference was re-audited), but not when the file is gone."""
        if not self.cuts_from:
            return {}
        stamp = _stamp(self.cuts_from)
        source, seen, cuts = getattr(self, "_reference", (None, None, None))
        if source != self.cuts_from or (stamp is not None and stamp != seen):
            cuts = learned_cuts(self.cuts_from)
            self._reference = (self.cuts_from, stamp, cuts)
        return cuts

    def find(self, ctx: AuditContext):
        stats = ctx.get("image_stats")
        all_rows = np.arange(len(stats))
        readable = stats["error"].to_numpy() == ""
        parts = [
            partial_findings(
                all_rows,
                "corrupt",
                readable.astype(float),
                ~readable,
                # Errors are rare: one encoding per unreadable file, a constant otherwise.
                pa.array([json.dumps({"error": e}) if e else "{}" for e in stats["error"]], pa.string()),
            )
        ]
        s = stats[readable]
        rows = all_rows[readable]
        if len(s) == 0:
            # Every file is corrupt: say so for each check, which otherwise read as run, scoring nothing.
            for check in (*LEARNED_CHECKS, "grayscale"):
                self.thresholds_[check] = {"rule": "off: no readable image"}
            return parts[0]
        flat = ~s["has_content"].to_numpy(dtype=bool)
        width, height = s["width"].to_numpy(float), s["height"].to_numpy(float)
        # (check, statistic, value, bad direction: -1 low is bad / 1 high is bad / 0 both ways, scale floor,
        #  needs content: exposure and sharpness mean nothing for a flat image, which is
        #  reported as low information only)
        measures = [
            ("dark", "brightness_high", np.log1p(s["brightness_high"].to_numpy(float)), -1, _LOG_FLOOR, True),
            ("light", "brightness_low", np.log1p(255.0 - s["brightness_low"].to_numpy(float)), -1, _LOG_FLOOR, True),
            ("blurry", "sharpness", s["sharpness"].to_numpy(float), -1, _LOG_FLOOR, True),
            ("noisy", "speckle", np.log(s["speckle"].to_numpy(float) + _SPECKLE_EPS), 1, _SPECKLE_FLOOR, True),
            ("low_information", "entropy", np.log(s["entropy"].to_numpy(float) + 0.01), -1, _LOG_FLOOR, False),
            ("odd_size", "area", np.log(width * height), 0, _AREA_FLOOR, False),
            ("odd_aspect_ratio", "aspect_ratio", np.log(width / height), 0, _LOG_FLOOR, False),
        ]
        reference = self._learned_cuts()
        for check, stat, value, direction, floor, needs_content in measures:
            scored = np.isfinite(value) & ~(flat & needs_content)
            if check in reference:
                median, scale = reference[check]
                # A hand-made spread can be small enough for z to overflow: inf is past any cut.
                with np.errstate(over="ignore"):
                    z = (np.where(scored, value, np.nan) - median) / scale
            else:
                z, median, scale = robust_z(np.where(scored, value, np.nan), floor)
            badness = np.abs(z) if direction == 0 else direction * z
            if check == "low_information":
                badness = np.where(flat, np.inf, badness)  # a flat image carries no information at all
            flagged = badness > self.z_threshold
            self.thresholds_[check] = _describe_cut(stat, median, scale, direction, self.z_threshold, check)
            if direction == 0:  # odd size or aspect ratio: a group of the data's own is not odd
                common = _shared(value, scored, floor / 2) >= max(MODE_SHARE * scored.sum(), MODE_MIN)
                flagged &= ~common
                self.thresholds_[check]["unless_shared_by"] = MODE_SHARE
            if check == "noisy":
                isolated = s["speckle"].to_numpy(float) * _inner_pixels(width, height)  # a count, up to rounding
                flagged &= isolated >= MIN_ISOLATED - 0.5
                self.thresholds_[check]["min_isolated_pixels"] = MIN_ISOLATED
            if not scored.any():  # every readable image flat (one colour): exposure and sharpness mean nothing
                self.thresholds_[check] = {"rule": f"off: no readable image has content for {stat} (each is one colour)",
                                           "statistic": stat}
            if check in reference:
                self.thresholds_[check]["learned_in"] = self.cuts_from
            # Under the bulk's robust normal fit, clean images past the cut (both tails for a
            # two-sided statistic); flat images are flagged on their own account.
            tails = 2 if direction == 0 else 1
            self.thresholds_[check]["expected_false_positives"] = round(
                tails * expected_beyond(self.z_threshold, int(scored.sum())), 2)
            shown_z = np.round(np.abs(z) if direction == 0 else z, 3)[scored]
            details = json_records({stat: _raw_values(stat, s[scored]), "z": shown_z})
            # A sample spared by a rule above keeps its z but scores at the cut's side of 0.5.
            score = threshold_score(badness[scored], self.z_threshold)
            score = np.where(flagged[scored], score, np.maximum(score, 0.5))
            parts.append(partial_findings(rows[scored], check, score, flagged[scored], details))
        parts.append(self._grayscale(s, rows))
        return pd.concat(parts, ignore_index=True)

    def _grayscale(self, s, rows):
        colorfulness = s["colorfulness"].to_numpy(float)
        grey = colorfulness < 0.01  # under ~2.5 grey levels between channels on average
        color_fraction = float((~grey).mean())
        in_color_dataset = color_fraction >= self.min_color_fraction
        typical = float(np.median(colorfulness[~grey])) if (~grey).any() else 1.0
        score = np.clip(colorfulness / typical, 0.0, 1.0) if in_color_dataset else np.ones(len(s))
        self.thresholds_["grayscale"] = {
            "rule": "colorfulness < 0.01" if in_color_dataset else "off: not a colour dataset",
            "color_fraction": round(color_fraction, 4),
        }
        details = json_records({"colorfulness": np.round(colorfulness, 4)})
        return partial_findings(rows, "grayscale", score, grey & in_color_dataset, details)


def _shared(value: np.ndarray, scored: np.ndarray, tolerance: float) -> np.ndarray:
    """Per sample, how many scored samples lie within ``tolerance`` of its value (itself
    included; 0 for an unscored one). Shape (N,); sorting, no N x N."""
    ordered = np.sort(value[scored])
    count = (np.searchsorted(ordered, value + tolerance, side="right")
             - np.searchsorted(ordered, value - tolerance, side="left"))
    return np.where(scored, count, 0)


def _inner_pixels(width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Pixels with four neighbours in each image's analysis copy (at most ``ANALYSIS_SIDE`` on
    its longer side, shrunk by a whole factor): those whose share of isolated ones is ``speckle``."""
    from ..engine.image_stats import ANALYSIS_SIDE

    factor = np.ceil(np.maximum(width, height) / ANALYSIS_SIDE).clip(min=1)
    return (np.ceil(width / factor) - 2).clip(min=0) * (np.ceil(height / factor) - 2).clip(min=0)


def _raw_values(stat: str, s: pd.DataFrame):
    """The untransformed statistic per sample of ``s``, for the details column: numbers, or
    for ``area`` the JSON text ``[width, height]``."""
    if stat == "area":
        import pyarrow.compute as pc

        width, height = (pa.array(s[side].to_numpy(np.int64)).cast(pa.string()) for side in ("width", "height"))
        return pc.binary_join_element_wise("[", width, ", ", height, "]", "")
    if stat == "aspect_ratio":
        return np.round(s["width"].to_numpy(float) / s["height"].to_numpy(float), 4)
    return np.round(s[stat].to_numpy(float), 4)


def _describe_cut(stat: str, median: float, scale: float, direction: int, z: float, check: str) -> dict:
    """The learned cut-off in the statistic's own units, for summary.json and the console."""
    exp = lambda v: math.exp(min(v, 700.0))  # noqa: E731 -- a huge z_threshold (a check turned off) must not overflow
    back = {
        "dark": lambda v: exp(v) - 1.0,
        "light": lambda v: 255.0 - (exp(v) - 1.0),
        "noisy": lambda v: exp(v) - _SPECKLE_EPS,
        "low_information": lambda v: exp(v) - 0.01,
        "odd_size": exp,
        "odd_aspect_ratio": exp,
    }.get(check, lambda v: v)
    info = {"statistic": stat, "z_threshold": z, "median": round(back(median), 4) if math.isfinite(median) else None}
    if not math.isfinite(median):
        return info
    # The fit itself, unrounded, on the scale the check compares (log units but for sharpness):
    # what ``cuts_from`` applies to another dataset.
    info["center"], info["scale"] = median, scale
    if direction == 0:
        info["below"] = round(back(median - z * scale), 4)
        info["above"] = round(back(median + z * scale), 4)
    elif check == "light":  # its statistic falls as brightness rises
        info["above"] = round(back(median - z * scale), 4)
    elif direction > 0:
        info["above"] = round(back(median + z * scale), 4)
    else:
        info["below"] = round(back(median - z * scale), 4)
    if check == "low_information":
        info["or"] = "flat image (grey std < 2)"
    return info


#: The checks whose cut is a robust z-score on a transformed statistic (a median and a
#: spread), which ``cuts_from`` can take from another audit.
LEARNED_CHECKS = ("dark", "light", "blurry", "noisy", "low_information", "odd_size", "odd_aspect_ratio")


def _summary_path(source: str) -> Path:
    """The ``summary.json`` that ``cuts_from`` names (a run folder or the file itself)."""
    path = Path(source)
    return path / "summary.json" if path.is_dir() else path


def _stamp(source: str) -> tuple[int, int] | None:
    """``(modification time in ns, size)`` of ``cuts_from``'s summary, None when it is gone."""
    try:
        info = _summary_path(source).stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def learned_cuts(source: str) -> dict[str, tuple[float, float]]:
    """``check -> (center, scale)`` of each image-property check an earlier audit learned.

    Parameters
    ----------
    source : str
        That audit's run folder or its ``summary.json``.

    Raises
    ------
    UsageError
        The file is missing or unreadable, or records no learned cut (an audit that did not
        run the image-property checks, or ran them with a datacheck before 0.1's ``center``).
    """
    path = _summary_path(source)
    try:
        checks = read_json(path).get("checks")
    except BadDataError as exc:
        raise UsageError(f"image_properties.cuts_from: {exc}") from None
    cuts = {}
    for check in LEARNED_CHECKS:
        entry = checks.get(check) if isinstance(checks, dict) else None  # a hand-edited file may hold anything
        fit = entry.get("threshold") if isinstance(entry, dict) else None
        center, scale = (_finite(fit.get(key)) if isinstance(fit, dict) else None for key in ("center", "scale"))
        if center is not None and scale is not None and scale > 0:
            cuts[check] = (center, scale)
    if not cuts:
        raise UsageError(f"image_properties.cuts_from: {path} records no learned image-property cut "
                         "(its audit did not run image_properties, or an older datacheck wrote it)")
    return cuts


def _finite(value) -> float | None:
    """``value`` as a finite float, else None: a JSON number may be text, a boolean, or an
    integer too large for a float (``math.isfinite`` raises OverflowError on it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None
