"""Name → detector class registry (timm's ``register_model`` / cleanlab's issue-manager factory)."""

from __future__ import annotations

import fnmatch

from ..errors import UsageError
from .base import Detector

_REGISTRY: dict[str, type[Detector]] = {}


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Detector)) or not cls.name:
        raise TypeError(f"{cls!r} is not a Detector subclass with a name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"a detector named {cls.name!r} is already registered")
    # A check belongs to one detector: findings are sorted, gated and reported by check.
    taken = {c: n for n, other in _REGISTRY.items() if other is not cls for c in other.checks}
    clash = sorted(set(cls.checks) & set(taken))
    if clash:
        raise ValueError(f"check {clash[0]!r} of {cls.name!r} is already produced by {taken[clash[0]]!r}")
    _REGISTRY[cls.name] = cls
    return cls


def list_detectors(filter: str | None = None, default_only: bool = False) -> list[str]:
    """Registered detector names, sorted; ``filter`` is an fnmatch pattern (``'*dup*'``)."""
    names = sorted(n for n, cls in _REGISTRY.items() if cls.default or not default_only)
    return [n for n in names if filter is None or fnmatch.fnmatchcase(n, filter)]


def get_detector_class(name: str) -> type[Detector]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown check {name!r}; available: {', '.join(list_detectors())}") from None


def create_detector(name: str, **params) -> Detector:
    """Construct a detector; ``None`` values are dropped so the detector's defaults apply."""
    cls = get_detector_class(name)
    unknown = set(params) - set(cls.param_names())
    if unknown:
        raise UsageError(f"unknown parameter(s) for {name}: {', '.join(sorted(unknown))}; known: {', '.join(cls.param_names())}")
    return cls(**{k: v for k, v in params.items() if v is not None})


def list_checks() -> list[str]:
    """Every value of the findings ``check`` column a registered detector produces, sorted."""
    return sorted(c for cls in _REGISTRY.values() for c in cls.checks)


def check_owner(check: str) -> str | None:
    """The detector that produces findings with ``check`` == ``check``, if any."""
    for name, cls in _REGISTRY.items():
        if check in cls.checks:
            return name
    return None


def expand_checks(spec: list[str]) -> list[str]:
    """Detector names for ``--checks`` items, expanding fnmatch wildcards; order kept."""
    names: list[str] = []
    for item in spec:
        matches = list_detectors(filter=item) if any(ch in item for ch in "*?[") else [get_detector_class(item).name]
        if not matches:
            raise UsageError(f"--checks pattern {item!r} matches no check; available: {', '.join(list_detectors())}")
        names += [m for m in matches if m not in names]
    return names
