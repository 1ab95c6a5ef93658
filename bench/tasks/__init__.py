"""Task plug-ins (pose, segmentation, detection), each a package ``bench.tasks.<task>``.

A package's ``__init__`` declares its ``SPEC`` (a ``TaskSpec``: name, protocol schema,
metric names, datasets, where its implementation lives) and imports no torch, so the
suite loader and the reporter read protocols and metric names cheaply; the
implementation (a ``bench.tasks.base.Task``: datasets, loss, prediction, evaluator,
smoke data, target oracle) is imported when a job runs. A task outside this package
registers its spec with ``register_task`` (from a module named by ``--import``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Union

# the bundled tasks: name -> package (one line per task)
_PACKAGES = {
    "pose": "bench.tasks.pose",
    "segmentation": "bench.tasks.segmentation",
    "detection": "bench.tasks.detection",
}


@dataclass(frozen=True)
class TaskSpec:
    """What the rest of HRBench knows of a task without importing it."""
    name: str
    #: the protocol schema: a ``bench.protocol.Protocol`` subclass with ``task: Literal[name]``
    protocol: type
    #: the measures (suite column ``measure`` names) its evaluators report
    metric_names: tuple[str, ...]
    #: measures its papers print that only an evaluation server or another tool scores
    #: (no local run fills them; their cells say so)
    external_metric_names: tuple[str, ...] = ()
    #: datasets it reads, by the protocol's ``dataset`` name
    datasets: tuple[str, ...] = ()
    #: the ``bench.tasks.base.Task`` subclass, or ``"module:Class"`` imported on first use
    implementation: Union[str, type] = ""


_SPECS: dict[str, TaskSpec] = {}
_TASKS: dict[str, Any] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Make ``spec`` the task named ``spec.name`` (a second, different spec is an error)."""
    if not spec.name:
        raise ValueError("a task spec needs a name")
    known = _SPECS.get(spec.name)
    if known is not None and known != spec:
        raise ValueError(f"task {spec.name!r} is registered twice")
    _SPECS[spec.name] = spec
    return spec


def task_names() -> list[str]:
    """The bundled tasks, then those registered from outside, in registration order."""
    return list(_PACKAGES) + [name for name in _SPECS if name not in _PACKAGES]


def task_spec(name: str) -> TaskSpec:
    """The spec of the task named ``name``; KeyError listing the known tasks otherwise."""
    if name not in _SPECS and name in _PACKAGES:
        register_task(importlib.import_module(_PACKAGES[name]).SPEC)
    if name not in _SPECS:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(task_names())}")
    return _SPECS[name]


def all_specs() -> list[TaskSpec]:
    return [task_spec(name) for name in task_names()]


def get_task(name: str):
    """The task's implementation (one instance per task), imported on first use."""
    if name not in _TASKS:
        spec = task_spec(name)
        impl = spec.implementation
        if isinstance(impl, str):
            module, _, cls = impl.partition(":")
            impl = getattr(importlib.import_module(module), cls)
        task = impl()
        task.spec = spec
        _TASKS[name] = task
    return _TASKS[name]


__all__ = ["TaskSpec", "register_task", "task_names", "task_spec", "all_specs", "get_task"]
