"""``hrbench run`` end to end, once its arguments are parsed: run each suite
(``bench.runner``), show it in the terminal, render its report, write or compare the
smoke baseline, gate it (``--check``) and write the CI files; the exit status says how
it went (README, "Exit status"). The command line (``bench.cli``) parses and calls
``run``."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from . import results as res
from .complexity.cache import MeasurementCache
from .launch import LaunchConfig
from .paths import OutsideRootError
from .profiles import NAMES, get_profile
from .runner import (failure_line, gate_failures, run_suite, smoke_gate_failures,
                     write_smoke_baseline)
from .runner.smoke_gate import baseline_path, find_baseline
from .suite import Suite

# exit statuses (README, "Exit status"); when several apply, the largest is returned
EXIT_OK = 0
EXIT_GATE = 1          # --check: a gated cell outside its tolerance, or not measured
EXIT_INPUT = 2         # a bad suite file or argument: nothing ran, nothing was touched
EXIT_FAILED = 3        # a job failed or was refused, or a row's measurement failed
EXIT_STORAGE = 4       # a record, report, checkpoint or log could not be written
EXIT_PREEMPTED = 5     # stopped by SIGTERM/SIGUSR2 after a checkpoint: run it again


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What ``hrbench run`` was asked for (the parsed command line, folders resolved)."""
    profile: str
    results_dir: Path
    reports_dir: Path
    work_dir: Path
    data_root: Optional[Path] = None
    rows: Sequence[str] = ()
    latency: bool = False
    rerun: bool = False
    check: bool = False
    quiet: bool = False
    report: bool = True
    force_report: bool = False
    update_baseline: bool = False
    baseline: Optional[Path] = None
    junit_xml: Optional[Path] = None
    summary_json: Optional[Path] = None
    launch: Optional[LaunchConfig] = None
    job_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    device: str = "auto"
    seeds: Sequence[int] = ()
    weights_dir: Optional[Path] = None

    @property
    def gated(self) -> bool:
        """Whether the smoke gate compares with its baseline (``--check`` or a CI file)."""
        return bool(self.check or self.junit_xml or self.summary_json)


def all_profile_records(suite: Suite, results_dir: Path, variants: bool = False) -> list[dict]:
    """Every profile's records of the suite, for the report (a cell shows the
    furthest-going profile that measured it); ``variants``: also the runs with other
    settings (the report lists them apart, never against the paper)."""
    return [r for profile in NAMES
            for r in res.suite_records(suite.suite, profile, results_dir, variants=variants)]


def run(suites: Sequence[Suite], options: RunOptions, cache: MeasurementCache,
        argv: Sequence[str] = ()) -> int:
    """Run, show, report and gate ``suites``; write the CI files; the exit status."""
    from .results import StorageError
    from .training.preemption import Preempted
    gates: list = []
    try:
        exit_code = _run_suites(suites, options, cache, gates)
    except Preempted as stop:
        print(f"interrupted: {stop}; the finished suites' records are written; the same "
              f"command resumes from the checkpoint", file=sys.stderr)
        return EXIT_PREEMPTED
    except StorageError as err:
        print(f"error: {err} (nothing half-written: the earlier file, if any, is intact)",
              file=sys.stderr)
        return EXIT_STORAGE
    except OutsideRootError as err:     # a name the loader let through (bench.paths)
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    failed = [(gate.suite.suite, f) for gate in gates for f in gate.failed_jobs]
    broken = [(gate.suite.suite, f) for gate in gates for f in gate.failed_rows]
    for name, f in failed:
        print(f"FAILED JOB {name}: {f['job']}: {f['error']} (record: {f.get('record')})",
              file=sys.stderr)
    for name, f in broken:
        print(f"FAILED ROW {name}: {f['row']!r}: {f['error']} (record: {f.get('record')})",
              file=sys.stderr)
    if failed or broken:
        storage = any(f.get("kind") == "storage" for _, f in failed)
        exit_code = max(exit_code, EXIT_STORAGE if storage else EXIT_FAILED)
        print(f"{len(failed)} job(s) and {len(broken)} row(s) failed", file=sys.stderr)
    try:
        _write_ci_outputs(options, gates, exit_code, argv)
    except StorageError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_STORAGE
    return exit_code


