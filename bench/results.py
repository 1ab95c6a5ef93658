"""Result records: one JSON file per (suite row, profile) run, written atomically.

Layout: ``results/<suite>/<row_key>.<profile>.json``. A record holds the resolved model
and protocols, one *cell* per suite column (value in the column's unit, or the reason it
was not measured), measurement details, provenance and status. Training/evaluation runs
write ``results/runs/<protocol>/<model_key>.<profile>[.seed<N>].json`` with their
metrics, which suite rows look up by model key + protocol + profile (+ seed).

Imports without torch: the reporter reads records through this module.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

SCHEMA_VERSION = 1
# relative to the working directory: the library never writes into the installed
# package (the command line passes absolute folders under --out, bench.paths)
RESULTS_DIR = Path("results")

CELL_MEASURED = "measured"
CELL_NOT_MEASURED = "not_measured"
CELL_ERROR = "error"


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary binary file in the same folder, fsync, then rename
    into place: a crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def row_record_path(suite: str, row_key: str, profile: str, root: Path = RESULTS_DIR) -> Path:
    return Path(root) / safe_name(suite) / f"{safe_name(row_key)}.{profile}.json"


def run_record_path(protocol: str, model_key: str, profile: str, root: Path = RESULTS_DIR,
                    seed: int | None = None) -> Path:
    """``runs/<protocol>/<model_key>.<profile>.json``; a run with another seed than the
    protocol's own (``--seeds``) adds ``.seed<N>`` before ``.json``."""
    tail = "" if seed is None else f".seed{int(seed)}"
    return Path(root) / "runs" / safe_name(protocol) / f"{safe_name(model_key)}.{profile}{tail}.json"


def read_record(path: Path) -> dict[str, Any] | None:
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable result record: {err}") from None
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {data.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    return data


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
    record = {"schema_version": SCHEMA_VERSION, **record}
    atomic_write_json(path, record)
    return Path(path)


def suite_records(suite: str, profile: str, root: Path = RESULTS_DIR) -> Iterator[dict[str, Any]]:
    folder = Path(root) / safe_name(suite)
    for path in sorted(folder.glob(f"*.{profile}.json")):
        rec = read_record(path)
        if rec is not None:
            rec["_path"] = str(path)
            yield rec
