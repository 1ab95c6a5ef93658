"""Cells: one row of a suite -> one measurement per column -> the row's record.

* complexity and structure measures (params, flops, formula_flops, latency_ms with
  ``--latency``, receptive_field, contributing_fraction, fold_equivalence_error,
  attribute, output_stride, subsamplings, out_channels, and any registered from outside)
  are computed on the built model by the column's handle (``bench.measures``), through
  the on-disk measurement cache; a ``relative_to`` cell is the ratio of two of them;
* accuracy measures are read from training/evaluation run records
  (``results/runs/<protocol>/<model_key>.<profile>[.seed<N>].json``; with ``--seeds`` the
  mean over the seeds with std and n), those the run's plan names (``plan.RunSpec``);
  without one the cell gives the plan's reason.

A failing cell is recorded as an error and the others go on. It knows no architecture
and no task.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Sequence

from .. import results as res
from ..env import now_iso, provenance
from ..measures import CellRequest, get_measure
from ..suite import Column, Row, Suite
from ..protocol import Protocol
from ..profiles import has
from .context import RowModels, RunContext, input_shapes
from .jobs import run_record
from .plan import RunSpec, no_result, plan, protocol_specs, specs_for


def _measure_ratio(col: Column, protocol: Protocol | None, models: RowModels,
                   ctx: RunContext, convention: str | None) -> tuple[dict, dict]:
    """A ``relative_to`` cell: the measure of the row's model over the same measure of the
    row's model with the column's overrides (the reference)."""
    plain = col.model_copy(update={"relative_to": None})
    row = models.row
    reference_row = row.model_copy(update={"model": row.model.model_copy(
        update={"overrides": {**row.model.overrides, **col.relative_to}})})
    cell, details = measure_complexity(plain, protocol, models, ctx, convention)
    ref, _ = measure_complexity(plain, protocol, RowModels(reference_row), ctx, convention)
    ratio = cell["raw"] / ref["raw"]
    cell.update(raw=ratio, value=ratio, numerator=cell["raw"], denominator=ref["raw"],
                relative_to=dict(col.relative_to))
    cell.pop("canonical", None)
    return cell, details   # the numerator's breakdown; the cell holds both counts


def measure_complexity(col: Column, protocol: Protocol | None, models: RowModels,
                        ctx: RunContext, convention: str | None = None) -> tuple[dict, dict]:
    """One complexity cell, computed by the column's measure handle (``bench.measures``);
    ``convention`` is the row's counting convention for the column
    (``Suite.convention_for``), the column's by default."""
    if col.relative_to:
        return _measure_ratio(col, protocol, models, ctx, convention)
    measure = get_measure(col.measure)
    convention = convention or col.convention
    spec = models.spec(protocol)
    inputs = input_shapes(col, protocol) if measure.needs_input else None
    req = CellRequest(col, protocol, models, ctx, convention, inputs,
                      parts={"model": models.row.model.name, "spec": dataclasses.asdict(spec),
                             "input": inputs})
    cell, details, hit = measure.compute(req)
    if cell.get("status") == res.CELL_MEASURED:
        cell["source"] = "cache" if hit else "measured"
    return cell, details


def _one_run(col: Column, spec: RunSpec, ctx: RunContext) -> tuple[float | None, str]:
    """(value, why there is none) of one seed's run for an accuracy cell: its record's,
    else why the plan did not run it, else that nothing is recorded."""
    run = f"the {spec.profile.name} run of {spec.model_key}" + (
        "" if spec.seed is None else f" (seed {spec.seed})")
    value, why = res.run_metric(res.read_record(spec.record_path), col.measure,
                                f"{run} on {spec.protocol.name}")
    if value is not None or why:
        return value, why or ""
    return None, spec.skip_reason or no_result(spec, ctx.data_root)


