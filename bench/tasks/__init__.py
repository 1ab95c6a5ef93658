"""Task plug-ins (pose, segmentation, detection) looked up by name; see ``bench.tasks.base``."""
from __future__ import annotations

import importlib

from .base import MAIN_OUTPUT, Task, as_outputs, main_output

# name -> module defining it; imported on first use so that ``bench.tasks`` stays light
_MODULES = {"pose": "bench.tasks.pose", "segmentation": "bench.tasks.segmentation",
            "detection": "bench.tasks.detection"}
_TASKS: dict[str, Task] = {}


def register_task(cls):
    """Class decorator: make ``cls()`` the task named ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _TASKS and type(_TASKS[cls.name]) is not cls:
        raise ValueError(f"task {cls.name!r} is registered twice")
    _TASKS[cls.name] = cls()
    return cls


def get_task(name: str) -> Task:
    if name not in _TASKS and name in _MODULES:
        importlib.import_module(_MODULES[name])
    if name not in _TASKS:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(set(_MODULES) | set(_TASKS)))}")
    return _TASKS[name]


def task_names() -> list[str]:
    return sorted(set(_MODULES) | set(_TASKS))


__all__ = ["MAIN_OUTPUT", "Task", "as_outputs", "main_output", "register_task", "get_task",
           "task_names"]
