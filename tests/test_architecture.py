"""The dependency rule of DESIGN.md, enforced: which top-level package may import which."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("filters", "network", "master_console", "slave_arm", "sim", "benchmarks")
ALLOWED = {
    "filters": set(),
    "network": set(),
    "master_console": {"filters", "network"},
    "slave_arm": {"network"},
    "sim": {"slave_arm"},
    "benchmarks": set(PACKAGES),
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(n.split(".")[0] for n in names)
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_dependency_rule(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for other in imported_packages(path) - ALLOWED[package] - {package}:
            bad.append(f"{path.relative_to(ROOT)} imports {other}")
    assert not bad, "DESIGN.md's dependency rule is broken:\n" + "\n".join(bad)
