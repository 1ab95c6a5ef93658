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


# --- where HRBench writes: one function per output folder (issue 29) -----------------------
#
# Every path HRBench writes is built by one of these from its folder (the root) and the
# names under it: results_path, report_path, work_path, cache_path. Each resolves the
# path (``..`` and ``.`` folded, the root made absolute with its symlinks followed) and
# refuses anything outside the root, so a name that slipped past the suite loader's
# checks (bench.names) still cannot write elsewhere. Symbolic links *inside* a root are
# the user's own (a suite cannot create one) and are not followed. The path returned is
# ``root / parts`` as given (relative stays relative).

class OutsideRootError(ValueError):
    """A path HRBench was about to write lies outside the folder it must stay in."""

    def __init__(self, path, root, folder: str):
        self.path, self.root, self.folder = str(path), str(root), folder
        super().__init__(f"refusing to write {path}: it lies outside the {folder} {root} "
                         "(a name that is not a plain file name: see docs/suites.md)")


def _confined(folder: str, root, parts) -> Path:
    import os
    base = Path(root).expanduser()
    absolute_root = base.resolve()
    path = base.joinpath(*map(str, parts))
    target = os.path.normpath(os.path.join(absolute_root, *map(str, parts)))
    if any(Path(str(p)).is_absolute() for p in parts) or (
            target != str(absolute_root)
            and not target.startswith(str(absolute_root).rstrip(os.sep) + os.sep)):
        raise OutsideRootError(path, absolute_root, folder)
    return path


def results_path(root, *parts) -> Path:
    """A result record, smoke baseline or run record under the results folder ``root``."""
    return _confined("results folder", root, parts)


def report_path(root, *parts) -> Path:
    """A report page, plot, summary or fingerprint under the reports folder ``root``."""
    return _confined("reports folder", root, parts)


def work_path(root, *parts) -> Path:
    """A job's work dir, checkpoint or log, smoke data or Slurm folder under ``root``."""
    return _confined("work folder", root, parts)


def cache_path(root, *parts) -> Path:
    """A measurement cache entry under the cache folder ``root``."""
    return _confined("cache folder", root, parts)
