"""The measure handle, what it computes on, and the registry of handles.

A ``Measure`` says which optional column fields its columns take (``check``) and how a
cell is computed on the row's built model (``compute``). Imports no torch: a handle
imports torch and the counters inside ``compute``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..results import CELL_MEASURED

# a column's unit is a multiple of the measure's base unit
DECIMAL = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "%": 1, "ms": 1}
# the units of a count (a structure measure: a kernel size, a stride, channels)
COUNT_UNITS = ("", "K", "M")
# what a measure does with a column's ``convention``
REQUIRED, OPTIONAL, FORBIDDEN = "required", "optional", "forbidden"

#: ``fail(field_path_below_the_column, message)``: raises the suite's located error
Fail = Callable[[tuple, str], None]


@dataclass
class CellRequest:
    """One cell to compute. ``models`` and ``ctx`` are the runner's (duck-typed: this
    layer sits below it): ``models.row``, ``.spec(protocol)``, ``.get(protocol,
    meta=False)``, ``.on_meta(protocol, fn)``; ``ctx.cache``, ``.latency``, ``.device``."""
    col: Any                     # the suite column (bench.suite.Column)
    protocol: Any                # its protocol, None for a column of explicit inputs
    models: Any                  # the row's models (bench.runner.context.RowModels)
    ctx: Any                     # the run's context (bench.runner.context.RunContext)
    convention: str | None       # the row's counting convention for the column
    inputs: list | None          # (C, H, W) input shapes; None where the measure needs none
    parts: dict                  # cache key parts every measurement of the cell shares

    @property
    def model_name(self) -> str:
        return self.models.row.model.name

    def cell(self) -> dict:
        """A measured cell's first fields; the measure adds ``raw``, ``value``..."""
        return {"unit": self.col.unit, "status": CELL_MEASURED, "convention": self.convention}

    def cached(self, compute: Callable[[], Any], measure: str, **parts: Any) -> tuple[Any, bool]:
        """(value, from the cache) of ``compute()``, keyed by the cell's parts, the
        measurement's name and ``parts`` (what else changes the value)."""
        return self.ctx.cache.get_or_compute(compute, measure=measure, **{**self.parts, **parts})


class Measure:
    """A complexity or structure measure: a suite column's ``measure`` computed on the
    built model. Subclasses set ``name`` and the fields their columns take, and define
    ``compute``; ``check`` holds the field rules (extend it for a measure's own)."""
    name: str = ""
    #: a count read off the model's structure: unit "", K or M; not plotted against accuracy
    structure: bool = False
    #: a column's ``convention``: REQUIRED, OPTIONAL (kept with the cell) or FORBIDDEN
    convention: str = OPTIONAL
    #: the column may name a ``submodule`` of the model to measure instead
    submodule: bool = False
    #: the column may set ``batch`` (images per pass)
    batch: bool = False
    #: the column may name an ``attribute`` path (and ``divided_by``)
    attribute: bool = False
    #: the cell may be a ratio to the model with other overrides (``relative_to``)
    relative_to: bool = False
    #: computed on an input: the column needs a protocol or an explicit ``input``
    needs_input: bool = False

    def __init__(self, name: str | None = None):
        if name is not None:        # one class for several measures (receptive_field, ...)
            self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def check(self, col: Any, fail: Fail) -> None:
        """Refuse the fields of ``col`` this measure does not take; the message names the
        measures that do."""
        name = col.measure
        if self.needs_input and col.protocol is None and col.input is None:
            fail((), f"a {name} column needs a protocol or an explicit input")
        if self.convention == REQUIRED and col.convention is None:
            fail(("convention",), f"a {name} column must name its counting convention")
        if col.batch != 1 and not self.batch:
            fail(("batch",), f"batch applies to {_taking('batch')} columns only")
        if col.submodule is not None and not self.submodule:
            fail(("submodule",), f"submodule applies to {_taking('submodule')} columns only")
        for field in ("attribute", "divided_by"):
            if getattr(col, field) is not None and not self.attribute:
                fail((field,), f"{field} applies to {_taking('attribute')} columns only")
        if self.structure and col.unit not in COUNT_UNITS:
            fail(("unit",), f"a {name} column is a count: leave its unit empty (or K, M)")
        if self.convention == FORBIDDEN and col.convention is not None:
            fail(("convention",), f"a {name} column counts nothing: no convention")
        if col.relative_to is not None:
            if not self.relative_to:
                fail(("relative_to",), f"relative_to applies to {_taking('relative_to')} "
                     f"columns, not {name!r}")
            if col.unit != "":
                fail(("unit",), "a relative_to column is a ratio: leave its unit empty")
            if not col.relative_to:
                fail(("relative_to",), "name the overrides of the reference model")

    def compute(self, req: CellRequest) -> tuple[dict, dict, bool]:
        """(cell, details, hit): the cell (``req.cell()`` with ``raw`` and ``value`` in
        the column's unit), what the record keeps beside it, and whether the value came
        from the cache. The runner adds the cell's ``source``."""
        raise NotImplementedError(f"{type(self).__name__} defines no compute")


