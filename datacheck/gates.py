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
        if self.percent:  # of none scored, 0 %: a check that scored nothing flagged nothing
            value = 100.0 * flagged / scored if scored else 0.0
        else:
            value = float(flagged)
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


def gate_result(gate: Gate, findings, checks: dict) -> dict:
    """What ``gate`` measured in an audit's ``findings`` and per-check ``checks`` (the summary's):
    flagged and scored counts, percent, and whether it ``failed``.

    A gate names a check, or a detector (distinct samples flagged by any of its checks), or
    ``label_fused``, which is made only where two label checks judged: with one, that check's
    flags are the label flag (``label_fused>0`` passed at 0 of 0 while ``label_issues`` flagged
    4, ``aum`` off for want of threshold samples). ``judged`` is false when every check the gate
    counts was off (a rule ``off: ...``: a model at chance, one class, no labels), ``off`` names
    them: the gate passed without a judgment, which exit status 0 alone does not tell from clean
    data."""
    counted = counted_checks(gate.check, checks)
    # A fused check (issue_score, label_fused) judged when one of the checks it fuses did.
    sources = [c for c in ((checks.get(gate.check) or {}).get("threshold") or {}).get("checks", []) if c in checks]
    off = [check for check in sources or counted if is_off(checks[check])]
    judged = not off or len(off) < len(sources or counted)
    if gate.check in checks:
        flagged, scored = checks[gate.check]["flagged"], checks[gate.check]["scored"]
    else:
        mine = findings[findings["check"].isin(counted)]
        flagged, scored = mine.loc[mine["is_issue"], "sample_id"].nunique(), mine["sample_id"].nunique()
    return {
        "gate": str(gate),
        "flagged": int(flagged),
        "scored": int(scored),
        "percent": round(100.0 * flagged / scored, 3) if scored else 0.0,
        "failed": gate.exceeded(flagged, scored),
        "judged": judged,
        **({} if judged else {"off": off}),
    }


def counted_checks(name: str, checks: dict) -> list[str]:
    """The checks of ``checks`` (the summary's) whose findings a gate on ``name`` counts."""
    from .fusion import LABEL_CHECK

    if name in checks:
        return [name]
    if name == LABEL_CHECK:  # not made: fewer than two label checks judged
        from .detectors.registry import checks_with_tag

        label_checks = set(checks_with_tag("label_evidence"))
        return [check for check in checks if check in label_checks]
    return [check for check, info in checks.items() if info.get("detector") == name]


def is_off(check) -> bool:
    """Whether a check's entry in the summary says it was off (its rule ``off: ...``): it scored
    nothing. False for anything else, a damaged entry included."""
    threshold = check.get("threshold") if isinstance(check, dict) else None
    rule = threshold.get("rule") if isinstance(threshold, dict) else None
    return isinstance(rule, str) and rule.startswith("off")


def untested_gate_notes(gate_results: list[dict]) -> list[str]:
    """A note per gate that passed without a judgment (:func:`gate_result`'s ``judged``)."""
    notes = []
    for result in gate_results:
        if not result.get("judged", True):
            off = result["off"]
            were = f"{' and '.join(off)} {'were' if len(off) > 1 else 'was'} off"
            notes.append(f"gate {result['gate']} was not tested: {were} (see {'their rules' if len(off) > 1 else 'its rule'}"
                         f"), so it passed without a judgment")
    return notes
