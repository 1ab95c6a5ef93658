"""Training jobs: one per (row model, protocol of an accuracy column), for the profiles
``smoke``, ``short`` and ``full``, run through ``bench.launch`` (in-process, torchrun or
Slurm).

A job whose record exists with status ok and the same fingerprint (model, protocol,
resolved settings) is done and not rerun; an interrupted one resumes from its latest
checkpoint in ``--work-dir``. Finished work is never replaced by less: options beyond
the protocol's (``variant_tag``) get records and work dirs of their own; a finished
record with another fingerprint is not replaced without ``--rerun``, and ``--rerun``
replaces it only when the new run succeeds (``Job.staged``). ``smoke`` trains on data generated
in the official formats (each task's ``write_smoke_data``) under ``<work-dir>/smoke_data``;
``short`` and ``full`` need ``--data-root``, and a missing dataset gives one message
naming the expected path (``missing_data``). With ``--seeds`` each job runs once per
seed (``job_seeds``); the protocol's own seed keeps the plain record path, another seed
adds ``.seed<N>`` to it and to the work dir. It knows no architecture and no
task: the job (``bench.job``) and the registry do.
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Sequence

from .. import results as res
from ..paths import work_path
from ..profiles import has
from ..suite import Row, Suite
from ..protocol import Protocol
from .context import SMOKE_DATA_SEED, RunContext, model_overrides


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


def accuracy_protocols(suite: Suite, row: Row) -> dict[str, Protocol]:
    """The protocols the row's accuracy columns need a trained model for."""
    keys = dict.fromkeys(c.protocol for cid, c in suite.columns.items()
                         if not c.is_complexity and suite.applies(row, cid))
    return {k: suite.protocol_for(row, k) for k in keys if k is not None}


def smoke_root(ctx: RunContext) -> Path:
    """Where ``smoke_data_root`` writes the generated datasets."""
    return work_path(ctx.work_dir, "smoke_data")


def smoke_data_root(ctx: RunContext, tasks: Sequence[str]) -> Path:
    """Small datasets in the official formats of every task in ``tasks`` (each task's
    ``write_smoke_data``), each written once per work dir (deterministic: the same files
    for the same seed)."""
    from ..tasks import get_task
    root = smoke_root(ctx)
    for name in sorted(set(tasks)):
        marker = root / f"WRITTEN.{name}"
        if not marker.is_file() or marker.read_text().strip() != str(SMOKE_DATA_SEED):
            get_task(name).write_smoke_data(root, seed=SMOKE_DATA_SEED)
            res.atomic_write_text(marker, str(SMOKE_DATA_SEED))
    return root


def unsupported_task(protocol: Protocol) -> str | None:
    """Why no job can run the protocol (None when its task has a plug-in that reads its
    dataset): a task or a dataset this project does not train or score (PoseTrack)."""
    from ..tasks import task_spec      # the spec, not the implementation: no torch
    try:
        task = task_spec(protocol.task)
    except KeyError:
        return (f"protocol {protocol.name}: the {protocol.task} task has no plug-in in this "
                "project yet, so nothing trains or scores it")
    if protocol.dataset not in task.datasets:
        return (f"protocol {protocol.name}: the {task.name} task reads "
                f"{', '.join(task.datasets)}; no loader reads {protocol.dataset!r}, so "
                "nothing trains or scores it")
    return None


def job_protocol(row: Row, protocol: Protocol) -> Protocol:
    """The protocol a row's job runs: the row's ``pretrained`` weights replace the protocol's."""
    if row.pretrained is not None:
        return protocol.model_copy(update={"pretrained": row.pretrained})
    return protocol


def run_key(row: Row, protocol: Protocol) -> str:
    """Names a row's training run: the model key, marked when it starts from ImageNet
    weights (a table can hold the same model trained both ways, e.g. HRNet Table 1)."""
    return row.model.key + ("+imagenet" if job_protocol(row, protocol).pretrained else "")


def job_seeds(protocol: Protocol, seeds: Sequence[int] = ()) -> list[int | None]:
    """The seeds a (row, protocol) runs with: None stands for the protocol's own seed (0
    in every bundled protocol), whose run keeps the plain record path; ``seeds`` empty
    (no ``--seeds``) is that run alone."""
    out = [None if s == protocol.seed else int(s) for s in seeds] or [None]
    return list(dict.fromkeys(out))


#: job options that change a run's result, in the order a settings tag names them
#: (device, workers and progress bars do not: the data order depends on seeds only)
VARIANT_OPTIONS = (("epochs", "epochs={}"), ("batch_size", "batch={}"), ("amp", "amp={}"),
                   ("channels_last", "channels_last"))


def variant_tag(job_options: dict) -> str | None:
    """Names the settings a run was given beyond its protocol's (``epochs=1,batch=8``):
    its records and work dirs carry the tag, beside those of the protocol's own settings,
    so that neither replaces nor resumes the other. None: the protocol's own settings."""
    parts = [fmt.format(job_options[key]) for key, fmt in VARIANT_OPTIONS
             if job_options.get(key) not in (None, False, "off")]
    return ",".join(parts) or None


def run_record(row: Row, protocol: Protocol, profile: str, results_dir: Path,
               seed: int | None = None, variant: str | None = None) -> Path:
    """Where the row's run of ``protocol`` under ``profile`` (``seed``, ``variant``) is
    recorded."""
    return res.run_record_path(protocol.name, run_key(row, protocol), profile, results_dir,
                               seed=seed, variant=variant)


