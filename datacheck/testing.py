"""Utilities for people who write detectors: a context from arrays, and the conformance check.

>>> from datacheck.testing import check_detector          # doctest: +SKIP
>>> check_detector(MyCheck(), make_context(manifest, outputs=outputs))   # doctest: +SKIP

:func:`check_detector` is what datacheck's own test suite runs on every built-in detector
(scikit-learn's ``check_estimator`` idea): a detector that passes it runs in ``datacheck
audit``, is configurable from ``[detectors.<name>]``, and reaches relabel, balance and the
report through its tags.
"""

from __future__ import annotations

import inspect
import pickle

import numpy as np
import pandas as pd

from .detectors.base import TAGS, AuditContext, Detector
from .errors import UsageError
from .features import FEATURES, FeatureStore
from .manifest import Manifest
from .schema import FINDINGS_COLUMNS


def make_context(manifest: Manifest, *, image_stats: pd.DataFrame | None = None, outputs=None, aum=None,
                 only: set | frozenset | None = None, knn_k: int = 10, seed: int = 0, device: str = "cpu") -> AuditContext:
    """An audit context over ready values, as the pipeline builds it.

    Parameters
    ----------
    manifest : Manifest
    image_stats : pandas.DataFrame, optional
        Per-image statistics (:func:`datacheck.engine.loader.compute_image_stats`); their
        ``thumbnail``, ``descriptor`` and ``quarter`` columns are offered as the ``thumbnails``,
        ``thumbnail_descriptors`` and ``thumbnail_quarters`` features.
    outputs : datacheck.features.model.ModelOutputs, optional
        Split into ``model_outputs``, ``labels``, ``pred_probs``, ``softmax``, ``embeddings``
        and the ``knn_graph`` (``knn_k`` neighbours) of the embeddings.
    aum : datacheck.features.model.AumOutputs, optional
    only : set of str, optional
        Offer only these features (the rest are left out, so reading them fails).
    """
    from .features.images import split_arrays
    from .features.knn import build_knn_graph

    store = FeatureStore()
    values = {"image_stats": image_stats, "aum": aum}
    if image_stats is not None and "thumbnail" in image_stats:  # as compute_image_stats returns them
        values["image_stats"], arrays = split_arrays(image_stats)
        values.update(arrays)
    if outputs is not None:
        values.update(model_outputs=outputs, labels=outputs.label_ids, pred_probs=outputs.pred_probs,
                      softmax=outputs.softmax)
        if outputs.embeddings is not None:
            values["embeddings"] = outputs.embeddings
    for name, value in values.items():
        if value is not None and (only is None or name in only):
            store.provide(name, lambda value=value: value, timed=False)
    if outputs is not None and outputs.embeddings is not None and (only is None or "knn_graph" in only):
        store.provide("knn_graph", lambda: build_knn_graph(outputs.embeddings, knn_k, device), timed=False)
    return AuditContext(manifest, run_id="test", seed=seed, device=device, features=store)


def check_detector(detector: Detector, context_factory) -> pd.DataFrame:
    """Check that ``detector`` follows the detector protocol; return its findings.

    Parameters
    ----------
    detector : Detector
        A configured instance (its defaults are checked through its class).
    context_factory : callable
        ``context_factory(only)`` -> :class:`AuditContext` offering the features in ``only``
        (e.g. ``lambda only: make_context(manifest, outputs=..., only=only)``); the detector
        is run on a context that offers only what it declares.

    Raises
    ------
    AssertionError
        Naming the first rule broken.
    UsageError
        ``detector`` is not a Detector instance (a class, a name), or ``context_factory`` is
        not callable.
    """
    if not isinstance(detector, Detector):
        hint = (f" ({detector.__name__}()), got the class {detector.__name__}" if isinstance(detector, type)
                else f", got {type(detector).__name__} {detector!r:.60}")
        raise UsageError(f"detector must be a configured Detector instance{hint}")
    if not callable(context_factory):
        raise UsageError(f"context_factory must be a function context_factory(only) -> AuditContext, "
                         f"got {type(context_factory).__name__} {context_factory!r:.60}")
    cls = type(detector)
    # scikit-learn style: __init__ only stores keyword parameters, under their own names, with defaults
    # A detector without parameters may leave out __init__: object's (*args, **kwargs) is no parameter
    signature = inspect.signature(cls.__init__) if cls.__init__ is not object.__init__ else None
    params = {n: p for n, p in signature.parameters.items() if n != "self"} if signature else {}
    assert all(p.kind == p.KEYWORD_ONLY and p.default is not p.empty for p in params.values()), \
        f"{cls.name}: parameters must be keyword-only with defaults"
    assert cls().get_params() == {n: p.default for n, p in params.items()}, f"{cls.name}: __init__ must store its parameters"
    assert not [a for a in vars(cls()) if a.endswith("_")], f"{cls.name}: learned attributes are set by run, not __init__"
    assert cls.name and cls.checks, "a detector needs a name and its checks"
    requires, optional = detector.inputs()
    assert requires | optional <= set(FEATURES), f"{cls.name}: unknown features {sorted((requires | optional) - set(FEATURES))}"
    for check in cls.checks:
        assert cls.tags_of(check) <= set(TAGS), f"{cls.name}: unknown tags on {check}"
    # every parameter has constraints, and every value they refuse is a UsageError naming it
    from .validation import constraints_problem

    problem = constraints_problem(cls._parameter_constraints, cls.name)
    assert problem is None, problem
    for name in params:
        assert name in cls._parameter_constraints, f"{cls.name}.{name} has no constraint"
        for bad in _invalid_values(cls._parameter_constraints[name]):
            try:
                cls(**{name: bad}).validate_params()
            except UsageError as exc:
                assert f"{cls.name}.{name}" in str(exc), f"the error for {name}={bad!r} does not name it: {exc}"
            else:
                raise AssertionError(f"{cls.name}.{name}={bad!r} was accepted")
    detector.validate_params()

    # run with only the declared inputs; a read of anything else fails
    first = detector.run(context_factory(requires | optional))
    assert list(first.columns) == FINDINGS_COLUMNS, f"{cls.name}: findings columns {list(first.columns)}"
    assert set(first["check"].dropna()) <= set(cls.checks), f"{cls.name}: undeclared checks"
    assert first["score"].between(0, 1).all(), f"{cls.name}: scores outside [0, 1]"
    assert first["is_issue"].dtype == bool
    assert isinstance(detector.thresholds_, dict)
    # running changes no parameter, and a second run on a fresh context is identical (seeded)
    before = detector.get_params()
    second = detector.run(context_factory(requires | optional))
    try:
        pd.testing.assert_frame_equal(first, second)
    except AssertionError as exc:
        # the rule first, in one sentence; pandas' diff (many lines) only after it, shortened
        diff = " ".join(str(exc).split())
        raise AssertionError(
            f"{cls.name}: two runs on the same input and seed gave different findings; a detector "
            f"must be deterministic (draw random numbers from ctx.seed) (first difference: {diff:.200})") from None
    assert detector.get_params() == before
    # it pickles (engines ship detectors to workers)
    assert pickle.loads(pickle.dumps(detector)).get_params() == detector.get_params()
    return first


def _invalid_values(constraints: list) -> list:
    """Values refused by every constraint of a parameter (a value one accepts is not invalid)."""
    candidates = [v for c in constraints for v in c.invalid_values()]
    return [v for v in candidates if not any(c.accepts(v) for c in constraints) and not _is_nan(v)]


def _is_nan(value) -> bool:
    return isinstance(value, float) and np.isnan(value)
