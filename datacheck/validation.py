"""Checks at the edges: parameter constraints, integer ranges, JSON keys.

Every value a user can set (a detector parameter, a config entry, a command-line option, a
key of a run file) is checked here, once, where it enters; the code behind the edge trusts
what it is given. Detectors declare their parameters' constraints the way scikit-learn's
estimators do (``_parameter_constraints``), and :func:`validate_params` checks them before
any work, so a bad ``[detectors.clusters] min_ratio = 2`` is exit 2 before a run folder exists.

>>> validate_params({"k": [Interval(int, 1, None)]}, {"k": 0}, "outliers")
Traceback (most recent call last):
...
datacheck.errors.UsageError: outliers.k must be an integer >= 1, got 0
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from dataclasses import dataclass

from .errors import BadDataError, UsageError

#: Seeds reach numpy's and scikit-learn's generators, which take 32-bit unsigned seeds.
SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` (``int`` or ``float``; a float parameter accepts integers) in an interval.

    ``None`` bounds are open-ended; ``closed`` is ``"both"``, ``"left"``, ``"right"`` or
    ``"neither"``. Booleans and non-finite floats never pass (TOML has ``inf`` and ``nan``,
    and no setting means them).
    """

    kind: type
    left: float | None
    right: float | None
    closed: str = "both"

    def accepts(self, value) -> bool:
        kinds = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.left is not None and (value < self.left or (value == self.left and self.closed in ("right", "neither"))):
            return False
        if self.right is not None and (value > self.right or (value == self.right and self.closed in ("left", "neither"))):
            return False
        return True

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        low = {True: ">=", False: ">"}[self.closed in ("both", "left")]
        high = {True: "<=", False: "<"}[self.closed in ("both", "right")]
        if self.left is not None and self.right is not None:
            if self.closed == "both":
                return f"{what} in [{_num(self.left)}, {_num(self.right)}]"
            return f"{what} {low} {_num(self.left)} and {high} {_num(self.right)}"
        if self.left is not None:
            return f"{what} {low} {_num(self.left)}"
        if self.right is not None:
            return f"{what} {high} {_num(self.right)}"
        return what

    def invalid_values(self) -> list:
        """Values this constraint refuses (for conformance tests): out of range, wrong type."""
        bad: list = ["text", True, None]
        step = 1 if self.kind is int else 1e-3
        if self.left is not None:
            bad.append(self.left - step if self.closed in ("both", "left") else self.left)
        if self.right is not None:
            bad.append(self.right + step if self.closed in ("both", "right") else self.right)
        bad.append(0.5 if self.kind is int else math.inf)
        return bad


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values (``Options(str, {"a", "b"})``)."""

    kind: type
    values: frozenset

    def accepts(self, value) -> bool:
        return isinstance(value, self.kind) and not isinstance(value, bool) and value in self.values

    def describe(self) -> str:
        return "one of " + ", ".join(map(repr, sorted(self.values)))

    def invalid_values(self) -> list:
        return ["not-an-option", 3, None]


@dataclass(frozen=True)
class Boolean:
    """``True`` or ``False`` (not 0 or 1)."""

    def accepts(self, value) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "true or false"

    def invalid_values(self) -> list:
        return [1, "yes", None]


@dataclass(frozen=True)
class Text:
    """Any string (a path, a name); ``""`` usually means "not given"."""

    def accepts(self, value) -> bool:
        return isinstance(value, str)

    def describe(self) -> str:
        return "a string"

    def invalid_values(self) -> list:
        return [3, True, None]


def constraints_problem(constraints: dict, owner: str) -> str | None:
    """What is wrong with a detector's ``_parameter_constraints`` values (None: nothing).

    A detector written in scikit-learn's style (``{"k": [int]}``, ``[None]``) or with a bare
    ``Interval`` failed on its first value as an AttributeError inside :func:`validate_params`.
    """
    for name, allowed in constraints.items():
        if not (isinstance(allowed, (list, tuple)) and allowed and all(
                callable(getattr(c, method, None)) for c in allowed for method in ("accepts", "describe", "invalid_values"))):
            return (f"{owner}.{name}'s constraints must be a non-empty list of datacheck.validation constraints "
                    f"(Interval, Options, Boolean, Text), got {allowed!r:.60}")
    return None


def validate_params(constraints: dict, params: dict, owner: str) -> None:
    """Check ``params`` against ``constraints`` (``name -> list of constraints``, any may accept).

    Raises
    ------
    UsageError
        ``"<owner>.<name> must be <what>, got <value>"`` for the first refused value.
    """
    for name, value in params.items():
        allowed = constraints.get(name)
        if allowed is None:
            raise AssertionError(f"{owner} declares no constraint for its parameter {name!r}")
        problem = constraints_problem({name: allowed}, owner)
        if problem:
            raise AssertionError(problem)
        if not any(c.accepts(value) for c in allowed):
            what = " or ".join(c.describe() for c in allowed)
            raise UsageError(f"{owner}.{name} must be {what}, got {value!r}")


def check_int_range(name: str, value, least: int, most: int | None = None) -> None:
    """Raise :class:`UsageError` unless ``value`` is an integer in ``[least, most]`` (``most`` None: no bound)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and least <= value and (most is None or value <= most)
    if not ok:
        bounds = f"in [{least}, {most}]" if most is not None else f">= {least}"
        raise UsageError(f"{name} must be an integer {bounds}, got {value!r}")


