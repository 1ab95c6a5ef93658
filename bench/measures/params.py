"""``params``: the parameter count of every paper table's #Params column, of the built
model or of a column's ``submodule`` (FlatteNet Table II's "#Params of the layer")."""
from __future__ import annotations

from ..complexity.conventions import get_convention
from .base import DECIMAL, Measure, register_measure


class Params(Measure):
    """Parameters of the meta-built model (``bench.complexity.count_params``). Under a
    convention whose counter left some out (``param_modules``: GSTO's) the cell is that
    count, with every parameter as the canonical figure beside it."""
    name = "params"
    submodule = True
    relative_to = True

    def compute(self, req):
        from ..complexity import count_params
        col, convention = req.col, req.convention
        parts = {"submodule": col.submodule} if col.submodule else {}

        def params(rule: str | None = None):
            return req.models.on_meta(req.protocol, lambda model: count_params(
                model.get_submodule(col.submodule) if col.submodule else model, convention=rule))
        cell = req.cell()
        if convention is not None and get_convention(convention).param_modules is not None:
            raw, hit = req.cached(lambda: params(convention), "params", convention=convention,
                                  **parts)
            every, _ = req.cached(params, "params", **parts)
            cell["canonical"] = {"value": every / DECIMAL[col.unit], "raw": every,
                                 "unit": col.unit, "convention": None}
        else:
            raw, hit = req.cached(params, "params", **parts)
        cell.update(raw=raw, value=raw / DECIMAL[col.unit])
        return cell, {}, hit


register_measure(Params())
