"""Result records: one JSON file per (suite row, profile) run, written atomically.

Layout: ``results/<suite>/<row_key>.<profile>.json``. A record holds the resolved model
and protocols, one *cell* per suite column (value in the column's unit, or the reason it
was not measured), measurement details, provenance and status. Training/evaluation runs
write ``results/runs/<protocol>/<model_key>.<profile>[.seed<N>].json`` with their
metrics, which suite rows look up by model key + protocol + profile (+ seed).

Imports without torch: the reporter reads records through this module. Their schemas,
version and migration: ``bench.records``; a record is migrated and checked when read and
checked when written.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from .paths import results_path
from .records import (CELL_ERROR, CELL_MEASURED, CELL_NOT_MEASURED,  # noqa: F401  (re-exported)
                      SCHEMA_VERSION, validated)

# relative to the working directory: the library never writes into the installed
# package (the command line passes absolute folders under --out, bench.paths)
RESULTS_DIR = Path("results")



class StorageError(OSError):
    """A file HRBench writes (record, report, checkpoint, log) could not be written: a
    full disk, a read-only folder, a permission error. Names the path and the cause."""

    def __init__(self, path, cause: OSError | str):
        self.path = Path(path)
        self.cause = cause.strerror or str(cause) if isinstance(cause, OSError) else str(cause)
        errno_ = cause.errno if isinstance(cause, OSError) else None
        super().__init__(errno_, f"cannot write {self.path}: {self.cause}")

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.cause}"


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary binary file in the same folder, fsync, then rename
    into place: a crash leaves either the old file or the new one, never half of one. A
    failing write (an ``OSError``) leaves the old file and raises ``StorageError``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except StorageError:
        _discard(tmp)
        raise
    except OSError as err:
        _discard(tmp)
        raise StorageError(path, err) from err
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp) -> None:
    if tmp is not None:
        try:
            Path(tmp).unlink(missing_ok=True)
        except OSError:
            pass


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, default=_jsonable) + "\n")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return str(obj)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=,-]+", "_", text).strip("_")


def _variant(variant: str | None) -> str:
    return f".{safe_name(variant)}" if variant else ""


def row_record_path(suite: str, row_key: str, profile: str, root: Path = RESULTS_DIR,
                    variant: str | None = None) -> Path:
    """``<suite>/<row_key>.<profile>.json``: the record of the protocol's own settings; a
    run with other settings (``variant``, e.g. ``epochs=1``) adds ``.<variant>``, so it
    lives beside that record instead of replacing it."""
    return results_path(root, safe_name(suite),
                        f"{safe_name(row_key)}.{profile}{_variant(variant)}.json")


def run_record_path(protocol: str, model_key: str, profile: str, root: Path = RESULTS_DIR,
                    seed: int | None = None, variant: str | None = None) -> Path:
    """``runs/<protocol>/<model_key>.<profile>.json``; a run with other settings adds
    ``.<variant>``, one with another seed than the protocol's own (``--seeds``) adds
    ``.seed<N>``, before ``.json``."""
    tail = _variant(variant) + ("" if seed is None else f".seed{int(seed)}")
    return results_path(root, "runs", safe_name(protocol),
                        f"{safe_name(model_key)}.{profile}{tail}.json")


def attempt_path(record_path: Path) -> Path:
    """Where a failed attempt is kept while a good record stays at ``record_path``."""
    record_path = Path(record_path)
    return record_path.with_name(record_path.name.removesuffix(".json") + ".attempt.json")


def store_run_record(path: Path, record: dict[str, Any]) -> Path:
    """Write a run's record without ever replacing finished work by less: a successful
    run goes to ``path`` (and clears an earlier failed attempt); a failed one goes to
    ``attempt_path(path)`` when ``path`` holds a good record, else to ``path``. Returns
    the path written."""
    path = Path(path)
    attempt = attempt_path(path)
    if record.get("status") == "ok":
        write_record(path, record)
        attempt.unlink(missing_ok=True)
        return path
    try:
        previous = read_record(path)
    except ValueError:
        previous = None
    if previous is not None and previous.get("status") == "ok":
        write_record(attempt, record)
        return attempt
    write_record(path, record)
    attempt.unlink(missing_ok=True)
    return path


def latest_run_record(path: Path) -> dict[str, Any] | None:
    """The newer of the record at ``path`` and its failed attempt: what the last run of
    that job ended with (launchers that run jobs in other processes read it)."""
    found = [r for r in (read_record(path), last_attempt(path)) if r is not None]
    return max(found, key=lambda r: str(r.get("finished_at") or "")) if found else None


def last_attempt(path: Path) -> dict[str, Any] | None:
    """The failed attempt recorded beside the good record at ``path`` (None if none)."""
    try:
        return read_record(attempt_path(path))
    except ValueError:
        return None


def read_record(path: Path) -> dict[str, Any] | None:
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable result record: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: unreadable result record: not a JSON object")
    return validated(data, str(path))


def run_metric(record: dict[str, Any] | None, measure: str, run: str
               ) -> tuple[float | None, str | None]:
    """(value, None) of ``measure`` in a training/evaluation run record, or (None, why not)
    naming the ``run``; (None, None) when there is no record."""
    if record is None:
        return None, None
    if record.get("status") != "ok":
        return None, f"{run} failed: {record.get('error')}"
    value = (record.get("metrics") or {}).get(measure)
    return (float(value), None) if value is not None else (None, f"{run} reports no {measure}")


def write_record(path: Path, record: dict[str, Any]) -> Path:
    record = validated({"schema_version": SCHEMA_VERSION,
                        **{k: v for k, v in record.items() if k != "schema_version"}}, str(path))
    atomic_write_json(path, record)
    return Path(path)


def suite_records(suite: str, profile: str, root: Path = RESULTS_DIR,
                  variants: bool = False) -> Iterator[dict[str, Any]]:
    """The suite's row records of ``profile``: those of the protocols' own settings, and
    with ``variants`` also those of runs with other settings (``settings_variant``)."""
    folder = Path(root) / safe_name(suite)
    paths = sorted(folder.glob(f"*.{profile}.json"))
    if variants:
        paths += sorted(set(folder.glob(f"*.{profile}.*.json")) - set(paths))
    for path in paths:
        rec = read_record(path)
        if rec is not None and (path.name.endswith(f".{profile}.json")
                                or rec.get("settings_variant")):
            rec["_path"] = str(path)
            yield rec