def check_seed(value) -> None:
    """Raise :class:`UsageError` unless ``value`` is a seed: an integer in [0, 2**32 - 1]."""
    check_int_range("--seed", value, 0, SEED_MAX)


def check_callable(name: str, value, signature: str) -> None:
    """Raise :class:`UsageError` unless ``value`` is None or callable with the positional
    arguments ``signature`` lists (a ``progress`` hook, ``"progress(stage, done, total)"``):
    ``progress=3`` was called only once work had begun, a TypeError naming no argument, after
    ``fix`` had made its output folder."""
    if value is not None and not callable(value):
        raise UsageError(f"{name} must be a function {signature} or None, got {type(value).__name__} {value!r:.60}")
    if value is None:
        return
    # A hook of the wrong arity (``lambda done: ...``) failed at the first stage with the
    # user's own TypeError: check it takes as many positional arguments as ``signature`` lists.
    count = len(signature[signature.index("(") + 1:signature.rindex(")")].split(","))
    try:
        taken = inspect.signature(value)
    except (TypeError, ValueError):  # a builtin without a readable signature: called as given
        return
    try:
        taken.bind(*range(count))
    except TypeError:
        what = getattr(value, "__name__", type(value).__name__)
        raise UsageError(f"{name} must be a function {signature} or None, called with {count} arguments; "
                         f"got {what}{taken}") from None


def check_keys(path, data: dict, required: dict, optional: dict, remedy: str) -> None:
    """Refuse a JSON object (run.json, plan.json) without a ``required`` key, or with a
    ``required``/``optional`` key of another type (``key -> type or tuple of types``).

    Raises
    ------
    BadDataError
        Naming the file and the first bad key, then ``remedy``.
    """
    for key, kind in {**required, **optional}.items():
        if key not in data:
            if key in required:
                raise BadDataError(f"{path} lacks the key {key!r}; {remedy}")
            continue
        value = data[key]
        if not has_type(value, kind):  # JSON true/false is not a sample count or a seed
            raise BadDataError(f"{path}: key {key!r} must be {type_names(kind)}, not {type(value).__name__} "
                               f"{value!r:.60}; {remedy}")


#: What a path parameter's annotation may list beside ``os.PathLike``, and how a message says it.
_PATH_KINDS = {"bool": (bool, "True, False"), "str": (str, "a str"), "os.PathLike": (os.PathLike, "an os.PathLike"),
               "dict": (dict, "a dict"), "None": (type(None), "None")}


def check_path(name: str, value, kinds: tuple = (str, os.PathLike)) -> None:
    """Raise :class:`UsageError` unless ``value`` is one of ``kinds`` (keys of ``_PATH_KINDS``'
    types): ``out=3`` would otherwise reach pathlib, whose TypeError names no argument, and
    ``config=3`` would read file descriptor 3.
    """
    if isinstance(value, kinds):
        return
    names = [what for kind, what in _PATH_KINDS.values() if kind in kinds]
    what = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    got = "None" if value is None else f"{type(value).__name__} {value!r:.60}"
    raise UsageError(f"{name} must be {what}, got {got}")


def paths_checked(function):
    """Decorate a Python entry point (``datacheck.audit``, ``load``, and through
    :func:`datacheck.errors.keyword_errors` ``relabel``, ``balance``, ``augment``, ``fix``,
    ``report``) so that each argument given to a parameter annotated as a path
    (``str | os.PathLike``, maybe ``| None``, ``| dict``, ``| bool``) is checked by :func:`check_path`
    before any work. A parameter whose annotation lists another type (``Sequence[str] | str | os.PathLike``)
    is left to the function.
    """
    signature = inspect.signature(function)
    kinds = {}
    for name, parameter in signature.parameters.items():
        alternatives = [a.strip() for a in str(parameter.annotation).split("|")]
        if "os.PathLike" in alternatives and all(a in _PATH_KINDS for a in alternatives):
            kinds[name] = tuple(_PATH_KINDS[a][0] for a in alternatives)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            given = signature.bind(*args, **kwargs).arguments
        except TypeError:  # a wrong call: Python's own message says what is wrong
            given = {}
        for name, value in given.items():
            if name in kinds:
                check_path(name, value, kinds[name])
        return function(*args, **kwargs)
    return wrapper


def has_type(value, kind) -> bool:
    """``isinstance`` where a JSON boolean is never a number."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def type_names(kind) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "an object",
             list: "a list", type(None): "null"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _num(value) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(value)
