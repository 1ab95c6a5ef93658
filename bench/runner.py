"""The runner: suite rows -> measurements -> result records -> report and CI gate.

For every row it resolves the model (registry name + row overrides + the protocol's task
overrides such as ``num_joints``) and fills one cell per column:

* complexity measures (params, of the model or of a column's ``submodule``, flops under
  the column's convention plus the canonical fvcore figure, formula_flops from the
  model's ``theory_macs``, receptive_field and contributing_fraction from a gradient on
  the built module, fold_equivalence_error from the model's ``predict_folded`` /
  ``fold_targets`` / ``unfold_predictions``, latency_ms with ``--latency``) are computed
  here, through the on-disk measurement cache;
* accuracy measures are read from training/evaluation run records
  (``results/runs/<protocol>/<model_key>.<profile>.json``); without one the cell says why.

Profiles: ``complexity`` measures only. ``smoke``, ``short`` and ``full`` first run one
training job per (row model, protocol of an accuracy column) through ``bench.launch``
(in-process, torchrun or Slurm), then fill the cells from the jobs' records. A job whose
record exists with status ok and the same fingerprint (model, protocol, resolved
settings) is done and not rerun (``--rerun`` forces it); an interrupted one resumes
from its latest checkpoint in ``--work-dir``. ``smoke`` trains on data generated in the
official formats (``bench.data.synthetic``) under ``<work-dir>/smoke_data``; ``short`` and
``full`` need ``--data-root``, and a missing dataset gives one message naming the
expected path. ``--check --profile smoke`` compares the smoke metrics with the committed
baseline ``results/baselines/<suite>.smoke.json`` (see ``smoke_gate_failures``).

It knows no architecture: everything model-specific comes from the registry and the
model's own spec. A failing row is recorded as failed and the others go on; every record
is written atomically as soon as its row finishes.
"""
from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import results as res
from .complexity.cache import MeasurementCache
from .complexity.conventions import CANONICAL, get_convention
from .env import now_iso, provenance
from .launch import LAUNCHERS, LaunchConfig
from .suite import Column, Protocol, Row, Suite, SuiteError, load_suite
from .training.job import TRAIN_PROFILES

REPORTS_DIR = res.RESULTS_DIR.parent / "reports"
WORK_DIR = res.RESULTS_DIR.parent / "work_dirs"
BASELINES_DIR = res.RESULTS_DIR / "baselines"
PROFILES = ("complexity",) + TRAIN_PROFILES
SMOKE_DATA_SEED = 0
# smoke gate: how far a metric may move from the committed baseline before --check fails
SMOKE_TOLERANCE = {"metric_abs": 0.5, "loss_rel": 0.005}
_DECIMAL = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "%": 1, "ms": 1}


@dataclasses.dataclass
class RunContext:
    profile: str = "complexity"
    results_dir: Path = res.RESULTS_DIR
    data_root: Path | None = None
    cache: MeasurementCache = dataclasses.field(default_factory=MeasurementCache)
    latency: bool = False
    device: str = "auto"          # latency: "auto" = cuda when available, else cpu
    work_dir: Path = WORK_DIR
    rerun: bool = False
    launch: LaunchConfig = LaunchConfig()
    job_options: dict = dataclasses.field(default_factory=dict)   # PoseJob fields
    # run record path -> why its job did not run (missing dataset, no recipe)
    skipped: dict = dataclasses.field(default_factory=dict)


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
        overrides = model_overrides(self.row, protocol)
        # JSON, not a tuple of items: an override may be a list (of mappings), unhashable
        key = json.dumps(overrides, sort_keys=True, default=str)
        if key not in self._built:
            from .registry import create_model
            self._built[key] = create_model(self.row.model.name, **overrides)
        return self._built[key]


def _input_shapes(col: Column, protocol: Protocol | None) -> list[list[int]]:
    if col.input is not None:
        return [list(s) for s in col.input]
    return [list(protocol.input_shape)]


# --- cells ----------------------------------------------------------------------------

