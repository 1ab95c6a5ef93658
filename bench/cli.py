"""The command line: ``run_suite.py SUITE.yaml ...`` (the ``hrbench`` script) runs the
suites, prints and renders their reports, and with ``--check`` gates on tolerances."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from . import results as res
from .complexity.cache import MeasurementCache
from .launch import LAUNCHERS, LaunchConfig
from .runner import (PROFILES, REPORTS_DIR, WORK_DIR, baseline_path, failure_line,
                     gate_failures, run_suite, smoke_gate_failures, write_smoke_baseline)
from .suite import Suite, SuiteError, load_suite


def build_parser() -> argparse.ArgumentParser:
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
    p.add_argument("--force-report", action="store_true",
                   help="draw every report again, even when its inputs (suite, protocols, "
                        "records, reporter code) are unchanged since the last")
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


def _all_profile_records(suite: Suite, results_dir: Path) -> list[dict]:
    """Every profile's records of the suite, for the report (a cell shows the
    furthest-going profile that measured it)."""
    return [r for profile in PROFILES for r in res.suite_records(suite.suite, profile, results_dir)]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
            page = report.render_suite_report(suite, shown, args.reports_dir, force=args.force_report)
            print(f"report: {page.path}" + ("" if page.rendered else " (unchanged)"))
        print(f"{suite.suite}: {len(run.records)} rows in {run.wall_time_s:.1f}s "
              f"(cache: {cache.hits - hits} hits, {cache.misses - misses} misses); records in "
              f"{args.results_dir / suite.suite}")
        baseline = args.baseline or baseline_path(suite, args.results_dir)
        if args.update_baseline:
            print(f"smoke baseline: {write_smoke_baseline(suite, run.records, baseline)}")
        if args.check:
            failures = [failure_line(suite, f) for f in gate_failures(suite, run.records)]
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
    if not args.no_report:
        from . import report
        # once, after every suite: drawn again only when some page's summary changed
        report.render_index_cached(args.reports_dir, force=args.force_report)
    return exit_code

