"""The layout: imports run one way, from the contracts up to the commands, and no package
imports one that imports it back. Read from the source (every import, also those inside
functions), not from what a test run happened to load."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mydata.config import PROJECT_ROOT

#: lowest first: a package may import those before it, never those after
LAYERS = ["schemas", "mydata", "features", "render", "models", "jobs", "dags", "cli"]
#: development and test tooling: what may import it, and it may import the runtime below it
DEVTOOLS = "mydata.devtools"
DEVTOOLS_USERS = {"cli", "tests", "benchmarks", "examples"}
PACKAGES = {*LAYERS, "tests", "benchmarks", "examples"}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def package_of(module: str) -> str:
    return DEVTOOLS if module == DEVTOOLS or module.startswith(DEVTOOLS + ".") else module.split(".")[0]


def graph(root: Path = PROJECT_ROOT) -> dict[str, dict[str, set[str]]]:
    """package -> the project packages it imports -> the files that do."""
    edges: dict[str, dict[str, set[str]]] = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            source = package_of(".".join(path.relative_to(root).with_suffix("").parts))
            for module in imports(path):
                target = package_of(module)
                if target in PACKAGES | {DEVTOOLS} and target != source:
                    edges.setdefault(source, {}).setdefault(target, set()).add(str(path.relative_to(root)))
    return edges


def rank(package: str) -> int:
    return LAYERS.index("mydata") if package == DEVTOOLS else LAYERS.index(package)


def test_every_layer_imports_only_the_layers_below_it():
    upward = [f"{source} imports {target} ({', '.join(sorted(files))})"
              for source, targets in graph().items() if source in LAYERS
              for target, files in targets.items() if target in LAYERS and rank(target) > rank(source)]
    assert upward == []


def test_only_the_cli_tests_benchmarks_and_examples_import_the_devtools():
    users = {source: sorted(targets[DEVTOOLS]) for source, targets in graph().items() if DEVTOOLS in targets}
    assert set(users) - DEVTOOLS_USERS == set(), users
    assert all(rank(target) <= rank("mydata") for target in graph().get(DEVTOOLS, {}) if target in LAYERS)


def test_no_package_imports_one_that_imports_it_back():
    edges = graph()
    circles = sorted({tuple(sorted((a, b))) for a, targets in edges.items() for b in targets
                      if a in edges.get(b, {})})
    assert circles == []


@pytest.mark.parametrize("package", ["jobs", "features", "models", "render", "cli", "dags"])
def test_no_engine_is_named_outside_the_engines_and_the_dialects(package):
    """Engine differences live in mydata/engines and schemas/dialects.py: no job asks which engine it runs on."""
    branches = []
    for path in (PROJECT_ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(
                    isinstance(side, ast.Constant) and side.value in ("spark", "duckdb")
                    for side in [node.left, *node.comparators]):
                branches.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    assert branches == []


def test_the_rule_can_fail(tmp_path):
    """The checker sees an upward import inside a function, and a circle."""
    for package, body in {"schemas": "def f():\n    from jobs import x\n", "jobs": "import schemas.y\n"}.items():
        (tmp_path / package).mkdir()
        (tmp_path / package / "m.py").write_text(body)
    edges = graph(tmp_path)
    assert edges["schemas"] == {"jobs": {"schemas/m.py"}} and "schemas" in edges["jobs"]