def _measure_ratio(col: Column, protocol: Protocol | None, models: _RowModels,
                   ctx: RunContext, convention: str | None) -> tuple[dict, dict]:
    """A ``relative_to`` cell: the measure of the row's model over the same measure of the
    row's model with the column's overrides (the reference)."""
    plain = col.model_copy(update={"relative_to": None})
    row = models.row
    reference_row = row.model_copy(update={"model": row.model.model_copy(
        update={"overrides": {**row.model.overrides, **col.relative_to}})})
    cell, details = _measure_complexity(plain, protocol, models, ctx, convention)
    ref, _ = _measure_complexity(plain, protocol, _RowModels(reference_row), ctx, convention)
    ratio = cell["raw"] / ref["raw"]
    cell.update(raw=ratio, value=ratio, numerator=cell["raw"], denominator=ref["raw"],
                relative_to=dict(col.relative_to))
    cell.pop("canonical", None)
    return cell, details   # the numerator's breakdown; the cell holds both counts


def _measure_complexity(col: Column, protocol: Protocol | None, models: _RowModels,
                        ctx: RunContext, convention: str | None = None) -> tuple[dict, dict]:
    """One complexity cell; ``convention`` is the row's counting convention for the
    column (``Suite.convention_for``), the column's by default."""
    if col.relative_to:
        return _measure_ratio(col, protocol, models, ctx, convention)
    convention = convention or col.convention
    spec = models.spec(protocol)
    parts = {"model": models.row.model.name, "spec": dataclasses.asdict(spec),
             "input": None if col.measure == "params" else _input_shapes(col, protocol)}
    cell: dict[str, Any] = {"unit": col.unit, "status": res.CELL_MEASURED,
                            "convention": convention}
    details: dict[str, Any] = {}

    if col.measure == "params":
        from .complexity import count_params
        if col.submodule:
            parts["submodule"] = col.submodule

        def params(rule: str | None = None):
            model = models.get(protocol)
            return count_params(model.get_submodule(col.submodule) if col.submodule else model,
                                convention=rule)
        if convention is not None and get_convention(convention).param_modules is not None:
            # the paper's counter left some parameters out: its count, and every
            # parameter as the canonical figure beside it
            raw, hit = ctx.cache.get_or_compute(lambda: params(convention), measure="params",
                                                convention=convention, **parts)
            every, _ = ctx.cache.get_or_compute(params, measure="params", **parts)
            cell["canonical"] = {"value": every / _DECIMAL[col.unit], "raw": every,
                                 "unit": col.unit, "convention": None}
        else:
            raw, hit = ctx.cache.get_or_compute(params, measure="params", **parts)
        cell.update(raw=raw, value=raw / _DECIMAL[col.unit])
    elif col.measure == "flops":
        report, hit = _flops(convention, parts, protocol, models, ctx)
        conv = get_convention(convention)
        cell.update(raw=report["total"], value=report["total"] / conv.scale(col.unit))
        details = {"by_operator": report["by_operator"], "not_counted": report["not_counted"],
                   "by_module": {k: v for k, v in report["by_module"].items() if k.count(".") < 2}}
        if convention != CANONICAL:
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
        base = get_convention(convention).scale(col.unit) if convention else _DECIMAL[col.unit]
        cell.update(raw=raw, value=raw / base)
    elif col.measure in ("receptive_field", "contributing_fraction"):
        from .complexity.receptive_field import measure_footprint
        channels, height, width = parts["input"][0][-3:]
        if height != width:
            raise ValueError(f"a {col.measure} column needs a square input, got {height}x{width}")

        def footprint():
            f = measure_footprint(models.get(protocol), channels, height)
            return {"receptive_field": f.receptive_field, "height": f.height, "width": f.width,
                    "connected": f.connected, "contributing_fraction": f.contributing_fraction}
        found, hit = ctx.cache.get_or_compute(footprint, measure="footprint", **parts)
        cell.update(raw=found[col.measure], value=found[col.measure])
        details = found
    elif col.measure == "fold_equivalence_error":
        from .complexity.fold_equivalence import fold_equivalence
        found, hit = ctx.cache.get_or_compute(
            lambda: fold_equivalence(models.get(protocol), parts["input"][0]),
            measure="fold_equivalence", **parts)
        cell.update(raw=found["max_abs_error"], value=found["max_abs_error"])
        details = found
    elif col.measure == "latency_ms":
        if not ctx.latency:
            return {"unit": col.unit, "status": res.CELL_NOT_MEASURED,
                    "reason": "latency not requested (run with --latency)"}, {}
        from .complexity.latency import measure_latency
        device = ctx.device
        if device == "auto":
            import torch
            device = "cuda" if torch.cuda.is_available() else "cpu"
        # a CPU pass at batch 32 takes seconds: one warm-up pass is enough there
        warmup = 1 if device == "cpu" and col.batch > 1 else 3
        stats = measure_latency(models.get(protocol), parts["input"], device=device,
                                batch=col.batch, warmup=warmup)
        cell.update(raw=stats["median_ms"], value=stats["median_ms"], batch=col.batch,
                    device=device, device_name=stats["device_name"])
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


