"""``output_stride`` / ``subsamplings`` / ``out_channels``: from the shape of the model's
(or a column's ``submodule``'s) output in a shape-only forward on the column's input:
input size over output size, its log2, the output's channels (FlatteNet Table XI)."""
from __future__ import annotations

import math

from .base import DECIMAL, StructureMeasure, register_measure, submodule_of


class OutputShape(StructureMeasure):
    """One number of the output's shape; the three share one cached forward."""

    def compute(self, req):
        col = req.col
        if len(req.inputs) != 1:
            raise ValueError(f"a {self.name} column takes one input, got {len(req.inputs)}")
        found, hit = req.cached(lambda: req.models.on_meta(req.protocol, lambda model: output_shape(
            model, req.inputs[0], col.submodule, req.model_name)), "output_shape",
            submodule=col.submodule)
        raw = from_output_shape(self.name, found)
        cell = req.cell()
        cell.update(raw=raw, value=raw / DECIMAL[col.unit])
        return cell, found, hit


def output_shape(model, input_shape, submodule: str | None, model_name: str) -> dict:
    """Shapes of one forward at batch 1 in eval mode, of the model's main output (a
    mapping's ``out``, a tuple's first entry) or of ``submodule``'s output (its first call),
    on the model's device: meta for a model built there (``RowModels.on_meta``, which
    measures again on a real model when the meta forward fails)."""
    import torch
    target = submodule_of(model, submodule, model_name)
    seen: list = []

    def first_tensor(out):
        if isinstance(out, torch.Tensor):
            return out
        if isinstance(out, dict):
            return first_tensor(out.get("out", next(iter(out.values()), None)))
        if isinstance(out, (tuple, list)) and out:
            return first_tensor(out[0])
        raise ValueError(f"the output of {submodule or model_name!r} is a "
                         f"{type(out).__name__}, not a tensor")

    hook = target.register_forward_hook(lambda m, i, o: seen.append(o)) if submodule else None
    training = model.training
    model.eval()
    device = next((t.device.type for t in model.parameters()), "cpu")
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(training)
        if hook is not None:
            hook.remove()
    if submodule and not seen:
        raise ValueError(f"submodule {submodule!r} of {model_name!r} was not called in the forward")
    shape = list(first_tensor(seen[0] if submodule else out).shape)
    if len(shape) != 4:
        raise ValueError(f"expected an (N, C, H, W) output, got shape {shape}")
    return {"input": list(input_shape), "output": shape, "forward": device,
            "output_of": submodule or "model"}


def from_output_shape(measure: str, found: dict) -> float:
    """``measure``'s number from the shapes ``output_shape`` found."""
    (_, height, width), (_, channels, out_h, out_w) = found["input"][-3:], found["output"]
    if measure == "out_channels":
        return channels
    strides = (height / out_h, width / out_w)
    if not math.isclose(*strides):
        raise ValueError(f"the output {out_h}x{out_w} of {found['output_of']} has different strides "
                         f"along H and W on the {height}x{width} input: {strides[0]:g}, {strides[1]:g}")
    if measure == "output_stride":
        return strides[0]
    halvings = math.log2(strides[0])
    if abs(halvings - round(halvings)) > 1e-9:
        raise ValueError(f"output stride {strides[0]:g} of {found['output_of']} is not a power of "
                         "2: no whole number of subsamplings")
    return int(round(halvings))


register_measure(OutputShape("output_stride"))
register_measure(OutputShape("subsamplings"))
register_measure(OutputShape("out_channels"))
