"""The ``released`` profile: the authors' released weights, scored by this project's own
evaluation on each protocol's validation set, cell by cell against the published table.

A suite row names its released weights per protocol key (``Row.released``: the file name
as published, its sha256 where known, where it is published, the model-zoo numbers).
``run_released`` makes one evaluate-only job per (row, protocol) with such weights
(``Job(eval_only=True, checkpoint=...)``, the protocol's own test settings) and runs the
jobs through the usual launchers. The file is looked up by name under ``--weights-dir``
(directly, or anywhere below it, as the model zoos unpack into sub-folders). A missing
file skips the (row, protocol) with one message naming the file and where the authors
publish it; a file whose sha256 differs from the suite's is refused with both digests.
``released_cell`` fills an accuracy cell from the job's record; unlike smoke and short
results these cells are compared with the published value and gated by ``--check``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from .. import results as res
from ..profiles import RELEASED
from ..suite import Column, ReleasedWeights, Row, Suite
from ..protocol import Protocol
from .context import RunContext
from .jobs import (accuracy_protocols, build_job, done_already, job_outcomes, missing_data,
                   run_key, unsupported_task)

PROFILE = RELEASED


def released_rows(suite: Suite, rows: Sequence[Row]) -> list[Row]:
    """The rows that name released weights for at least one protocol they are scored on."""
    return [row for row in rows
            if any(key in row.released for key in accuracy_protocols(suite, row))]


def scored(row: Row, key: str, protocol: Protocol) -> tuple[Row, Protocol]:
    """The row and protocol the released weights for ``key`` are scored with: the row's
    model with the entry's ``model_overrides`` (the forward the authors trained), the
    entry's own ``protocol`` (the authors' test settings) where it names one."""
    released = row.released[key]
    if released.model_overrides:
        model = row.model.model_copy(update={"overrides": {**row.model.overrides,
                                                           **released.model_overrides}})
        row = row.model_copy(update={"model": model})
    return row, released.protocol or protocol


def record_path(row: Row, key: str, protocol: Protocol, results_dir: Path) -> Path:
    """Where the evaluation of the row's released weights for ``key`` is recorded."""
    row, protocol = scored(row, key, protocol)
    return res.run_record_path(protocol.name, run_key(row, protocol), PROFILE, results_dir)