def missing_data(protocol: Protocol, data_root: Path | None) -> str | None:
    """Why the protocol's dataset cannot be used under ``data_root`` (None when it can)."""
    name = protocol.dataset.upper()
    if protocol.server_only:
        return f"{protocol.name}: {protocol.server_only}"
    if data_root is None:
        return f"no --data-root given, so no {name} to train or evaluate on"
    missing = [f for f in protocol.data_files if not (Path(data_root) / f).exists()]
    if missing:
        return f"no {name} under the data root {data_root}: expected {Path(data_root) / missing[0]}"
    return None


def _accuracy_cell(col: Column, protocol: Protocol, row: Row, ctx: RunContext) -> dict:
    cell = {"unit": col.unit, "convention": None}
    profile = ctx.profile if ctx.profile in TRAIN_PROFILES else "full"
    key = run_key(row, protocol)
    path = res.run_record_path(protocol.name, key, profile, ctx.results_dir)
    record = res.read_record(path)
    if record is not None and record.get("status") == "ok":
        value = (record.get("metrics") or {}).get(col.measure)
        if value is not None:
            return {**cell, "status": res.CELL_MEASURED, "value": float(value),
                    "raw": float(value), "source": str(path), "profile": profile}
        why = f"the {profile} run of {key} on {protocol.name} reports no {col.measure}"
    elif record is not None:
        why = f"the {profile} run of {key} on {protocol.name} failed: {record.get('error')}"
    elif str(path) in ctx.skipped:
        why = ctx.skipped[str(path)]
    elif protocol.server_only:
        why = missing_data(protocol, None)
    else:
        why = f"no {profile}-profile result for {key} on {protocol.name}"
        if profile == "full":
            why += "; " + (missing_data(protocol, ctx.data_root) or
                           f"{protocol.dataset.upper()} found under {ctx.data_root}, but no "
                           "full training run has been recorded (run with --profile full)")
    return {**cell, "status": res.CELL_NOT_MEASURED, "value": None, "reason": why}


# --- training jobs ----------------------------------------------------------------------

def accuracy_protocols(suite: Suite, row: Row) -> dict[str, Protocol]:
    """The protocols the row's accuracy columns need a trained model for."""
    keys = dict.fromkeys(c.protocol for cid, c in suite.columns.items()
                         if not c.is_complexity and suite.applies(row, cid))
    return {k: suite.protocol_for(row, k) for k in keys if k is not None}


def smoke_data_root(ctx: RunContext) -> Path:
    """Small COCO / MPII / LSP-extended datasets in the official formats, written once
    per work dir (deterministic: the same files for the same seed)."""
    from .data.synthetic import write_all
    root = ctx.work_dir / "smoke_data"
    marker = root / "WRITTEN"
    if not marker.is_file() or marker.read_text().strip() != str(SMOKE_DATA_SEED):
        shutil.rmtree(root, ignore_errors=True)
        write_all(root, seed=SMOKE_DATA_SEED)
        marker.write_text(str(SMOKE_DATA_SEED))
    return root


