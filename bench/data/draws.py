"""The random draws of one training sample, by name: the seam the golden-sample tests use.

Serves every dataset's training augmentation (pose, segmentation, detection). A dataset
asks ``self.draws_for(index)`` for a ``SampleDraws`` and calls it with a name per draw
(``draws.random("flip")``, ``draws.normal("scale")``, ...). By default each call is one
call of the sample's ``numpy.random.Generator``, so the stream is exactly what calling
the generator directly gives. Tests replace ``draws_for`` with ``ReplayDraws``: the
values the authors' loader drew for that sample (recorded from their code, see
``tests/golden/samples_*.json``), handed out by name, so both sides augment alike even
where they draw in another order or from other generators.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["SampleDraws", "ReplayDraws", "DrawsError"]


class DrawsError(AssertionError):
    """A replayed sample asked for a draw the recording does not hold (or holds
    another kind of value): the two pipelines do not draw alike."""


class SampleDraws:
    """Named draws of one sample from a numpy Generator (the default path)."""

    __slots__ = ("rng",)

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def random(self, name: str) -> float:
        """U[0, 1)."""
        return self.rng.random()

    def normal(self, name: str, loc: float = 0.0, scale: float = 1.0, size=None):
        """N(loc, scale^2); an array when ``size`` is given."""
        if loc == 0.0 and scale == 1.0 and size is None:
            return self.rng.standard_normal()
        return self.rng.normal(loc, scale, size=size)

    def uniform(self, name: str, low: float = 0.0, high: float = 1.0, size=None):
        """U[low, high); an array when ``size`` is given."""
        return self.rng.uniform(low, high, size=size)

    def integers(self, name: str, low: int, high: int) -> int:
        """An integer in [low, high) (numpy's convention: ``high`` excluded)."""
        return int(self.rng.integers(low, high))

    def permutation(self, name: str, n: int) -> np.ndarray:
        """A permutation of ``range(n)``."""
        return self.rng.permutation(n)

    def choice(self, name: str, options: Sequence[Any]):
        """One of ``options``, uniformly."""
        return options[int(self.rng.integers(0, len(options)))]


class ReplayDraws(SampleDraws):
    """Recorded values handed out by name, in order (tests only).

    ``values`` maps a draw name to the list of values drawn under it (a scalar, an
    array as a nested list, or for ``choice`` the chosen option). Each call takes the
    next value of its name; a name with nothing left raises ``DrawsError``, and so does a
    value outside the range the caller asked for (an integer outside [low, high), a
    choice not among the options), since that means the two sides read the draw
    differently. ``unused()`` lists what was recorded but never asked for.
    """

    __slots__ = ("_values", "log")

    def __init__(self, values: Mapping[str, Iterable[Any]]):
        super().__init__(None)
        self._values = {str(k): deque(v) for k, v in values.items()}
        #: (name, value) in the order they were asked for
        self.log: list[tuple[str, Any]] = []

    def _next(self, name: str):
        queue = self._values.get(name)
        if not queue:
            recorded = sorted(k for k, q in self._values.items() if q)
            raise DrawsError(f"no recorded draw {name!r} left (left: {recorded})")
        value = queue.popleft()
        self.log.append((name, value))
        return value

    def unused(self) -> dict[str, list]:
        return {k: list(q) for k, q in self._values.items() if q}

    def random(self, name: str) -> float:
        value = float(self._next(name))
        if not 0.0 <= value < 1.0:
            raise DrawsError(f"draw {name!r}: {value} is not in [0, 1)")
        return value

    def normal(self, name: str, loc: float = 0.0, scale: float = 1.0, size=None):
        value = self._next(name)
        return float(value) if size is None else _shaped(name, value, size)

    def uniform(self, name: str, low: float = 0.0, high: float = 1.0, size=None):
        value = self._next(name)
        if size is not None:
            return _shaped(name, value, size)
        value = float(value)
        if not low <= value <= high:
            raise DrawsError(f"draw {name!r}: {value} is not in [{low}, {high})")
        return value

    def integers(self, name: str, low: int, high: int) -> int:
        value = self._next(name)
        if int(value) != value or not low <= int(value) < high:
            raise DrawsError(f"draw {name!r}: {value} is not an integer in "
                             f"[{low}, {high})")
        return int(value)

    def permutation(self, name: str, n: int) -> np.ndarray:
        value = np.asarray(self._next(name), dtype=np.int64)
        if sorted(value.tolist()) != list(range(n)):
            raise DrawsError(f"draw {name!r}: {value.tolist()} is not a permutation of "
                             f"range({n})")
        return value

    def choice(self, name: str, options: Sequence[Any]):
        value = self._next(name)
        for option in options:
            if option == value or (isinstance(option, float) and np.isclose(option, value,
                                                                            rtol=0, atol=1e-12)):
                return option
        raise DrawsError(f"draw {name!r}: {value!r} is not one of {list(options)}")


def _shaped(name: str, value, size) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    shape = (size,) if isinstance(size, int) else tuple(size)
    if array.shape != shape:
        raise DrawsError(f"draw {name!r}: recorded shape {array.shape}, asked for {shape}")
    return array
