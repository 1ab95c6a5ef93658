"""Where HRBench finds what it ships and where it writes.

Shipped: the paper suites, their protocols and the committed smoke baselines. An
installed wheel holds them inside the package (``bench/suites``, ``bench/baselines``,
mapped there by pyproject.toml); a clone keeps them at the repository root
(``suites/``, ``results/baselines/``). Written: results, reports and work folders go under
an output folder, the current directory unless ``--out`` says otherwise, never into the
package. Imports neither torch nor any other part of HRBench.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped(inside_package: str, in_clone: str) -> Path:
    inside = PACKAGE_DIR / inside_package
    return inside if inside.is_dir() else PACKAGE_DIR.parent / in_clone


SUITES_DIR = _shipped("suites", "suites")
PROTOCOLS_DIR = SUITES_DIR / "protocols"
SHIPPED_BASELINES_DIR = _shipped("baselines", "results/baselines")


def output_dirs(out: Path | str = ".") -> dict[str, Path]:
    """results/, reports/ and work_dirs/ under ``out`` (absolute: records name files
    by absolute path, and training jobs may run in another working directory)."""
    root = Path(out).expanduser().resolve()
    return {"results": root / "results", "reports": root / "reports",
            "work": root / "work_dirs"}


def is_shipped_suite(path: Path | str) -> bool:
    """Whether a suite file is one of those HRBench ships (not a user's own)."""
    try:
        return Path(path).resolve().parent == SUITES_DIR.resolve()
    except OSError:
        return False