def job_protocol(row: Row, protocol: Protocol) -> Protocol:
    """The protocol a row's job runs: the row's ``pretrained`` weights replace the protocol's."""
    if row.pretrained is not None:
        return protocol.model_copy(update={"pretrained": row.pretrained})
    return protocol


def run_key(row: Row, protocol: Protocol) -> str:
    """Names a row's training run: the model key, marked when it starts from ImageNet
    weights (a table can hold the same model trained both ways, e.g. HRNet Table 1)."""
    return row.model.key + ("+imagenet" if job_protocol(row, protocol).pretrained else "")


def _job(row: Row, protocol: Protocol, ctx: RunContext, data_root: Path | None):
    from .training.job import PoseJob
    key = run_key(row, protocol)
    protocol = job_protocol(row, protocol)
    return PoseJob(
        model=row.model.name, overrides=model_overrides(row, protocol), model_key=key,
        protocol=protocol.model_dump(mode="json"), profile=ctx.profile,
        data_root=None if data_root is None else str(data_root),
        work_dir=str(ctx.work_dir / ctx.profile / res.safe_name(protocol.name) / res.safe_name(key)),
        record_path=str(res.run_record_path(protocol.name, key, ctx.profile, ctx.results_dir)),
        **ctx.job_options)


def run_training(suite: Suite, rows: Sequence[Row], ctx: RunContext, log=print) -> list:
    """Launch the jobs the rows' accuracy cells need (those not done yet)."""
    data_root = smoke_data_root(ctx) if ctx.profile == "smoke" else ctx.data_root
    world = ctx.launch.nproc_per_node * (ctx.launch.nodes if ctx.launch.launcher == "slurm" else 1)
    todo, seen = [], set()
    for row in rows:
        for protocol in accuracy_protocols(suite, row).values():
            path = str(res.run_record_path(protocol.name, run_key(row, protocol), ctx.profile,
                                           ctx.results_dir))
            if path in seen:
                continue
            seen.add(path)
            if protocol.server_only or ctx.profile != "smoke":   # smoke data is generated
                why = missing_data(protocol, data_root)
            else:
                why = None
            if why is None and not protocol.trainable:
                why = f"protocol {protocol.name} has no training recipe (optimizer, schedule, batch)"
            weights = job_protocol(row, protocol).pretrained
            if why is None and weights and ctx.profile != "smoke":
                from .checkpoints import pretrained_path
                if not pretrained_path(weights).is_file():
                    where = "row" if row.pretrained else f"protocol {protocol.name}"
                    why = (f"pretrained weights not found: {pretrained_path(weights)} (named by "
                           f"the {where} 'pretrained' field of {row.name!r} in {suite.path})")
                    log(f"error: {why}")
            if why:
                ctx.skipped[path] = why
                continue
            job = _job(row, protocol, ctx, data_root)
            record = res.read_record(Path(path))
            if (record and record.get("status") == "ok" and not ctx.rerun
                    and record.get("fingerprint") == job.fingerprint(world)):
                log(f"done already: {row.model.key} on {protocol.name} ({ctx.profile}); "
                    f"--rerun to run it again")
                continue
            if ctx.rerun:
                shutil.rmtree(job.work_dir, ignore_errors=True)
            todo.append(job)
    if todo:
        from .launch import run_jobs
        log(f"{suite.suite}: {len(todo)} {ctx.profile} job(s) via {ctx.launch.launcher}")
        run_jobs(todo, ctx.launch)
    return todo


