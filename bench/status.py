"""``hrbench status SUITE``: where each job of a suite stands (done, running, interrupted,
failed, not started, or why it will not run), read from the run records and the
training logs (``<work dir>/log.jsonl``) of the suite's plan. Imports no torch."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Optional, Sequence

from . import results as res
from .runner.context import RunContext
from .runner.plan import RunSpec, plan
from .suite import Suite

DONE, RUNNING, INTERRUPTED, FAILED, NOT_STARTED, SKIPPED = (
    "done", "running", "interrupted", "failed", "not started", "will not run")
# a log written to within this many seconds belongs to a job that is running
RUNNING_WITHIN_S = 600.0


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """One planned job's state and, from its log, where it is."""
    row: str
    protocol: str
    seed: Optional[int]
    state: str
    detail: str = ""                    # why it failed / will not run, or where it stopped
    epoch: Optional[int] = None         # 1-based, as the trainer prints it
    epochs: Optional[int] = None
    iteration: Optional[int] = None     # global
    iterations: Optional[int] = None
    loss: Optional[float] = None
    images_per_s: Optional[float] = None
    eta_s: Optional[float] = None
    record: str = ""


def read_log(path: Path) -> list[dict]:
    """The entries of a JSONL training log; a line cut short by a crash is skipped."""
    entries = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return entries
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _progress(entries: list[dict]) -> dict:
    """Epoch, iteration, last loss, images/s and ETA from a log's entries. The rate comes
    from the last two ``train`` entries (their timestamps and global iterations)."""
    start = next((e for e in reversed(entries) if e.get("event") == "start"), {})
    settings = start.get("settings") or {}
    per_epoch, epochs = start.get("iters_per_epoch"), settings.get("epochs")
    total = per_epoch * epochs if per_epoch and epochs else None
    trains = [e for e in entries if e.get("event") == "train"]
    out = {"epochs": epochs, "iterations": total}
    if trains:
        last = trains[-1]
        out.update(epoch=int(last.get("epoch", 0)) + 1, iteration=last.get("global_iter"),
                   loss=last.get("loss"))
        if len(trains) > 1:
            prev = trains[-2]
            steps = (last.get("global_iter") or 0) - (prev.get("global_iter") or 0)
            seconds = float(last.get("time", 0)) - float(prev.get("time", 0))
            if steps > 0 and seconds > 0:
                batch = (settings.get("batch_size") or 0) * (start.get("world_size") or 1)
                out["images_per_s"] = batch * steps / seconds if batch else None
                if total and out["iteration"] is not None:
                    out["eta_s"] = max(0, total - out["iteration"]) * seconds / steps
    return out


def job_status(spec: RunSpec, now: Optional[float] = None) -> JobStatus:
    """The state of one planned job: its record (done / failed), else its log (running /
    interrupted), else not started; a spec that will not run says why."""
    base = {"row": spec.row.name, "protocol": spec.protocol.name, "seed": spec.seed,
            "record": str(spec.record_path)}
    good = res.read_record(spec.record_path)
    if good is not None and good.get("status") == "ok":
        # finished work stays: a later failed attempt beside it is only mentioned
        attempt = res.last_attempt(spec.record_path)
        return JobStatus(state=DONE, **base, detail="" if attempt is None else
                         f"last attempt failed: {attempt.get('error') or 'no error text'}")
    record = res.latest_run_record(spec.record_path)
    if spec.skip_reason or spec.work_dir is None:
        return JobStatus(state=SKIPPED, detail=spec.skip_reason, **base)
    log = Path(spec.work_dir) / "log.jsonl"
    entries = read_log(log) if log.is_file() else []
    progress = _progress(entries)
    if record is not None:      # the latest attempt failed (an earlier good one would win)
        return JobStatus(state=FAILED, detail=str(record.get("error") or "no error text"),
                         **base, **progress)
    if not entries:
        return JobStatus(state=NOT_STARTED, **base)
    now = time.time() if now is None else now
    if now - log.stat().st_mtime <= RUNNING_WITHIN_S and \
            entries[-1].get("event") not in ("preempted", "end"):
        return JobStatus(state=RUNNING, **base, **progress)
    epochs = [e for e in entries if e.get("event") == "epoch"]
    stopped = next((e for e in reversed(entries) if e.get("event") == "preempted"), None)
    detail = (f"last finished epoch {int(epochs[-1]['epoch']) + 1}" if epochs
              else "no epoch finished")
    if stopped is not None:
        detail += f"; preempted at iteration {stopped.get('global_iter')}"
    return JobStatus(state=INTERRUPTED, detail=detail + "; the same command resumes it",
                     **base, **progress)


def suite_status(suite: Suite, profile: str, results_dir: Path, work_dir: Path,
                 data_root: Optional[Path] = None, seeds: Sequence[int] = (),
                 now: Optional[float] = None) -> list[JobStatus]:
    """Every planned job of ``suite`` under ``profile``, as ``hrbench run`` would plan it
    with the same folders."""
    ctx = RunContext(profile=profile, results_dir=Path(results_dir), work_dir=Path(work_dir),
                     data_root=Path(data_root) if data_root else None,
                     seeds=tuple(dict.fromkeys(int(s) for s in seeds)))
    rows = [row for row in suite.rows if row.built]
    return [job_status(spec, now) for spec in plan(suite, rows, ctx, jobs=False)]


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    minutes, s = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return (f"{days}d {hours}h" if days else f"{hours}h {minutes:02d}m" if hours
            else f"{minutes}m {s:02d}s")


def status_table(suite: Suite, statuses: Sequence[JobStatus]):
    """A rich table of the jobs: state, where it is, rate and ETA, or why not."""
    from rich.table import Table
    table = Table(title=f"{suite.suite}: {len(statuses)} jobs", title_justify="left")
    for name in ("row", "protocol", "seed", "state", "epoch", "iter", "loss", "img/s", "ETA",
                 "detail"):
        table.add_column(name, justify="right" if name in ("epoch", "iter", "loss", "img/s")
                         else "left")
    for s in statuses:
        table.add_row(
            s.row, s.protocol, "" if s.seed is None else str(s.seed), s.state,
            "" if s.epoch is None else f"{s.epoch}/{s.epochs or '?'}",
            "" if s.iteration is None else f"{s.iteration}/{s.iterations or '?'}",
            "" if s.loss is None else f"{s.loss:.4g}",
            "" if s.images_per_s is None else f"{s.images_per_s:.1f}",
            _duration(s.eta_s) if s.state == RUNNING else "", s.detail)
    return table


__all__ = ["DONE", "FAILED", "INTERRUPTED", "JobStatus", "NOT_STARTED", "RUNNING", "SKIPPED",
           "job_status", "read_log", "status_table", "suite_status"]
