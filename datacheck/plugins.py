"""Plugins: what installed packages add to datacheck through entry points.

Two registries read them, each with its own group: detectors (``datacheck.detectors``,
:mod:`datacheck.detectors.registry`) and embedding models (``datacheck.models``,
:mod:`datacheck.engine.models`). A plugin that fails to load or to register is a usage error
naming it: a broken plugin must not pass silently for "no such check" or "unknown model".
"""

from __future__ import annotations

from typing import Callable

from .errors import UsageError


def register_entry_points(group: str, what: str, register: Callable[[str, object], None]) -> None:
    """Load every entry point of ``group`` and call ``register(name, loaded object)`` on it.

    Parameters
    ----------
    group : str
        The entry point group (``"datacheck.detectors"``).
    what : str
        What a plugin of the group is, for messages (``"detector"``).
    register : callable
        Registers one plugin; its ``TypeError`` or ``ValueError`` (not a detector, a name
        taken) becomes a :class:`~datacheck.errors.UsageError` naming the plugin.
    """
    from importlib.metadata import entry_points

    for entry in entry_points(group=group):
        try:
            loaded = entry.load()
        except Exception as exc:  # any failure inside a third-party module
            raise UsageError(f"{what} plugin {entry.name!r} ({entry.value}) failed to load: "
                             f"{type(exc).__name__}: {exc}") from exc
        try:
            register(entry.name, loaded)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{what} plugin {entry.name!r} ({entry.value}): {exc}") from exc
