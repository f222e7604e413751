"""The augmentation of one image: RandAugment and/or a random affine transform, seeded per copy.

Shared by ``augment`` (copies a plan schedules) and ``boost`` (copies near validation errors);
torch and torchvision are imported only when an image is transformed.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import UsageError

POLICIES = ("randaugment", "affine", "both")
#: The augmentation ``balance`` records in a plan; ``augment`` options override it.
DEFAULT_SPEC = {"policy": "both", "num_ops": 2, "magnitude": 9, "degrees": 15.0, "translate": 0.1,
                "scale": [0.9, 1.1], "exclude_ops": []}
#: RandAugment's operations (torchvision's names), the ones ``exclude_ops`` may leave out.
RANDAUGMENT_OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
                   "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
_RANDAUGMENT_BINS = 31
#: RandAugment draws from 14 operations; far more per copy only destroys the image (and time).
MAX_NUM_OPS = 50
#: Affine scale bounds: beyond them the copy is a few pixels or a blow-up of one (and the
#: affine grid overflows).
MIN_SCALE, MAX_SCALE = 0.05, 20.0


def validate_spec(spec: dict) -> dict:
    """``spec`` completed with :data:`DEFAULT_SPEC` and checked; UsageError on a bad value."""
    full = {**DEFAULT_SPEC, **{k: v for k, v in spec.items() if v is not None}}
    unknown = set(full) - set(DEFAULT_SPEC)
    if unknown:
        raise UsageError(f"unknown augmentation setting(s): {', '.join(sorted(unknown))}")
    if full["policy"] not in POLICIES:
        raise UsageError(f"--policy must be one of {', '.join(POLICIES)}, got {full['policy']!r}")
    if isinstance(full["num_ops"], bool) or isinstance(full["magnitude"], bool):  # JSON true is an int to Python
        raise UsageError("--num-ops and --magnitude must be integers, not true/false")
    if not isinstance(full["num_ops"], int) or not 1 <= full["num_ops"] <= MAX_NUM_OPS:
        raise UsageError(f"--num-ops must be an integer in [1, {MAX_NUM_OPS}], got {full['num_ops']!r:.40}")
    if not isinstance(full["magnitude"], int) or not 0 <= full["magnitude"] < _RANDAUGMENT_BINS:
        raise UsageError(f"--magnitude must be an integer in [0, {_RANDAUGMENT_BINS - 1}], got {full['magnitude']!r}")
    # The spec may come from a plan file (JSON), so types are checked, not only ranges.
    if not _is_number(full["degrees"]) or not 0 <= full["degrees"] <= 180:
        raise UsageError(f"--degrees must be in [0, 180], got {full['degrees']!r:.40}")
    if not _is_number(full["translate"]) or not 0 <= full["translate"] < 1:
        raise UsageError(f"--translate must be in [0, 1), got {full['translate']!r:.40}")
    scale = full["scale"]
    if not isinstance(scale, (list, tuple)) or len(scale) != 2 or not all(map(_is_number, scale)):
        raise UsageError(f"--scale must be two numbers 0 < min <= max, got {full['scale']!r:.40}")
    lo, hi = full["scale"]
    if not MIN_SCALE <= lo <= hi <= MAX_SCALE:
        raise UsageError(f"--scale must be two numbers {MIN_SCALE} <= min <= max <= {MAX_SCALE}, got {lo} {hi}")
    full["scale"] = [float(lo), float(hi)]
    full["degrees"], full["translate"] = float(full["degrees"]), float(full["translate"])
    excluded = full["exclude_ops"]
    if not isinstance(excluded, (list, tuple)) or not all(isinstance(op, str) for op in excluded):
        raise UsageError(f"--exclude-ops must be a list of RandAugment operation names, got {excluded!r:.60}")
    unknown = sorted(set(excluded) - set(RANDAUGMENT_OPS))
    if unknown:
        raise UsageError(f"unknown RandAugment operation {unknown[0]!r:.40}; known: {', '.join(RANDAUGMENT_OPS)}")
    if set(excluded) >= set(RANDAUGMENT_OPS):
        raise UsageError("--exclude-ops leaves RandAugment no operation; use policy \"affine\" instead")
    full["exclude_ops"] = [op for op in RANDAUGMENT_OPS if op in set(excluded)]  # canonical order
    return full


def _is_number(value) -> bool:
    """A finite int or float, not a bool (JSON true would pass as 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or np.isfinite(value)  # a huge JSON int is finite but overflows isfinite


def copy_seed(seed: int, source_id: str, copy: int) -> int:
    """The seed of one augmented copy: a 63-bit hash of ``(seed, source_id, copy)``."""
    digest = hashlib.blake2b(f"{seed}|{source_id}|{copy}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def augment_image(image, spec: dict, seed: int):
    """One augmented copy of ``image``.

    Parameters
    ----------
    image : PIL.Image.Image
        Mode ``L`` or ``RGB``, any size (kept).
    spec : dict
        A validated spec (:func:`validate_spec`).
    seed : int
        Seeds torch's generator for this image only (the global stream is restored after).

    Returns
    -------
    image : PIL.Image.Image
        Same mode and size.
    params : dict
        What was drawn: ``affine`` (angle in degrees, translate in pixels, scale, shear) and
        ``randaugment`` (list of ``{"op", "magnitude"}``), and the ``fill`` used for the
        uncovered border (the median colour of the source's border pixels).
    """
    import torch
    from torchvision.transforms import v2

    class RecordingRandAugment(v2.RandAugment):
        # The operations drawn from: torchvision's, less the excluded ones (this per-call
        # subclass's own table; torchvision's class is untouched).
        _AUGMENTATION_SPACE = {op: v for op, v in v2.RandAugment._AUGMENTATION_SPACE.items()
                               if op not in set(spec.get("exclude_ops", ()))}

        def _apply_image_or_video_transform(self, image, transform_id, magnitude, interpolation, fill):
            drawn.setdefault("randaugment", []).append({"op": transform_id, "magnitude": round(float(magnitude), 4)})
            return super()._apply_image_or_video_transform(image, transform_id, magnitude, interpolation, fill)

    class RecordingAffine(v2.RandomAffine):
        def make_params(self, flat_inputs):
            params = super().make_params(flat_inputs)
            drawn["affine"] = {"angle": round(float(params["angle"]), 4), "translate": list(params["translate"]),
                               "scale": round(float(params["scale"]), 4), "shear": list(params["shear"])}
            return params

    drawn: dict = {}
    pixels = np.asarray(image)
    channels = 1 if image.mode == "L" else 3
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).reshape(-1, channels)
    fill = [int(v) for v in np.median(border, axis=0)]
    fill_arg = fill[0] if channels == 1 else fill
    steps = []
    if spec["policy"] in ("affine", "both"):
        steps.append(RecordingAffine(degrees=spec["degrees"], translate=(spec["translate"], spec["translate"]),
                                     scale=tuple(spec["scale"]), interpolation=v2.InterpolationMode.BILINEAR,
                                     fill=fill_arg))
    if spec["policy"] in ("randaugment", "both"):
        steps.append(RecordingRandAugment(num_ops=spec["num_ops"], magnitude=spec["magnitude"],
                                          num_magnitude_bins=_RANDAUGMENT_BINS, fill=fill_arg))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step in steps:
            image = step(image)
    return image, {**drawn, "fill": fill}


def open_source(path: str):
    """A source image decoded as ``L`` (grey) or ``RGB``; raises one of the decode errors."""
    from ..engine.image_stats import eight_bit, on_white, open_image, upright  # a pipe or device is refused, never read

    with open_image(path) as im:
        im.load()
        # as displayed (EXIF orientation, transparency on white); 16-bit and float grey scaled to L, not clipped
        im = on_white(eight_bit(upright(im)))
        return im.convert("L" if im.mode in ("L", "1") else "RGB")
