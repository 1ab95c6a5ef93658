"""``fold_equivalence_error``: how far predicting through the rearrangement is from
predicting folded targets on the built model (FlatteNet Sec. III-C, the
flattenet_equivalence suite)."""
from __future__ import annotations

from .base import Measure, register_measure


class FoldEquivalence(Measure):
    """max |prediction through the rearrangement - folded prediction| on one input
    (``bench.complexity.fold_equivalence``: the model's ``predict_folded`` /
    ``fold_targets`` / ``unfold_predictions``)."""
    name = "fold_equivalence_error"
    needs_input = True

    def compute(self, req):
        from ..complexity.fold_equivalence import fold_equivalence
        found, hit = req.cached(lambda: fold_equivalence(req.models.get(req.protocol),
                                                         req.inputs[0]), "fold_equivalence")
        cell = req.cell()
        cell.update(raw=found["max_abs_error"], value=found["max_abs_error"])
        return cell, found, hit


register_measure(FoldEquivalence())