def _earlier_latency(previous: dict | None, cid: str, spec: dict, shapes) -> tuple[dict, dict] | None:
    """A latency cell the row's previous record measured for the same model and input:
    a run without --latency keeps it rather than dropping the number."""
    if not previous or (previous.get("model") or {}).get("spec") != spec:
        return None
    cell = (previous.get("cells") or {}).get(cid) or {}
    details = (previous.get("details") or {}).get(cid) or {}
    # details hold the timed (N, C, H, W); the column's input is (C, H, W)
    if cell.get("status") != res.CELL_MEASURED or details.get("input_shape", [None])[1:] != list(shapes[0]):
        return None
    when = (previous.get("finished_at") or "an earlier run")
    commit = ((previous.get("provenance") or {}).get("commit") or "unknown")[:10]
    return {**cell, "source": f"kept from the record of {when} (commit {commit})"}, details


def measure_row(suite: Suite, row: Row, ctx: RunContext, previous: dict | None = None) -> dict:
    """Every cell of one row. ``previous`` is the row's last record of this profile:
    its latency cells are kept when this run does not time latency."""
    started, t0 = now_iso(), time.perf_counter()
    models = _RowModels(row)
    cells: dict[str, dict] = {}
    details: dict[str, dict] = {}
    for cid, col in suite.columns.items():
        if not suite.applies(row, cid):
            continue
        protocol = suite.protocol_for(row, col.protocol)
        try:
            kept = None
            if col.measure == "latency_ms" and not ctx.latency:
                # the record stores the spec as JSON (tuples as lists)
                spec_json = json.loads(json.dumps(dataclasses.asdict(models.spec(None))))
                kept = _earlier_latency(previous, cid, spec_json, _input_shapes(col, protocol))
            if kept:
                cells[cid], details[cid] = kept
            elif col.is_complexity:
                cells[cid], d = _measure_complexity(col, protocol, models, ctx,
                                                    suite.convention_for(row, cid))
                if d:
                    details[cid] = d
            else:
                cells[cid] = _accuracy_cell(col, protocol, row, ctx)
        except Exception as err:  # one broken cell must not lose the others
            cells[cid] = {"unit": col.unit, "status": res.CELL_ERROR, "value": None,
                          "reason": f"{type(err).__name__}: {err}"}
    spec = models.spec(None)
    failed = [cid for cid, c in cells.items() if c["status"] == res.CELL_ERROR]
    runs = {}
    if ctx.profile in TRAIN_PROFILES:
        for key, protocol in accuracy_protocols(suite, row).items():
            path = res.run_record_path(protocol.name, run_key(row, protocol), ctx.profile,
                                       ctx.results_dir)
            rec = res.read_record(path)
            runs[key] = {"record": str(path), "status": rec.get("status") if rec else "not run",
                         "error": (rec or {}).get("error") or ctx.skipped.get(str(path)),
                         "fingerprint": (rec or {}).get("fingerprint"),
                         "settings": (rec or {}).get("settings"),
                         "training": _log_summary((rec or {}).get("training")),
                         "metrics": (rec or {}).get("metrics"),
                         "target_metrics": (rec or {}).get("target_metrics")}
    return {
        "suite": suite.suite, "suite_file": suite.path, "table": suite.table,
        "row": row.name, "row_key": row.key, "profile": ctx.profile,
        "model": {"name": row.model.name, "overrides": row.model.overrides, "key": row.model.key,
                  "summary": spec.summary() if hasattr(spec, "summary") else "",
                  "spec": dataclasses.asdict(spec)},
        "protocols": {k: suite.protocol_for(row, k).model_dump(mode="json") for k in suite.protocols},
        "cells": cells, "details": details, "runs": runs,
        "provenance": provenance(),
        "status": "failed" if failed else "ok",
        "error": f"cells failed: {', '.join(failed)}" if failed else None,
        "started_at": started, "finished_at": now_iso(),
        "wall_time_s": round(time.perf_counter() - t0, 3),
    }


