"""Import structure: no cycles between modules, and no heavy library where none is needed."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, SAMPLE_DATA

PACKAGE = REPO_ROOT / "datacheck"
HEAVY = ("torch", "torchvision", "cleanlab", "sklearn", "scipy", "faiss")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path) -> set[str]:
    """datacheck modules imported when ``path`` is imported (module level, not inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("datacheck")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("datacheck"):
                found.add(module)
                found |= {f"{module}.{a.name}" for a in node.names}
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


def test_no_import_cycles():
    graph = {_module_name(p): _top_level_imports(p) for p in PACKAGE.rglob("*.py")}
    # a package's __init__ importing its own submodules (registration) is not a cycle back into it
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):
                raise AssertionError("import cycle: " + " -> ".join(path + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_layers_point_one_way():
    """engine (compute) and features (inputs) never reach up into detectors, actions, reporting or the CLI."""
    upper = ("datacheck.detectors", "datacheck.actions", "datacheck.reporting", "datacheck.cli", "datacheck.pipeline",
             "datacheck.api", "datacheck.audit_run")
    for path in list((PACKAGE / "engine").rglob("*.py")) + list((PACKAGE / "features").rglob("*.py")):
        bad = [m for m in _top_level_imports(path) if m.startswith(upper)]
        assert not bad, f"{_module_name(path)} imports {bad}"


def _modules_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + f"\nimport sys, json; print(json.dumps([m for m in {HEAVY!r} "
                          "if m in sys.modules]))"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_and_import_are_light():
    assert _modules_after("import datacheck") == []
    assert _modules_after("from datacheck.cli import cli\ntry:\n    cli(['--help'])\nexcept SystemExit:\n    pass") == []


@pytest.mark.parametrize("checks", [["image_properties", "exact_duplicates", "class_imbalance"]])
def test_an_image_only_audit_never_imports_heavy_libraries(checks, tmp_path):
    code = (f"import datacheck\nr = datacheck.audit({str(SAMPLE_DATA)!r}, checks={checks!r}, workers=2)\n"
            "assert r.summary['samples'] > 500")
    assert _modules_after(code) == []
    # near duplicates and leakage without embedding candidates need none either, but faiss
    # (a tenth of a second to import), whose flat index finds their candidates
    code = (f"import datacheck\nr = datacheck.audit({str(SAMPLE_DATA)!r}, workers=0, "
            f"config={str(REPO_ROOT / 'datacheck' / 'presets' / 'quick.toml')!r})\nassert r.summary['checks']['split_leakage']['flagged'] > 0")
    assert _modules_after(code) == ["faiss"]
