"""Benchmarks (pytest-benchmark) of the counting engines, the cold complexity run of the
heaviest suites (issue 15; numbers in docs/benchmarks.md) and the warm-cache suite run.

Off by default (``--benchmark-disable`` runs each body once, as a smoke test); measure
with ``python -m pytest tests/benchmarks --benchmark-enable``.
"""
import itertools

import pytest

import bench
from bench.complexity import count_flops
from bench.complexity.cache import MeasurementCache
from bench.runner import run_suite
from conftest import REPO


@pytest.mark.parametrize("convention", ["lite_hrnet_paper", "fvcore"])
def test_count_litehrnet_18(benchmark, convention):
    model = bench.create_model("litehrnet_18")
    report = benchmark(count_flops, model, (3, 256, 192), convention)
    assert report.total > 0


def test_warm_cache_table1(benchmark, tmp_path):
    cache = MeasurementCache(tmp_path / "cache")
    suite = REPO / "suites" / "lite_hrnet_table1.yaml"
    run_suite(suite, results_dir=tmp_path / "results", cache=cache)   # fill the cache
    run = benchmark(run_suite, suite, results_dir=tmp_path / "results", cache=cache)
    assert all(c["source"] == "cache" for r in run.records for c in r["cells"].values()
               if c["status"] == "measured")


# the suites that took longest cold before counting moved to the meta device
HEAVIEST = ["gsto_table7", "gsto_table4", "gsto_table6", "gsto_table1", "lite_hrnet_table3",
            "flattenet_equivalence"]


@pytest.mark.parametrize("name", HEAVIEST)
def test_cold_complexity(benchmark, tmp_path, name):
    """One suite's complexity from an empty measurement cache, each round a fresh one."""
    if benchmark.disabled and name != HEAVIEST[2]:
        # the default test run (benchmarks off) checks the path once, on the quickest
        pytest.skip("cold suite runs are measured with --benchmark-enable")
    rounds = itertools.count()

    def fresh_cache():
        folder = tmp_path / str(next(rounds))
        return (REPO / "suites" / f"{name}.yaml",), {
            "results_dir": folder / "results", "cache": MeasurementCache(folder / "cache"),
            "log": lambda *a, **k: None}

    run = benchmark.pedantic(run_suite, setup=fresh_cache, rounds=3, iterations=1)
    cells = [c for r in run.records for c in r["cells"].values()]
    assert cells and not [c for c in cells if c["status"] == "error"]
    # measured now, not read from a cache (a row repeating a model may hit its own entry)
    assert any(c.get("source") == "measured" for c in cells)
