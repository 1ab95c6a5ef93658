"""Cells: one row of a suite -> one measurement per column -> the row's record.

* complexity measures (params, of the model or of a column's ``submodule``, flops under
  the column's convention plus the canonical fvcore figure, formula_flops from the
  model's ``theory_macs``, receptive_field and contributing_fraction from a gradient on
  the built module, fold_equivalence_error from the model's ``predict_folded`` /
  ``fold_targets`` / ``unfold_predictions``, latency_ms with ``--latency``; and the
  structure of the built model: ``attribute`` reads a number at a dotted path of the
  model or of a column's ``submodule``, optionally divided by another (``divided_by``);
  ``output_stride``, ``subsamplings`` and ``out_channels`` come from the shape of the
  model's (or the submodule's) output in a shape-only forward on the column's input) are
  computed here, through the on-disk measurement cache;
* accuracy measures are read from training/evaluation run records
  (``results/runs/<protocol>/<model_key>.<profile>[.seed<N>].json``; with ``--seeds`` the
  mean over the seeds with std and n); without one the cell says why.

A failing cell is recorded as an error and the others go on. It knows no architecture
and no task.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

from .. import results as res
from ..complexity.conventions import CANONICAL, get_convention
from ..env import now_iso, provenance
from ..suite import Column, Row, Suite
from ..protocol import Protocol
from ..profiles import FULL, has
from .context import RowModels, RunContext, input_shapes
from .jobs import (accuracy_protocols, job_seeds, missing_data, run_key, run_record,
                   unsupported_task)

_DECIMAL = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "%": 1, "ms": 1}


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
    """One complexity cell; ``convention`` is the row's counting convention for the
    column (``Suite.convention_for``), the column's by default."""
    if col.relative_to:
        return _measure_ratio(col, protocol, models, ctx, convention)
    convention = convention or col.convention
    spec = models.spec(protocol)
    parts = {"model": models.row.model.name, "spec": dataclasses.asdict(spec),
             "input": None if col.measure in ("params", "attribute") else input_shapes(col, protocol)}
    cell: dict[str, Any] = {"unit": col.unit, "status": res.CELL_MEASURED,
                            "convention": convention}
    details: dict[str, Any] = {}

    if col.measure == "params":
        from ..complexity import count_params
        if col.submodule:
            parts["submodule"] = col.submodule

        def params(rule: str | None = None):
            return models.on_meta(protocol, lambda model: count_params(
                model.get_submodule(col.submodule) if col.submodule else model, convention=rule))
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
                   "counted_on": report.get("counted_on", "cpu"),
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
        from ..complexity.receptive_field import measure_footprint
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
        from ..complexity.fold_equivalence import fold_equivalence
        found, hit = ctx.cache.get_or_compute(
            lambda: fold_equivalence(models.get(protocol), parts["input"][0]),
            measure="fold_equivalence", **parts)
        cell.update(raw=found["max_abs_error"], value=found["max_abs_error"])
        details = found
    elif col.measure == "attribute":
        parts.update(submodule=col.submodule, attribute=col.attribute, divided_by=col.divided_by)

        def read(model):
            target = _submodule(model, col.submodule, models.row.model.name)
            found = {"value": _attribute(target, col.attribute, col.submodule)}
            if col.divided_by:
                found["divided_by"] = _attribute(target, col.divided_by, col.submodule)
            return found

        def attribute():
            found = models.on_meta(protocol, read)   # a tensor's value is read for real
            if col.divided_by and found["divided_by"] == 0:
                raise ValueError(f"{_where(col.submodule, col.divided_by)} is 0: cannot divide by it")
            return found
        found, hit = ctx.cache.get_or_compute(attribute, measure="attribute", **parts)
        raw = found["value"] / found["divided_by"] if col.divided_by else found["value"]
        cell.update(raw=raw, value=raw / _DECIMAL[col.unit])
        details = {"path": _where(col.submodule, col.attribute), **found}
        if col.divided_by:
            details["divided_by_path"] = _where(col.submodule, col.divided_by)
    elif col.measure in ("output_stride", "subsamplings", "out_channels"):
        if len(parts["input"]) != 1:
            raise ValueError(f"a {col.measure} column takes one input, got {len(parts['input'])}")
        parts["submodule"] = col.submodule
        found, hit = ctx.cache.get_or_compute(
            lambda: models.on_meta(protocol, lambda model: _output_shape(
                model, parts["input"][0], col.submodule, models.row.model.name)),
            measure="output_shape", **parts)
        raw = _from_output_shape(col.measure, found)
        cell.update(raw=raw, value=raw / _DECIMAL[col.unit])
        details = found
    elif col.measure == "latency_ms":
        if not ctx.latency:
            return {"unit": col.unit, "status": res.CELL_NOT_MEASURED,
                    "reason": "latency not requested (run with --latency)"}, {}
        from ..complexity.latency import measure_latency
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


