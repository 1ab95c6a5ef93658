"""The training loop of every task (knows no architecture, no dataset, no task).

Its step is detectron2's: ``losses = loss_fn(as_outputs(model(batch["image"])), batch)``,
the terms summed and back-propagated; the task (``bench.tasks``) supplies ``loss_fn``.
One loop for one process, torchrun (DDP) and Slurm: mixed precision (bf16 or fp16 with
a grad scaler), channels_last, a sampler whose order depends only on
(seed, epoch, rank, world size), atomic checkpoints at every epoch end (and every
``checkpoint_interval`` iterations), automatic resumption from the latest checkpoint,
a JSONL log, and a stop with a clear message when the loss becomes NaN/inf or diverges
(the last good checkpoint is kept).

Exact resumption: a sample's augmentation depends only on (seed, epoch, index)
(``TopDownDataset.rng_for``), the sampler can start mid-epoch, and the checkpoint holds
model, optimiser, scaler and RNG states plus the position. On a CPU (and with
deterministic kernels on a GPU) an interrupted and resumed run ends with the same
weights as an uninterrupted one; ``tests/test_training.py`` checks it bit for bit.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch.utils.data import DataLoader

from ..results import StorageError, atomic_write_text
from .outputs import as_outputs
from .checkpoint import (BEST, atomic_torch_save, finite_state, latest_checkpoint,
                         load_checkpoint, save_checkpoint)
from . import preemption
from .distributed import DistInfo, all_reduce_mean, barrier
from .optim import build_optimizer, set_lr
from .sampler import EpochSampler
from .preemption import Preempted
from .schedule import build_schedule

AMP_MODES = ("off", "bf16", "fp16")


class TrainingDiverged(RuntimeError):
    """The loss became non-finite or diverged; the message names the last good checkpoint."""


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    epochs: Optional[int]              # None: the length is ``iterations``
    batch_size: int                    # per process
    lr: float                          # after batch scaling
    optimizer: dict
    schedule: dict                     # the protocol's schedule, epochs/milestones resolved
    max_iters_per_epoch: Optional[int] = None
    amp: str = "off"
    channels_last: bool = False
    num_workers: int = 2
    seed: int = 0
    log_interval: int = 20
    checkpoint_interval: int = 0       # iterations; 0 = epoch ends only
    keep_checkpoints: int = 1
    divergence_factor: float = 100.0   # loss EMA above factor x its best EMA = diverged
    progress: bool = False
    iterations: Optional[int] = None   # the length in iterations (Lite-HRNet's 160k)
    sync_bn: bool = False              # SyncBatchNorm under DDP
    # validation during training, as the protocol reads the official recipe (not tested
    # against it; ``Protocol.validation``):
    # every ``validation_interval`` epochs (0: none; the job evaluates after training),
    # the best checkpoint chosen by ``best_metric`` (larger is better unless ``best_mode``
    # is "min")
    drop_last: bool = True             # False: the epoch's partial last batch is a step
    validation_interval: int = 0
    best_metric: Optional[str] = None
    best_mode: str = "max"
    best_ties: str = "earlier"         # "later": an equal value replaces the best (>=)
    validate_last: bool = False        # also after the last epoch (validation settings of
                                       # its own; otherwise the job's final evaluation is it)

    def __post_init__(self):
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if (self.epochs is None) == (self.iterations is None):
            raise ValueError("give the training length as epochs or as iterations (one of them)")
        if self.batch_size <= 0 or (self.epochs or self.iterations) <= 0:
            raise ValueError("batch_size and the training length must be positive")
        if self.validation_interval < 0 or self.best_mode not in ("max", "min") or \
                self.best_ties not in ("earlier", "later"):
            raise ValueError("validation_interval must be >= 0, best_mode max or min and "
                             "best_ties earlier or later")


def autocast_context(device: torch.device, amp: str):
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


class JsonlLog:
    """Append-only JSON-lines log (rank 0); ``truncate_after`` drops the lines an
    interrupted attempt wrote after the checkpoint it resumes from."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled

    def write(self, **entry: Any) -> None:
        if not self.enabled:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"time": round(time.time(), 3), **entry}) + "\n")
        except OSError as err:
            raise StorageError(self.path, err) from err

    def entries(self) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:   # a line cut by a crash mid-write
                continue
        return out

    def truncate_after(self, global_iter: int) -> None:
        if not self.enabled or not self.path.is_file():
            return
        keep = [e for e in self.entries() if e.get("global_iter", -1) <= global_iter]
        atomic_write_text(self.path, "".join(json.dumps(e) + "\n" for e in keep))


