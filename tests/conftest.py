"""Shared fixtures: a measurement cache shared by the whole session (so the suite-level
tests measure each model once), golden-value recording behind an explicit flag."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--record-golden", action="store_true", default=False,
                     help="re-record golden values (exact parameter counts) instead of "
                          "asserting them; review the diff before committing")


@pytest.fixture(scope="session")
def record_golden(request) -> bool:
    return request.config.getoption("--record-golden")


@pytest.fixture(scope="session")
def golden(record_golden):
    """golden(name, key, value): assert value == recorded, or record it with the flag."""
    store: dict[str, dict] = {}

    def check(name: str, key: str, value):
        path = GOLDEN / f"{name}.json"
        if name not in store:
            store[name] = json.loads(path.read_text()) if path.is_file() else {}
        if record_golden:
            store[name][key] = value
            path.write_text(json.dumps(store[name], indent=1, sort_keys=True) + "\n")
            return
        assert key in store[name], f"no golden value {name}/{key}; run pytest --record-golden"
        assert value == store[name][key], f"{name}/{key}: {value} != golden {store[name][key]}"

    return check


@pytest.fixture(scope="session")
def measurement_cache(tmp_path_factory):
    from bench.complexity.cache import MeasurementCache
    return MeasurementCache(tmp_path_factory.mktemp("complexity-cache"))
