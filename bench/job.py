"""One training/evaluation job of any task: (registered model, protocol, profile) -> run record.

A ``Job`` is plain data (picklable, JSON-serialisable), so the same object runs
in-process, under torchrun on every rank (``python -m bench.launch JOB.json``) or on a
Slurm cluster through submitit; on preemption submitit calls ``checkpoint`` and the
requeued job resumes from the latest checkpoint in its work dir. It names its task by
the protocol's ``task`` (``bench.tasks``): datasets, loss, prediction and evaluator come
from there; the job knows none of them.

Profiles say how far a job goes: ``smoke`` trains a few iterations on the
CPU (the runner points it at generated data), ``short`` runs a fraction of the paper's
schedule (epochs or iterations, milestones scaled), ``full`` the paper's schedule.

Batch and learning rate: the protocol states the paper's batch per GPU and GPU count;
a run whose total batch (per-process batch x world size) differs scales the learning
rate linearly (``scaled_lr``) and the record says so (``settings.lr_scaled``).

The run record (``results/runs/<protocol>/<model_key>.<profile>.json``) holds the
metrics under the suite's measure names, the resolved protocol and settings, the
training log's summary, the checkpoint, the job fingerprint and provenance.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Optional

from .training import preemption
from .profiles import FULL, get_profile, names_with
from .results import StorageError, store_run_record
from .tasks import task_names, task_spec

#: each job profile's settings (bench.profiles: the table says why each is what it is)
PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    name: dict(get_profile(name).job_settings) for name in names_with("runs_jobs")}
TRAIN_PROFILES = tuple(PROFILE_SETTINGS)


def _scaled_schedule(schedule: dict, epochs: int) -> dict:
    """The schedule shrunk to ``epochs``: milestones scaled by the same factor."""
    full = int(schedule["epochs"])
    out = dict(schedule, epochs=epochs)
    if epochs != full:
        ms = sorted({max(1, round(m * epochs / full)) for m in schedule.get("milestones", ())})
        out["milestones"] = [m for m in ms if m < epochs]
    return out


@dataclasses.dataclass
class Job:
    model: str
    protocol: dict                         # its task's Protocol.model_dump(mode="json")
    work_dir: str
    profile: str = FULL
    overrides: dict = dataclasses.field(default_factory=dict)
    model_key: str = ""
    data_root: Optional[str] = None
    record_path: Optional[str] = None
    batch_size: Optional[int] = None        # per process; default: the protocol's per_gpu
    epochs: Optional[int] = None
    max_iters_per_epoch: Optional[int] = None
    amp: str = "off"
    channels_last: bool = False
    device: Optional[str] = None
    num_workers: Optional[int] = None
    seed: Optional[int] = None
    eval_only: bool = False
    checkpoint: Optional[str] = None        # weights to evaluate (official ones included)
    progress: bool = False
    stop_at_iter: Optional[int] = None      # simulate an interruption (tests)
    # --rerun: train in staging_dir, and only when the run succeeds let it replace
    # work_dir (the finished run's checkpoints stay until then)
    staged: bool = False

    # ------------------------------------------------------------ settings
    @property
    def task(self) -> str:
        return self.protocol["task"]

    @property
    def typed_protocol(self):
        """The protocol as its task's schema reads it (``bench.tasks.TaskSpec.protocol``),
        validated once: every setting below is read from it, defaults included."""
        if self._typed is None:
            self._typed = task_spec(self.task).protocol.model_validate(self.protocol)
        return self._typed

    def __post_init__(self):
        if self.profile not in PROFILE_SETTINGS:
            raise ValueError(f"unknown profile {self.profile!r}; known: {', '.join(PROFILE_SETTINGS)}")
        if not isinstance(self.protocol.get("task"), str):
            raise ValueError(f"protocol {self.protocol.get('name', '?')!r} names no task "
                             f"(task: one of {', '.join(task_names())})")
        self.model_key = self.model_key or self.model
        self._typed = None
        if get_profile(self.profile).generated_data:
            # generated data is small: the task fits the protocol's sizes to it
            from .tasks import get_task
            smoke = get_task(self.task).smoke_protocol(self.typed_protocol)
            self.protocol, self._typed = smoke.model_dump(mode="json"), smoke

    def _profile(self, key: str, default=None):
        return PROFILE_SETTINGS[self.profile].get(key, default)

    def resolved(self, world_size: int = 1) -> dict[str, Any]:
        """Every setting that shapes the result, after profile and scaling rules."""
        p = self.typed_protocol
        if not p.trainable and not self.eval_only:
            raise ValueError(f"protocol {p.name!r} has no training recipe "
                             "(optimizer, schedule and batch are needed)")
        # an evaluation-only protocol may give no batch: then 32 per process, as reference
        ref_per_gpu, ref_gpus = (p.batch.per_gpu, p.batch.gpus) if p.batch else (32, 1)
        per_process = int(self.batch_size or self._profile("batch_size") or ref_per_gpu)
        ref_total = ref_per_gpu * ref_gpus
        total = per_process * world_size
        out: dict[str, Any] = {
            "profile": self.profile, "world_size": world_size,
            "batch_per_process": per_process, "batch_total": total,
            "batch_reference": ref_total,
            "amp": self.amp, "channels_last": self.channels_last,
            "seed": int(self.seed if self.seed is not None else p.seed),
            "max_iters_per_epoch": self.max_iters_per_epoch or self._profile("max_iters_per_epoch"),
        }
        if self._profile("cpu_threads"):
            out["cpu_threads"] = self._profile("cpu_threads")
        if p.optimizer is not None:
            from .training.schedule import scaled_lr
            base = float(p.optimizer.lr)
            lr = scaled_lr(base, total, ref_total)
            out.update({"lr_base": base, "lr": lr, "lr_scaled": total != ref_total,
                        "optimizer": p.optimizer.model_dump(mode="json")})
            out.update(self._length(p.schedule.model_dump(mode="json")))
        return out

    def _length(self, schedule: dict) -> dict[str, Any]:
        """The schedule after the profile: epochs (milestones scaled), or iterations for
        an iteration-based recipe unless a number of epochs is imposed (smoke, --epochs)."""
        fraction = self._profile("epoch_fraction")
        epochs = self.epochs or self._profile("epochs")
        if schedule.get("iterations") and epochs is None:
            iterations = int(schedule["iterations"])
            if fraction:
                iterations = max(1, round(iterations * fraction))
            return {"schedule": {**schedule, "iterations": iterations}, "epochs": None,
                    "iterations": iterations}
        full_epochs = schedule.get("epochs")
        if epochs is None and fraction:
            epochs = max(1, round(int(full_epochs) * fraction))
        epochs = int(epochs or full_epochs)
        if full_epochs is None:    # an iteration recipe run for a number of epochs
            plain = {k: v for k, v in schedule.items() if k != "iterations"}
            return {"schedule": {**plain, "epochs": epochs}, "epochs": epochs, "iterations": None}
        return {"schedule": _scaled_schedule(schedule, epochs), "epochs": epochs,
                "iterations": None}

    def _validation(self) -> dict[str, Any]:
        """The protocol's validation during training, after the profile."""
        v = self.typed_protocol.validation
        out = {"interval": v.interval, "best_metric": v.best_metric, "mode": v.mode,
               "ties": v.ties, "evaluation": dict(v.evaluation)}
        if not self._profile("validate_during_training", True):
            out["interval"] = 0
        return out

    def trainer(self, model, train_set, settings: dict, work_dir, device, info,
                fingerprint: str = "", num_workers: int = 0, validate_fn=None):
        """The ``Trainer`` of this job: the task's loss and collate function, the
        optimiser and schedule of the resolved ``settings`` (``resolved()``)."""
        from .tasks import get_task
        from .training.loop import Trainer, TrainSettings
        task = get_task(self.task)
        validation = self._validation()
        ts = TrainSettings(
            epochs=settings["epochs"], iterations=settings.get("iterations"),
            batch_size=settings["batch_per_process"],
            lr=settings["lr"], optimizer=settings["optimizer"],
            schedule=settings["schedule"],
            max_iters_per_epoch=settings["max_iters_per_epoch"], amp=self.amp,
            channels_last=self.channels_last, num_workers=num_workers, seed=settings["seed"],
            log_interval=self._profile("log_interval", 20),
            sync_bn=self.typed_protocol.sync_bn, progress=self.progress,
            drop_last=self.typed_protocol.batch.drop_last,
            validation_interval=validation["interval"],
            best_metric=validation["best_metric"], best_mode=validation["mode"],
            best_ties=validation["ties"],
            validate_last=bool(validation["evaluation"]))
        protocol = self.typed_protocol
        return Trainer(model, train_set, ts, Path(work_dir), device, info, fingerprint,
                       loss_fn=lambda outputs, batch: task.loss(outputs, batch, protocol),
                       collate_fn=task.collate_fn(train=True),
                       log_fn=print if info.is_main else (lambda _m: None),
                       stop_at_iter=self.stop_at_iter, validate_fn=validate_fn)

    def fingerprint(self, world_size: int = 1) -> str:
        """Hash of what determines the result: model, protocol, resolved settings."""
        # the protocol's fidelity entry documents the recipe and changes no result
        protocol = {k: v for k, v in self.protocol.items() if k != "fidelity"}
        payload = {"model": self.model, "overrides": self.overrides, "protocol": protocol,
                   "settings": self.resolved(world_size), "eval_only": self.eval_only,
                   "checkpoint": self.checkpoint}
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Job":
        return cls(**json.loads(text))

    @property
    def staging_dir(self) -> str:
        return str(self.work_dir) + ".rerun"

    @property
    def train_dir(self) -> str:
        """Where this attempt trains: the work dir, or its staging dir under --rerun."""
        return self.staging_dir if self.staged else str(self.work_dir)

    def _promote_staging(self, record: dict) -> dict:
        """The staged rerun succeeded: it becomes the work dir (the old one goes away
        only after the new one is in place), and the record names the final paths."""
        final, stage = Path(self.work_dir), Path(self.staging_dir)
        replaced = final.with_name(final.name + ".replaced")
        shutil.rmtree(replaced, ignore_errors=True)
        if final.exists():
            os.replace(final, replaced)
        os.replace(stage, final)
        shutil.rmtree(replaced, ignore_errors=True)
        return json.loads(json.dumps(record, default=str).replace(str(stage), str(final)))

    # ------------------------------------------------------------ running
    def __call__(self) -> Optional[dict]:
        """Run the job (on every rank of a group); returns the record on rank 0."""
        import torch

        device_pref = self.device or self._profile("device")
        threads = torch.get_num_threads()
        if self._profile("cpu_threads"):
            # the processes of one node share its cores (torchrun sets LOCAL_WORLD_SIZE)
            per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            torch.set_num_threads(max(1, self._profile("cpu_threads") // per_node))
        try:
            with preemption.catching():
                return self._call(device_pref)
        finally:
            torch.set_num_threads(threads)

    def _call(self, device_pref) -> Optional[dict]:
        import numpy as np
        import torch

        from .env import now_iso, provenance
        from .training.distributed import init_distributed, resolve_device

        info = init_distributed(device_pref or ("cuda" if torch.cuda.is_available() else "cpu"))
        device = resolve_device(device_pref, info)
        started, t0 = now_iso(), time.perf_counter()
        record: dict[str, Any] = {
            "kind": "run", "profile": self.profile,
            "model": {"name": self.model, "overrides": self.overrides, "key": self.model_key},
            "protocol": self.protocol,
            # the rest of the job (the fields above are not repeated)
            "job": {k: v for k, v in dataclasses.asdict(self).items()
                    if k not in ("model", "overrides", "model_key", "protocol", "profile")},
            "work_dir": str(self.work_dir), "data_root": self.data_root,
            "started_at": started,
        }
        try:
            settings = self.resolved(info.world_size)
            record["settings"] = settings
            record["fingerprint"] = self.fingerprint(info.world_size)
            seed = settings["seed"] + info.rank
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(settings["seed"])   # same initial weights on every rank
            record.update(self._run(settings, info, device, record["fingerprint"]))
            record["status"] = "ok"
            record["error"] = None
        except preemption.Preempted:
            # not a failure: the checkpoint is written and a resumed run continues; the
            # records stay as they were
            raise
        except Exception as err:
            record["status"] = "failed"
            record["error"] = f"{type(err).__name__}: {err}"
            if isinstance(err, StorageError):
                record["error_kind"] = "storage"
                record["error_path"] = str(err.path)
            record["traceback"] = traceback.format_exc(limit=8)
            failure = err
        else:
            failure = None
        record["provenance"] = {**provenance(), "device_used": str(device)}
        record["finished_at"] = now_iso()
        record["wall_time_s"] = round(time.perf_counter() - t0, 3)
        if info.is_main and failure is None and self.staged and not self.eval_only:
            record = self._promote_staging(record)
        if info.is_main and self.record_path:
            record["record_path"] = str(store_run_record(Path(self.record_path), record))
        if failure is not None and info.distributed:
            # the other ranks may be waiting in a collective: end the whole group
            raise failure
        if info.distributed:
            import torch.distributed as dist
            dist.barrier()
            dist.destroy_process_group()
        return record if info.is_main else None

    def _run(self, settings: dict, info, device, fingerprint: str) -> dict:
        from .evaluation.base import finite_or_none
        from .registry import create_model
        from .tasks import get_task
        from .training.evaluate import evaluate, evaluate_targets

        task = get_task(self.task)
        protocol = self.typed_protocol
        workers = self.num_workers if self.num_workers is not None else \
            self._profile("num_workers", 2)
        model = create_model(self.model, **self.overrides)
        out: dict[str, Any] = {"task": task.name}
        work_dir = Path(self.train_dir)
        if self.checkpoint:
            from .checkpoints import load_official_checkpoint
            from .checkpoints import file_sha256
            load_official_checkpoint(model, self.checkpoint)
            out["weights"] = str(self.checkpoint)
            out["weights_sha256"] = file_sha256(self.checkpoint)
        elif protocol.pretrained and not self.eval_only \
                and not get_profile(self.profile).generated_data:
            # ImageNet backbone (smoke runs start from the init, so that they do not depend
            # on files only some machines have); a resumed run overwrites it from its
            # checkpoint
            from .checkpoints import load_pretrained_backbone
            loaded = load_pretrained_backbone(model, protocol.pretrained)
            out["pretrained"] = {"path": str(protocol.pretrained), **loaded}
        elif protocol.pretrained and not self.eval_only:
            out["pretrained"] = {"path": str(protocol.pretrained), "loaded": 0,
                                 "why": "smoke runs start from the init"}
        train_set, trainer, val_sets = None, None, {}
        validation = self._validation()
        # validation during training may evaluate otherwise than the final test
        during = protocol
        if validation["evaluation"]:
            during = protocol.model_copy(update={"evaluation": type(protocol.evaluation).model_validate(
                {**protocol.evaluation.model_dump(), **validation["evaluation"]})})

        def validate(model, protocol) -> Optional[dict]:
            key = protocol.model_dump_json(include={"evaluation"})   # {} without one
            if key not in val_sets:     # each evaluation's dataset built once, when needed
                val_sets[key] = task.build_dataset(protocol, self.data_root, train=False)
            batch_size = task.eval_batch_size(protocol)
            if self._profile("eval_batch_size"):
                batch_size = min(batch_size, self._profile("eval_batch_size"))
            return evaluate(task, model, val_sets[key], protocol, device, info,
                            amp=self.amp, channels_last=self.channels_last,
                            num_workers=workers, batch_size=batch_size), val_sets[key]

        if not self.eval_only:
            train_set = task.build_dataset(protocol, self.data_root, train=True,
                                           seed=settings["seed"])
            trainer = self.trainer(model, train_set, settings, work_dir, device, info,
                                   fingerprint, num_workers=workers,
                                   validate_fn=lambda: validate(trainer.model, during)[0])
            summary = trainer.train(resume=True)
            out["training"] = summary
            out["train_samples"] = len(train_set)
            if not summary["finished"]:
                raise InterruptedError(f"stopped at iteration {summary['iterations']} "
                                       "(stop_at_iter); rerun to resume")
            model = trainer.model
        else:
            model = model.to(device)
        t_eval = time.perf_counter()
        metrics, val_set = validate(model, protocol)
        if trainer is not None:
            # the final weights are validated like the epochs before them (by the final
            # evaluation itself when validation evaluates the same way); the record keeps
            # the final and the best epoch's numbers (like HRNet's model_best.pth)
            if not validation["evaluation"]:
                trainer.record_validation(metrics)
            out["validation"] = {**self._validation(), "history": trainer.validations,
                                 "best": trainer.best}
        if info.is_main:
            out["metrics"] = {k: finite_or_none(v) for k, v in metrics.items()}
            out["val_samples"] = len(val_set)
            if get_profile(self.profile).generated_data:     # the smoke gate's oracle
                oracle = evaluate_targets(task, task.oracle_dataset(protocol, self.data_root),
                                          protocol)
                out["target_metrics"] = {k: finite_or_none(v) for k, v in oracle.items()}
            if train_set is not None:
                extra = task.extra_metrics(train_set, val_set, protocol)
                if extra:
                    out["baselines"] = extra.get("baselines", {})
                    out["metrics"].update({k: finite_or_none(v) for k, v in extra.get("metrics", {}).items()})
        out["eval_wall_time_s"] = round(time.perf_counter() - t_eval, 3)
        return out