class StructureMeasure(Measure):
    """A number read off the built model (or a column's ``submodule``): a count."""
    structure = True
    convention = FORBIDDEN
    submodule = True
    needs_input = True


#: the rules of an accuracy column (read from run records, no handle): it takes none of
#: the measures' fields
_READ_FROM_RUNS = Measure("accuracy")
_MEASURES: dict[str, Measure] = {}


class UnknownMeasureError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def register_measure(measure: Measure) -> Measure:
    """Make ``measure`` the handle of columns whose ``measure`` is ``measure.name``. A
    second registration of the same class (a module imported again) replaces the first;
    another class under a taken name is an error."""
    if not isinstance(measure, Measure) or not measure.name:
        raise ValueError(f"register_measure takes a named Measure, got {measure!r}")
    known = _MEASURES.get(measure.name)
    if known is not None and _class_id(known) != _class_id(measure):
        raise ValueError(f"measure {measure.name!r} is registered twice "
                         f"({_class_id(known)} and {_class_id(measure)})")
    _MEASURES[measure.name] = measure
    return measure


def get_measure(name: str) -> Measure:
    """The handle of the complexity measure ``name``; UnknownMeasureError otherwise."""
    try:
        return _MEASURES[name]
    except KeyError:
        raise UnknownMeasureError(f"unknown complexity measure {name!r}; known: "
                                  f"{', '.join(_MEASURES)}") from None


def complexity_measure_names() -> tuple[str, ...]:
    """Every registered measure, in registration order (the bundled ones first)."""
    return tuple(_MEASURES)


def structure_measure_names() -> tuple[str, ...]:
    return tuple(n for n, m in _MEASURES.items() if m.structure)


def is_complexity_measure(name: str) -> bool:
    return name in _MEASURES


def check_column(col: Any, fail: Fail) -> None:
    """The field rules of ``col``'s measure: its handle's, or for an accuracy measure
    those of a column that takes none of the measures' fields."""
    _MEASURES.get(col.measure, _READ_FROM_RUNS).check(col, fail)


def _taking(field: str) -> str:
    """The measures whose columns take ``field``, for a message: "a" or "a and b, c"."""
    names = [n for n, m in _MEASURES.items() if getattr(m, field)]
    return names[0] if len(names) == 1 else f"{names[0]} and {', '.join(names[1:])}"


def _class_id(measure: Measure) -> str:
    return f"{type(measure).__module__}.{type(measure).__qualname__}"


def dotted(submodule: str | None, path: str) -> str:
    """``path`` below ``submodule`` as one dotted path."""
    return f"{submodule}.{path}" if submodule else path


def submodule_of(model, path: str | None, model_name: str):
    """The module at a column's dotted ``submodule`` path (the model itself when None)."""
    if not path:
        return model
    try:
        return model.get_submodule(path)
    except AttributeError as err:
        raise ValueError(f"model {model_name!r} has no submodule {path!r} ({err})") from None