def _write_ci_outputs(options: RunOptions, gates, exit_code: int, argv) -> None:
    if options.junit_xml or options.summary_json:
        from .ci import write_junit, write_summary
        if options.junit_xml:
            print(f"junit: {write_junit(options.junit_xml, gates)}")
        if options.summary_json:
            print(f"summary: {write_summary(options.summary_json, gates, exit_code, argv)}")


def _run_suites(suites: Sequence[Suite], options: RunOptions, cache: MeasurementCache,
                gates: list) -> int:
    """Run, show and gate each suite (appending to ``gates``); the gate's exit status."""
    from . import report
    o, profile = options, get_profile(options.profile)
    exit_code = EXIT_OK
    for suite in suites:
        hits, misses = cache.hits, cache.misses
        # the smoke gate measures the code at hand: its jobs always run again
        rerun = o.rerun or (o.check and profile.generated_data)
        ran = run_suite(suite, o.profile, o.results_dir, o.data_root, cache, o.rows, o.latency,
                        work_dir=o.work_dir, rerun=rerun, launch=o.launch,
                        job_options=dict(o.job_options), device=o.device, seeds=o.seeds or (),
                        weights_dir=o.weights_dir)
        # read once: the terminal shows the protocols' own settings, the report all
        everything = all_profile_records(suite, o.results_dir, variants=True)
        shown = [r for r in everything if not r.get("settings_variant")]
        variant = getattr(ran, "variant", None)
        if not o.quiet:
            # a run with other settings shows its own records (the report keeps those of
            # the protocols' own settings, and lists the others apart)
            here = shown if variant is None else \
                [r for r in shown if r.get("profile") != o.profile] + list(ran.records)
            print(report.render_terminal(suite, here, profile=o.profile))
        if variant:
            print(f"settings {ran.variant}: recorded beside the protocols' own "
                  f"({', '.join(str(p.name) for p in ran.record_paths[:2])}"
                  f"{', ...' if len(ran.record_paths) > 2 else ''})")
        if o.report:
            page = report.render_suite_report(suite, everything, o.reports_dir,
                                              force=o.force_report)
            print(f"report: {page.path}" + ("" if page.rendered else " (unchanged)"))
        print(f"{suite.suite}: {len(ran.records)} rows in {ran.wall_time_s:.1f}s "
              f"(cache: {cache.hits - hits} hits, {cache.misses - misses} misses); records in "
              f"{o.results_dir / suite.suite}")
        if o.update_baseline:
            written = write_smoke_baseline(suite, ran.records,
                                           o.baseline or baseline_path(suite, o.results_dir))
            print(f"smoke baseline: {written}")
        # the smoke gate compares with the baseline in <results>/baselines, or, for a
        # bundled suite without one there, the baseline shipped with HRBench
        baseline = o.baseline or find_baseline(suite, o.results_dir)
        smoke_failures = (smoke_gate_failures(suite, ran.records, baseline)
                          if profile.generated_data and o.gated else [])
        gates.append(_suite_gate(suite, o.profile, ran, smoke_failures))
        if o.check:
            failures = [failure_line(suite, f) for f in gate_failures(suite, ran.records)]
            failures += smoke_failures
            for line in failures:
                print(line, file=sys.stderr)
            if failures:
                exit_code = EXIT_GATE
            else:
                what = ("complexity cell and smoke metric" if profile.generated_data else
                        "complexity cell and released-weights accuracy cell"
                        if profile.released_weights else "complexity and accuracy cell"
                        if profile.gates_accuracy else "complexity cell")
                print(f"check passed: {suite.suite}, every gated {what} within tolerance")
    if o.report:
        # once, after every suite: drawn again only when some page's summary changed
        report.render_index_cached(o.reports_dir, force=o.force_report)
    return exit_code


def _suite_gate(suite: Suite, profile: str, ran, smoke_failures: list[str]):
    from .ci import SuiteGate
    return SuiteGate(suite=suite, profile=profile, records=list(ran.records),
                     wall_time_s=float(getattr(ran, "wall_time_s", 0.0) or 0.0),
                     smoke_failures=list(smoke_failures),
                     smoke_gated=get_profile(profile).generated_data,
                     failed_jobs=list(getattr(ran, "failed_jobs", []) or []),
                     failed_rows=list(getattr(ran, "failed_rows", []) or []))


__all__ = ["EXIT_FAILED", "EXIT_GATE", "EXIT_INPUT", "EXIT_OK", "EXIT_PREEMPTED",
           "EXIT_STORAGE", "RunOptions", "all_profile_records", "run"]