def _where(submodule: str | None, path: str) -> str:
    return f"{submodule}.{path}" if submodule else path


def _submodule(model, path: str | None, model_name: str):
    """The module at a column's dotted ``submodule`` path (the model itself when None)."""
    if not path:
        return model
    try:
        return model.get_submodule(path)
    except AttributeError as err:
        raise ValueError(f"model {model_name!r} has no submodule {path!r} ({err})") from None


def _attribute(target, path: str, submodule: str | None = None) -> float:
    """The number at a dotted ``path`` below ``target``: each part is a submodule, an
    attribute, a sequence or tensor index or a mapping key. A tuple whose entries are
    all equal (a square kernel's ``kernel_size``) reads as that number; a one-element
    tensor as its value. Anything else is an error naming the path."""
    import numbers

    import torch
    obj, walked = target, []
    for part in path.split("."):
        modules = getattr(obj, "_modules", None)
        if isinstance(modules, dict) and part in modules:
            obj = modules[part]
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, (list, tuple, torch.Tensor)) and part.isdigit() \
                and int(part) < (len(obj) if getattr(obj, "ndim", 1) else 0):
            obj = obj[int(part)]
        elif not part.isdigit() and hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            where = _where(submodule, ".".join(walked)) if walked else (submodule or "the model")
            raise ValueError(f"bad attribute path {_where(submodule, path)!r}: "
                             f"{where} ({type(obj).__name__}) has no {part!r}")
        walked.append(part)
    value = obj
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.detach().item()
    if isinstance(value, (tuple, list)) and value and all(v == value[0] for v in value):
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        shown = repr(value) if len(repr(value)) <= 80 else f"a {type(value).__name__}"
        raise ValueError(f"{_where(submodule, path)!r} is {shown}, not a number"
                         + ("; name one entry (e.g. .0)" if isinstance(value, (tuple, list)) else ""))
    return float(value) if not isinstance(value, int) else value


def _output_shape(model, input_shape, submodule: str | None, model_name: str) -> dict:
    """Shapes of one forward at batch 1 in eval mode, of the model's main output (a
    mapping's ``out``, a tuple's first entry) or of ``submodule``'s output (its first call),
    on the model's device: meta for a model built there (``RowModels.on_meta``, which
    measures again on a real model when the meta forward fails)."""
    import torch
    target = _submodule(model, submodule, model_name)
    seen: list = []

    def first_tensor(out):
        if isinstance(out, torch.Tensor):
            return out
        if isinstance(out, dict):
            return first_tensor(out.get("out", next(iter(out.values()), None)))
        if isinstance(out, (tuple, list)) and out:
            return first_tensor(out[0])
        raise ValueError(f"the output of {submodule or model_name!r} is a "
                         f"{type(out).__name__}, not a tensor")

    hook = target.register_forward_hook(lambda m, i, o: seen.append(o)) if submodule else None
    training = model.training
    model.eval()
    device = next((t.device.type for t in model.parameters()), "cpu")
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(training)
        if hook is not None:
            hook.remove()
    if submodule and not seen:
        raise ValueError(f"submodule {submodule!r} of {model_name!r} was not called in the forward")
    shape = list(first_tensor(seen[0] if submodule else out).shape)
    if len(shape) != 4:
        raise ValueError(f"expected an (N, C, H, W) output, got shape {shape}")
    return {"input": list(input_shape), "output": shape, "forward": device,
            "output_of": submodule or "model"}


def _from_output_shape(measure: str, found: dict) -> float:
    import math
    (_, height, width), (_, channels, out_h, out_w) = found["input"][-3:], found["output"]
    if measure == "out_channels":
        return channels
    strides = (height / out_h, width / out_w)
    if not math.isclose(*strides):
        raise ValueError(f"the output {out_h}x{out_w} of {found['output_of']} has different strides "
                         f"along H and W on the {height}x{width} input: {strides[0]:g}, {strides[1]:g}")
    if measure == "output_stride":
        return strides[0]
    halvings = math.log2(strides[0])
    if abs(halvings - round(halvings)) > 1e-9:
        raise ValueError(f"output stride {strides[0]:g} of {found['output_of']} is not a power of "
                         "2: no whole number of subsamplings")
    return int(round(halvings))


def _flops(convention: str, parts: dict, protocol, models: RowModels, ctx: RunContext):
    from ..complexity import count_flops
    return ctx.cache.get_or_compute(
        lambda: models.on_meta(protocol, lambda model: count_flops(
            model, parts["input"], convention).to_dict()),
        measure="flops", convention=convention, **parts)


