"""``attribute``: a number read from the built model at a dotted path (below a column's
``submodule``), optionally over another (``divided_by``): a layer's kernel size, groups
or expansion, for hyperparameter tables (FlatteNet Tables I, VII, IX, XI)."""
from __future__ import annotations

from .base import DECIMAL, StructureMeasure, dotted, register_measure, submodule_of


class Attribute(StructureMeasure):
    """``attribute`` (over ``divided_by``) of the meta-built model; a tensor's value is
    read on the real one. The details keep the full paths and both numbers."""
    name = "attribute"
    attribute = True
    needs_input = False

    def check(self, col, fail):
        super().check(col, fail)
        if col.attribute is None:
            fail((), "an attribute column names the attribute it reads (attribute: a dotted "
                 "path, e.g. dwconv.kernel_size)")

    def compute(self, req):
        col = req.col

        def read(model):
            target = submodule_of(model, col.submodule, req.model_name)
            found = {"value": number_at(target, col.attribute, col.submodule)}
            if col.divided_by:
                found["divided_by"] = number_at(target, col.divided_by, col.submodule)
            return found

        def attribute():
            found = req.models.on_meta(req.protocol, read)   # a tensor's value is read for real
            if col.divided_by and found["divided_by"] == 0:
                raise ValueError(f"{dotted(col.submodule, col.divided_by)} is 0: cannot divide by it")
            return found
        found, hit = req.cached(attribute, "attribute", submodule=col.submodule,
                                attribute=col.attribute, divided_by=col.divided_by)
        raw = found["value"] / found["divided_by"] if col.divided_by else found["value"]
        cell = req.cell()
        cell.update(raw=raw, value=raw / DECIMAL[col.unit])
        details = {"path": dotted(col.submodule, col.attribute), **found}
        if col.divided_by:
            details["divided_by_path"] = dotted(col.submodule, col.divided_by)
        return cell, details, hit


def number_at(target, path: str, submodule: str | None = None) -> float:
    """The number at a dotted ``path`` below ``target``: each part is a submodule, an
    attribute, a sequence or tensor index or a mapping key. A tuple whose entries are
    all equal (a square kernel's ``kernel_size``) reads as that number; a one-element
    tensor as its value. Anything else is an error naming the path."""
    import numbers

    import torch
    obj, walked = target, []
    for part in path.split("."):
        modules = getattr(obj, "_modules", None)
        if isinstance(modules, dict) and part in modules:
            obj = modules[part]
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, (list, tuple, torch.Tensor)) and part.isdigit() \
                and int(part) < (len(obj) if getattr(obj, "ndim", 1) else 0):
            obj = obj[int(part)]
        elif not part.isdigit() and hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            where = dotted(submodule, ".".join(walked)) if walked else (submodule or "the model")
            raise ValueError(f"bad attribute path {dotted(submodule, path)!r}: "
                             f"{where} ({type(obj).__name__}) has no {part!r}")
        walked.append(part)
    value = obj
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.detach().item()
    if isinstance(value, (tuple, list)) and value and all(v == value[0] for v in value):
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        shown = repr(value) if len(repr(value)) <= 80 else f"a {type(value).__name__}"
        raise ValueError(f"{dotted(submodule, path)!r} is {shown}, not a number"
                         + ("; name one entry (e.g. .0)" if isinstance(value, (tuple, list)) else ""))
    return float(value) if not isinstance(value, int) else value


register_measure(Attribute())
