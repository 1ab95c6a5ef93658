"""The command line, ``hrbench`` (``python run_suite.py`` is ``hrbench run``):

- ``hrbench run SUITE...`` runs suites (files, or names of the bundled ones), prints and
  renders their reports, gates on tolerances with ``--check`` and writes JUnit XML /
  a JSON summary for CI;
- ``hrbench list models|suites|protocols|conventions [GLOB]``;
- ``hrbench report [SUITE...]`` renders reports again from the records (imports no torch);
- ``hrbench status SUITE...`` lists where each training job stands (imports no torch).

It parses and checks the arguments; ``run`` hands the suites to ``bench.pipeline.run``.
Outputs go under ``--out`` (default: the current directory).
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from . import pipeline
from .complexity.cache import MeasurementCache
from .launch import LAUNCHERS, LaunchConfig
from .paths import PROTOCOLS_DIR, SUITES_DIR, output_dirs, work_path
from .profiles import DEFAULT, FULL, NAMES, get_profile, names_with
from .pipeline import (EXIT_FAILED, EXIT_GATE, EXIT_INPUT, EXIT_OK,  # noqa: F401  (README)
                       EXIT_PREEMPTED, EXIT_STORAGE, RunOptions, all_profile_records)
from .suite import Suite, SuiteError, find_suites, load_suite

COMMANDS = ("run", "list", "report", "status")
LISTABLE = ("models", "suites", "protocols", "conventions")



class _Parser(argparse.ArgumentParser):
    """A mistaken argument is one line (and exit 2), not the usage block."""

    def error(self, message):
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (--help lists the options)\n")


def _count(minimum: int):
    """An argparse type: a whole number of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{value} is not allowed: it must be {'positive' if minimum == 1 else f'at least {minimum}'}")
        return value
    parse.__name__ = "positive whole number" if minimum == 1 else "whole number"
    return parse


def _seed(text: str) -> int:
    """A --seeds value: a whole number from 0 to 2**32 - 1 (what numpy accepts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{value} is outside 0 .. 2**32 - 1")
    return value


RUN_DESCRIPTION = ("Run paper-table suites: measure (and train) every row, store result "
                   "records, render reports, and optionally gate on tolerances (--check).")


def _prog() -> str:
    return "run_suite.py" if Path(sys.argv[0]).name == "run_suite.py" else "hrbench"


def build_parser(add_help: bool = True, prog: str | None = None) -> argparse.ArgumentParser:
    """The ``run`` command's options."""
    p = _Parser(prog=prog or "run_suite.py", description=RUN_DESCRIPTION, add_help=add_help)
    p.add_argument("suites", nargs="+", metavar="SUITE",
                   help="suite YAML files, or names (globs) of the bundled suites, e.g. "
                        "lite_hrnet_table6 or 'lite_hrnet_*' (hrbench list suites)")
    p.add_argument("--profile", default=DEFAULT, choices=NAMES,
                   help="how far a run goes: complexity (measures only), smoke (a few "
                        "iterations on generated data), short (a fraction of the schedule), "
                        "full (the paper's schedule), released (the authors' released "
                        "weights, evaluated only: needs --weights-dir and --data-root); "
                        "default: complexity")
    p.add_argument("--check", action="store_true",
                   help="exit non-zero when a gated cell is outside its tolerance (complexity "
                        "cells; with --profile smoke the committed smoke baseline; with "
                        "--profile full or released also the published accuracy)")
    p.add_argument("--data-root", type=Path, default=None, help="folder holding coco/, mpii/, lspet/")
    p.add_argument("--weights-dir", type=Path, default=None,
                   help="--profile released: the folder holding the authors' released weight "
                        "files (looked up by the file names the suites give, also in "
                        "sub-folders such as the model zoo's pose_coco/)")
    _output_options(p)
    p.add_argument("--work-dir", type=Path, default=None,
                   help="checkpoints, training logs and smoke data (default: <out>/work_dirs)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first: it registers models with bench.register_model "
                        "(repeatable; training jobs in other processes import it too)")
    ci = p.add_argument_group("CI output (written whether or not --check is given)")
    ci.add_argument("--junit-xml", type=Path, default=None, metavar="PATH",
                    help="JUnit XML: one test case per gated cell (a failure gives published, "
                         "measured, tolerance and the row note)")
    ci.add_argument("--summary-json", type=Path, default=None, metavar="PATH",
                    help="JSON: per suite, whether its gate passed and every cell's status")
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
    t.add_argument("--rerun", action="store_true",
                   help="run jobs again even when done; the finished run's record and "
                        "checkpoints are replaced only if the new run succeeds")
    t.add_argument("--launcher", default="local", choices=LAUNCHERS,
                   help="local (this process), torchrun (DDP on this node), slurm (submitit)")
    t.add_argument("--gpus", type=_count(1), default=1, help="GPUs per node for torchrun / slurm")
    t.add_argument("--nodes", type=_count(1), default=1, help="nodes per job (slurm)")
    t.add_argument("--slurm-partition", default=None)
    t.add_argument("--slurm-account", default=None)
    t.add_argument("--slurm-time", type=_count(1), default=72 * 60, help="minutes per job")
    t.add_argument("--batch-size", type=_count(1), default=None,
                   help="images per GPU (default: the protocol's; the learning rate is "
                        "scaled linearly when the total batch differs, and recorded)")
    t.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"), help="mixed precision")
    t.add_argument("--channels-last", action="store_true")
    t.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:N for training and latency (default: cuda when available)")
    t.add_argument("--workers", type=_count(0), default=None,
                   help="data loader workers per process (0: load in the main process)")
    t.add_argument("--epochs", type=_count(1), default=None,
                   help="override the profile's epochs (the run is recorded beside the one "
                        "of the protocol's own settings, e.g. <model>.smoke.epochs=1.json)")
    t.add_argument("--progress", action="store_true", help="progress bars")
    t.add_argument("--seeds", type=_seed, nargs="+", default=None, metavar="SEED",
                   help="run every training job once per seed (e.g. --seeds 0 1 2); accuracy "
                        "cells show the mean ± std and n, gates compare the mean. The "
                        "protocol's own seed (0) keeps the plain record path; the smoke "
                        "baseline holds (and --check compares) that seed's run only")
    t.add_argument("--baseline", type=Path, default=None,
                   help="smoke baseline file (default: <results-dir>/baselines/<suite>.smoke.json)")
    t.add_argument("--update-baseline", action="store_true",
                   help="write this smoke run's metrics as the suite's smoke baseline")
    return p


