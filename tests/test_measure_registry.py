"""A measure is one registered handle (issue 24): the bundled ones are registered from one
module each without torch, and a measure registered from outside HRBench (its own field
rule and compute) fills a suite column through the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO
from bench import measures
from bench.measures import Measure, UnknownMeasureError, get_measure, register_measure

# the measures bench/suite.py listed by name before they were handles, in its order
OLD_COMPLEXITY_MEASURES = ("params", "flops", "formula_flops", "latency_ms", "receptive_field",
                           "contributing_fraction", "fold_equivalence_error", "attribute",
                           "output_stride", "subsamplings", "out_channels")
OLD_STRUCTURE_MEASURES = ("attribute", "output_stride", "subsamplings", "out_channels")


def test_bundled_measures_are_registered_without_torch():
    code = ("import sys, bench.suite; from bench.measures import complexity_measure_names, "
            "structure_measure_names; "
            "print(repr((complexity_measure_names(), structure_measure_names()))); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO,
                         capture_output=True, text=True).stdout
    assert out.strip() == repr((OLD_COMPLEXITY_MEASURES, OLD_STRUCTURE_MEASURES))


def test_every_bundled_module_registers_its_measures():
    owners = {name: type(get_measure(name)).__module__ for name in OLD_COMPLEXITY_MEASURES}
    assert set(owners.values()) == set(measures._MODULES)
    assert all(get_measure(name).name == name for name in OLD_COMPLEXITY_MEASURES)


def test_unknown_measure_names_the_known_ones():
    with pytest.raises(UnknownMeasureError) as err:
        get_measure("num_modulez")
    assert isinstance(err.value, KeyError)
    assert str(err.value).startswith("unknown complexity measure 'num_modulez'; known: params, flops,")


def test_a_taken_name_or_an_unnamed_measure_is_refused():
    class Params(Measure):
        name = "params"
    with pytest.raises(ValueError, match="measure 'params' is registered twice"):
        register_measure(Params())
    with pytest.raises(ValueError, match="a named Measure"):
        register_measure(Measure())
    assert type(get_measure("params")).__module__ == "bench.measures.params"


PLUGIN = '''
"""A toy measure: how many modules the built model (or a column's submodule) holds."""
from torch import nn

from bench.measures import Measure, register_measure


class NumModules(Measure):
    """``len(list(module.modules()))``: the module itself and every module below it."""
    name = "num_modules"
    submodule = True

    def check(self, col, fail):
        super().check(col, fail)
        if col.unit != "":
            fail(("unit",), "a num_modules column counts modules: leave its unit empty")

    def compute(self, req):
        col = req.col

        def count(model):
            target = model.get_submodule(col.submodule) if col.submodule else model
            return sum(1 for _ in target.modules())
        found, hit = req.cached(lambda: req.models.on_meta(req.protocol, count), "num_modules",
                                submodule=col.submodule)
        cell = req.cell()
        cell.update(raw=found, value=found)
        return cell, {"counted": col.submodule or "model"}, hit


def build(width: int = 4):
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(),
                         nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), nn.Linear(width, 1))


register_measure(NumModules())
'''

SUITE = '''\
suite: toy_measure
paper: toy
table: 1
title: A measure HRBench does not ship
columns:
  params: {label: "#Params", measure: params, tolerance: {abs: 0}}
  modules: {label: "#Modules", measure: num_modules, tolerance: {abs: 0}}
  head: {label: "#Modules (head)", measure: num_modules, submodule: "2", tolerance: {abs: 0}}
rows:
  - name: Toy-4
    model: toymeasure:build
    published: {params: 117, modules: 7, head: 3}
'''


def _bench(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HRBENCH_IMPORT")}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]), OMP_NUM_THREADS="2",
               MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "bench", "run", *args, "-q", "--no-report",
                           "--cache-dir", str(tmp_path / "cache")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_a_measure_registered_from_outside_fills_its_column_through_the_cli(tmp_path):
    (tmp_path / "toymeasure.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "toy_measure.yaml").write_text(SUITE)
    plain = _bench(tmp_path, "toy_measure.yaml")    # without its module the measure is unknown
    assert plain.returncode == 2 and "unknown measure 'num_modules'" in plain.stderr, plain.stderr
    proc = _bench(tmp_path, "toy_measure.yaml", "--import", "toymeasure", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr     # every cell as published
    record = json.loads((tmp_path / "results" / "toy_measure" / "toy-4.complexity.json").read_text())
    cells = record["cells"]
    # Sequential, Conv2d, ReLU, Sequential, AdaptiveAvgPool2d, Flatten, Linear
    assert cells["modules"] == {"unit": "", "status": "measured", "convention": None, "raw": 7,
                                "value": 7, "source": "measured"}
    assert cells["head"]["raw"] == 3                  # the inner Sequential, its pool, Flatten
    assert cells["params"]["raw"] == 3 * 4 * 9 + 4 + 4 + 1
    assert record["details"]["head"] == {"counted": "2"}


def test_a_measure_from_outside_checks_its_own_fields(tmp_path):
    (tmp_path / "toymeasure.py").write_text(textwrap.dedent(PLUGIN))
    lines = SUITE.splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.startswith("  modules:"))
    (tmp_path / "bad.yaml").write_text(SUITE.replace("measure: num_modules, tolerance",
                                                     "measure: num_modules, unit: K, tolerance"))
    proc = _bench(tmp_path, "bad.yaml", "--import", "toymeasure")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert (f"bad.yaml:{line}: columns.modules.unit: a num_modules column counts modules: "
            "leave its unit empty") in proc.stderr, proc.stderr
