"""Training checkpoints: written atomically, found again after an interruption.

A checkpoint holds the model, optimiser and grad-scaler states, the position
(epoch, iteration within the epoch, global iteration), the torch RNG states and a
fingerprint of the job; ``latest.pth`` is replaced atomically at every save, and the
last ``keep`` epoch-end checkpoints are kept as ``epoch_<n>.pth``. A save is never made
from a state with non-finite parameters, so a diverged run keeps its last good one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

LATEST = "latest.pth"


def atomic_torch_save(obj: Any, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def latest_checkpoint(work_dir: Path) -> Path | None:
    path = Path(work_dir) / LATEST
    return path if path.is_file() else None


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # a truncated file cannot come from atomic_torch_save
        raise RuntimeError(f"cannot read checkpoint {path}: {err}") from err


def save_checkpoint(work_dir: Path, state: dict, epoch_end: bool, keep: int = 1) -> Path:
    """Write ``latest.pth`` (and ``epoch_<n>.pth`` at an epoch end, keeping ``keep``)."""
    work_dir = Path(work_dir)
    latest = work_dir / LATEST
    atomic_torch_save(state, latest)
    if epoch_end and keep > 0:
        epoch_file = work_dir / f"epoch_{state['epoch']}.pth"
        atomic_torch_save(state, epoch_file)
        old = sorted(work_dir.glob("epoch_*.pth"), key=lambda p: int(p.stem.split("_")[1]))
        for p in old[:-keep]:
            p.unlink(missing_ok=True)
    return latest


def finite_state(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(t).all() for t in model.state_dict().values()
               if t.is_floating_point())