JOB_PROFILES = names_with("runs_jobs")
TRAINING_PROFILES = names_with("trains")   # --epochs, --batch-size, --seeds, --amp, ...


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The run options set away from their defaults, by flag."""
    defaults = {"epochs": None, "batch_size": None, "seeds": None, "amp": "off",
                "channels_last": False, "workers": None, "progress": False, "rerun": False,
                "launcher": "local", "gpus": 1, "nodes": 1, "slurm_partition": None,
                "slurm_account": None, "slurm_time": 72 * 60, "data_root": None,
                "weights_dir": None, "baseline": None, "update_baseline": False}
    return {"--" + k.replace("_", "-"): getattr(args, k) for k, default in defaults.items()
            if getattr(args, k) != default}


def argument_error(args: argparse.Namespace, suites: Sequence[Suite]) -> str | None:
    """Why the run's arguments cannot be right (one line), before anything runs: an
    option its profile or launcher does not use, a folder that is not there, a --rows
    glob that matches no row, a seed given twice. None: they can."""
    given = _given(args)
    profile = args.profile
    only = {"--epochs": TRAINING_PROFILES, "--batch-size": TRAINING_PROFILES,
            "--seeds": TRAINING_PROFILES, "--amp": TRAINING_PROFILES,
            "--channels-last": TRAINING_PROFILES, "--data-root": names_with("reads_datasets"),
            "--weights-dir": names_with("released_weights"),
            "--baseline": names_with("generated_data"),
            "--update-baseline": names_with("generated_data")}
    for flag in ("--workers", "--progress", "--rerun", "--launcher", "--gpus", "--nodes",
                 "--slurm-partition", "--slurm-account", "--slurm-time"):
        only[flag] = JOB_PROFILES
    for flag, profiles in only.items():
        if flag in given and profile not in profiles:
            return (f"{flag} does not apply to --profile {profile}, which "
                    f"{get_profile(profile).summary} (it applies to "
                    f"{', '.join(profiles)})")
    if args.update_baseline:
        for flag in ("--epochs", "--batch-size", "--amp", "--channels-last"):
            if flag in given:
                return (f"--update-baseline with {flag}: the smoke baseline holds the "
                        "protocols' own smoke settings")
    if args.gpus > 1 and args.launcher == "local":
        return (f"--gpus {args.gpus} needs --launcher torchrun or slurm (the local launcher "
                "runs one process)")
    for flag in ("--nodes", "--slurm-partition", "--slurm-account", "--slurm-time"):
        if flag in given and args.launcher != "slurm":
            return f"{flag} applies to --launcher slurm only (this run: {args.launcher})"
    for flag, folder in (("--data-root", args.data_root), ("--weights-dir", args.weights_dir)):
        if folder is not None and not Path(folder).expanduser().is_dir():
            what = "is not a folder" if Path(folder).expanduser().exists() else "does not exist"
            return f"{flag} {folder} {what}"
    if args.baseline is not None and not args.update_baseline and not Path(args.baseline).is_file():
        return f"--baseline {args.baseline} does not exist (--update-baseline writes one)"
    if args.seeds:
        twice = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
        if twice:
            return (f"--seeds {' '.join(map(str, args.seeds))}: seed "
                    f"{', '.join(map(str, twice))} given more than once")
    if args.rows:
        names = [row.name for suite in suites for row in suite.rows if row.built]
        if not any(fnmatch.fnmatch(n, args.rows) for n in names):
            listed = "; ".join(f"{suite.suite}: " + ", ".join(repr(r.name) for r in suite.rows
                                                              if r.built) for suite in suites)
            return f"--rows {args.rows!r} matches no row ({listed})"
    return None


def run_command(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    """``hrbench run`` (``run_suite.py``): the suites and options checked, then
    ``bench.pipeline.run``; exit 0 fine, 1 a gate failed, 2 bad input (README)."""
    _resolve_outputs(args)
    _user_path()
    if args.imports:
        code = _import_models(args.imports)
        if code:
            return code
    try:
        suites = [load_suite(path) for spec in args.suites for path in find_suites(spec)]
        launch = LaunchConfig(args.launcher, args.gpus, args.nodes, args.slurm_partition,
                              args.slurm_account, args.slurm_time,
                              slurm_folder=str(work_path(args.work_dir, "slurm")))
    except (SuiteError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    refused = argument_error(args, suites)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return EXIT_INPUT
    if get_profile(args.profile).released_weights and args.weights_dir is None:
        print("error: --profile released needs --weights-dir (the folder holding the "
              "authors' released weights; README: 'Score the released weights')", file=sys.stderr)
        return EXIT_INPUT
    job_options = {k: v for k, v in {
        "batch_size": args.batch_size, "amp": args.amp, "channels_last": args.channels_last,
        "device": args.device, "num_workers": args.workers, "epochs": args.epochs,
        "progress": args.progress}.items() if v not in (None, False, "off")}
    options = RunOptions(
        profile=args.profile, results_dir=args.results_dir, reports_dir=args.reports_dir,
        work_dir=args.work_dir, data_root=args.data_root, rows=args.rows,
        latency=args.latency, rerun=args.rerun, check=args.check, quiet=args.quiet,
        report=not args.no_report, force_report=args.force_report,
        update_baseline=args.update_baseline, baseline=args.baseline,
        junit_xml=args.junit_xml, summary_json=args.summary_json, launch=launch,
        job_options=job_options, device=args.device or "auto", seeds=args.seeds or (),
        weights_dir=args.weights_dir)
    return pipeline.run(suites, options, MeasurementCache(args.cache_dir, enabled=not args.no_cache),
                        argv)


# --- shared pieces of the commands ------------------------------------------------------

def _output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                   help="folder for results/, reports/ and work_dirs/ (default: the current "
                        "directory; never the installed package)")
    p.add_argument("--results-dir", type=Path, default=None,
                   help="result records (default: <out>/results)")
    p.add_argument("--reports-dir", type=Path, default=None,
                   help="HTML reports (default: <out>/reports)")


def _resolve_outputs(args: argparse.Namespace) -> None:
    """Fill the output folders left unset from ``--out`` (absolute paths)."""
    dirs = output_dirs(args.out)
    args.results_dir = (args.results_dir or dirs["results"]).expanduser().resolve()
    args.reports_dir = (args.reports_dir or dirs["reports"]).expanduser().resolve()
    if hasattr(args, "work_dir"):
        args.work_dir = (args.work_dir or dirs["work"]).expanduser().resolve()


def _import_models(modules: Sequence[str]) -> int:
    """Import --import modules (0) or print why one failed (2). They are also put in
    $HRBENCH_IMPORT, which processes started for training jobs read."""
    from .registry import IMPORT_ENV, ModelImportError, import_models
    _user_path()
    try:
        added = import_models(modules)
    except ModelImportError as err:
        print(f"error: --import: {err}", file=sys.stderr)
        return 2
    known = [m for m in os.environ.get(IMPORT_ENV, "").split(os.pathsep) if m]
    os.environ[IMPORT_ENV] = os.pathsep.join(known + [m for m in modules if m not in known])
    if added:
        print(f"models from {', '.join(modules)}: {', '.join(added)}")
    return 0


def _user_path() -> None:
    """The working directory is searched for a user's modules (``--import``, suite rows
    naming ``package.module:function``) after everything installed, as ``python -m`` does
    for scripts run from it; the installed ``hrbench`` script would not otherwise."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


