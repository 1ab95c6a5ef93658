"""Training checkpoints: written atomically, found again after an interruption.

A checkpoint holds the model, optimiser and grad-scaler states, the position
(epoch, iteration within the epoch, global iteration), the torch RNG states and a
fingerprint of the job; ``latest.pth`` is replaced atomically at every save, and the
last ``keep`` epoch-end checkpoints are kept as ``epoch_<n>.pth``. A save is never made
from a state with non-finite parameters, so a diverged run keeps its last good one.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from ..results import atomic_write

LATEST = "latest.pth"
BEST = "best.pth"            # the best validated weights (Trainer.record_validation)


def atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda fh: torch.save(obj, fh))


def latest_checkpoint(work_dir: Path) -> Path | None:
    path = Path(work_dir) / LATEST
    return path if path.is_file() else None


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Read a checkpoint this module wrote, with ``weights_only=True``: a file planted in
    a work dir that pickles code (a ``__reduce__`` payload, any class outside plain data
    and tensors) is refused instead of run. What ``Trainer.state`` writes is plain data:
    tensors (the weights, the optimiser state, torch's and CUDA's RNG states, which are
    uint8 tensors), dicts, lists, tuples, numbers, strings and None, all of which the
    weights-only unpickler accepts without any type allowed beyond its defaults (no numpy
    or Python RNG state is kept: data order and augmentation depend on seed, epoch and
    index only)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise RuntimeError(f"refusing to load checkpoint {path}: it holds an object the "
                           f"weights-only loader does not allow (a checkpoint written by "
                           f"HRBench never does; was it replaced?): {err}") from err
    except Exception as err:  # a truncated file cannot come from atomic_torch_save
        raise RuntimeError(f"cannot read checkpoint {path}: {err}") from err


def save_checkpoint(work_dir: Path, state: dict, epoch_end: bool, keep: int = 1) -> Path:
    """Write ``latest.pth`` (and ``epoch_<n>.pth`` at an epoch end, keeping ``keep``)."""
    work_dir = Path(work_dir)
    latest = work_dir / LATEST
    atomic_torch_save(state, latest)
    if epoch_end and keep > 0:
        # the same bytes as latest.pth: a hard link (renamed into place) costs no I/O and
        # keeps these bytes when latest.pth is later replaced by a new file
        epoch_file = work_dir / f"epoch_{state['epoch']}.pth"
        tmp = work_dir / f".{epoch_file.name}.link"
        tmp.unlink(missing_ok=True)
        try:
            os.link(latest, tmp)
            os.replace(tmp, epoch_file)
        except OSError:          # a file system without hard links
            tmp.unlink(missing_ok=True)
            atomic_torch_save(state, epoch_file)
        old = sorted(work_dir.glob("epoch_*.pth"), key=lambda p: int(p.stem.split("_")[1]))
        for p in old[:-keep]:
            p.unlink(missing_ok=True)
    return latest


def finite_state(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(t).all() for t in model.state_dict().values()
               if t.is_floating_point())
