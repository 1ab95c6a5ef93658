"""No module imports from a layer above its own (issue 24). Layers, low to high; an import
across packages must point down this list (the registry's lazy plug-in imports of
``bench.models`` and of ``--import`` modules go through importlib, not an import statement)."""
from __future__ import annotations

import ast

from conftest import REPO

LAYERS = ("names", "paths", "yaml_limits", "env", "records", "results", "profiles", "compare", "protocol",
          "registry", "checkpoints", "complexity", "models", "data", "evaluation", "training",
          "tasks", "measures", "job", "suite", "verdicts", "launch", "runner", "report", "ci",
          "status", "pipeline", "cli", "__main__")


def _imports():
    for path in sorted((REPO / "bench").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        module = ".".join(parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = parts if is_pkg else parts[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "bench":
                target = node.module
            else:
                continue
            yield module, target, node.lineno


def _layer(module: str):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "bench" else None


def test_no_import_points_up_the_layers():
    found = set()
    for module, target, line in _imports():
        src, dst = _layer(module), _layer(target)
        if src is None or dst is None or src == dst or src not in LAYERS or dst not in LAYERS:
            continue
        if LAYERS.index(dst) > LAYERS.index(src):
            found.add((module, target))
    assert not found, sorted(found)


def test_every_package_is_in_a_layer():
    packages = {p.name if p.is_dir() else p.stem for p in (REPO / "bench").iterdir()
                if (p.is_dir() and (p / "__init__.py").exists())
                or (p.suffix == ".py" and p.stem != "__init__")}
    assert packages <= set(LAYERS), sorted(packages - set(LAYERS))