# --- hrbench list -------------------------------------------------------------------------

def _table(rows: list[tuple[str, ...]]) -> str:
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([c.ljust(w) for c, w in zip(r, widths)] + [r[-1]]).rstrip()
                     for r in rows)


def list_command(args: argparse.Namespace) -> int:
    pattern = args.pattern
    if args.what == "models":
        if args.imports and _import_models(args.imports):
            return 2
        _user_path()
        from .registry import get_entry, list_models, plugin_errors
        names = list_models(pattern)
        rows = [(n, get_entry(n).family, get_entry(n).doc) for n in names]
        for what, why in plugin_errors():
            print(f"warning: {what} failed to load: {why}", file=sys.stderr)
    elif args.what == "suites":
        rows = []
        for path in sorted(SUITES_DIR.glob("*.yaml")):
            if not fnmatch.fnmatchcase(path.stem, pattern):
                continue
            try:
                suite = load_suite(path, check_models=False)
                rows.append((suite.suite, f"{suite.paper} table {suite.table}", suite.title))
            except SuiteError as err:
                rows.append((path.stem, "(invalid)", str(err)))
    elif args.what == "protocols":
        from .suite import load_protocol
        rows = []
        for path in sorted(PROTOCOLS_DIR.glob("*.yaml")):
            if not fnmatch.fnmatchcase(path.stem, pattern):
                continue
            try:
                p = load_protocol(path.stem)
                size = "x".join(map(str, p.input_size))
                rows.append((p.name, p.task, f"{p.dataset} {size}",
                             "server only" if p.server_only else
                             ("trainable" if p.trainable else "shapes only"),
                             _fidelity_text(p)))
            except SuiteError as err:
                rows.append((path.stem, "(invalid)", "", str(err), ""))
    else:
        from .complexity.conventions import CONVENTIONS
        rows = [(c.name, c.engine, "binary" if c.unit_base == 1024 else "decimal",
                 c.description.split(". ")[0].split(": ")[0].rstrip("."))
                for c in CONVENTIONS.values() if fnmatch.fnmatchcase(c.name, pattern)]
    if not rows:
        print(f"no {args.what} match {pattern!r}", file=sys.stderr)
        return 1
    print(_table(rows))
    if args.what in ("suites", "protocols"):
        where = SUITES_DIR if args.what == "suites" else PROTOCOLS_DIR
        print(f"({len(rows)} bundled {args.what} in {where})")
    return 0