def accuracy_cell(col: Column, protocol: Protocol, row: Row, ctx: RunContext,
                  specs: Sequence[RunSpec] | None = None) -> dict:
    """An accuracy cell from the row's run records (those of the plan's ``specs``; without
    them, those of the row's own plan of ``protocol``): the run of the protocol's own
    seed, or with ``--seeds`` the mean of every seed's run, with the sample standard
    deviation, ``n``, the seeds and their values (seeds without a result listed with the
    reason)."""
    if specs is None:
        specs = protocol_specs(row, col.protocol, protocol, ctx)
    specs = specs_for(specs, row, col.protocol)
    if not specs:
        raise LookupError(f"the plan has no run of {row.name!r} on {col.protocol!r}")
    if has(ctx.profile, "released_weights"):   # one evaluation, no seeds
        return _released_cell(col, specs[0])
    cell = {"unit": col.unit, "convention": None}
    found, missing = [], {}
    for spec in specs:
        value, why = _one_run(col, spec, ctx)
        number = protocol.seed if spec.seed is None else spec.seed
        if value is None:
            missing[number] = why
        else:
            found.append((number, value, spec.record_path))
    if not found:
        reasons = list(dict.fromkeys(missing.values()))
        why = reasons[0] if len(reasons) == 1 else "; ".join(f"seed {s}: {w}" for s, w in missing.items())
        return {**cell, "status": res.CELL_NOT_MEASURED, "value": None, "reason": why}
    values = [v for _, v, _ in found]
    mean = statistics.fmean(values)
    out = {**cell, "status": res.CELL_MEASURED, "value": mean, "raw": mean,
           "source": str(found[0][2]), "profile": specs[0].profile.name}
    if ctx.variant:
        out["settings"] = ctx.variant
    # the good record stays when a later attempt failed: the cell shows both
    failures = [(s, res.last_attempt(p)) for s, _, p in found]
    failures = [(s, a) for s, a in failures if a is not None and a.get("status") != "ok"]
    if failures:
        s, attempt = failures[0]
        out["last_attempt"] = {"status": attempt.get("status"), "error": attempt.get("error"),
                               "finished_at": attempt.get("finished_at"),
                               "record": str(res.attempt_path(found[0][2]))}
        out["note"] = f"last attempt failed: {attempt.get('error')}"
    if ctx.seeds:
        out.update(n=len(values), std=statistics.stdev(values) if len(values) > 1 else None,
                   seeds=[s for s, _, _ in found], values=values,
                   sources=[str(p) for _, _, p in found])
        if missing:
            out["missing_seeds"] = {str(s): why for s, why in missing.items()}
    return out


def _released_cell(col: Column, spec: RunSpec) -> dict:
    """An accuracy cell from the evaluation of the row's released weights (``spec``, a
    ``plan.RunSpec``). A cell whose weights file is missing says so and is marked
    ``skipped`` (``--check`` passes over it); a refused or failed evaluation is a plain
    not-measured cell (the gate fails)."""
    cell = {"unit": col.unit, "convention": None}
    if spec.skip_reason:
        out = {**cell, "status": res.CELL_NOT_MEASURED, "value": None, "reason": spec.skip_reason}
        if spec.weights_missing:
            out["skipped"] = "released weights file missing"
        return out
    released = spec.row.released[spec.key]
    record = res.read_record(spec.record_path)
    run = f"the evaluation of {released.file} ({spec.model_key}) on {spec.protocol.name}"
    value, why = res.run_metric(record, col.measure, run)
    if value is not None:
        return {**cell, "status": res.CELL_MEASURED, "value": value, "raw": value,
                "source": str(spec.record_path), "profile": spec.profile.name,
                "weights": {"file": released.file, "sha256": record.get("weights_sha256")}}
    if why is None:
        why = no_result(spec, None)
    return {**cell, "status": res.CELL_NOT_MEASURED, "value": None, "reason": why}


KEPT_FROM = "kept from the record of"


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
    if str(cell.get("source", "")).startswith(KEPT_FROM):
        return cell, details     # kept already: its source names the run that timed it
    when = (previous.get("finished_at") or "an earlier run")
    commit = ((previous.get("provenance") or {}).get("commit") or "unknown")[:10]
    return {**cell, "source": f"{KEPT_FROM} {when} (commit {commit})"}, details


