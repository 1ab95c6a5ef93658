"""Gate results for CI systems: a JUnit XML file (one test case per gated cell, which CI
services show as test results) and a JSON summary (per suite, the status of every
cell), both written atomically. Imports no torch.
"""
from __future__ import annotations

import datetime as _dt
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .results import atomic_write, atomic_write_json
from .suite import Suite

SUMMARY_SCHEMA = 1


@dataclass
class SuiteGate:
    """What one suite's run gives the CI outputs."""
    suite: Suite
    profile: str
    records: list[dict]
    wall_time_s: float = 0.0
    smoke_failures: list[str] = field(default_factory=list)   # --profile smoke --check
    smoke_gated: bool = False        # whether the smoke baseline was compared
    # jobs that failed or were refused ({"job", "error", "kind", "record"}) and rows whose
    # measurement failed ({"row", "error", "record"}): listed whether or not --check
    failed_jobs: list[dict] = field(default_factory=list)
    failed_rows: list[dict] = field(default_factory=list)


def _number(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def cell_message(suite: Suite, v: dict) -> str:
    """One line for a gated cell: published, measured, tolerance (and the row's note)."""
    from .verdicts import tolerance_text
    col = suite.columns[v["column"]]
    unit = f" {v['unit']}" if v.get("unit") and v["unit"] != "%" else (v.get("unit") or "")
    measured = ("not measured" if v["measured"] is None
                else f"measured {_number(v['measured'])}{unit}")
    if v.get("reference") == "model zoo":   # released weights: the zoo's number is compared
        text = (f"published {_number(v.get('paper'))}{unit} (paper), "
                f"{_number(v['published'])}{unit} (the authors' model zoo), {measured}")
    else:
        text = f"published {_number(v['published'])}{unit}, {measured}"
    if v.get("delta") is not None:
        text += f", delta {v['delta']:+.4g}"
    text += f"; tolerance {tolerance_text(col)}"
    if v.get("allowed") is not None:
        text += f" (allowed ±{v['allowed']:.4g})"
    if v["measured"] is None and v.get("reason"):
        text += f"; why: {v['reason']}"
    row = next((r for r in suite.rows if r.key == v["row_key"]), None)
    if row is not None and row.note:
        text += f"; row note: {' '.join(row.note.split())}"
    return text


def _gated(gate: SuiteGate) -> list[dict]:
    from .verdicts import gated_cells
    return gated_cells(gate.suite, gate.records)


def _passed(v: dict) -> bool:
    from .compare import WITHIN
    return v["status"] == WITHIN


def junit_tree(gates: Sequence[SuiteGate]) -> ET.ElementTree:
    """<testsuites> with one <testsuite> per suite and one <testcase> per gated cell
    (named ``row :: column``); a cell outside its tolerance or not measured has a
    <failure> whose message gives published, measured, tolerance and the row note. With
    the smoke profile one more case per suite stands for the smoke baseline; each failed
    job and each row whose measurement failed is a case with an <error>."""
    root = ET.Element("testsuites", name="hrbench")
    total = failed_total = errors_total = 0
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    for gate in gates:
        suite = gate.suite
        element = ET.SubElement(root, "testsuite", name=suite.suite, timestamp=stamp,
                                time=f"{gate.wall_time_s:.3f}")
        props = ET.SubElement(element, "properties")
        for name, value in (("profile", gate.profile), ("suite_file", suite.path),
                            ("paper", suite.paper), ("table", str(suite.table))):
            ET.SubElement(props, "property", name=name, value=str(value))
        tests = failures = 0
        for v in _gated(gate):
            case = ET.SubElement(element, "testcase", classname=f"hrbench.{suite.suite}",
                                 name=f"{v['row']} :: {v['column']}", time="0")
            tests += 1
            if not _passed(v):
                failures += 1
                kind = "not measured" if v["measured"] is None else "outside tolerance"
                message = cell_message(suite, v)
                failure = ET.SubElement(case, "failure", message=message, type=kind)
                failure.text = f"{suite.suite}: row {v['row']!r}, column {v['column']!r} " \
                               f"({v.get('title') or v['column']}): {message}"
        if gate.smoke_gated:
            case = ET.SubElement(element, "testcase", classname=f"hrbench.{suite.suite}",
                                 name="smoke baseline", time="0")
            tests += 1
            if gate.smoke_failures:
                failures += 1
                failure = ET.SubElement(case, "failure", type="smoke baseline",
                                        message=f"{len(gate.smoke_failures)} smoke metric(s) "
                                                "left the committed baseline")
                failure.text = "\n".join(gate.smoke_failures)
        errors = 0
        for f in gate.failed_jobs:        # a job that failed is an error, not a verdict
            case = ET.SubElement(element, "testcase", classname=f"hrbench.{suite.suite}.jobs",
                                 name=f"job {f['job']}", time="0")
            error = ET.SubElement(case, "error", type=f.get("kind", "failed"),
                                  message=str(f["error"]))
            error.text = f"{f['job']}: {f['error']} (record: {f.get('record')})"
            tests += 1
            errors += 1
        for f in gate.failed_rows:
            case = ET.SubElement(element, "testcase", classname=f"hrbench.{suite.suite}.rows",
                                 name=f"row {f['row']}", time="0")
            error = ET.SubElement(case, "error", type="measurement failed",
                                  message=str(f["error"]))
            error.text = f"{f['row']}: {f['error']} (record: {f.get('record')})"
            tests += 1
            errors += 1
        element.set("tests", str(tests))
        element.set("failures", str(failures))
        element.set("errors", str(errors))
        element.set("skipped", "0")
        total += tests
        failed_total += failures
        errors_total += errors
    root.set("tests", str(total))
    root.set("failures", str(failed_total))
    root.set("errors", str(errors_total))
    return ET.ElementTree(root)


def write_junit(path: Path | str, gates: Sequence[SuiteGate]) -> Path:
    tree = junit_tree(gates)
    ET.indent(tree)
    atomic_write(Path(path), lambda fh: tree.write(fh, encoding="utf-8", xml_declaration=True))
    return Path(path)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summary(gates: Sequence[SuiteGate], exit_code: int, argv: Sequence[str] = ()) -> dict:
    """Per suite: whether its gate passed, counts, and every cell's status with published,
    measured, delta, allowed and whether (and how) the gate judged it."""
    from .verdicts import cell_verdicts
    suites = {}
    for gate in gates:
        judged = {(v["row_key"], v["column"]): _passed(v) for v in _gated(gate)}
        ran = {r.get("row_key") for r in gate.records}
        cells = []
        for v in cell_verdicts(gate.suite, gate.records):
            key = (v["row_key"], v["column"])
            cells.append({
                "row": v["row"], "row_key": v["row_key"], "column": v["column"],
                "unit": v.get("unit"), "status": v["status"],
                "gate": ("pass" if judged[key] else "fail") if key in judged else "not gated",
                "ran": v["row_key"] in ran,
                **{k: _plain(v.get(k)) for k in ("published", "measured", "delta", "allowed",
                                                 "std", "n")},
                "profile": v.get("profile"), "reason": v.get("reason") or "",
            })
        failed = sum(not ok for ok in judged.values())
        suites[gate.suite.suite] = {
            "suite_file": gate.suite.path, "paper": gate.suite.paper, "table": gate.suite.table,
            "profile": gate.profile,
            "passed": failed == 0 and not gate.smoke_failures and not gate.failed_jobs
                      and not gate.failed_rows,
            "failed_jobs": [dict(f) for f in gate.failed_jobs],
            "failed_rows": [dict(f) for f in gate.failed_rows],
            "rows_run": len(ran), "gated_cells": len(judged), "failed_cells": failed,
            "smoke_baseline": ({"compared": True, "failures": list(gate.smoke_failures)}
                               if gate.smoke_gated else {"compared": False, "failures": []}),
            "wall_time_s": round(gate.wall_time_s, 3),
            "cells": cells,
        }
    return {
        "schema_version": SUMMARY_SCHEMA,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(argv),
        "exit_code": exit_code,
        "passed": all(s["passed"] for s in suites.values()),
        "suites": suites,
    }


def write_summary(path: Path | str, gates: Sequence[SuiteGate], exit_code: int,
                  argv: Sequence[str] = ()) -> Path:
    atomic_write_json(Path(path), summary(gates, exit_code, argv))
    return Path(path)
