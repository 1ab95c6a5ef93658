"""The runner: suite rows -> measurements -> result records -> report and CI gate.

For every row it resolves the model (registry name + row overrides + the protocol's task
overrides such as ``num_joints``) and fills one cell per column:

* complexity measures (params, flops under the column's convention plus the canonical
  fvcore figure, formula_flops from the model's ``theory_macs``, latency_ms with
  ``--latency``) are computed here, through the on-disk measurement cache;
* accuracy measures are read from training/evaluation run records
  (``results/runs/<protocol>/<model_key>.full.json``); without one the cell says why.

It knows no architecture: everything model-specific comes from the registry and the
model's own spec. A failing row is recorded as failed and the others go on; every record
is written atomically as soon as its row finishes.
"""
from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import results as res
from .complexity.cache import MeasurementCache
from .complexity.conventions import CANONICAL, get_convention
from .env import now_iso, provenance
from .suite import Column, Protocol, Row, Suite, SuiteError, load_suite

REPORTS_DIR = res.RESULTS_DIR.parent / "reports"
PROFILES = ("complexity",)   # smoke / short / full arrive with the training pipeline
_DECIMAL = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "%": 1, "ms": 1}


@dataclasses.dataclass
class RunContext:
    profile: str = "complexity"
    results_dir: Path = res.RESULTS_DIR
    data_root: Path | None = None
    cache: MeasurementCache = dataclasses.field(default_factory=MeasurementCache)
    latency: bool = False
    device: str = "cpu"


# --- models ---------------------------------------------------------------------------

def model_overrides(row: Row, protocol: Protocol | None) -> dict[str, Any]:
    """Protocol task overrides the model accepts (e.g. num_joints), then the row's own."""
    from .registry import get_entry
    accepted = set(get_entry(row.model.name).override_names)
    task = protocol.task_overrides() if protocol else {}
    return {**{k: v for k, v in task.items() if k in accepted}, **row.model.overrides}


class _RowModels:
    """Builds each (row, protocol) model once, only when a measurement is not cached."""

    def __init__(self, row: Row):
        self.row = row
        self._built: dict[tuple, Any] = {}

    def spec(self, protocol: Protocol | None):
        from .registry import resolve_spec
        return resolve_spec(self.row.model.name, **model_overrides(self.row, protocol))

    def get(self, protocol: Protocol | None):
        key = tuple(sorted(model_overrides(self.row, protocol).items()))
        if key not in self._built:
            from .registry import create_model
            self._built[key] = create_model(self.row.model.name, **dict(key))
        return self._built[key]


def _input_shapes(col: Column, protocol: Protocol | None) -> list[list[int]]:
    if col.input is not None:
        return [list(s) for s in col.input]
    return [list(protocol.input_shape)]


# --- cells ----------------------------------------------------------------------------

def _measure_complexity(col: Column, protocol: Protocol | None, models: _RowModels,
                        ctx: RunContext) -> tuple[dict, dict]:
    spec = models.spec(protocol)
    parts = {"model": models.row.model.name, "spec": dataclasses.asdict(spec),
             "input": None if col.measure == "params" else _input_shapes(col, protocol)}
    cell: dict[str, Any] = {"unit": col.unit, "status": res.CELL_MEASURED,
                            "convention": col.convention}
    details: dict[str, Any] = {}

    if col.measure == "params":
        from .complexity import count_params
        raw, hit = ctx.cache.get_or_compute(lambda: count_params(models.get(protocol)),
                                            measure="params", **parts)
        cell.update(raw=raw, value=raw / _DECIMAL[col.unit])
    elif col.measure == "flops":
        report, hit = _flops(col.convention, parts, protocol, models, ctx)
        conv = get_convention(col.convention)
        cell.update(raw=report["total"], value=report["total"] / conv.scale(col.unit))
        details = {"by_operator": report["by_operator"], "not_counted": report["not_counted"],
                   "by_module": {k: v for k, v in report["by_module"].items() if k.count(".") < 2}}
        if col.convention != CANONICAL:
            canon, _ = _flops(CANONICAL, parts, protocol, models, ctx)
            cell["canonical"] = {"value": canon["total"] / get_convention(CANONICAL).scale(col.unit),
                                 "raw": canon["total"], "unit": col.unit, "convention": CANONICAL}
    elif col.measure == "formula_flops":
        def formula():
            model = models.get(protocol)
            if not hasattr(model, "theory_macs"):
                raise ValueError(f"model {models.row.model.name!r} declares no closed-form "
                                 "complexity (theory_macs)")
            return int(model.theory_macs(parts["input"]))
        raw, hit = ctx.cache.get_or_compute(formula, measure="formula_flops", **parts)
        base = get_convention(col.convention).scale(col.unit) if col.convention else _DECIMAL[col.unit]
        cell.update(raw=raw, value=raw / base)
    elif col.measure == "latency_ms":
        if not ctx.latency:
            return {"unit": col.unit, "status": res.CELL_NOT_MEASURED,
                    "reason": "latency not requested (run with --latency)"}, {}
        from .complexity.latency import measure_latency
        stats = measure_latency(models.get(protocol), parts["input"], device=ctx.device)
        cell.update(raw=stats["median_ms"], value=stats["median_ms"])
        details, hit = stats, False
    else:  # pragma: no cover - the suite schema admits no other complexity measure
        raise ValueError(f"unknown complexity measure {col.measure!r}")
    cell["source"] = "cache" if hit else "measured"
    return cell, details


