"""The feature stage: every input a detector can read, by name, computed at most once per audit.

A *feature* is a named, typed input (the table :data:`FEATURES` lists them all). An audit
registers a provider for each feature it can offer (a folder of images offers image
statistics, pixels and, by training, model outputs; arrays offer what they hold); a
detector declares the features it ``requires`` and may use (``optional``), and reads them
through a :class:`FeatureView` that holds only those, so reading an undeclared one fails.
Nothing is computed until a detector that needs it runs, and nothing twice.

Per-sample providers are pure batch functions (``dict of arrays -> dict of arrays``:
:func:`datacheck.engine.image_stats.analyze_batch`, the fold models' prediction), so an
engine can run them anywhere; cross-sample features (model training, the kNN graph) are
built on the gathered arrays. Both are cached by content hash (``runs.cache_file``).

>>> store = FeatureStore.from_values(embeddings=None)
>>> store.available()
['embeddings']
>>> store.view({"labels"}).get("embeddings")
Traceback (most recent call last):
...
datacheck.features.UndeclaredInput: 'embeddings' is not among the declared inputs ('labels'); add it to requires or optional
"""

from __future__ import annotations

import sys
import time
from typing import Callable

#: Every feature a detector can declare, with what it holds (row-aligned with the manifest).
FEATURES = {
    "image_stats": "pandas.DataFrame, one row per sample: decode error, size, exposure, blur, speckle, "
                   "entropy statistics, pixel hash (datacheck.engine.image_stats)",
    "thumbnails": "ndarray (N, 64, 64, 3) uint8: each image's RGB thumbnail, zeros where unreadable "
                  "(a memory map when the audit has a run folder)",
    "thumbnail_descriptors": "ndarray (N, 120) float32: each thumbnail's translation-tolerant descriptor "
                             "(datacheck.engine.similarity.spectral_descriptors), zeros where unreadable; "
                             "a memory map as the thumbnails are",
    "thumbnail_quarters": "ndarray (N, 16, 16, 3) uint8: each thumbnail reduced 4x (2x2 means twice), "
                          "zeros where unreadable; a memory map as the thumbnails are",
    "pixels": "tuple (pixels (N, 3, S, S) uint8 memory map, readable (N,) bool, content key)",
    "model_outputs": "datacheck.features.model.ModelOutputs: the bundle the next four come from "
                     "(what a run keeps in artifacts/model_outputs.npz)",
    "labels": "datacheck.features.model.Labels: class names and each row's class id (-1: not scored)",
    "pred_probs": "ndarray (N, C) float32: out-of-fold probabilities, NaN rows where not scored",
    "softmax": "ndarray (N, C) float32 or None: the trained models' own out-of-fold softmax",
    "embeddings": "ndarray (N, D) float32 or None: one embedding space for every sample, NaN rows "
                  "where not embedded",
    "aum": "datacheck.features.model.AumOutputs: area under the margin and its cut per sample",
    "orientation": "datacheck.features.model.Orientation: cross-fitted orientation surprise per sample "
                   "(datacheck.engine.orientation), or why it was not measured",
    "knn_graph": "datacheck.features.knn.KnnGraph: the k nearest neighbours of every embedded "
                 "sample, built once and shared",
}


class UndeclaredInput(AssertionError):
    """A detector read a feature it did not declare (a bug in the detector)."""


class FeatureStore:
    """The providers of one audit, and their values once computed.

    Parameters
    ----------
    timings : dict, optional
        Seconds spent computing each feature are recorded here under the feature's name: its
        own, without those of the features it read and computed on the way (the kNN graph's
        do not include training the model whose embeddings it reads), so that the stages'
        seconds add up to no more than the audit's.
    memory : dict, optional
        The process's peak resident memory (MB, :func:`peak_rss_mb`) once each feature is
        computed, under the feature's name: which stage raised the peak.
    """

    def __init__(self, timings: dict | None = None, memory: dict | None = None):
        self._providers: dict[str, Callable] = {}
        self._values: dict = {}
        self.timings = timings if timings is not None else {}
        self.memory = memory if memory is not None else {}
        self._nested: list[float] = []  # per feature being computed, the seconds of those it computed
        #: Seconds spent computing features not read by another feature: a detector's own time is
        #: its wall time less what this grew by while it ran (an optional input it read).
        self.seconds_computing = 0.0

    @classmethod
    def from_values(cls, **values) -> "FeatureStore":
        """A store of ready values (tests, notebooks: arrays already in memory)."""
        store = cls()
        for name, value in values.items():
            store.provide(name, lambda value=value: value, timed=False)
        return store

    def provide(self, name: str, compute: Callable, *, timed: bool = True) -> None:
        """Offer feature ``name``, computed by ``compute()`` on first use."""
        if name not in FEATURES:
            raise AssertionError(f"unknown feature {name!r}; add it to datacheck.features.FEATURES")
        self._providers[name] = compute if not timed else self._timed(compute, name)

    def _timed(self, compute: Callable, name: str) -> Callable:
        def run():
            self._nested.append(0.0)
            t0 = time.perf_counter()
            try:
                value = compute()
            finally:
                elapsed, nested = time.perf_counter() - t0, self._nested.pop()
                if self._nested:
                    self._nested[-1] += elapsed
                else:
                    self.seconds_computing += elapsed
            self.timings[name] = round(elapsed - nested, 3)
            self.memory[name] = peak_rss_mb()
            return value

        return run

    def available(self) -> list[str]:
        """Names of the features this audit can offer, sorted."""
        return sorted(self._providers)

    def get(self, name: str):
        """The value of feature ``name``, computed on first use."""
        if name not in self._values:
            if name not in self._providers:
                raise UndeclaredInput(f"this audit has no {name!r} input")
            self._values[name] = self._providers[name]()
        return self._values[name]

    def computed(self, name: str) -> bool:
        return name in self._values

    def view(self, allowed) -> "FeatureView":
        """The features named in ``allowed`` and nothing else."""
        return FeatureView(self, frozenset(allowed))


class FeatureView:
    """What one detector may read: its declared features (see :class:`FeatureStore`)."""

    def __init__(self, store: FeatureStore, allowed: frozenset):
        self._store = store
        self._allowed = allowed

    def get(self, name: str):
        if name not in self._allowed:
            declared = ", ".join(repr(n) for n in sorted(self._allowed)) or "none"
            raise UndeclaredInput(f"{name!r} is not among the declared inputs ({declared}); "
                                  "add it to requires or optional")
        return self._store.get(name)

    def has(self, name: str) -> bool:
        """Whether this audit offers the declared feature ``name`` (for optional inputs)."""
        if name not in self._allowed:
            self.get(name)  # raises: asking about an undeclared input is the same bug
        return name in self._store.available()


def peak_rss_mb() -> float | None:
    """This process's peak resident set size so far in MB (None where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS, KiB elsewhere