def _fidelity_text(protocol) -> str:
    return protocol.fidelity.summary if protocol.fidelity else "fidelity: not stated"


# --- hrbench report -----------------------------------------------------------------------

def _recorded_suites(results_dir: Path) -> list[Path]:
    """Suite files of the suites that have records under ``results_dir``: the file a
    record names when it exists here, else the bundled suite of that name."""
    import json
    found = []
    for folder in sorted(p for p in results_dir.iterdir() if p.is_dir()) if results_dir.is_dir() else []:
        records = sorted(folder.glob("*.json"))
        if folder.name in ("runs", "baselines") or not records:
            continue
        named = None
        for path in records:
            try:
                named = json.loads(path.read_text()).get("suite_file")
            except (OSError, ValueError):
                continue
            if named:
                break
        bundled = SUITES_DIR / f"{folder.name}.yaml"
        if named and Path(named).is_file():
            found.append(Path(named))
        elif bundled.is_file():
            found.append(bundled)
        else:
            print(f"warning: {folder}: no suite file found (records name {named!r}); "
                  f"give it: hrbench report path/to/{folder.name}.yaml", file=sys.stderr)
    return found


def report_command(args: argparse.Namespace) -> int:
    """Render the reports of suites from their records; imports no torch."""
    from . import report
    _resolve_outputs(args)
    try:
        paths = ([p for spec in args.suites for p in find_suites(spec)] if args.suites
                 else _recorded_suites(args.results_dir))
        suites = [load_suite(p, check_models=False) for p in paths]
    except SuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        for suite in suites:
            shown = all_profile_records(suite, args.results_dir, variants=True)
            if not shown:
                print(f"{suite.suite}: no records in {args.results_dir / suite.suite}")
            page = report.render_suite_report(suite, shown, args.reports_dir, force=args.force)
            print(f"report: {page.path}" + ("" if page.rendered else " (unchanged)"))
    except ValueError as err:      # an unreadable record names its file
        print(f"error: {err}", file=sys.stderr)
        return 2
    index = report.render_index_cached(args.reports_dir, force=args.force)
    print(f"index: {index.path}" + ("" if index.rendered else " (unchanged)"))
    return 0