def _log_summary(training: dict | None) -> dict | None:
    if not training:
        return None
    keys = ("epochs", "iterations", "first_loss", "final_loss", "train_wall_time_s",
            "images_per_s", "resumed_from", "checkpoint", "log")
    return {k: training.get(k) for k in keys}


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
              latency: bool = False, progress=None, work_dir: Path = WORK_DIR,
              rerun: bool = False, launch: LaunchConfig | None = None,
              job_options: dict | None = None, log=print, device: str = "auto") -> SuiteRun:
    """Measure every row (or those whose name matches the glob ``rows``), write records.
    Training profiles first run the jobs the accuracy cells need (``run_training``)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; available: {', '.join(PROFILES)}")
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    ctx = RunContext(profile=profile, results_dir=Path(results_dir),
                     data_root=Path(data_root) if data_root else None,
                     cache=cache or MeasurementCache(), latency=latency, device=device,
                     work_dir=Path(work_dir), rerun=rerun, launch=launch or LaunchConfig(),
                     job_options=dict(job_options or {}))
    t0 = time.perf_counter()
    # rows of methods this project does not build keep their published cells in the
    # report; there is nothing to measure for them
    selected = [row for row in suite.rows
                if row.built and (not rows or fnmatch.fnmatch(row.name, rows))]
    if profile in TRAIN_PROFILES:
        run_training(suite, selected, ctx, log)
    records, paths = [], []
    for row in selected:
        path = res.row_record_path(suite.suite, row.key, profile, ctx.results_dir)
        record = measure_row(suite, row, ctx, previous=res.read_record(path))
        res.write_record(path, record)
        records.append(record)
        paths.append(path)
        if progress:
            progress(row, record)
    return SuiteRun(suite, records, paths, time.perf_counter() - t0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_suite.py",
        description="Run paper-table suites: measure (and train) every row, store result "
                    "records, render reports, and optionally gate on tolerances (--check).")
    p.add_argument("suites", nargs="+", type=Path, help="suite YAML files (suites/*.yaml)")
    p.add_argument("--profile", default="complexity", choices=PROFILES,
                   help="how far a run goes: complexity (measures only), smoke (a few "
                        "iterations on generated data), short (a fraction of the schedule), "
                        "full (the paper's schedule); default: complexity")
    p.add_argument("--check", action="store_true",
                   help="exit non-zero when a gated cell is outside its tolerance (complexity "
                        "cells; with --profile smoke the committed smoke baseline; with "
                        "--profile full also the published accuracy)")
    p.add_argument("--data-root", type=Path, default=None, help="folder holding coco/, mpii/, lspet/")
    p.add_argument("--results-dir", type=Path, default=res.RESULTS_DIR)
    p.add_argument("--reports-dir", type=Path, default=REPORTS_DIR)
    p.add_argument("--work-dir", type=Path, default=WORK_DIR,
                   help="checkpoints, training logs and smoke data (default: work_dirs/)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="measurement cache (default: $HRBENCH_CACHE_DIR or ~/.cache/hrbench)")
    p.add_argument("--no-cache", action="store_true", help="measure everything again")
    p.add_argument("--rows", default=None, help="only rows whose name matches this glob")
    p.add_argument("--latency", action="store_true",
                   help="also time latency_ms columns: median forward time at the column's "
                        "batch after warm-up, on --device (default: cuda when available)")
    p.add_argument("--no-report", action="store_true", help="do not write HTML reports")
    p.add_argument("-q", "--quiet", action="store_true", help="no table in the terminal")
    t = p.add_argument_group("training (profiles smoke, short, full)")
    t.add_argument("--rerun", action="store_true", help="run jobs again even when done")
    t.add_argument("--launcher", default="local", choices=LAUNCHERS,
                   help="local (this process), torchrun (DDP on this node), slurm (submitit)")
    t.add_argument("--gpus", type=int, default=1, help="GPUs per node for torchrun / slurm")
    t.add_argument("--nodes", type=int, default=1, help="nodes per job (slurm)")
    t.add_argument("--slurm-partition", default=None)
    t.add_argument("--slurm-account", default=None)
    t.add_argument("--slurm-time", type=int, default=72 * 60, help="minutes per job")
    t.add_argument("--batch-size", type=int, default=None,
                   help="images per GPU (default: the protocol's; the learning rate is "
                        "scaled linearly when the total batch differs, and recorded)")
    t.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"), help="mixed precision")
    t.add_argument("--channels-last", action="store_true")
    t.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:N for training and latency (default: cuda when available)")
    t.add_argument("--workers", type=int, default=None, help="data loader workers per process")
    t.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    t.add_argument("--progress", action="store_true", help="progress bars")
    t.add_argument("--baseline", type=Path, default=None,
                   help="smoke baseline file (default: <results-dir>/baselines/<suite>.smoke.json)")
    t.add_argument("--update-baseline", action="store_true",
                   help="write this smoke run's metrics as the suite's smoke baseline")
    return p


def gate_failures(suite: Suite, records: Sequence[dict]) -> list[dict]:
    """Gated cells that are not within tolerance: outside it, or not measured (a
    measurement that broke must fail the gate, not pass it silently). Complexity cells
    always; accuracy cells only when the records come from the full profile."""
    from .compare import WITHIN
    from .report import cell_verdicts
    full = any(r.get("profile") == "full" for r in records)
    ran = {r.get("row_key") for r in records}      # --rows: gate the rows that ran
    return [v for v in cell_verdicts(suite, records)
            if v["gated"] and v["row_key"] in ran
            and (suite.columns[v["column"]].is_complexity or full) and v["status"] != WITHIN]


# --- the smoke baseline ---------------------------------------------------------------

def baseline_path(suite: Suite, results_dir: Path = res.RESULTS_DIR) -> Path:
    return Path(results_dir) / "baselines" / f"{res.safe_name(suite.suite)}.smoke.json"


def smoke_metrics(suite: Suite, records: Sequence[dict]) -> dict[str, dict[str, dict]]:
    """row key -> protocol key -> {accuracy measures of that protocol's columns, the
    same measures scored by the decoded target heatmaps (``target.<measure>``, the
    evaluation half of the pipeline), first_loss, final_loss} from smoke row records."""
    out: dict[str, dict[str, dict]] = {}
    for rec in records:
        if rec.get("profile") != "smoke":
            continue
        for key, run in (rec.get("runs") or {}).items():
            measures = [c.measure for c in suite.columns.values()
                        if not c.is_complexity and c.protocol == key]
            metrics = run.get("metrics") or {}
            values = {m: metrics.get(m) for m in measures}
            targets = run.get("target_metrics") or {}
            values.update({f"target.{m}": targets.get(m) for m in measures})
            training = run.get("training") or {}
            values["first_loss"] = training.get("first_loss")
            values["final_loss"] = training.get("final_loss")
            out.setdefault(rec["row_key"], {})[key] = values
    return out


def write_smoke_baseline(suite: Suite, records: Sequence[dict], path: Path) -> Path:
    """Write (or update: rows not in ``records`` are kept) the suite's smoke baseline."""
    rows = {}
    if Path(path).is_file():
        try:
            rows = json.loads(Path(path).read_text()).get("rows") or {}
        except ValueError:
            rows = {}
    rows.update(smoke_metrics(suite, records))
    rows = {row.key: rows[row.key] for row in suite.rows if row.key in rows}
    res.atomic_write_json(path, {
        "suite": suite.suite, "profile": "smoke",
        "about": "metrics of the smoke profile (generated data, fixed seeds, CPU); "
                 "run_suite.py --check --profile smoke fails when a metric moves beyond "
                 "the tolerance. Regenerate with --profile smoke --update-baseline after "
                 "an intended change, and say why in the commit.",
        "tolerance": SMOKE_TOLERANCE,
        "rows": rows,
        "provenance": provenance(),
    })
    return Path(path)


