"""Where jobs run: in this process, under torchrun (one process per GPU), or on a Slurm
cluster through submitit.

The runner builds plain-data jobs (``bench.job.Job``) and hands them here;
every launcher ends with the job's run record written atomically by rank 0 at the
job's ``record_path``, so the runner reads results the same way whatever ran them.

* ``local``: ``job()`` in this process (one GPU, or the CPU).
* ``torchrun``: the job is written to ``<work_dir>/job.json`` and started as
  ``python -m torch.distributed.run --standalone --nproc_per_node N -m bench.launch
  job.json``; every rank runs the same job, DDP does the rest.
* ``slurm``: one submitit job per training job (all submitted first, then awaited), with
  ``tasks_per_node = gpus_per_node`` and the torch.distributed environment exported from
  Slurm's variables on each task. When Slurm preempts or times out a job, submitit calls
  ``checkpoint`` and requeues it; the requeued job resumes from the latest checkpoint
  in its work dir. ``cluster='local'`` or ``'debug'`` run the same path without Slurm
  (tests).

``python -m bench.launch JOB.json`` runs one job file (what torchrun starts).
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from .results import atomic_write_text, latest_run_record

LAUNCHERS = ("local", "torchrun", "slurm")


@dataclasses.dataclass(frozen=True)
class LaunchConfig:
    launcher: str = "local"
    nproc_per_node: int = 1               # GPUs per node (torchrun and Slurm)
    nodes: int = 1                        # Slurm only
    slurm_partition: Optional[str] = None
    slurm_account: Optional[str] = None
    slurm_time_min: int = 72 * 60
    slurm_cpus_per_task: int = 8
    slurm_mem_gb: Optional[int] = None
    slurm_folder: str = "work_dirs/slurm"
    slurm_cluster: Optional[str] = None   # None: Slurm when available; 'local' / 'debug'

    def __post_init__(self):
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"unknown launcher {self.launcher!r}; known: {', '.join(LAUNCHERS)}")
        if self.nproc_per_node < 1 or self.nodes < 1:
            raise ValueError("nproc_per_node and nodes must be at least 1")

    @property
    def world_size(self) -> int:
        """Processes a job runs in (one per GPU; several nodes only under Slurm)."""
        return self.nproc_per_node * (self.nodes if self.launcher == "slurm" else 1)


class SlurmEntry:
    """The callable submitit pickles: sets up torch.distributed from Slurm, runs the job,
    and asks to be requeued (resuming from its checkpoint) when preempted."""

    def __init__(self, job):
        self.job = job

    def __call__(self):
        import submitit

        from .training.preemption import Preempted
        env = submitit.JobEnvironment()
        if env.num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        try:
            return self.job()
        except Preempted as stop:
            requeue_after_checkpoint(stop)
            raise

    def checkpoint(self, *args, **kwargs):
        import submitit
        return submitit.helpers.DelayedSubmission(SlurmEntry(self.job))


def requeue_after_checkpoint(stop) -> None:
    """The job stopped on a signal with its checkpoint written (``Preempted``): hand the
    signal to submitit's own handler, which requeues the job (through ``checkpoint``)
    and ends the process. While the job ran, HRBench's handler only set a flag, so the
    checkpoint is taken at an iteration boundary rather than wherever the signal hit.
    submitit requeues on SIGUSR2 (Slurm's warning before preemption or the time limit);
    a SIGTERM is handed to that same handler."""
    import signal
    usr2 = getattr(signal, "SIGUSR2", None)
    for signum in (usr2, stop.signum):
        handler = signal.getsignal(signum) if signum is not None else None
        if callable(handler):
            handler(signum, None)
            return


def _job_file(job) -> Path:
    path = Path(job.work_dir) / "job.json"
    atomic_write_text(path, job.to_json())
    return path


def _torchrun(job, cfg: LaunchConfig) -> Optional[dict]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={cfg.nproc_per_node}", "-m", "bench.launch", str(_job_file(job))]
    proc = subprocess.run(cmd)
    record = latest_run_record(Path(job.record_path)) if job.record_path else None
    if proc.returncode != 0 and (record is None or record.get("status") == "ok"):
        raise RuntimeError(f"torchrun exited with {proc.returncode} for {job.model_key} "
                           f"({' '.join(cmd)})")
    return record


def _slurm(jobs: Sequence, cfg: LaunchConfig) -> list[Optional[dict]]:
    try:
        import submitit
    except ImportError:  # pragma: no cover - submitit is a declared dependency
        raise RuntimeError("the slurm launcher needs submitit (pip install submitit)") from None
    executor = submitit.AutoExecutor(folder=cfg.slurm_folder, cluster=cfg.slurm_cluster)
    params: dict[str, Any] = {"nodes": cfg.nodes, "tasks_per_node": cfg.nproc_per_node,
                              "cpus_per_task": cfg.slurm_cpus_per_task,
                              "timeout_min": cfg.slurm_time_min}
    if executor.cluster == "slurm":
        params["gpus_per_node"] = cfg.nproc_per_node
        if cfg.slurm_partition:
            params["slurm_partition"] = cfg.slurm_partition
        if cfg.slurm_account:
            params["slurm_account"] = cfg.slurm_account
        if cfg.slurm_mem_gb:
            params["mem_gb"] = cfg.slurm_mem_gb
    executor.update_parameters(**params)
    submitted = [executor.submit(SlurmEntry(job)) for job in jobs]
    for job, sub in zip(jobs, submitted):
        print(f"submitted {job.model_key} ({job.profile}) as {sub.job_id}")
    out = []
    for job, sub in zip(jobs, submitted):
        try:
            result = sub.result()
            out.append(result[0] if isinstance(result, list) else result)
        except Exception as err:
            record = latest_run_record(Path(job.record_path)) if job.record_path else None
            if record is None:
                raise RuntimeError(f"job {sub.job_id} for {job.model_key} failed: {err}") from err
            out.append(record)
    return out


def run_jobs(jobs: Sequence, cfg: LaunchConfig = LaunchConfig()) -> list[Optional[dict]]:
    """Run ``jobs`` with the launcher ``cfg`` names; returns their run records."""
    if cfg.launcher == "slurm":
        return _slurm(jobs, cfg)
    if cfg.launcher == "torchrun":
        out = []
        for job in jobs:        # one launch failing does not stop the others
            try:
                out.append(_torchrun(job, cfg))
            except RuntimeError as err:
                out.append({"status": "failed", "error": str(err), "record_path": job.record_path})
        return out
    return [job() for job in jobs]


def main(argv: Sequence[str] | None = None) -> int:
    from .job import Job
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m bench.launch JOB.json", file=sys.stderr)
        return 2
    from .training.preemption import Preempted
    job = Job.from_json(Path(args[0]).read_text())
    try:
        record = job()
    except Preempted as stop:
        print(f"interrupted: {stop}; run the same job again to resume", file=sys.stderr)
        return 5
    return 0 if record is None or record.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
