"""The runner: suite rows -> measurements -> result records (-> report and CI gate).

``run_suite`` measures every row of a suite. Profiles: ``complexity`` measures only;
``smoke``, ``short`` and ``full`` first run the training jobs the accuracy columns need
(planned once by ``plan``, run by ``jobs``), then fill the cells from the jobs' records
(``cells``); ``released`` evaluates the authors' released weights instead
(``released``). A failing row is recorded as failed and the others go on; every record
is written atomically as soon as its row finishes. It knows no architecture and no
task: everything model-specific comes from the registry and the model's own spec.

Modules: ``context`` (settings, paths, the row's models), ``plan`` (every run of the
suite, computed once: its record, its job, why it will not run), ``cells`` (one row's
cells and record), ``jobs`` (training jobs), ``released`` (evaluation jobs of released
weights), ``smoke_gate`` (``--check --profile smoke`` against the committed baseline);
the ``--check`` verdicts are ``bench.verdicts``'. The command line is ``bench.cli``, which
imports this package (never the other way round).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import time
from pathlib import Path

from .. import results as res
from ..complexity.cache import MeasurementCache
from ..launch import LaunchConfig
from ..suite import Suite, load_suite
from ..profiles import DEFAULT, has, names_with
from ..verdicts import failure_line, gate_failures
from .cells import accuracy_cell, measure_complexity, measure_row
from .context import (BASELINES_DIR, PROFILES, REPORTS_DIR, SMOKE_DATA_SEED, WORK_DIR,
                      RowModels, RunContext, input_shapes, model_overrides)
from .jobs import (accuracy_protocols, build_job, job_protocol, missing_data, run_key,
                   run_training, smoke_data_root, variant_tag)

#: profiles whose runs take settings beyond the protocol's (released scores the weights
#: as the authors did: the command line refuses training options for it)
VARIANT_PROFILES = names_with("trains")
# the module, not its function, is bench.runner.plan
from .plan import RunSpec, plan as plan_runs
from .released import recorded_rows, released_rows, run_released
from .smoke_gate import (SMOKE_TOLERANCE, baseline_path, smoke_gate_failures, smoke_metrics,
                         write_smoke_baseline)

__all__ = [
    "BASELINES_DIR", "PROFILES", "REPORTS_DIR", "SMOKE_DATA_SEED", "SMOKE_TOLERANCE",
    "WORK_DIR", "RowModels", "RunContext", "RunSpec", "SuiteRun", "accuracy_cell",
    "accuracy_protocols",
    "baseline_path", "build_job", "failure_line", "gate_failures", "input_shapes",
    "job_protocol", "measure_complexity", "measure_row", "missing_data",
    "model_overrides", "run_key", "run_suite", "run_training", "smoke_data_root",
    "smoke_gate_failures", "smoke_metrics", "variant_tag", "write_smoke_baseline",
]


@dataclasses.dataclass
class SuiteRun:
    suite: Suite
    records: list[dict]
    record_paths: list[Path]
    wall_time_s: float
    # jobs that failed or were refused ({"job", "error", "kind", "record"}) and rows
    # whose measurement failed ({"row", "error", "record"})
    failed_jobs: list = dataclasses.field(default_factory=list)
    failed_rows: list = dataclasses.field(default_factory=list)
    variant: str | None = None


def run_suite(suite: Suite | str | Path, profile: str = DEFAULT,
              results_dir: Path = res.RESULTS_DIR, data_root: Path | None = None,
              cache: MeasurementCache | None = None, rows: str | None = None,
              latency: bool = False, progress=None, work_dir: Path = WORK_DIR,
              rerun: bool = False, launch: LaunchConfig | None = None,
              job_options: dict | None = None, log=print, device: str = "auto",
              seeds=(), weights_dir: Path | None = None) -> SuiteRun:
    """Measure every row (or those whose name matches the glob ``rows``), write records.
    Training profiles first run the jobs the accuracy cells need (``run_training``), once
    per seed of ``seeds`` (none: the protocol's own seed); accuracy cells hold the mean.
    The ``released`` profile evaluates the authors' weights found under ``weights_dir``
    for the rows that name some (``run_released``); the other rows are not recorded."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; available: {', '.join(PROFILES)}")
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    ctx = RunContext(profile=profile, results_dir=Path(results_dir),
                     data_root=Path(data_root) if data_root else None,
                     cache=cache or MeasurementCache(), latency=latency, device=device,
                     work_dir=Path(work_dir), rerun=rerun, launch=launch or LaunchConfig(),
                     job_options=dict(job_options or {}),
                     weights_dir=Path(weights_dir) if weights_dir else None,
                     seeds=tuple(dict.fromkeys(int(s) for s in seeds or ())),
                     variant=variant_tag(job_options or {}) if profile in VARIANT_PROFILES
                     else None)
    t0 = time.perf_counter()
    # rows of methods this project does not build keep their published cells in the
    # report; there is nothing to measure for them
    selected = [row for row in suite.rows
                if row.built and (not rows or fnmatch.fnmatch(row.name, rows))]
    specs = plan_runs(suite, selected, ctx)
    failed_jobs = []
    if has(profile, "released_weights"):
        selected = released_rows(selected, specs)
        failed_jobs = run_released(suite, specs, ctx, log)
        selected = recorded_rows(selected, specs)
    elif has(profile, "runs_jobs"):
        failed_jobs = run_training(suite, specs, ctx, log)
    records, paths, failed_rows = [], [], []
    for row in selected:
        path = res.row_record_path(suite.suite, row.key, profile, ctx.results_dir, ctx.variant)
        record = measure_row(suite, row, ctx, previous=res.read_record(path), specs=specs)
        res.write_record(path, record)
        records.append(record)
        paths.append(path)
        if record.get("status") != "ok":
            failed_rows.append({"row": row.name, "error": record.get("error"),
                                "record": str(path)})
        if progress:
            progress(row, record)
    return SuiteRun(suite, records, paths, time.perf_counter() - t0,
                    failed_jobs=failed_jobs, failed_rows=failed_rows, variant=ctx.variant)
