"""Name → detector class registry (timm's ``register_model`` / cleanlab's issue-manager factory)."""

from __future__ import annotations

import fnmatch

from ..errors import UsageError
from .base import Detector

_REGISTRY: dict[str, type[Detector]] = {}


#: Entry-point group through which installed packages add detectors (``pyproject.toml``:
#: ``[project.entry-points."datacheck.detectors"] my_check = "my_pkg.checks:MyCheck"``, the entry
#: point named as the class's ``name``).
ENTRY_POINT_GROUP = "datacheck.detectors"
_plugins_loaded = False


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Detector)) or not cls.name:
        raise TypeError(f"{cls!r} is not a Detector subclass with a name")
    from ..features import FEATURES
    from .base import TAGS

    unknown = (set(cls.requires) | set(cls.optional)) - set(FEATURES)
    if unknown:
        raise TypeError(f"detector {cls.name!r} declares unknown features {sorted(unknown)}; known: {sorted(FEATURES)}")
    tags = set(cls.tags).union(*map(set, cls.check_tags.values())) if cls.check_tags else set(cls.tags)
    if tags - set(TAGS) or set(cls.check_tags) - set(cls.checks):
        raise TypeError(f"detector {cls.name!r}: unknown tags {sorted(tags - set(TAGS))} or tagged checks it "
                        f"does not produce {sorted(set(cls.check_tags) - set(cls.checks))}")
    missing = set(cls.param_names()) - set(cls._parameter_constraints)
    if missing:
        raise TypeError(f"detector {cls.name!r} declares no constraints for parameter(s) {sorted(missing)}")
    from ..validation import constraints_problem

    problem = constraints_problem(cls._parameter_constraints, cls.name)
    if problem:
        raise TypeError(problem)
    old = _REGISTRY.get(cls.name)
    # A notebook cell run again defines its class again, a new object of the same module and
    # name: it replaces the one it redefines (that was "already registered", until a restart).
    # Another detector of that name (a built-in, another module's) is still refused.
    redefined = old is not None and (old.__module__, old.__qualname__) == (cls.__module__, cls.__qualname__)
    if old is not None and old is not cls and not redefined:
        raise ValueError(f"a detector named {cls.name!r} is already registered")
    # A check belongs to one detector: findings are sorted, gated and reported by check.
    taken = {c: n for n, other in _REGISTRY.items() if n != cls.name for c in other.checks}
    clash = sorted(set(cls.checks) & set(taken))
    if clash:
        raise ValueError(f"check {clash[0]!r} of {cls.name!r} is already produced by {taken[clash[0]]!r}")
    _REGISTRY[cls.name] = cls
    return cls


def load_plugins() -> None:
    """Register the detectors that installed packages declare as entry points (once).

    A plugin that fails to import or is not a detector is a usage error naming it: a broken
    plugin must not pass silently for "no such check".
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from ..plugins import register_entry_points

    def register(name: str, cls) -> None:
        # The entry point's name is the name the plugin is registered under, as for models: a
        # detector registered under another name would not answer `--checks <entry point>`
        # or `[detectors.<entry point>]`, and nothing would say why.
        if isinstance(cls, type) and issubclass(cls, Detector) and cls.name and cls.name != name:
            raise ValueError(f"the entry point {name!r} declares the detector named {cls.name!r}; "
                             f"name the entry point {cls.name!r} ({cls.name} = {cls.__module__}:{cls.__qualname__})")
        if _REGISTRY.get(getattr(cls, "name", None)) is not cls:
            register_detector(cls)

    register_entry_points(ENTRY_POINT_GROUP, "detector", register)


def list_detectors(filter: str | None = None, default_only: bool = False) -> list[str]:
    """Registered detector names, sorted; ``filter`` is an fnmatch pattern (``'*dup*'``)."""
    load_plugins()
    names = sorted(n for n, cls in _REGISTRY.items() if cls.default or not default_only)
    return [n for n in names if filter is None or fnmatch.fnmatchcase(n, filter)]


def get_detector_class(name: str) -> type[Detector]:
    load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        owner = next((n for n, cls in _REGISTRY.items() if name in cls.checks), None)
        if owner is not None:  # "dark" is one of image_properties' checks, not a detector
            raise UsageError(f"{name!r} is a check of the {owner!r} detector: select {owner!r} (its findings "
                             f"rows include {name!r}), or gate it with --fail-on '{name}>0'") from None
        raise UsageError(f"unknown check {name!r}; available: {', '.join(list_detectors())}") from None


def create_detector(name: str, **params) -> Detector:
    """Construct a detector and validate its parameters (before any work is done).

    ``None`` values are dropped so the detector's defaults apply.

    Raises
    ------
    UsageError
        Unknown detector or parameter, or a value its constraints refuse.
    """
    cls = get_detector_class(name)
    unknown = set(params) - set(cls.param_names())
    if unknown:
        raise UsageError(f"unknown parameter(s) for {name}: {', '.join(sorted(unknown))}; known: {', '.join(cls.param_names())}")
    detector = cls(**{k: v for k, v in params.items() if v is not None})
    detector.validate_params()
    return detector


def list_checks() -> list[str]:
    """Every value of the findings ``check`` column a registered detector produces, sorted."""
    return sorted(c for cls in _REGISTRY.values() for c in cls.checks)


def checks_with_tag(tag: str) -> list[str]:
    """Every check (of every registered detector) that carries ``tag``, sorted."""
    from .base import TAGS

    if tag not in TAGS:
        raise AssertionError(f"unknown tag {tag!r}")
    load_plugins()
    return sorted(c for cls in _REGISTRY.values() for c in cls.checks if tag in cls.tags_of(c))


def check_owner(check: str) -> str | None:
    """The detector that produces findings with ``check`` == ``check``, if any."""
    for name, cls in _REGISTRY.items():
        if check in cls.checks:
            return name
    return None


def is_pattern(item: str) -> bool:
    """Whether a ``--checks`` item is an fnmatch wildcard rather than a detector's name."""
    return any(ch in item for ch in "*?[")


def expand_checks(spec: list[str]) -> list[str]:
    """Detector names for ``--checks`` items, expanding fnmatch wildcards; order kept."""
    names: list[str] = []
    for item in spec:
        matches = list_detectors(filter=item) if is_pattern(item) else [get_detector_class(item).name]
        if not matches:
            raise UsageError(f"--checks pattern {item!r} matches no check; available: {', '.join(list_detectors())}")
        names += [m for m in matches if m not in names]
    return names
