"""``flops``: the FLOPs columns, counted on the built model under the paper's counting
convention (``bench.complexity.conventions``) with the canonical fvcore figure beside it;
``formula_flops``: a model's closed-form complexity (Lite-HRNet Table 2's formulas)."""
from __future__ import annotations

from ..complexity.conventions import CANONICAL, get_convention
from .base import DECIMAL, REQUIRED, Measure, register_measure


def count(req, convention: str) -> tuple[dict, bool]:
    """(the FlopReport as a dict, from the cache) of the model on the cell's inputs."""
    from ..complexity import count_flops
    return req.cached(lambda: req.models.on_meta(req.protocol, lambda model: count_flops(
        model, req.inputs, convention).to_dict()), "flops", convention=convention)


class Flops(Measure):
    """Operator FLOPs of one forward (``bench.complexity.count_flops``); the details keep
    the breakdown by operator and by module (two levels), and what was not counted."""
    name = "flops"
    convention = REQUIRED
    relative_to = True
    needs_input = True

    def compute(self, req):
        convention, unit = req.convention, req.col.unit
        report, hit = count(req, convention)
        cell = req.cell()
        cell.update(raw=report["total"], value=report["total"] / get_convention(convention).scale(unit))
        details = {"by_operator": report["by_operator"], "not_counted": report["not_counted"],
                   "counted_on": report.get("counted_on", "cpu"),
                   "by_module": {k: v for k, v in report["by_module"].items() if k.count(".") < 2}}
        if convention != CANONICAL:
            canon, _ = count(req, CANONICAL)
            cell["canonical"] = {"value": canon["total"] / get_convention(CANONICAL).scale(unit),
                                 "raw": canon["total"], "unit": unit, "convention": CANONICAL}
        return cell, details, hit


class FormulaFlops(Measure):
    """The model's ``theory_macs(inputs)``: its complexity by the paper's closed forms,
    to set against the counted ``flops`` of the same modules."""
    name = "formula_flops"
    needs_input = True

    def compute(self, req):
        def formula():
            model = req.models.get(req.protocol)
            if not hasattr(model, "theory_macs"):
                raise ValueError(f"model {req.model_name!r} declares no closed-form "
                                 "complexity (theory_macs)")
            return int(model.theory_macs(req.inputs))
        raw, hit = req.cached(formula, "formula_flops")
        unit = req.col.unit
        base = get_convention(req.convention).scale(unit) if req.convention else DECIMAL[unit]
        cell = req.cell()
        cell.update(raw=raw, value=raw / base)
        return cell, {}, hit


register_measure(Flops())
register_measure(FormulaFlops())
