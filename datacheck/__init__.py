"""datacheck: audit labeled datasets (images first) and repair them.

>>> import datacheck
>>> result = datacheck.audit("sample_data", out="runs/sample")   # doctest: +SKIP
>>> result.issues("near_duplicates")                              # doctest: +SKIP
>>> result = datacheck.audit(pred_probs=probs, labels=labels)     # doctest: +SKIP  (in memory)

Names are imported on first use, so ``datacheck --help`` does not pay for pandas or torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "audit": "datacheck.api",
    "load": "datacheck.api",
    "AuditResult": "datacheck.pipeline",
    "relabel": "datacheck.actions.relabel",
    "balance": "datacheck.actions.balance",
    "BalanceOptions": "datacheck.actions.balance",
    "augment": "datacheck.actions.augment",
    "fix": "datacheck.actions.fix",
    "FixResult": "datacheck.actions.fix",
    "report": ("datacheck.reporting.html", "write_report"),
    "list_detectors": "datacheck.detectors.registry",
    "create_detector": "datacheck.detectors.registry",
    "register_detector": "datacheck.detectors.registry",
    "Detector": "datacheck.detectors.base",
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
        module, attribute = _EXPORTS[name] if isinstance(_EXPORTS[name], tuple) else (_EXPORTS[name], name)
        if module.startswith("datacheck.detectors"):
            import_module("datacheck.detectors")  # registers the built-in detectors
        return getattr(import_module(module), attribute)
    raise AttributeError(f"module 'datacheck' has no attribute {name!r}")