def _flops(convention: str, parts: dict, protocol, models: _RowModels, ctx: RunContext):
    from .complexity import count_flops
    return ctx.cache.get_or_compute(
        lambda: count_flops(models.get(protocol), parts["input"], convention).to_dict(),
        measure="flops", convention=convention, **parts)


def _data_status(protocol: Protocol, data_root: Path | None) -> str:
    name = protocol.dataset.upper()
    if data_root is None:
        return f"no --data-root given, so no {name} to train or evaluate on"
    missing = [f for f in protocol.data_files if not (Path(data_root) / f).exists()]
    if missing:
        return f"no {name} under the data root {data_root} (missing {missing[0]})"
    return f"{name} found under {data_root}, but no full training run has been recorded"


def _accuracy_cell(col: Column, protocol: Protocol, row: Row, ctx: RunContext) -> dict:
    cell = {"unit": col.unit, "convention": None}
    path = res.run_record_path(protocol.name, row.model.key, "full", ctx.results_dir)
    record = res.read_record(path)
    if record is not None and record.get("status") == "ok" and col.measure in record.get("metrics", {}):
        value = float(record["metrics"][col.measure])
        return {**cell, "status": res.CELL_MEASURED, "value": value, "raw": value,
                "source": str(path)}
    why = (f"no full-profile result for {row.model.key} on {protocol.name}; "
           f"{_data_status(protocol, ctx.data_root)}")
    return {**cell, "status": res.CELL_NOT_MEASURED, "value": None, "reason": why}


def measure_row(suite: Suite, row: Row, ctx: RunContext) -> dict:
    started, t0 = now_iso(), time.perf_counter()
    models = _RowModels(row)
    cells: dict[str, dict] = {}
    details: dict[str, dict] = {}
    for cid, col in suite.columns.items():
        protocol = suite.protocol_for(row, col.protocol)
        try:
            if col.is_complexity:
                cells[cid], d = _measure_complexity(col, protocol, models, ctx)
                if d:
                    details[cid] = d
            else:
                cells[cid] = _accuracy_cell(col, protocol, row, ctx)
        except Exception as err:  # one broken cell must not lose the others
            cells[cid] = {"unit": col.unit, "status": res.CELL_ERROR, "value": None,
                          "reason": f"{type(err).__name__}: {err}"}
    spec = models.spec(None)
    failed = [cid for cid, c in cells.items() if c["status"] == res.CELL_ERROR]
    return {
        "suite": suite.suite, "suite_file": suite.path, "table": suite.table,
        "row": row.name, "row_key": row.key, "profile": ctx.profile,
        "model": {"name": row.model.name, "overrides": row.model.overrides, "key": row.model.key,
                  "summary": spec.summary() if hasattr(spec, "summary") else "",
                  "spec": dataclasses.asdict(spec)},
        "protocols": {k: suite.protocol_for(row, k).model_dump(mode="json") for k in suite.protocols},
        "cells": cells, "details": details,
        "provenance": provenance(),
        "status": "failed" if failed else "ok",
        "error": f"cells failed: {', '.join(failed)}" if failed else None,
        "started_at": started, "finished_at": now_iso(),
        "wall_time_s": round(time.perf_counter() - t0, 3),
    }


# --- suites ---------------------------------------------------------------------------

@dataclasses.dataclass
class SuiteRun:
    suite: Suite
    records: list[dict]
    record_paths: list[Path]
    wall_time_s: float