def _one_run(col: Column, protocol: Protocol, row: Row, ctx: RunContext, profile: str,
             seed: int | None) -> tuple[float | None, str, Path]:
    """(value, why there is none, record path) of one seed's run for an accuracy cell."""
    key = run_key(row, protocol)
    path = run_record(row, protocol, profile, ctx.results_dir, seed, ctx.variant)
    run = f"the {profile} run of {key}" + ("" if seed is None else f" (seed {seed})")
    value, why = res.run_metric(res.read_record(path), col.measure, f"{run} on {protocol.name}")
    if value is not None or why:
        return value, why or "", path
    if str(path) in ctx.skipped:
        why = ctx.skipped[str(path)]
    elif protocol.server_only:
        why = missing_data(protocol, None)
    elif unsupported_task(protocol):
        why = unsupported_task(protocol)
    else:
        why = f"no {profile}-profile result for {key} on {protocol.name}"
        if seed is not None:
            why += f" with seed {seed}"
        if profile == FULL:
            why += "; " + (missing_data(protocol, ctx.data_root) or
                           f"{protocol.dataset.upper()} found under {ctx.data_root}, but no "
                           "full training run has been recorded (run with --profile full)")
    return None, why, path


def accuracy_cell(col: Column, protocol: Protocol, row: Row, ctx: RunContext) -> dict:
    """An accuracy cell from the row's run records: the run of the protocol's own seed,
    or with ``--seeds`` the mean of every seed's run, with the sample standard deviation,
    ``n``, the seeds and their values (seeds without a result listed with the reason)."""
    if has(ctx.profile, "released_weights"):   # one evaluation, no seeds
        from .released import released_cell
        return released_cell(col, protocol, row, ctx)
    cell = {"unit": col.unit, "convention": None}
    profile = ctx.profile if has(ctx.profile, "runs_jobs") else FULL
    found, missing = [], {}
    for seed in job_seeds(protocol, ctx.seeds):
        value, why, path = _one_run(col, protocol, row, ctx, profile, seed)
        number = protocol.seed if seed is None else seed
        if value is None:
            missing[number] = why
        else:
            found.append((number, value, path))
    if not found:
        reasons = list(dict.fromkeys(missing.values()))
        why = reasons[0] if len(reasons) == 1 else "; ".join(f"seed {s}: {w}" for s, w in missing.items())
        return {**cell, "status": res.CELL_NOT_MEASURED, "value": None, "reason": why}
    values = [v for _, v, _ in found]
    mean = statistics.fmean(values)
    out = {**cell, "status": res.CELL_MEASURED, "value": mean, "raw": mean,
           "source": str(found[0][2]), "profile": profile}
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
                cells[cid] = accuracy_cell(col, protocol, row, ctx)
        except Exception as err:  # one broken cell must not lose the others
            cells[cid] = {"unit": col.unit, "status": res.CELL_ERROR, "value": None,
                          "reason": f"{type(err).__name__}: {err}"}
    spec = models.spec(None)
    failed = [cid for cid, c in cells.items() if c["status"] == res.CELL_ERROR]
    runs = {}
    if has(ctx.profile, "runs_jobs"):
        for key, protocol in accuracy_protocols(suite, row).items():
            # the run of the protocol's own seed (the one the smoke baseline holds) ...
            path = run_record(row, protocol, ctx.profile, ctx.results_dir, None, ctx.variant)
            if has(ctx.profile, "released_weights") and key in row.released:
                from .released import record_path     # the weights' own forward and protocol
                path = record_path(row, key, protocol, ctx.results_dir)
            runs[key] = _run_summary(path, ctx)
            seeds = job_seeds(protocol, ctx.seeds)
            if ctx.seeds and None not in seeds:
                runs[key]["error"] = runs[key]["error"] or (
                    f"--seeds {' '.join(map(str, ctx.seeds))} leave out the protocol's own "
                    f"seed {protocol.seed}")
            if ctx.seeds:
                # ... and with --seeds every seed's run
                runs[key]["seed"] = protocol.seed
                runs[key]["seeds"] = {
                    str(protocol.seed if seed is None else seed): _run_summary(
                        run_record(row, protocol, ctx.profile, ctx.results_dir, seed,
                                   ctx.variant), ctx)
                    for seed in seeds}
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


def _run_summary(path: Path, ctx: RunContext) -> dict:
    """What a row record keeps of one training run's record."""
    rec = res.read_record(path) or {}
    attempt = res.last_attempt(path)
    return {"record": str(path), "status": rec.get("status") or "not run",
            "error": rec.get("error") or ctx.skipped.get(str(path)),
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

