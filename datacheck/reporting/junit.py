"""``audit --junit FILE``: the audit as a JUnit XML report, so CI systems show it natively.

One test case per check (class name = its detector); a case fails when a ``--fail-on``
gate on that check was exceeded, or a gate on its detector to which it contributed flagged
samples; a check that was off (its rule ``off: ...``: a model at chance, one class) is skipped
with the reason, and names the gates on it that were not tested. Other checks pass and carry
their flagged count in ``system-out``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ..gates import is_off
from ..runs import atomic_write

# Characters XML 1.0 does not allow, escaped or not: control characters other than tab and
# newlines, and U+FFFE/U+FFFF. File names may hold them (Linux allows any byte but "/" and NUL).
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def junit_xml(summary: dict) -> str:
    """The JUnit XML text for an audit ``summary`` (the content of ``summary.json``)."""
    failed = [g for g in summary["gates"] if g["failed"]]
    checks = summary["checks"]
    suite = ET.Element("testsuite", {
        "name": f"datacheck audit {summary['run_id']}",
        "tests": str(len(checks)),
        "failures": "0",
        "errors": "0",
        "time": f"{summary['timings_s'].get('total', 0):.3f}",
    })
    properties = ET.SubElement(suite, "properties")
    for name, value in (("dataset", summary["dataset"]), ("samples", summary["samples"]),
                        ("exit_status", summary["exit_status"])):
        ET.SubElement(properties, "property", {"name": name, "value": str(value)})
    failures = skipped = 0
    for check, info in checks.items():
        case = ET.SubElement(suite, "testcase", {
            "classname": f"datacheck.{info['detector']}",
            "name": check,
            "time": f"{summary['timings_s'].get(info['detector'], 0):.3f}",
        })
        # A gate on a whole detector fails the cases of its checks that contributed to it.
        mine = [g for g in failed if _gate_check(g["gate"]) == check
                or (_gate_check(g["gate"]) == info["detector"] and info["flagged"])]
        if mine:
            failures += 1
            message = "; ".join(f"{g['gate']}: flagged {g['flagged']} of {g['scored']} ({g['percent']:.1f}%)"
                                for g in mine)
            failure = ET.SubElement(case, "failure", {"message": message, "type": "GateFailed"})
            failure.text = "worst: " + ", ".join(info["worst"])
        elif is_off(info):  # it did not judge: skipped, not passed (a gate on it was not tested)
            untested = [g["gate"] for g in summary["gates"] if check in g.get("off", ())]
            gate = f" (gate{'s' if len(untested) > 1 else ''} {', '.join(untested)} not tested)" if untested else ""
            ET.SubElement(case, "skipped", {"message": f"{info['threshold']['rule']}{gate}"})
            skipped += 1
        ET.SubElement(case, "system-out").text = (
            f"flagged {info['flagged']} of {info['scored']} ({info['percent']:.1f}%)")
    suite.set("failures", str(failures))
    if skipped:
        suite.set("skipped", str(skipped))
    ET.indent(suite)
    text = ET.tostring(suite, encoding="unicode")
    # ElementTree writes such characters as they are, which no XML parser (CI's included) reads:
    # a sample id "scan\x0c.jpg" is shown with the character spelled out instead.
    text = _NOT_XML.sub(lambda m: repr(m.group())[1:-1], text)
    # A carriage return in text is allowed but read back as "\n" (XML parsers normalise line
    # ends): as a character reference it stays itself. (Attributes are escaped by ElementTree.)
    text = text.replace("\r", "&#13;")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n"


def write_junit(summary: dict, path: str | Path) -> Path:
    text = junit_xml(summary)
    return atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _gate_check(gate: str) -> str:
    """The check or detector a gate's text (``"dark>5%"``) names."""
    return gate.split(">", 1)[0]
