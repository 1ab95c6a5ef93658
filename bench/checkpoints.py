"""Loading official checkpoints: ``load_official_checkpoint(model, state_dict_or_path)``.

Model files name their modules as the official implementations do, so loading is
strict. What differs between releases is the wrapping, which is undone here: a
``{"state_dict": ...}`` / ``{"model": ...}`` container and the ``module.`` prefix of
(Distributed)DataParallel. A family whose official names differ from ours declares
``official_key_renames`` on its top-level module: (regex, replacement) pairs applied in
order. Loading fails listing the missing and unexpected keys, and shape mismatches.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import torch
from torch import nn


class CheckpointMismatchError(RuntimeError):
    pass


def _unwrap(obj) -> Mapping[str, torch.Tensor]:
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            return _unwrap(obj[key])
    if not isinstance(obj, Mapping):
        raise CheckpointMismatchError(f"expected a state dict, got {type(obj).__name__}")
    return obj


def official_state_dict(model: nn.Module, checkpoint) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under our key names (container, prefix and renames undone)."""
    if isinstance(checkpoint, (str, Path)):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = _unwrap(checkpoint)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    renames = getattr(model, "official_key_renames", ())
    out = {}
    for key, value in state.items():
        for pattern, repl in renames:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def load_official_checkpoint(model: nn.Module, checkpoint) -> nn.Module:
    state = official_state_dict(model, checkpoint)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or shapes:
        def listing(title, items):
            more = f" ... and {len(items) - 10} more" if len(items) > 10 else ""
            return f"\n  {title} ({len(items)}): " + ", ".join(items[:10]) + more if items else ""
        name = getattr(model, "registry_name", type(model).__name__)
        raise CheckpointMismatchError(
            f"checkpoint does not match {name}" + listing("missing keys", missing)
            + listing("unexpected keys", unexpected) + listing("shape mismatches", shapes))
    model.load_state_dict(state, strict=True)
    return model