def work_dir_of(ctx: RunContext, protocol: Protocol, key: str, seed: int | None = None) -> Path:
    """``<work>/<profile>/<protocol>/<key>[.<variant>][.seed<N>]``: siblings, so that
    replacing one run's folder (--rerun) never touches another's."""
    tail = (f".{res.safe_name(ctx.variant)}" if ctx.variant else "") + \
        ("" if seed is None else f".seed{seed}")
    return work_path(ctx.work_dir, ctx.profile, res.safe_name(protocol.name),
                     res.safe_name(key) + tail)


def build_job(row: Row, protocol: Protocol, ctx: RunContext, data_root: Path | None,
              seed: int | None = None, record_path: Path | None = None):
    """The job of the row's run of ``protocol`` (``seed``), writing ``record_path`` (the
    plan's; by default ``run_record``'s)."""
    from ..job import Job
    key = run_key(row, protocol)
    if record_path is None:
        record_path = run_record(row, protocol, ctx.profile, ctx.results_dir, seed, ctx.variant)
    protocol = job_protocol(row, protocol)
    return Job(
        model=row.model.name, overrides=model_overrides(row, protocol), model_key=key,
        protocol=protocol.model_dump(mode="json"), profile=ctx.profile,
        data_root=None if data_root is None else str(data_root),
        work_dir=str(work_dir_of(ctx, protocol, key, seed)), record_path=str(record_path),
        **ctx.job_options, **({} if seed is None else {"seed": seed}))


def settings_differences(record: dict, job, world: int) -> list[str]:
    """What a recorded run and ``job`` differ in (setting names), for the refusal."""
    ours = job.resolved(world)
    theirs = record.get("settings") or {}
    out = [k for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)]
    if {k: v for k, v in (record.get("protocol") or {}).items() if k != "fidelity"} != \
            {k: v for k, v in job.protocol.items() if k != "fidelity"}:
        out.append("protocol")
    if (record.get("model") or {}).get("overrides") != job.overrides:
        out.append("model overrides")
    return out or ["the code's version of the recipe"]


def done_already(job, path: Path, ctx: RunContext, world: int, **same) -> bool:
    """Whether ``path`` records a successful run of ``job`` as it is now (same fingerprint
    and the ``same`` record fields), so that it need not run again. With ``--rerun``
    never: the job then trains in a fresh staging folder and replaces the work dir and
    the record only when it succeeds (``Job.staged``)."""
    if ctx.rerun:
        shutil.rmtree(job.staging_dir, ignore_errors=True)
        job.staged = True
        return False
    record = res.read_record(path)
    return bool(record and record.get("status") == "ok"
                and record.get("fingerprint") == job.fingerprint(world)
                and all(record.get(k) == v for k, v in same.items()))


def recorded_with_other_settings(job, path: Path, ctx: RunContext, world: int) -> str | None:
    """Why ``job`` must not run without --rerun: ``path`` holds a good record of the same
    (row, protocol, profile) with another fingerprint, which the run would replace."""
    if ctx.rerun:
        return None
    record = res.read_record(path)
    if not record or record.get("status") != "ok" or record.get("fingerprint") == job.fingerprint(world):
        return None
    return (f"{path} holds a finished run with other settings (differing in "
            f"{', '.join(settings_differences(record, job, world))}); not replaced: --rerun "
            f"runs it again and replaces it only if the new run succeeds")


def job_outcomes(jobs: Sequence, records: Sequence) -> list[dict]:
    """One entry per job that did not succeed: what ran, why it failed, where recorded."""
    failed = []
    for job, record in zip(jobs, records):
        if record is not None and record.get("status") == "ok":
            continue
        error = (record or {}).get("error") or "no run record was written"
        failed.append({"job": job_label(job), "error": error,
                       "kind": (record or {}).get("error_kind", "failed"),
                       "record": (record or {}).get("record_path") or job.record_path})
    return failed


def job_label(job) -> str:
    name = job.protocol["name"]
    extra = [job.profile] + [f"seed {job.seed}"] * (job.seed is not None)
    return f"{job.model_key} on {name} ({', '.join(extra)})"


def run_training(suite: Suite, specs: Sequence, ctx: RunContext, log=print) -> list[dict]:
    """Launch the jobs of the plan's runnable specs (``plan.RunSpec``) that are not done
    yet. Returns the jobs that failed or were refused (``{"job", "error", "kind",
    "record"}``)."""
    if has(ctx.profile, "generated_data"):
        smoke_data_root(ctx, [s.protocol.task for s in specs if s.runs])
    world = ctx.launch.world_size
    todo, failed = [], []
    for spec in specs:
        if spec.notice:
            log(spec.notice)
        if not spec.runs:
            continue
        job = copy.copy(spec.job)     # the launch marks it (staged); the plan stays as it is
        if done_already(job, spec.record_path, ctx, world):
            seeded = "" if spec.seed is None else f", seed {spec.seed}"
            log(f"done already: {spec.row.model.key} on {spec.protocol.name} "
                f"({ctx.profile}{seeded}); --rerun to run it again")
            continue
        other = recorded_with_other_settings(job, spec.record_path, ctx, world)
        if other:
            log(f"not run: {other}")
            failed.append({"job": job_label(job), "error": other, "kind": "refused",
                           "record": str(spec.record_path)})
            continue
        todo.append(job)
    if todo:
        from ..launch import run_jobs
        log(f"{suite.suite}: {len(todo)} {ctx.profile} job(s) via {ctx.launch.launcher}")
        failed.extend(job_outcomes(todo, run_jobs(todo, ctx.launch)))
    return failed
