"""Measured vs published: the verdict of one cell. Pure functions, no torch."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .profiles import PROFILES, names_with

WITHIN = "within"            # inside the column's tolerance
OUTSIDE = "outside"          # outside it: fails --check when the column is gated
NOTED = "known deviation"    # outside or not, explained by the row's known_deviations
NOT_MEASURED = "not measured"
# the row is a method this project does not build: published values only, with the reason
NOT_BUILT = "not built"
# the row does not fill this column (Row.columns): nothing to compare, nothing measured
NOT_APPLICABLE = "not applicable"
NO_PUBLISHED = "no published value"
NO_TOLERANCE = "not gated"
# an accuracy cell measured under the smoke or short profile: shown, never compared with
# the paper (only full runs are; README, "Profiles")
NOT_COMPARED = "not compared"
# (released: the authors' released weights scored here; compared like full runs)
COMPARED_PROFILES = names_with("compared")


@dataclass(frozen=True)
class Verdict:
    status: str
    delta: Optional[float] = None         # measured - published, in the column's unit
    allowed: Optional[float] = None       # tolerance bound in the same unit
    printed_match: Optional[bool] = None  # measured rounded to the paper's digits == published
    reason: str = ""

    @property
    def fails_gate(self) -> bool:
        return self.status == OUTSIDE


def decimals_of(value: float) -> int:
    """Digits after the point as the paper printed them (from the shortest repr)."""
    text = repr(float(value))
    if "e" in text or "." not in text:
        return 0
    return len(text.split(".")[1].rstrip("0")) if not text.endswith(".0") else 1


def round_half_up(value: float, digits: int) -> float:
    from decimal import ROUND_HALF_UP, Decimal, localcontext
    if not math.isfinite(value):
        return value
    exact = Decimal(repr(value))
    with localcontext() as ctx:
        # enough significant digits for any float at this precision (1e300 to 0.1 needs
        # 302; the default context's 28 would raise InvalidOperation)
        ctx.prec = max(28, exact.adjusted() + digits + 2)
        return float(exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def compare_cell(published: Optional[float], measured: Optional[float], tolerance=None,
                 digits: Optional[int] = None, known_deviation: str = "",
                 reason: str = "", profile: Optional[str] = None,
                 std_allowed: Optional[float] = None) -> Verdict:
    """``tolerance`` is a suite Tolerance (abs/rel/side) or None (cell not gated);
    ``profile`` the profile of the run that measured an accuracy cell (smoke and short
    results are shown but never compared); ``std_allowed`` k standard deviations of a
    mean over seeds (``tolerance_std``): a bound beside the tolerance's, the larger
    applies (on the tolerance's side; both sides when the column has no tolerance)."""
    if measured is None:
        return Verdict(NOT_MEASURED, reason=reason)
    if profile is not None and profile not in COMPARED_PROFILES:
        why = (PROFILES[profile].not_compared_why if profile in PROFILES
               else "not a profile of this version")
        return Verdict(NOT_COMPARED, reason=f"{profile} profile ({why})")
    if published is None:
        return Verdict(NO_PUBLISHED)
    delta = measured - published
    digits = decimals_of(published) if digits is None else digits
    printed = round_half_up(measured, digits) == round_half_up(published, digits)
    if known_deviation:
        return Verdict(NOTED, delta, None, printed, known_deviation)
    if tolerance is None and std_allowed is None:
        return Verdict(NO_TOLERANCE, delta, None, printed)
    allowed = max(tolerance.allowed(published, digits) if tolerance is not None else 0.0,
                  std_allowed or 0.0)
    side = tolerance.side if tolerance is not None else "both"
    if side == "below":
        ok = delta >= -allowed
    elif side == "above":
        ok = delta <= allowed
    else:
        ok = abs(delta) <= allowed
    # a bound equal to the printed rounding must not fail on float noise
    ok = ok or abs(abs(delta) - allowed) < 1e-9
    return Verdict(WITHIN if ok else OUTSIDE, delta, allowed, printed)
