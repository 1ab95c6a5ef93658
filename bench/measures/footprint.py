"""``receptive_field`` / ``contributing_fraction``: the input positions one output
position of the built module depends on, from a gradient (DPN's receptive fields and
gridding, the dpn_receptive_field suite: claims that need no training)."""
from __future__ import annotations

from .base import Measure, register_measure


class Footprint(Measure):
    """One of the footprint's numbers (``bench.complexity.receptive_field``): the
    receptive field's side, or the share of its positions that are connected (1.0: no
    gridding). Both come from one measurement, cached once."""
    needs_input = True

    def compute(self, req):
        from ..complexity.receptive_field import measure_footprint
        channels, height, width = req.inputs[0][-3:]
        if height != width:
            raise ValueError(f"a {self.name} column needs a square input, got {height}x{width}")

        def footprint():
            f = measure_footprint(req.models.get(req.protocol), channels, height)
            return {"receptive_field": f.receptive_field, "height": f.height, "width": f.width,
                    "connected": f.connected, "contributing_fraction": f.contributing_fraction}
        found, hit = req.cached(footprint, "footprint")
        cell = req.cell()
        cell.update(raw=found[self.name], value=found[self.name])
        return cell, found, hit


register_measure(Footprint("receptive_field"))
register_measure(Footprint("contributing_fraction"))