def measure_row(suite: Suite, row: Row, ctx: RunContext, previous: dict | None = None,
                specs: Sequence[RunSpec] | None = None) -> dict:
    """Every cell of one row. ``previous`` is the row's last record of this profile:
    its latency cells are kept when this run does not time latency. ``specs``: the run's
    plan (``plan.plan``; by default the row's own)."""
    started, t0 = now_iso(), time.perf_counter()
    specs = specs_for(plan(suite, [row], ctx) if specs is None else specs, row)
    models = RowModels(row)
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
                kept = _earlier_latency(previous, cid, spec_json, input_shapes(col, protocol))
            if kept:
                cells[cid], details[cid] = kept
            elif col.is_complexity:
                cells[cid], d = measure_complexity(col, protocol, models, ctx,
                                                    suite.convention_for(row, cid))
                if d:
                    details[cid] = d
            else:
                cells[cid] = accuracy_cell(col, protocol, row, ctx, specs)
        except Exception as err:  # one broken cell must not lose the others
            cells[cid] = {"unit": col.unit, "status": res.CELL_ERROR, "value": None,
                          "reason": f"{type(err).__name__}: {err}"}
    spec = models.spec(None)
    failed = [cid for cid, c in cells.items() if c["status"] == res.CELL_ERROR]
    runs = {}
    if has(ctx.profile, "runs_jobs"):
        for run in specs:     # not ``spec``: that is the model's, recorded below
            key, protocol = run.key, run.protocol
            if key in runs:
                continue
            seeded = specs_for(specs, row, key)
            # the run of the protocol's own seed (the one the smoke baseline holds) ...
            own = next((s for s in seeded if s.seed is None), None)
            if own is not None:
                runs[key] = _run_summary(own.record_path, own.skip_reason)
            else:     # --seeds without it: its record, if an earlier run left one
                runs[key] = _run_summary(run_record(row, protocol, ctx.profile, ctx.results_dir,
                                                    None, ctx.variant), None)
                runs[key]["error"] = runs[key]["error"] or (
                    f"--seeds {' '.join(map(str, ctx.seeds))} leave out the protocol's own "
                    f"seed {protocol.seed}")
            if ctx.seeds:
                # ... and with --seeds every seed's run
                runs[key]["seed"] = protocol.seed
                runs[key]["seeds"] = {
                    str(protocol.seed if s.seed is None else s.seed):
                        _run_summary(s.record_path, s.skip_reason) for s in seeded}
    return {
        "suite": suite.suite, "suite_file": suite.path, "table": suite.table,
        "row": row.name, "row_key": row.key, "profile": ctx.profile,
        # None: the protocols' own settings; else the options this run was given
        "settings_variant": ctx.variant,
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


def _run_summary(path: Path, skip_reason: str | None) -> dict:
    """What a row record keeps of one training run's record (and why it did not run)."""
    rec = res.read_record(path) or {}
    attempt = res.last_attempt(path)
    return {"record": str(path), "status": rec.get("status") or "not run",
            "error": rec.get("error") or skip_reason or None,
            "last_attempt": None if attempt is None else {
                "status": attempt.get("status"), "error": attempt.get("error"),
                "finished_at": attempt.get("finished_at"),
                "record": str(res.attempt_path(path))},
            "fingerprint": rec.get("fingerprint"), "settings": rec.get("settings"),
            "training": _log_summary(rec.get("training")), "metrics": rec.get("metrics"),
            "target_metrics": rec.get("target_metrics")}


def _log_summary(training: dict | None) -> dict | None:
    if not training:
        return None
    keys = ("epochs", "iterations", "first_loss", "final_loss", "train_wall_time_s",
            "images_per_s", "resumed_from", "checkpoint", "log")
    return {k: training.get(k) for k in keys}