def find_weights(weights_dir: Path, name: str) -> tuple[Path | None, str, bool]:
    """(path, problem, missing): the file ``name`` directly in ``weights_dir`` or, as a
    model zoo unpacks into sub-folders (``pose_coco/``, ``pose_mpii/``), the one file of
    that name below it. ``problem`` says why there is none; ``missing`` is false when
    there are several files of that name (which one is meant is not guessed)."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        return None, f"the weights folder {weights_dir} does not exist", True
    direct = weights_dir / name
    if direct.is_file():
        return direct, "", False
    found = sorted(p for p in weights_dir.rglob(name) if p.is_file())
    if len(found) == 1:
        return found[0], "", False
    if found:
        return None, (f"{len(found)} files named {name} under {weights_dir} "
                      f"({', '.join(str(p) for p in found[:4])}): keep one"), False
    return None, f"{name} is not in {weights_dir} (nor in a folder below it)", True


def _where(released: ReleasedWeights) -> str:
    return f"the authors publish it at {released.published_at}"


def check_weights(row: Row, key: str, released: ReleasedWeights, weights_dir: Path | None
                  ) -> tuple[Path | None, str | None, str | None, bool]:
    """(path, sha256, why not, missing): the row's weights file for protocol ``key``
    found and, when the suite gives its sha256, checked. ``missing`` tells a file that is
    not there (the row is skipped) from one that is refused (a wrong file)."""
    what = f"released weights of {row.name!r} ({key})"
    if weights_dir is None:
        return None, None, (f"{what}: no --weights-dir given, so {released.file} cannot be "
                            f"found; {_where(released)}"), True
    path, problem, missing = find_weights(weights_dir, released.file)
    if path is None:
        return None, None, f"{what}: {problem}; {_where(released)}", missing
    from ..checkpoints import file_sha256
    digest = file_sha256(path)
    if released.sha256 and digest != released.sha256:
        return path, digest, (f"{what}: refused {path}: its sha256 is {digest}, the suite "
                              f"expects {released.sha256} for {released.file} "
                              f"({_where(released)})"), False
    return path, digest, None, False


def run_released(suite: Suite, rows: Sequence[Row], ctx: RunContext, log=print) -> list:
    """Evaluate the released weights of every (row, protocol) that names some: one
    evaluate-only job each, those not done yet, through ``ctx.launch``. Returns the jobs
    launched. Reasons for the others go to ``ctx.skipped`` (run record path -> reason);
    missing files also to ``ctx.missing_weights``."""
    world = ctx.launch.world_size
    todo, seen = [], {}
    for row in rows:
        for key, protocol in accuracy_protocols(suite, row).items():
            released = row.released.get(key)
            if released is None:
                continue
            path = record_path(row, key, protocol, ctx.results_dir)
            row_used, protocol = scored(row, key, protocol)
            if str(path) in seen:
                if seen[str(path)] != released.file:
                    log(f"warning: {row.name!r} ({key}) names {released.file}, but another row "
                        f"of {suite.suite} with the same model and protocol names "
                        f"{seen[str(path)]}; the record {path} holds the latter's score")
                continue
            seen[str(path)] = released.file
            why = unsupported_task(protocol) or missing_data(protocol, ctx.data_root)
            weights = digest = None
            if why is None:
                weights, digest, why, missing = check_weights(row, key, released, ctx.weights_dir)
                if why:
                    log(("skipped: " if missing else "error: ") + why)
                    if missing:
                        ctx.missing_weights.add(str(path))
            if why:
                ctx.skipped[str(path)] = why
                continue
            job = dataclasses.replace(build_job(row_used, protocol, ctx, ctx.data_root),
                                      eval_only=True, checkpoint=str(weights))
            if done_already(job, path, ctx, world, weights_sha256=digest):
                log(f"done already: {released.file} ({row_used.model.key}) on {protocol.name}; "
                    f"--rerun to score it again")
                continue
            todo.append(job)
    if todo:
        from ..launch import run_jobs
        log(f"{suite.suite}: {len(todo)} {PROFILE} job(s) (evaluation of the authors' "
            f"weights) via {ctx.launch.launcher}")
        ctx.failed.extend(job_outcomes(todo, run_jobs(todo, ctx.launch)))
    return todo


def released_cell(col: Column, protocol: Protocol, row: Row, ctx: RunContext) -> dict:
    """An accuracy cell from the evaluation of the row's released weights. A cell whose
    weights file is missing says so and is marked ``skipped`` (``--check`` passes over
    it); a refused or failed evaluation is a plain not-measured cell (the gate fails)."""
    cell = {"unit": col.unit, "convention": None}
    released = row.released.get(col.protocol)
    if released is None:
        return {**cell, "status": res.CELL_NOT_MEASURED, "value": None,
                "reason": f"{row.name!r} names no released weights for {col.protocol!r}"}
    path = record_path(row, col.protocol, protocol, ctx.results_dir)
    row, protocol = scored(row, col.protocol, protocol)
    why = ctx.skipped.get(str(path))
    if why:
        out = {**cell, "status": res.CELL_NOT_MEASURED, "value": None, "reason": why}
        if str(path) in ctx.missing_weights:
            out["skipped"] = "released weights file missing"
        return out
    record = res.read_record(path)
    run = f"the evaluation of {released.file} ({run_key(row, protocol)}) on {protocol.name}"
    value, why = res.run_metric(record, col.measure, run)
    if value is not None:
        return {**cell, "status": res.CELL_MEASURED, "value": value, "raw": value,
                "source": str(path), "profile": PROFILE,
                "weights": {"file": released.file, "sha256": record.get("weights_sha256")}}
    if why is None:
        why = f"no {PROFILE}-profile result for {run_key(row, protocol)} on {protocol.name}"
    return {**cell, "status": res.CELL_NOT_MEASURED, "value": None, "reason": why}


def recorded_rows(suite: Suite, rows: Sequence[Row], ctx: RunContext) -> list[Row]:
    """The rows a released run writes records for: those with at least one released
    file found (a row whose every file is missing is skipped; its messages said why)."""
    out = []
    for row in rows:
        paths = [str(record_path(row, key, protocol, ctx.results_dir))
                 for key, protocol in accuracy_protocols(suite, row).items() if key in row.released]
        if any(p not in ctx.missing_weights for p in paths):
            out.append(row)
    return out