def status_command(args: argparse.Namespace) -> int:
    """``hrbench status``: one table per suite; with ``--watch``, refreshed in place."""
    from rich.console import Console, Group

    from .status import status_table, suite_status
    _resolve_outputs(args)
    try:
        suites = [load_suite(p, check_models=False) for spec in args.suites
                  for p in find_suites(spec)]
    except SuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT

    def tables():
        return Group(*(status_table(suite, suite_status(
            suite, args.profile, args.results_dir, args.work_dir, args.data_root, args.seeds))
            for suite in suites))
    try:
        if args.watch is None:
            Console().print(tables())
            return EXIT_OK
        import time

        from rich.live import Live
        with Live(tables(), auto_refresh=False) as live:
            while True:
                time.sleep(max(0.5, args.watch))
                live.update(tables(), refresh=True)
    except KeyboardInterrupt:
        return EXIT_OK
    except ValueError as err:      # an unreadable record names its file
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT


# --- the entry point ----------------------------------------------------------------------

def build_command_parser() -> argparse.ArgumentParser:
    prog = _prog()
    p = _Parser(
        prog=prog, description="HRBench: reproduce, measure and gate the tables of "
        "high-resolution network papers, and your own models under the same protocols.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", parents=[build_parser(add_help=False)], description=RUN_DESCRIPTION,
                   prog="run_suite.py" if prog == "run_suite.py" else f"{prog} run",
                   help="run suites (files or bundled names); --check gates, --junit-xml "
                        "and --summary-json report to CI")
    lp = sub.add_parser("list", prog=f"{prog} list", help="list models, suites, protocols "
                        "or counting conventions", description="List what HRBench knows.")
    lp.add_argument("what", choices=LISTABLE)
    lp.add_argument("pattern", nargs="?", default="*", metavar="GLOB",
                    help="only names matching this glob (e.g. '*litehrnet*')")
    lp.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                    help="import MODULE first (models it registers are listed)")
    rp = sub.add_parser("report", prog=f"{prog} report",
                        help="render reports again from the records (no torch)",
                        description="Render the HTML reports of suites from their result "
                                    "records, without running anything (imports no torch).")
    rp.add_argument("suites", nargs="*", metavar="SUITE",
                    help="suite files or bundled names (default: every suite with records "
                         "under the results folder)")
    _output_options(rp)
    rp.add_argument("--force", action="store_true",
                    help="draw every page again even when its inputs are unchanged")
    sp = sub.add_parser("status", prog=f"{prog} status",
                        help="where each training job of suites stands (no torch)",
                        description="List each training job of suites: done, running (epoch, "
                                    "iteration, last loss, images/s, ETA), interrupted, "
                                    "failed (why), not started, or why it will not run; read "
                                    "from the run records and the jobs' training logs.")
    sp.add_argument("suites", nargs="+", metavar="SUITE", help="suite files or bundled names")
    sp.add_argument("--profile", default=FULL, choices=names_with("trains"),
                    help=f"the training profile whose jobs to list (default: {FULL})")
    _output_options(sp)
    sp.add_argument("--work-dir", type=Path, default=None,
                    help="the jobs' work dirs, as given to hrbench run (default: <out>/work_dirs)")
    sp.add_argument("--data-root", type=Path, default=None,
                    help="the data root hrbench run was given (says which jobs lack data)")
    sp.add_argument("--seeds", type=_seed, nargs="+", default=(), metavar="SEED",
                    help="the seeds hrbench run was given")
    sp.add_argument("--watch", type=float, nargs="?", const=10.0, default=None,
                    metavar="SECONDS", help="refresh in place every SECONDS (default 10) "
                                            "until interrupted")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``hrbench COMMAND ...``; without a command (``run_suite.py SUITE ...``) it runs."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = [str(a) for a in argv]
    parser = build_command_parser()
    if not argv and _prog() == "hrbench":
        parser.print_help(sys.stderr)
        return 2
    # run_suite.py (and hrbench) without a command runs suites, as it always did; its
    # --help is the run command's
    help_is_run = _prog() == "run_suite.py"
    if not argv or argv[0] not in COMMANDS + (() if help_is_run else ("-h", "--help")):
        argv = ["run"] + argv
    args = parser.parse_args(argv)
    if args.command == "list":
        return list_command(args)
    if args.command == "report":
        return report_command(args)
    if args.command == "status":
        return status_command(args)
    return run_command(args, argv)
