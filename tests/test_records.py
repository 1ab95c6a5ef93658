"""Typed result records (bench.records): every committed record reads under the current
schema, version 1 migrates to 2 as documented, and a writer cannot drift from its
readers (an unknown field is refused before anything is written)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import results as res
from bench.records import (SCHEMA_VERSION, Cell, RecordError, RowRecord, RunRecord, as_cell,
                           migrate, validated)
from conftest import REPO

COMMITTED = sorted(p for p in (REPO / "results").rglob("*.json") if "baselines" not in p.parts)


def test_there_are_committed_records_of_both_kinds():
    kinds = {"runs" in p.parts for p in COMMITTED}
    assert kinds == {True, False} and len(COMMITTED) > 200


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(REPO / "results")))
def test_every_committed_record_reads_under_the_current_schema(path):
    raw = json.loads(path.read_text())
    record = res.read_record(path)
    assert record["schema_version"] == SCHEMA_VERSION
    typed = (RunRecord if "runs" in path.parts else RowRecord).model_validate(record)
    # the migration changes nothing but what it documents
    changed = {k for k in set(raw) | set(record) if raw.get(k) != record.get(k)}
    assert changed <= {"schema_version", "task", "protocol"}, changed
    if "runs" in path.parts:
        assert typed.task == (raw.get("task") or "pose")
        assert record["protocol"]["task"] == typed.task
    else:
        assert changed <= {"schema_version"}
        assert all(isinstance(c, Cell) for c in typed.cells.values())


def test_version_1_run_records_without_a_task_are_pose_runs():
    v1 = {"schema_version": 1, "kind": "run", "protocol": {"name": "lspet_128x128_cpu",
                                                          "dataset": "lsp"},
          "status": "ok", "metrics": {"PCK@0.2": 50.0}}
    assert migrate(v1) == {**v1, "schema_version": 2, "task": "pose",
                           "protocol": {"name": "lspet_128x128_cpu", "dataset": "lsp",
                                        "task": "pose"}}
    seg = {"schema_version": 1, "kind": "run", "task": "segmentation",
           "protocol": {"name": "p", "task": "segmentation"}}
    assert migrate(seg) == {**seg, "schema_version": 2}


@pytest.mark.parametrize("version", [None, 0, SCHEMA_VERSION + 1, "1"])
def test_an_unknown_version_names_the_file(tmp_path, version):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema_version": version, "status": "ok"}))
    with pytest.raises(RecordError, match=rf"{path}: schema_version {version!r}, this HRBench "
                                          rf"reads 1 to {SCHEMA_VERSION}"):
        res.read_record(path)


def test_a_record_on_disk_of_version_1_is_read_as_the_current_version(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"schema_version": 1, "kind": "run", "status": "ok",
                                "protocol": {"name": "x"}, "metrics": {"AP": 70.0}}))
    record = res.read_record(path)
    assert record["schema_version"] == SCHEMA_VERSION and record["task"] == "pose"
    assert res.run_metric(record, "AP", "the run") == (70.0, None)


def test_a_writer_cannot_add_a_field_its_readers_do_not_know(tmp_path):
    row = {"suite": "s", "row": "R", "row_key": "r", "profile": "complexity",
           "cells": {"params": {"unit": "M", "status": "measured", "value": 1.5, "raw": 1500000}}}
    good = res.write_record(tmp_path / "good.json", row)
    assert json.loads(good.read_text())["schema_version"] == SCHEMA_VERSION
    bad = {**row, "cells": {"params": {**row["cells"]["params"], "stdev": 0.1}}}
    with pytest.raises(RecordError, match=r"(?s)bad\.json: not a valid RowRecord.*stdev"):
        res.write_record(tmp_path / "bad.json", bad)
    assert not (tmp_path / "bad.json").exists()
    with pytest.raises(RecordError, match="(?s)not a valid RunRecord.*metrix"):
        res.write_record(tmp_path / "run.json", {"status": "ok", "metrix": {}})
    with pytest.raises(RecordError, match="status"):
        validated({"schema_version": SCHEMA_VERSION, "suite": "s", "row": "R", "row_key": "r",
                   "profile": "smoke", "cells": {"AP": {"status": "maybe"}}})


def test_cells_keep_their_numbers_exact():
    cell = as_cell({"unit": "M", "status": "measured", "value": 1.130769, "raw": 1130769})
    assert cell.raw == 1130769 and isinstance(cell.raw, int)
    assert as_cell(None) is None and as_cell(cell) is cell
    assert Cell(status="not_measured", reason="why").value is None


def test_records_import_without_torch_or_pandas():
    code = ("import sys, bench.records, bench.results, bench.verdicts; "
            "print(sorted(m for m in ('torch', 'pandas', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout.strip()
    assert out == "[]"
