"""The plan of a suite run: one ``RunSpec`` per (row, accuracy protocol, seed), computed
once before anything runs. Each spec names the run record its cells read, the job that
writes it (built here) and, where it will not run, why not: the one place those reasons
are worked out. The launchers (``jobs.run_training``, ``released.run_released``) run the
specs that run; the cells and the row record's ``runs`` read the specs.

Profiles: ``smoke``, ``short``, ``full`` plan training jobs (their own records);
``released`` plans evaluate-only jobs of the authors' weights (the record of the weights'
own forward and protocol); ``complexity`` runs no job and reads the ``full`` records.
Several rows whose runs have the same record (same model key, protocol and seed) share
it: the first one's spec runs it, the others' carry its reason and no job.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..profiles import FULL, Profile, get_profile
from ..protocol import Protocol
from ..suite import Row, Suite
from .context import RunContext
from .jobs import (accuracy_protocols, build_job, job_protocol, job_seeds, missing_data,
                   run_key, run_record, smoke_root, unsupported_task, work_dir_of)
from .released import check_weights, scored

if TYPE_CHECKING:
    from ..job import Job


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One planned run of a row's accuracy protocol."""
    row: Row                       # the suite's row
    key: str                       # the protocol's key in the suite (its columns' ``protocol``)
    protocol: Protocol             # what runs: released weights, their own test protocol
    seed: int | None               # None: the protocol's own seed (the plain record)
    profile: Profile               # whose record it is (complexity reads full's)
    record_path: Path
    model_key: str                 # the run's name (``jobs.run_key``)
    job: Job | None = None         # None where this spec runs nothing (or jobs=False)
    work_dir: Path | None = None   # where its job trains (None where it runs nothing)
    skip_reason: str = ""          # why it will not run ("" when it will)
    notice: str = ""               # the line the launcher logs on reaching it
    weights_missing: bool = False  # released: the weights file is not there (not gated)
    weights_sha256: str | None = None   # released: the digest of the file evaluated

    @property
    def runs(self) -> bool:
        """Whether the launcher runs its job (unless the record shows it done)."""
        return self.job is not None and not self.skip_reason


def run_profile(ctx: RunContext) -> Profile:
    """The profile whose run records a run of ``ctx.profile`` reads: its own, or ``full``'s
    for one that runs no job."""
    profile = get_profile(ctx.profile)
    return profile if profile.runs_jobs else get_profile(FULL)


def plan(suite: Suite, rows: Sequence[Row], ctx: RunContext, jobs: bool = True
         ) -> list[RunSpec]:
    """Every (row, accuracy protocol, seed) of ``rows`` under ``ctx``, in row, column and
    seed order. ``jobs=False`` leaves the jobs out (they need the model registry, hence
    torch): what ``hrbench status`` reads."""
    runs_jobs = get_profile(ctx.profile).runs_jobs
    specs, first = [], {}
    for row in rows:
        for key, protocol in accuracy_protocols(suite, row).items():
            for spec in _bare_specs(row, key, protocol, ctx):
                # rows whose runs have one record share it (the released rows that name
                # no weights have no run to share)
                shares = runs_jobs and (not spec.profile.released_weights or key in row.released)
                if shares and spec.record_path in first:
                    spec = _sharing(spec, first[spec.record_path], suite)
                else:
                    spec = _decided(spec, ctx, suite, jobs)
                    if shares:
                        first[spec.record_path] = spec
                specs.append(spec)
    return specs


def specs_for(specs: Sequence[RunSpec], row: Row, key: str | None = None) -> list[RunSpec]:
    """The specs of ``row`` (of its protocol ``key``), in plan order."""
    return [s for s in specs if s.row.key == row.key and (key is None or s.key == key)]


def protocol_specs(row: Row, key: str, protocol: Protocol, ctx: RunContext,
                   suite: Suite | None = None) -> list[RunSpec]:
    """The specs of one (row, protocol), one per seed, on their own (no record shared
    with another row); ``suite`` names its file in messages."""
    return [_decided(spec, ctx, suite) for spec in _bare_specs(row, key, protocol, ctx)]


def no_result(spec: RunSpec, data_root: Path | None) -> str:
    """Why a cell finds no result where ``spec``'s record is missing: nothing recorded
    (for ``full``, with what the data root holds)."""
    why = f"no {spec.profile.name}-profile result for {spec.model_key} on {spec.protocol.name}"
    if spec.seed is not None:
        why += f" with seed {spec.seed}"
    if spec.profile.name == FULL:
        why += "; " + (missing_data(spec.protocol, data_root) or
                       f"{spec.protocol.dataset.upper()} found under {data_root}, but no "
                       "full training run has been recorded (run with --profile full)")
    return why


