"""Benchmarks (pytest-benchmark) of the counting engines and the warm-cache suite run.

Off by default (``--benchmark-disable`` runs each body once, as a smoke test); measure
with ``python -m pytest tests/benchmarks --benchmark-enable``.
"""
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
