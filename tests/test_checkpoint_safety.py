"""Training checkpoints are read with ``weights_only=True``: what the trainer writes
loads back whole, and a planted file that pickles code is refused without running it.
(Resumption itself: tests/test_training.py::test_an_interrupted_run_resumes_to_the_same_weights.)"""
from __future__ import annotations

import os

import pytest
import torch

from bench.training.checkpoint import LATEST, load_checkpoint, save_checkpoint


class _Payload:
    """Unpickling this calls ``os.makedirs(marker)``: harmless, but it is code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _state() -> dict:
    """A checkpoint shaped like ``Trainer.state()``: weights, optimiser, scaler, position,
    losses, RNG states, fingerprint, settings."""
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(),
            "scaler": torch.amp.GradScaler("cpu", enabled=True).state_dict(),
            "epoch": 1, "iter_in_epoch": 2, "global_iter": 5,
            "epoch_losses": [0.5], "first_losses": [0.9, 0.8], "current_losses": [],
            "ema": 0.4, "best_ema": float("inf"),
            "rng": {"torch": torch.get_rng_state(), "cuda": None},
            "fingerprint": "abc", "settings": {"epochs": 2, "optimizer": {"type": "adam",
                                                                         "betas": (0.9, 0.999)}}}


def test_what_the_trainer_writes_loads_weights_only(tmp_path):
    state = _state()
    save_checkpoint(tmp_path, state, epoch_end=True)
    back = load_checkpoint(tmp_path / LATEST)
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"])
    assert all(torch.equal(back["model"][k], v) for k, v in state["model"].items())
    assert back["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    assert back["scaler"] == state["scaler"] and back["best_ema"] == float("inf")
    assert back["settings"]["optimizer"]["betas"] == (0.9, 0.999)
    assert (tmp_path / "epoch_1.pth").is_file()


def test_a_planted_checkpoint_with_a_reduce_payload_is_refused(tmp_path):
    marker = tmp_path / "payload-ran"
    planted = {**_state(), "extra": _Payload(str(marker))}
    torch.save(planted, tmp_path / LATEST)
    with pytest.raises(RuntimeError, match=r"refusing to load checkpoint .*latest\.pth: it holds an "
                                           r"object the weights-only loader does not allow"):
        load_checkpoint(tmp_path / LATEST)
    assert not marker.exists()
    # the payload is real: the unrestricted loader the trainer used to call runs it
    torch.load(tmp_path / LATEST, weights_only=False)
    assert marker.is_dir()