def smoke_gate_failures(suite: Suite, records: Sequence[dict], path: Path) -> list[str]:
    """Messages for every smoke metric that left the baseline's tolerance (or is missing)."""
    path = Path(path)
    if not path.is_file():
        return [f"CHECK FAILED {suite.suite}: no smoke baseline at {path}; create it with "
                f"--profile smoke --update-baseline"]
    try:
        base = json.loads(path.read_text())
        tol = {**SMOKE_TOLERANCE, **(base.get("tolerance") or {})}
        expected_rows = base["rows"]
    except (ValueError, KeyError, TypeError) as err:
        return [f"CHECK FAILED {suite.suite}: unreadable smoke baseline {path}: {err}"]
    current = smoke_metrics(suite, records)
    failures = []
    for row_key, protocols in current.items():
        if row_key not in expected_rows:
            failures.append(f"CHECK FAILED {suite.suite}: row {row_key!r} has no entry in {path}")
            continue
        for key, values in protocols.items():
            expected = expected_rows[row_key].get(key, {})
            for name in sorted(set(values) | set(expected)):
                got, want = values.get(name), expected.get(name)
                if got is None and want is None:
                    continue
                if got is None or want is None:
                    failures.append(f"CHECK FAILED {suite.suite}: row {row_key!r}, {key}.{name}: "
                                    f"baseline {want}, measured {got}")
                    continue
                allowed = tol["loss_rel"] * abs(want) if name.endswith("loss") else tol["metric_abs"]
                if abs(got - want) > allowed + 1e-12:
                    failures.append(
                        f"CHECK FAILED {suite.suite}: row {row_key!r}, {key}.{name}: baseline "
                        f"{want:.6g}, measured {got:.6g}, allowed ±{allowed:.3g} ({path})")
    return failures


