"""The result records' schemas: a suite row's record (``RowRecord`` with its ``Cell`` per
column) and a training / evaluation run's record (``RunRecord``), their version and the
migration of older versions. Plain pydantic, no torch: the reporter and the gate read
records through these types.

Versions (``SCHEMA_VERSION``; ``migrate`` brings an older record up to date):

* 1: the records of issues 1-29.
* 2: a run record names its task, at the top and in its protocol. Version-1 run records
  written before segmentation and detection existed name none; they are pose runs.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, Optional, Union

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 2

CELL_MEASURED = "measured"
CELL_NOT_MEASURED = "not_measured"
CELL_ERROR = "error"

# a number as JSON holds it: an int stays an int (a parameter count), NaN and inf pass
Number = Union[int, float]


class RecordModel(BaseModel):
    """Base of the record schemas: an unknown key is an error (a writer and its readers
    agree on every field), values are checked but not converted."""
    model_config = ConfigDict(extra="forbid", frozen=True)


class CanonicalFigure(RecordModel):
    """The same measure under the canonical convention (or every parameter), beside a
    paper-convention cell."""
    value: Optional[Number] = None
    raw: Optional[Number] = None
    unit: str = ""
    convention: Optional[str] = None


class LastAttempt(RecordModel):
    """A failed later attempt at a run whose earlier good record the cell still reads."""
    status: Optional[str] = None
    error: Optional[str] = None
    finished_at: Optional[str] = None
    record: Optional[str] = None


class Cell(RecordModel):
    """One (row, column) measurement: its number in the column's unit (``value``) and the
    base-unit figure (``raw``), or why there is none (``reason``)."""
    unit: str = ""
    status: Literal["measured", "not_measured", "error"] = CELL_MEASURED
    value: Optional[Number] = None
    raw: Optional[Number] = None
    convention: Optional[str] = None
    reason: Optional[str] = None
    # where the number comes from: "measured", "cache" or the run record's path
    source: Optional[str] = None
    canonical: Optional[CanonicalFigure] = None
    # latency_ms
    batch: Optional[int] = None
    device: Optional[str] = None
    device_name: Optional[str] = None
    # relative_to: the row's figure over the reference model's
    numerator: Optional[Number] = None
    denominator: Optional[Number] = None
    relative_to: Optional[dict[str, Any]] = None
    # accuracy: the profile of the run read, the settings variant, a later failed attempt
    profile: Optional[str] = None
    settings: Optional[str] = None
    last_attempt: Optional[LastAttempt] = None
    note: Optional[str] = None
    # accuracy over seeds (--seeds): mean in value, sample std, count, per-seed values
    n: Optional[int] = None
    std: Optional[float] = None
    seeds: Optional[list[int]] = None
    values: Optional[list[Number]] = None
    sources: Optional[list[str]] = None
    missing_seeds: Optional[dict[str, str]] = None
    # released weights: the file scored, or why the cell was skipped (file missing)
    weights: Optional[dict[str, Any]] = None
    skipped: Optional[str] = None


class RowRecord(RecordModel):
    """``results/<suite>/<row_key>.<profile>[.<variant>].json``: one suite row, measured."""
    schema_version: int = SCHEMA_VERSION
    suite: str
    suite_file: Optional[str] = None
    table: Optional[Union[int, str]] = None
    row: str
    row_key: str
    profile: str
    model: dict[str, Any] = {}
    protocols: dict[str, Any] = {}
    cells: dict[str, Cell] = {}
    details: dict[str, Any] = {}
    runs: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
    status: str = "ok"
    error: Optional[str] = None
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    wall_time_s: Optional[float] = None
    settings_variant: Optional[str] = None


class RunRecord(RecordModel):
    """``results/runs/<protocol>/<model_key>.<profile>[.seed<N>].json``: one training or
    evaluation job (``bench.job.Job``). Every field is optional to read: a failed job
    stops writing where it failed."""
    schema_version: int = SCHEMA_VERSION
    kind: Optional[str] = None
    task: Optional[str] = None
    profile: Optional[str] = None
    model: Optional[dict[str, Any]] = None
    protocol: Optional[dict[str, Any]] = None
    job: Optional[dict[str, Any]] = None
    work_dir: Optional[str] = None
    data_root: Optional[str] = None
    record_path: Optional[str] = None
    started_at: Optional[str] = None
    settings: Optional[dict[str, Any]] = None
    fingerprint: Optional[str] = None
    weights: Optional[str] = None
    weights_sha256: Optional[str] = None
    pretrained: Optional[dict[str, Any]] = None
    training: Optional[dict[str, Any]] = None
    train_samples: Optional[int] = None
    validation: Optional[dict[str, Any]] = None
    metrics: Optional[dict[str, Optional[Number]]] = None
    val_samples: Optional[int] = None
    target_metrics: Optional[dict[str, Optional[Number]]] = None
    baselines: Optional[dict[str, Any]] = None
    note: Optional[str] = None
    eval_wall_time_s: Optional[float] = None
    status: Optional[str] = None
    error: Optional[str] = None
    error_kind: Optional[str] = None
    error_path: Optional[str] = None
    traceback: Optional[str] = None
    provenance: Optional[dict[str, Any]] = None
    finished_at: Optional[str] = None
    wall_time_s: Optional[float] = None


class RecordError(ValueError):
    """A record that no schema version reads; the message names the file."""


def _v1_to_v2(data: dict) -> dict:
    if "cells" in data:                  # a row record: unchanged
        return data
    protocol = data.get("protocol")
    task = data.get("task") or (protocol or {}).get("task") or "pose"
    out = {**data, "task": task}
    if isinstance(protocol, Mapping) and "task" not in protocol:
        out["protocol"] = {**protocol, "task": task}
    return out


_MIGRATIONS = {1: _v1_to_v2}


def migrate(data: Mapping[str, Any], where: str = "record") -> dict[str, Any]:
    """``data`` brought up to ``SCHEMA_VERSION`` (each step documented above); a version
    this code does not know is a RecordError naming ``where``."""
    out = dict(data)
    version = out.get("schema_version")
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise RecordError(f"{where}: schema_version {version!r}, this HRBench reads 1 to "
                          f"{SCHEMA_VERSION}")
    while version < SCHEMA_VERSION:
        out = _MIGRATIONS[version](out)
        version += 1
        out["schema_version"] = version
    return out


def record_type(data: Mapping[str, Any]) -> type[RecordModel]:
    """RowRecord for a suite row's record (it has cells), RunRecord otherwise."""
    return RowRecord if "cells" in data else RunRecord


def validated(data: Mapping[str, Any], where: str = "record") -> dict[str, Any]:
    """``data`` migrated and checked against its schema, as the plain dict it was (only
    the keys it holds): what readers of the JSON files get."""
    current = migrate(data, where)
    try:
        record_type(current).model_validate(current)
    except ValueError as err:
        raise RecordError(f"{where}: not a valid {record_type(current).__name__}: {err}") from None
    return current


def as_cell(cell: Optional[Mapping[str, Any]]) -> Optional[Cell]:
    """A record's cell (a mapping from the JSON) as a ``Cell``; None stays None."""
    if cell is None or isinstance(cell, Cell):
        return cell
    return Cell.model_validate(dict(cell))


__all__ = ["CELL_ERROR", "CELL_MEASURED", "CELL_NOT_MEASURED", "CanonicalFigure", "Cell",
           "LastAttempt", "RecordError", "RowRecord", "RunRecord", "SCHEMA_VERSION", "as_cell",
           "migrate", "record_type", "validated"]