def _bare_specs(row: Row, key: str, protocol: Protocol, ctx: RunContext) -> list[RunSpec]:
    """The specs of one (row, protocol) with their record paths, nothing decided yet."""
    profile = run_profile(ctx)
    if profile.released_weights:     # one evaluation, no seeds
        # the weights' own forward and protocol
        used, protocol = scored(row, key, protocol) if key in row.released else (row, protocol)
        path = run_record(used, protocol, profile.name, ctx.results_dir, None, ctx.variant)
        return [RunSpec(row, key, protocol, None, profile, path, run_key(used, protocol))]
    return [RunSpec(row, key, protocol, seed, profile,
                    run_record(row, protocol, profile.name, ctx.results_dir, seed, ctx.variant),
                    run_key(row, protocol))
            for seed in job_seeds(protocol, ctx.seeds)]


def _decided(spec: RunSpec, ctx: RunContext, suite: Suite | None, jobs: bool = True) -> RunSpec:
    """``spec`` with its job (with ``jobs``) and work dir, or why it will not run."""
    if spec.profile.released_weights:
        return _released(spec, ctx)
    protocol, row, profile = spec.protocol, spec.row, spec.profile
    if not get_profile(ctx.profile).runs_jobs:
        # this profile trains nothing: a cell without a full record says what is missing
        why = (missing_data(protocol, None) if protocol.server_only
               else unsupported_task(protocol) or no_result(spec, ctx.data_root))
        return dataclasses.replace(spec, skip_reason=why)
    why = unsupported_task(protocol)
    if why is None and (protocol.server_only or not profile.generated_data):
        why = missing_data(protocol, ctx.data_root)     # smoke data is generated
    if why is None and not protocol.trainable:
        why = f"protocol {protocol.name} has no training recipe (optimizer, schedule, batch)"
    weights = job_protocol(row, protocol).pretrained
    if why is None and weights and not profile.generated_data:
        from ..checkpoints import pretrained_path
        if not pretrained_path(weights).is_file():
            where = "row" if row.pretrained else f"protocol {protocol.name}"
            why = (f"pretrained weights not found: {pretrained_path(weights)} (named by "
                   f"the {where} 'pretrained' field of {row.name!r} in "
                   f"{suite.path if suite else 'its suite'})")
            return dataclasses.replace(spec, skip_reason=why, notice=f"error: {why}")
    if why:
        return dataclasses.replace(spec, skip_reason=why)
    work_dir = work_dir_of(ctx, protocol, spec.model_key, spec.seed)
    if not jobs:
        return dataclasses.replace(spec, work_dir=work_dir)
    data_root = smoke_root(ctx) if profile.generated_data else ctx.data_root
    job = build_job(row, protocol, ctx, data_root, spec.seed, spec.record_path)
    return dataclasses.replace(spec, job=job, work_dir=Path(job.work_dir))


def _released(spec: RunSpec, ctx: RunContext) -> RunSpec:
    """A released spec with its evaluate-only job, or why it will not run (the weights
    file missing or refused among the reasons)."""
    released = spec.row.released.get(spec.key)
    if released is None:
        return dataclasses.replace(
            spec, skip_reason=f"{spec.row.name!r} names no released weights for {spec.key!r}")
    row_used, protocol = scored(spec.row, spec.key, spec.protocol)
    why = unsupported_task(protocol) or missing_data(protocol, ctx.data_root)
    if why:
        return dataclasses.replace(spec, skip_reason=why)
    weights, digest, why, missing = check_weights(spec.row, spec.key, released, ctx.weights_dir)
    if why:
        return dataclasses.replace(spec, skip_reason=why, weights_missing=missing,
                                   notice=("skipped: " if missing else "error: ") + why)
    job = dataclasses.replace(build_job(row_used, protocol, ctx, ctx.data_root,
                                        record_path=spec.record_path),
                              eval_only=True, checkpoint=str(weights))
    return dataclasses.replace(spec, job=job, weights_sha256=digest)


def _sharing(spec: RunSpec, earlier: RunSpec, suite: Suite) -> RunSpec:
    """``spec`` whose record ``earlier`` runs: its reason, no job; released weights that
    are another file than the earlier row's are named in a warning."""
    notice = ""
    if spec.profile.released_weights:
        mine, theirs = spec.row.released[spec.key].file, earlier.row.released[earlier.key].file
        if mine != theirs:
            notice = (f"warning: {spec.row.name!r} ({spec.key}) names {mine}, but another row "
                      f"of {suite.suite} with the same model and protocol names {theirs}; the "
                      f"record {spec.record_path} holds the latter's score")
    return dataclasses.replace(spec, skip_reason=earlier.skip_reason, notice=notice,
                               weights_missing=earlier.weights_missing)