def _all_profile_records(suite: Suite, results_dir: Path) -> list[dict]:
    """Every profile's records of the suite, for the report (a cell shows the
    furthest-going profile that measured it)."""
    return [r for profile in PROFILES for r in res.suite_records(suite.suite, profile, results_dir)]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        suites = [load_suite(path) for path in args.suites]
        launch = LaunchConfig(args.launcher, args.gpus, args.nodes, args.slurm_partition,
                              args.slurm_account, args.slurm_time,
                              slurm_folder=str(args.work_dir / "slurm"))
    except (SuiteError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.update_baseline and args.profile != "smoke":
        print("error: --update-baseline needs --profile smoke", file=sys.stderr)
        return 2
    job_options = {k: v for k, v in {
        "batch_size": args.batch_size, "amp": args.amp, "channels_last": args.channels_last,
        "device": args.device, "num_workers": args.workers, "epochs": args.epochs,
        "progress": args.progress}.items() if v not in (None, False, "off")}
    cache = MeasurementCache(args.cache_dir, enabled=not args.no_cache)
    exit_code = 0
    for suite in suites:
        hits, misses = cache.hits, cache.misses
        # the smoke gate measures the code at hand: its jobs always run again
        rerun = args.rerun or (args.check and args.profile == "smoke")
        run = run_suite(suite, args.profile, args.results_dir, args.data_root, cache,
                        args.rows, args.latency, work_dir=args.work_dir, rerun=rerun,
                        launch=launch, job_options=job_options, device=args.device or "auto")
        from . import report
        shown = _all_profile_records(suite, args.results_dir)
        if not args.quiet:
            print(report.render_terminal(suite, shown))
        if not args.no_report:
            html = report.render_suite_html(suite, shown, args.reports_dir)
            report.render_index(args.reports_dir)
            print(f"report: {html}")
        print(f"{suite.suite}: {len(run.records)} rows in {run.wall_time_s:.1f}s "
              f"(cache: {cache.hits - hits} hits, {cache.misses - misses} misses); records in "
              f"{args.results_dir / suite.suite}")
        baseline = args.baseline or baseline_path(suite, args.results_dir)
        if args.update_baseline:
            print(f"smoke baseline: {write_smoke_baseline(suite, run.records, baseline)}")
        if args.check:
            failures = [_failure_line(suite, f) for f in gate_failures(suite, run.records)]
            if args.profile == "smoke":
                failures += smoke_gate_failures(suite, run.records, baseline)
            for line in failures:
                print(line, file=sys.stderr)
            if failures:
                exit_code = 1
            else:
                what = {"smoke": "complexity cell and smoke metric",
                        "full": "complexity and accuracy cell"}.get(args.profile, "complexity cell")
                print(f"check passed: {suite.suite}, every gated {what} within tolerance")
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