def run_suite(suite: Suite | str | Path, profile: str = "complexity",
              results_dir: Path = res.RESULTS_DIR, data_root: Path | None = None,
              cache: MeasurementCache | None = None, rows: str | None = None,
              latency: bool = False, progress=None) -> SuiteRun:
    """Measure every row (or those whose name matches the glob ``rows``), write records."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; available: {', '.join(PROFILES)}")
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    ctx = RunContext(profile=profile, results_dir=Path(results_dir),
                     data_root=Path(data_root) if data_root else None,
                     cache=cache or MeasurementCache(), latency=latency)
    t0 = time.perf_counter()
    records, paths = [], []
    for row in suite.rows:
        if rows and not fnmatch.fnmatch(row.name, rows):
            continue
        record = measure_row(suite, row, ctx)
        path = res.row_record_path(suite.suite, row.key, profile, ctx.results_dir)
        res.write_record(path, record)
        records.append(record)
        paths.append(path)
        if progress:
            progress(row, record)
    return SuiteRun(suite, records, paths, time.perf_counter() - t0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_suite.py",
        description="Run paper-table suites: measure every row, store result records, "
                    "render reports, and optionally gate on tolerances (--check).")
    p.add_argument("suites", nargs="+", type=Path, help="suite YAML files (suites/*.yaml)")
    p.add_argument("--profile", default="complexity", choices=PROFILES,
                   help="how far a run goes (default: complexity)")
    p.add_argument("--check", action="store_true",
                   help="exit non-zero when a gated cell is outside its tolerance")
    p.add_argument("--data-root", type=Path, default=None, help="folder holding coco/, mpii/ ...")
    p.add_argument("--results-dir", type=Path, default=res.RESULTS_DIR)
    p.add_argument("--reports-dir", type=Path, default=REPORTS_DIR)
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="measurement cache (default: $HRBENCH_CACHE_DIR or ~/.cache/hrbench)")
    p.add_argument("--no-cache", action="store_true", help="measure everything again")
    p.add_argument("--rows", default=None, help="only rows whose name matches this glob")
    p.add_argument("--latency", action="store_true", help="also time latency_ms columns")
    p.add_argument("--no-report", action="store_true", help="do not write HTML reports")
    p.add_argument("-q", "--quiet", action="store_true", help="no table in the terminal")
    return p


def gate_failures(suite: Suite, records: Sequence[dict]) -> list[dict]:
    """Gated complexity cells that are not within tolerance: outside it, or not measured
    (a measurement that broke must fail the gate, not pass it silently). Accuracy cells
    are gated by the full profile only."""
    from .compare import WITHIN
    from .report import cell_verdicts
    return [v for v in cell_verdicts(suite, records)
            if v["gated"] and suite.columns[v["column"]].is_complexity and v["status"] != WITHIN]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        suites = [load_suite(path) for path in args.suites]
    except SuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cache = MeasurementCache(args.cache_dir, enabled=not args.no_cache)
    exit_code = 0
    for suite in suites:
        hits, misses = cache.hits, cache.misses
        run = run_suite(suite, args.profile, args.results_dir, args.data_root, cache,
                        args.rows, args.latency)
        from . import report
        if not args.quiet:
            print(report.render_terminal(suite, run.records))
        if not args.no_report:
            html = report.render_suite_html(suite, run.records, args.reports_dir)
            report.render_index(args.reports_dir)
            print(f"report: {html}")
        print(f"{suite.suite}: {len(run.records)} rows in {run.wall_time_s:.1f}s "
              f"(cache: {cache.hits - hits} hits, {cache.misses - misses} misses); records in "
              f"{args.results_dir / suite.suite}")
        if args.check:
            failures = gate_failures(suite, run.records)
            for f in failures:
                print(_failure_line(suite, f), file=sys.stderr)
            if failures:
                exit_code = 1
            else:
                print(f"check passed: {suite.suite}, every gated complexity cell within tolerance")
    return exit_code


def _failure_line(suite: Suite, f: dict) -> str:
    measured = "not measured" if f["measured"] is None else f"{f['measured']:.6g}"
    line = (f"CHECK FAILED {suite.suite}: row {f['row']!r}, column {f['column']!r}: "
            f"published {f['published']}, measured {measured}")
    if f.get("allowed") is not None:
        line += f", allowed ±{f['allowed']:g}"
    if f.get("reason"):
        line += f" ({f['reason']})"
    return line
