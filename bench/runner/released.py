"""The ``released`` profile: the authors' released weights, scored by this project's own
evaluation on each protocol's validation set, cell by cell against the published table.

A suite row names its released weights per protocol key (``Row.released``: the file name
as published, its sha256 where known, where it is published, the model-zoo numbers).
The plan (``plan``) makes one evaluate-only job per (row, protocol) with such weights
(``Job(eval_only=True, checkpoint=...)``, the protocol's own test settings);
``run_released`` runs them through the usual launchers. The file is looked up by name
under ``--weights-dir`` (directly, or anywhere below it, as the model zoos unpack into
sub-folders). A missing
file skips the (row, protocol) with one message naming the file and where the authors
publish it; a file whose sha256 differs from the suite's is refused with both digests.
``cells.accuracy_cell`` fills an accuracy cell from the job's record; unlike smoke and
short results these cells are compared with the published value and gated by ``--check``.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

from ..profiles import RELEASED
from ..suite import ReleasedWeights, Row, Suite
from ..protocol import Protocol
from .context import RunContext
from .jobs import done_already, job_outcomes

PROFILE = RELEASED


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


def run_released(suite: Suite, specs: Sequence, ctx: RunContext, log=print) -> list[dict]:
    """Evaluate the released weights of the plan's runnable specs (``plan.RunSpec``): one
    evaluate-only job each, those not done yet, through ``ctx.launch``. Returns the jobs
    that failed (``{"job", "error", "kind", "record"}``)."""
    world = ctx.launch.world_size
    todo = []
    for spec in specs:
        if spec.notice:
            log(spec.notice)
        if not spec.runs:
            continue
        job = copy.copy(spec.job)     # the launch marks it (staged); the plan stays as it is
        if done_already(job, spec.record_path, ctx, world, weights_sha256=spec.weights_sha256):
            row_used, protocol = scored(spec.row, spec.key, spec.protocol)
            log(f"done already: {spec.row.released[spec.key].file} ({row_used.model.key}) on "
                f"{protocol.name}; --rerun to score it again")
            continue
        todo.append(job)
    if todo:
        from ..launch import run_jobs
        log(f"{suite.suite}: {len(todo)} {PROFILE} job(s) (evaluation of the authors' "
            f"weights) via {ctx.launch.launcher}")
        return job_outcomes(todo, run_jobs(todo, ctx.launch))
    return []


def released_rows(rows: Sequence[Row], specs: Sequence) -> list[Row]:
    """The rows that name released weights for at least one protocol they are scored on."""
    named = {s.row.key for s in specs if s.key in s.row.released}
    return [row for row in rows if row.key in named]


def recorded_rows(rows: Sequence[Row], specs: Sequence) -> list[Row]:
    """The rows a released run writes records for: those with at least one released
    file found (a row whose every file is missing is skipped; its messages said why)."""
    found = {s.row.key for s in specs if s.key in s.row.released and not s.weights_missing}
    return [row for row in rows if row.key in found]
