"""datacheck: audit labeled datasets (images first) and repair them.

>>> import datacheck
>>> result = datacheck.audit("sample_data", out="runs/sample")   # doctest: +SKIP
>>> result.summary["checks"]["near_duplicates"]["flagged"]        # doctest: +SKIP

Names are imported on first use, so ``datacheck --help`` does not pay for pandas or torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "audit": "datacheck.pipeline",
    "AuditResult": "datacheck.pipeline",
    "load_manifest": "datacheck.manifest",
    "Manifest": "datacheck.manifest",
    "DatacheckError": "datacheck.errors",
    "BadDataError": "datacheck.errors",
    "UsageError": "datacheck.errors",
    "ExitStatus": "datacheck.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'datacheck' has no attribute {name!r}")