class _Progress:
    """A rich progress bar on an interactive rank 0, nothing otherwise."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeRemainingColumn(),
                                TextColumn("{task.fields[info]}"), transient=True)

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)

    def task(self, description: str, total: int, completed: int = 0):
        return self.bar.add_task(description, total=total, completed=completed, info="") \
            if self.bar else None

    def update(self, task, info: str = "") -> None:
        if self.bar and task is not None:
            self.bar.update(task, advance=1, info=info)


class Trainer:
    """Train ``model`` on ``dataset`` (items with ``image`` and whatever ``loss_fn``
    reads) under ``settings``; checkpoints and log in ``work_dir``. ``loss_fn(outputs,
    batch)`` returns named loss terms (``outputs``: the model's outputs as a mapping,
    ``bench.training.outputs.as_outputs``); their sum is minimised.

    ``validate_fn()`` (optional) evaluates the model on every rank and returns the
    metrics on rank 0 (None elsewhere); it runs every ``settings.validation_interval``
    epochs, after the last one only with ``settings.validate_last`` (otherwise the job's
    final evaluation is that validation and goes to ``record_validation``). The history and the best epoch live in the checkpoint, the
    best weights in ``best.pth``.

    ``fingerprint`` identifies the job: a checkpoint with another fingerprint in
    ``work_dir`` is refused instead of being resumed. ``stop_at_iter`` ends the run
    after that many global iterations, as an interruption would (tests; checkpoints
    are written as usual up to that point).
    """

    def __init__(self, model: torch.nn.Module, dataset, settings: TrainSettings,
                 work_dir: Path, device: torch.device, dist_info: DistInfo = DistInfo(),
                 fingerprint: str = "", *, loss_fn: Callable[[dict, dict], dict],
                 collate_fn: Optional[Callable] = None,
                 log_fn: Callable[[str], None] = print, stop_at_iter: Optional[int] = None,
                 validate_fn: Optional[Callable[[], Optional[dict]]] = None):
        self.settings, self.device, self.dist = settings, device, dist_info
        self.work_dir, self.fingerprint = Path(work_dir), fingerprint
        self.dataset, self.log_fn, self.stop_at_iter = dataset, log_fn, stop_at_iter
        self.loss_fn, self.collate_fn = loss_fn, collate_fn
        self.validate_fn = validate_fn
        self.validations: list[dict] = []      # {"epoch": n (1-based, done), "metrics"}
        self.best: Optional[dict] = None       # one of them, by settings.best_metric

        # SyncBatchNorm runs on GPUs only: a CPU process group (tests) keeps BN per process
        self.sync_bn = settings.sync_bn and dist_info.distributed and device.type == "cuda"
        if self.sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = model.to(device)
        if settings.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.train_model = model
        if dist_info.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.optimizer = build_optimizer(model, settings.optimizer, lr=settings.lr)
        self.scaler = torch.amp.GradScaler(device.type, enabled=settings.amp == "fp16")
        self.sampler = EpochSampler(len(dataset), shuffle=True, seed=settings.seed,
                                    rank=dist_info.rank, world_size=dist_info.world_size)
        full = self.sampler.shard_size // settings.batch_size if settings.drop_last else \
            -(-self.sampler.shard_size // settings.batch_size)
        if full == 0:
            raise ValueError(f"the training set has {len(dataset)} samples, fewer than one "
                             f"batch of {settings.batch_size} per process")
        cap = settings.max_iters_per_epoch
        self.iters_per_epoch = min(full, cap) if cap else full
        # an iteration-based recipe runs whole epochs until its iteration count
        self.total_iters = settings.iterations or settings.epochs * self.iters_per_epoch
        self.epochs = -(-self.total_iters // self.iters_per_epoch)
        # HRNet-Seg's poly counts floor(samples / total batch) per epoch (rate_epoch)
        counted = min(len(dataset) // (settings.batch_size * dist_info.world_size),
                      self.iters_per_epoch)
        self.schedule = build_schedule(settings.schedule, settings.lr, self.iters_per_epoch,
                                       counted_epoch=counted or None)
        self.log = JsonlLog(self.work_dir / "log.jsonl", enabled=dist_info.is_main)
        self.epoch, self.iter_in_epoch, self.global_iter = 0, 0, 0
        self.epoch_losses: list[float] = []
        self.current_losses: list[float] = []    # this epoch's, so far
        self.first_losses: list[float] = []
        self.resumed_from: Optional[dict] = None
        self._ema: Optional[float] = None
        self._best_ema = math.inf
        self._last_good: Optional[Path] = None

    # -------------------------------------------------------------- checkpoints
    def state(self) -> dict:
        return {
            "model": _unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch, "iter_in_epoch": self.iter_in_epoch,
            "global_iter": self.global_iter,
            "epoch_losses": list(self.epoch_losses), "first_losses": list(self.first_losses),
            "current_losses": list(self.current_losses),
            "ema": self._ema, "best_ema": self._best_ema,
            "validations": list(self.validations), "best": self.best,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            "fingerprint": self.fingerprint,
            "settings": dataclasses.asdict(self.settings),
        }

    def save(self, epoch_end: bool) -> None:
        if not finite_state(_unwrap(self.model)):
            raise TrainingDiverged(self._diverged_message("the weights became non-finite"))
        if self.dist.is_main:
            self._last_good = save_checkpoint(self.work_dir, self.state(), epoch_end,
                                              self.settings.keep_checkpoints)
        barrier()

    def try_resume(self) -> bool:
        path = latest_checkpoint(self.work_dir)
        if path is None:
            return False
        state = load_checkpoint(path)
        if self.fingerprint and state.get("fingerprint") != self.fingerprint:
            raise RuntimeError(
                f"{path} belongs to another job (fingerprint {state.get('fingerprint')!r}, "
                f"this job {self.fingerprint!r}): a run with other settings; hrbench --rerun "
                f"starts afresh (keeping it until the new run succeeds), or use another work dir")
        _unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.iter_in_epoch = state["epoch"], state["iter_in_epoch"]
        self.global_iter = state["global_iter"]
        self.epoch_losses = list(state.get("epoch_losses", []))
        self.first_losses = list(state.get("first_losses", []))
        self.current_losses = list(state.get("current_losses", []))
        self._ema, self._best_ema = state.get("ema"), state.get("best_ema", math.inf)
        self.validations = list(state.get("validations", []))
        self.best = state.get("best")
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"].get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self._last_good = path
        self.resumed_from = {"checkpoint": str(path), "epoch": self.epoch,
                             "iter_in_epoch": self.iter_in_epoch, "global_iter": self.global_iter}
        self.log.truncate_after(self.global_iter)
        self.log.write(event="resume", global_iter=self.global_iter, epoch=self.epoch,
                       iter_in_epoch=self.iter_in_epoch)
        return True

    # -------------------------------------------------------------- the loop
    def _loader(self, start: int) -> DataLoader:
        self.dataset.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch, start=start * self.settings.batch_size)
        return DataLoader(self.dataset, batch_size=self.settings.batch_size,
                          sampler=self.sampler, num_workers=self.settings.num_workers,
                          drop_last=self.settings.drop_last,
                          pin_memory=self.device.type == "cuda",
                          persistent_workers=False, collate_fn=self.collate_fn)

    def _diverged_message(self, what: str) -> str:
        where = f"epoch {self.epoch} iteration {self.iter_in_epoch} (global {self.global_iter})"
        kept = (f"the last good checkpoint is kept: {self._last_good}" if self._last_good
                else "no checkpoint had been written yet")
        return f"training stopped at {where}: {what}; {kept}"

    def _check_loss(self, loss: float) -> None:
        if not math.isfinite(loss):
            raise TrainingDiverged(self._diverged_message(f"the loss is {loss}"))
        self._ema = loss if self._ema is None else 0.9 * self._ema + 0.1 * loss
        if self.global_iter >= 20:
            self._best_ema = min(self._best_ema, self._ema)
            if self._ema > self.settings.divergence_factor * self._best_ema:
                raise TrainingDiverged(self._diverged_message(
                    f"the loss diverged (running mean {self._ema:.4g} is more than "
                    f"{self.settings.divergence_factor:g}x its best, {self._best_ema:.4g})"))

    def step(self, batch: dict) -> tuple[float, dict[str, float]]:
        """One optimisation step; returns the summed loss and its terms (rank means)."""
        s = self.settings
        fmt = torch.channels_last if s.channels_last else torch.contiguous_format
        batch = {k: (v.to(self.device, non_blocking=True, memory_format=fmt) if k == "image"
                     else v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v)
                 for k, v in batch.items()}
        with autocast_context(self.device, s.amp):
            outputs = as_outputs(self.train_model(batch["image"]))
        # the task casts to float32: the loss is computed outside autocast
        terms = self.loss_fn(outputs, batch)
        loss = sum(terms.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        values = {k: all_reduce_mean(v.detach().item(), self.device) for k, v in terms.items()}
        total = values[next(iter(values))] if len(values) == 1 else \
            all_reduce_mean(loss.detach().item(), self.device)
        return total, values

    def lr_at(self, global_iter: int) -> float:
        """The rate of the optimiser step of ``global_iter`` (0-based; every epoch but
        an iteration recipe's last has ``iters_per_epoch`` steps)."""
        return self.schedule.lr(global_iter // self.iters_per_epoch, global_iter)

    def train_step(self, batch: dict) -> tuple[float, dict[str, float]]:
        """One iteration of the schedule: the rate of (epoch, global iteration) set, one
        optimisation step, the loss checked, the position advanced."""
        set_lr(self.optimizer, self.lr_at(self.global_iter))
        loss, terms = self.step(batch)
        self._check_loss(loss)
        self.iter_in_epoch += 1
        self.global_iter += 1
        return loss, terms

    # -------------------------------------------------------------- validation
    def _validation_due(self) -> bool:
        n = self.settings.validation_interval
        return bool(self.validate_fn and n and self.epoch % n == 0
                    and (self.epoch < self.epochs or self.settings.validate_last))

    def record_validation(self, metrics: Optional[dict]) -> None:
        """Add the metrics of the model as it is after ``self.epoch`` epochs to the
        history (rank 0: others pass None) and keep its weights in ``best.pth`` when they
        are the best so far by ``settings.best_metric``."""
        if metrics is None or not self.dist.is_main:
            return
        entry = {"epoch": self.epoch, "global_iter": self.global_iter,
                 "metrics": {k: float(v) for k, v in metrics.items()
                             if isinstance(v, (int, float)) and math.isfinite(v)}}
        self.validations.append(entry)
        self.log.write(event="validation", epoch=self.epoch, global_iter=self.global_iter,
                       metrics=entry["metrics"])
        key = self.settings.best_metric
        if key is None:
            return
        if key not in entry["metrics"]:
            raise KeyError(f"validation gave no {key!r} to choose the best checkpoint by "
                           f"(it gave {', '.join(entry['metrics']) or 'nothing finite'})")
        value = entry["metrics"][key]
        best = None if self.best is None else self.best["value"]
        if best is not None and value == best:
            better = self.settings.best_ties == "later"
        else:
            better = best is None or (value > best if self.settings.best_mode == "max"
                                      else value < best)
        if better:
            path = self.work_dir / BEST
            atomic_torch_save({"model": _unwrap(self.model).state_dict(), "epoch": self.epoch,
                               "metrics": entry["metrics"], "fingerprint": self.fingerprint},
                              path)
            self.best = {**entry, "metric": key, "value": value, "checkpoint": str(path)}

    def train(self, resume: bool = True) -> dict:
        s = self.settings
        if resume and self.try_resume():
            self.log_fn(f"resumed from {self.resumed_from['checkpoint']} at epoch "
                        f"{self.epoch}, iteration {self.iter_in_epoch}")
        else:
            self.log.write(event="start", global_iter=0, settings=dataclasses.asdict(s),
                           world_size=self.dist.world_size, iters_per_epoch=self.iters_per_epoch)
        self.train_model.train()
        t_start, images = time.perf_counter(), 0
        with _Progress(s.progress and self.dist.is_main) as progress:
            while self.epoch < self.epochs and self.global_iter < self.total_iters:
                task = progress.task(f"epoch {self.epoch + 1}/{self.epochs}",
                                     self.iters_per_epoch, self.iter_in_epoch)
                if self.iter_in_epoch == 0:
                    self.current_losses = []
                losses = self.current_losses
                t_epoch = t_data = time.perf_counter()
                data_time = 0.0
                for batch in self._loader(self.iter_in_epoch):
                    if self.iter_in_epoch >= self.iters_per_epoch or \
                            self.global_iter >= self.total_iters:
                        break
                    data_time += time.perf_counter() - t_data
                    loss, terms = self.train_step(batch)
                    losses.append(loss)
                    if len(self.first_losses) < s.log_interval:
                        self.first_losses.append(loss)
                    images += s.batch_size * self.dist.world_size
                    progress.update(task, f"loss {loss:.3e}")
                    if self.global_iter % s.log_interval == 0 or self.iter_in_epoch == self.iters_per_epoch:
                        extra = {"losses": terms} if len(terms) > 1 else {}
                        self.log.write(event="train", epoch=self.epoch, iter=self.iter_in_epoch,
                                       global_iter=self.global_iter, loss=loss,
                                       lr=self.optimizer.param_groups[0]["lr"],
                                       data_time=round(data_time, 4), **extra)
                    if self.stop_at_iter is not None and self.global_iter >= self.stop_at_iter:
                        self.save(epoch_end=False)
                        return self.summary(time.perf_counter() - t_start, images, finished=False)
                    signum = self._preemption_signal()
                    if signum is not None:
                        self.save(epoch_end=False)
                        self.log.write(event="preempted", global_iter=self.global_iter,
                                       signal=signum)
                        raise Preempted(signum, self.global_iter,
                                        str(self._last_good) if self._last_good else None)
                    if s.checkpoint_interval and self.global_iter % s.checkpoint_interval == 0 \
                            and self.iter_in_epoch < self.iters_per_epoch:
                        self.save(epoch_end=False)
                    t_data = time.perf_counter()
                mean = float(sum(losses) / len(losses)) if losses else math.nan
                if losses:
                    self.epoch_losses.append(mean)
                # "time" is the entry's clock time (JsonlLog): the epoch's length is its own
                self.log.write(event="epoch", epoch=self.epoch, global_iter=self.global_iter,
                               loss=mean, epoch_time_s=round(time.perf_counter() - t_epoch, 3),
                               lr=self.optimizer.param_groups[0]["lr"])
                self.log_fn(f"epoch {self.epoch + 1}/{self.epochs}: loss {mean:.4e} "
                            f"({time.perf_counter() - t_epoch:.1f}s)")
                self.epoch += 1
                self.iter_in_epoch = 0
                if self._validation_due():
                    self.record_validation(self.validate_fn())
                    self.train_model.train()
                self.save(epoch_end=True)
        return self.summary(time.perf_counter() - t_start, images, finished=True)

    def _preemption_signal(self) -> Optional[int]:
        """The stop signal if any process of the group received one: the ranks agree
        (one all-reduce per step), so all of them stop at the same boundary."""
        signum = preemption.requested()
        if not self.dist.distributed:
            return signum
        import torch.distributed as dist
        flag = torch.tensor([signum or 0], dtype=torch.int64,
                            device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item()) or None

    def summary(self, wall: float, images: int, finished: bool) -> dict:
        first = self.first_losses
        return {
            "finished": finished,
            "epochs": self.epoch, "iterations": self.global_iter,
            "iters_per_epoch": self.iters_per_epoch,
            "sync_bn": self.sync_bn,
            "first_loss": float(sum(first) / len(first)) if first else None,
            "final_loss": self.epoch_losses[-1] if self.epoch_losses else None,
            "epoch_losses": list(self.epoch_losses),
            "train_wall_time_s": round(wall, 3),
            "images_per_s": round(images / wall, 2) if wall > 0 else None,
            "resumed_from": self.resumed_from,
            "validations": list(self.validations), "best": self.best,
            "checkpoint": str(self._last_good) if self._last_good else None,
            "log": str(self.log.path),
        }
