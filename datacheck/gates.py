"""``--fail-on`` gates: ``"near_duplicates>0,split_leakage>0,label_issues>5%"``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsageError

# ASCII only: \d would also take other scripts' digits ("corrupt>\u0663", an Arabic-Indic 3),
# which float() reads as a number nobody typed on purpose.
_GATE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|>)\s*(\d+(?:\.\d+)?)\s*(%?)\s*$", re.ASCII)


@dataclass(frozen=True)
class Gate:
    """One gate: fail when ``check`` flags more than ``limit`` samples (or percent of those scored)."""

    check: str
    op: str
    limit: float
    percent: bool

    def __str__(self) -> str:
        return f"{self.check}{self.op}{self.limit:g}{'%' if self.percent else ''}"

    def exceeded(self, flagged: int, scored: int) -> bool:
        value = 100.0 * flagged / scored if self.percent else float(flagged)
        if self.percent and scored == 0:
            value = 0.0
        return value > self.limit if self.op == ">" else value >= self.limit


def parse_gates(spec: str | None, option: str = "--fail-on", where: str = "") -> list[Gate]:
    """Parse a comma-separated gate list; raise :class:`UsageError` on bad syntax, naming
    ``option`` and, for a config file's value, ``where`` it is (" in FILE")."""
    gates = []
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        match = _GATE.match(part)
        if not match:
            raise UsageError(f"bad {option} gate {part.strip()!r}{where}; expected CHECK>N or CHECK>N% (e.g. near_duplicates>0,dark>5%)")
        check, op, limit, percent = match.groups()
        if percent and float(limit) > 100:
            raise UsageError(f"bad {option} gate {part.strip()!r}{where}: a percentage cannot exceed 100")
        _check_known(check, part.strip(), option, where)
        gates.append(Gate(check, op, float(limit), bool(percent)))
    return gates


def _check_known(name: str, gate: str, option: str, where: str) -> None:
    """A gate names a check (``dark``) or a detector (``image_properties``); refuse anything else,
    listing the check names, which are what most gates use (a detector's checks may differ from
    its name)."""
    from .detectors.registry import list_checks, list_detectors
    from .fusion import CHECK as FUSED_CHECK, LABEL_CHECK

    checks, detectors = sorted([*list_checks(), LABEL_CHECK, FUSED_CHECK]), list_detectors()
    if name in checks or name in detectors:
        return
    hint = f" (did you mean {name.lower()!r}?)" if name.lower() in checks + detectors else ""
    others = [d for d in detectors if d not in checks]  # a detector named like its one check is listed once
    raise UsageError(f"bad {option} gate {gate!r}{where}: unknown check {name!r}{hint}; checks: {', '.join(checks)}; "
                     f"or a detector (its checks together): {', '.join(others)}")
