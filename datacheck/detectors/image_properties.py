"""Image-property checks: corrupt, dark, light, blurry, low information, odd size/aspect, grayscale.

Every threshold is learned from the dataset itself: a sample is flagged when its statistic
lies more than ``z_threshold`` robust standard deviations (median/MAD) from the dataset's
median in the bad direction. A dataset that is all grayscale handwriting on white paper
therefore sets its own norm instead of being flagged wholesale.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..robust import robust_z, threshold_score
from .base import AuditContext, Detector, check_positive, partial_findings
from .registry import register_detector

# Per check: (statistic, transform of the image stats → value, direction, scale floor).
# Brightness statistics are compared on a log scale of their distance from the clipped end,
# so "a tenth of the headroom" means the same thing for every exposure; 0.1 (≈10 %) is the
# smallest difference that can ever count as unusual.
_LOG_FLOOR = 0.1


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
    """

    name = "image_properties"
    requires = frozenset({"images"})
    checks = ("corrupt", "dark", "light", "blurry", "low_information", "odd_size", "odd_aspect_ratio", "grayscale")

    def __init__(self, *, z_threshold: float = 4.0, min_color_fraction: float = 0.5):
        self.z_threshold = z_threshold
        self.min_color_fraction = min_color_fraction

    def validate_params(self) -> None:
        check_positive("image_properties.z_threshold", self.z_threshold)
        check_positive("image_properties.min_color_fraction", self.min_color_fraction)
        if self.min_color_fraction > 1:
            raise UsageError(f"image_properties.min_color_fraction must be at most 1, got {self.min_color_fraction!r}")

    def find(self, ctx: AuditContext):
        stats = ctx.get("images")
        all_rows = np.arange(len(stats))
        readable = stats["error"].to_numpy() == ""
        parts = [
            partial_findings(
                all_rows,
                "corrupt",
                readable.astype(float),
                ~readable,
                [{"error": e} if e else {} for e in stats["error"]],
            )
        ]
        s = stats[readable]
        rows = all_rows[readable]
        if len(s) == 0:
            return parts[0]
        flat = ~s["has_content"].to_numpy(dtype=bool)
        # (check, statistic name, value, bad direction: -1 low is bad / +1 high / 0 both, floor)
        measures = [
            ("dark", "brightness_high", np.log1p(s["brightness_high"].to_numpy(float)), -1, _LOG_FLOOR),
            ("light", "brightness_low", np.log1p(255.0 - s["brightness_low"].to_numpy(float)), -1, _LOG_FLOOR),
            ("blurry", "sharpness", s["sharpness"].to_numpy(float), -1, _LOG_FLOOR),
            ("low_information", "entropy", np.log(s["entropy"].to_numpy(float) + 0.01), -1, _LOG_FLOOR),
            ("odd_size", "area", np.log(s["width"].to_numpy(float) * s["height"].to_numpy(float)), 0, _LOG_FLOOR),
            ("odd_aspect_ratio", "aspect_ratio", np.log(s["width"].to_numpy(float) / s["height"].to_numpy(float)), 0, _LOG_FLOOR),
        ]
        for check, stat, value, direction, floor in measures:
            z, median, scale = robust_z(value, floor)
            badness = np.abs(z) if direction == 0 else direction * z
            if check == "low_information":
                badness = np.where(flat, np.inf, badness)  # a flat image carries no information at all
            is_issue = np.nan_to_num(badness, nan=0.0) > self.z_threshold
            self.thresholds_[check] = _describe_cut(stat, median, scale, direction, self.z_threshold, check)
            shown_z = np.round(np.abs(z) if direction == 0 else z, 3)
            details = [{stat: v, "z": zz} for v, zz in zip(_raw_values(stat, s), shown_z.tolist())]
            keep = ~np.isnan(value) if check != "low_information" else np.ones(len(s), bool)
            parts.append(partial_findings(rows[keep], check, threshold_score(badness[keep], self.z_threshold),
                                          is_issue[keep], [d for d, k in zip(details, keep) if k]))
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
        details = [{"colorfulness": round(float(c), 4)} for c in colorfulness]
        return partial_findings(rows, "grayscale", score, grey & in_color_dataset, details)


def _raw_values(stat: str, s: pd.DataFrame) -> list:
    """The untransformed statistic per readable sample, for the details column."""
    if stat == "area":
        return [[int(w), int(h)] for w, h in zip(s["width"], s["height"])]
    if stat == "aspect_ratio":
        return np.round(s["width"].to_numpy(float) / s["height"].to_numpy(float), 4).tolist()
    return np.round(s[stat].to_numpy(float), 4).tolist()


def _describe_cut(stat: str, median: float, scale: float, direction: int, z: float, check: str) -> dict:
    """The learned cut-off in the statistic's own units, for summary.json and the console."""
    back = {
        "dark": lambda v: math.expm1(v),
        "light": lambda v: 255.0 - math.expm1(v),
        "low_information": lambda v: math.exp(v) - 0.01,
        "odd_size": lambda v: math.exp(v),
        "odd_aspect_ratio": lambda v: math.exp(v),
    }.get(check, lambda v: v)
    info = {"statistic": stat, "z_threshold": z, "median": round(back(median), 4) if math.isfinite(median) else None}
    if not math.isfinite(median):
        return info
    if direction == 0:
        info["below"] = round(back(median - z * scale), 4)
        info["above"] = round(back(median + z * scale), 4)
    elif check == "light":
        info["above"] = round(back(median - z * scale), 4)
    else:
        info["below"] = round(back(median - z * scale), 4)
    if check == "low_information":
        info["or"] = "flat image (grey std < 2)"
    return info
