"""Loading official checkpoints: ``load_official_checkpoint(model, state_dict_or_path)``.

Model files name their modules as the official implementations do (checked against the
official code for HRNet, Lite-HRNet, SimpleBaseline and GSTO by the ``*_official.json``
goldens), so loading is strict. What differs between releases is the wrapping, which is
undone here: a ``{"state_dict": ...}`` / ``{"model": ...}`` container and the
``module.`` prefix of (Distributed)DataParallel. A family whose official names differ
from ours declares ``official_key_renames`` on its top-level module: (regex,
replacement) pairs applied in order; ``official_key_ignored`` (regexes on the file's own
names) drops entries that are not weights of the network (HRNet-Semantic-Segmentation
saves its loss's class weights beside the model). ``official_batchnorm = "inplace_abn"``
says the official code normalises with InPlaceABN(Sync) (activation none), which scales
by ``|weight| + eps`` rather than ``weight``: a file saved by it (no
``num_batches_tracked`` entry anywhere, InPlaceABN has none) has that scale written into
our BatchNorm2d weights, so that BatchNorm2d computes what InPlaceABN computed. Loading
fails listing the missing and unexpected keys, and shape mismatches. ``file_sha256``
hashes a weights file (the ``released`` profile checks it).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
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


def _mismatch(headline: str, missing: list[str], unexpected: list[str], shapes: list[str]) -> str:
    """The error text: the headline, then each non-empty list (ten entries at most)."""
    def listing(title, items):
        more = f" ... and {len(items) - 10} more" if len(items) > 10 else ""
        return f"\n  {title} ({len(items)}): " + ", ".join(items[:10]) + more if items else ""
    return (headline + listing("missing keys", missing) + listing("unexpected keys", unexpected)
            + listing("shape mismatches", shapes))


def read_weights_file(path: str | Path):
    """A torch file read without running arbitrary pickled code (``weights_only``).
    Files saved by mmcv can carry numpy scalars in their ``meta`` (a best score, a seed,
    as we read mmcv's hooks): those numpy types are allowed too. Anything else fails
    naming the file."""
    import pickle
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        import numpy as np
        allowed = [np.dtype, np.ndarray, type(np.dtype("float64")), type(np.dtype("int64"))]
        core = getattr(np, "_core", None) or np.core
        allowed += [core.multiarray.scalar, core.multiarray._reconstruct]
        try:
            with torch.serialization.safe_globals(allowed):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            found = re.search(r"GLOBAL ([\w.]+)", str(err))
            what = f"an object of type {found.group(1)}" if found else "other pickled objects"
            raise CheckpointMismatchError(
                f"{path}: cannot be read as weights only: it holds {what}; load it "
                "yourself if you trust it and save its state dict") from None


def official_state_dict(model: nn.Module, checkpoint) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under our key names (container, prefix and renames undone)."""
    if isinstance(checkpoint, (str, Path)):
        checkpoint = read_weights_file(checkpoint)
    state = _unwrap(checkpoint)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    renames = getattr(model, "official_key_renames", ())
    ignored = getattr(model, "official_key_ignored", ())
    out = {}
    for key, value in state.items():
        if any(re.search(pattern, key) for pattern in ignored):
            continue
        for pattern, repl in renames:
            key = re.sub(pattern, repl, key)
        out[key] = value
    if (getattr(model, "official_batchnorm", None) == "inplace_abn"
            and not any(k.endswith("num_batches_tracked") for k in state)):
        out = inplace_abn_scales(model, out)
    return out


def inplace_abn_scales(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with the weight of every BatchNorm of ``model`` replaced by InPlaceABN's
    effective scale ``|weight| + eps`` (mapillary/inplace_abn's kernels: ``gamma =
    abs(weight) + eps``, the same ``eps`` as in ``rsqrt(var + eps)``; checked against a
    transcription of its ``inplace_abn_cpu.cpp`` in ``gsto_official.json``, not the
    compiled op)."""
    out = dict(state)
    for name, module in model.named_modules():
        key = f"{name}.weight" if name else "weight"
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine and key in out:
            out[key] = out[key].abs() + module.eps
    return out


def load_official_checkpoint(model: nn.Module, checkpoint) -> nn.Module:
    state = official_state_dict(model, checkpoint)
    own = model.state_dict()
    # BatchNorm's step counter is absent from files saved before PyTorch 0.4.1 or by
    # InPlaceABN (HRNet-Semantic-Segmentation's master branch, GSTO); it does not enter
    # an evaluation forward, so it keeps the model's value
    for key in set(own) - set(state):
        if key.endswith("num_batches_tracked"):
            state[key] = own[key]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or shapes:
        name = getattr(model, "registry_name", type(model).__name__)
        raise CheckpointMismatchError(_mismatch(f"checkpoint does not match {name}",
                                                missing, unexpected, shapes))
    model.load_state_dict(state, strict=True)
    return model


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in chunks (weights files are large)."""
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


# --- ImageNet-pretrained backbones -------------------------------------------------------

@dataclass(frozen=True)
class BackboneLayout:
    """How an ImageNet classification checkpoint maps onto a model's backbone.

    ``prefixes``: our state-dict keys that the checkpoint must supply (everything under
    them; ``num_batches_tracked`` buffers are optional since pre-0.4 checkpoints lack them).
    ``key_map``: (regex, replacement) pairs turning the checkpoint's key names into ours,
    applied in order (e.g. ``("^features\\.", "backbone.features.")``).
    ``ignored``: regexes, on the checkpoint's *original* names, of keys that belong to the
    classifier and are dropped (``^fc\\.``); any other key we do not have is an error.
    """
    prefixes: tuple[str, ...]
    key_map: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = ()


class PretrainedBackboneError(CheckpointMismatchError):
    pass


def pretrained_path(text: str | Path) -> Path:
    """A ``pretrained:`` entry as a path: ``~`` and ``$VARIABLES`` expanded."""
    return Path(os.path.expandvars(os.path.expanduser(str(text))))


def load_pretrained_backbone(model: nn.Module, path: str | Path) -> dict[str, int]:
    """Load ImageNet weights into ``model``'s backbone (``model.pretrained_layout``).

    Fails, naming the file, when it does not exist, is not a state dict, or does not
    match: backbone keys it does not supply, keys it has that are neither ours nor the
    classifier's, and shape mismatches are all listed. Returns counts of what was done.
    """
    path = pretrained_path(path)
    name = getattr(model, "registry_name", type(model).__name__)
    layout: BackboneLayout | None = getattr(model, "pretrained_layout", None)
    if layout is None:
        raise PretrainedBackboneError(f"{name} declares no pretrained backbone layout; "
                                      "it cannot start from ImageNet weights")
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights for {name}: no such file {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        state = _unwrap(raw)
    except CheckpointMismatchError as err:
        raise PretrainedBackboneError(f"{path}: {err}") from None
    except Exception as err:  # unpickling errors come in many types
        raise PretrainedBackboneError(f"{path}: not a readable torch checkpoint ({err})") from None
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}

    mapped: dict[str, torch.Tensor] = {}
    dropped = 0
    for key, value in state.items():
        if any(re.search(p, key) for p in layout.ignored):
            dropped += 1
            continue
        new = key
        for pattern, repl in layout.key_map:
            new = re.sub(pattern, repl, new)
        mapped[new] = value
    own = model.state_dict()
    expected = {k for k in own if k.startswith(layout.prefixes)}
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(expected - optional - set(mapped))
    unexpected = sorted(set(mapped) - expected)
    shapes = sorted(f"{k}: file {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in expected & set(mapped) if tuple(mapped[k].shape) != tuple(own[k].shape))
    if missing or unexpected or shapes:
        raise PretrainedBackboneError(_mismatch(f"{path} does not match the backbone of {name}",
                                                missing, unexpected, shapes))
    model.load_state_dict(mapped, strict=False)   # every key checked above
    return {"loaded": len(mapped), "classifier_keys_dropped": dropped,
            "left_at_init": len(own) - len(mapped)}
