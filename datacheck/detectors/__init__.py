"""Detectors: one issue type per module, all registered by name.

Importing this package registers the built-in detectors.
"""

from . import aum, clusters, coreset, duplicates, image_properties, imbalance, label_issues, non_iid, off_class, outliers  # noqa: F401  (registration side effect)
from .base import AuditContext, Detector
from .registry import create_detector, list_detectors, register_detector

__all__ = ["AuditContext", "Detector", "create_detector", "list_detectors", "register_detector"]
