"""The profile table (bench/profiles.py): one place says what each profile does."""
from __future__ import annotations

import ast

import pytest

from bench import profiles as P
from conftest import REPO


def test_the_table_says_what_each_profile_does():
    assert P.NAMES[0] == P.DEFAULT == "complexity"
    assert P.names_with("runs_jobs") == ("smoke", "short", "full", "released")
    assert P.names_with("trains") == ("smoke", "short", "full")
    assert P.names_with("compared") == ("complexity", "full", "released")
    assert P.names_with("gates_accuracy") == ("full", "released")
    assert P.names_with("generated_data") == (P.SMOKE,)
    assert P.names_with("released_weights") == (P.RELEASED,)
    assert P.names_with("reads_datasets") == ("short", "full", "released")
    assert P.PRIORITY == ("full", "released", "short", "smoke", "complexity")
    for p in P.PROFILES.values():     # a profile not compared says why
        assert bool(p.not_compared_why) == (not p.compared), p.name
    assert not P.has("nightly", "trains") and not P.has(None, "compared")
    with pytest.raises(ValueError, match="unknown profile 'nightly'; known: complexity"):
        P.get_profile("nightly")


def test_no_profile_name_is_spelled_outside_the_table():
    """No comparison with a profile name (``== "smoke"``, ``in ("full", ...)``) anywhere
    in the package but bench/profiles.py: code asks the table's flags (the command line
    takes its choices from the table too)."""
    names = set(P.NAMES)
    found = []
    for path in sorted((REPO / "bench").rglob("*.py")):
        if path.name == "profiles.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            consts = []
            if isinstance(node, ast.Compare):
                consts = [c for c in [node.left, *node.comparators]
                          if isinstance(c, ast.Constant)]
                for c in node.comparators:
                    if isinstance(c, (ast.Tuple, ast.List, ast.Set)):
                        consts += [e for e in c.elts if isinstance(e, ast.Constant)]
            hits = [c.value for c in consts if isinstance(c.value, str) and c.value in names]
            # an architecture's own "full" (HRNet's exchange mode) is not a profile
            if hits and not (path.name == "hrnet.py" and hits == ["full"]):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {hits}")
    assert not found, found
