"""On-disk cache of complexity measurements.

A measurement is keyed by everything that can change it: the resolved model spec, the
input shapes, the measure and convention, the versions of torch / fvcore / ptflops, and
a hash of the code that builds and counts models (bench/models, bench/complexity,
bench/registry.py). Editing a model file therefore changes every key: a code change is
never served a stale number. A model of the user's own (``package.module:function``,
``--import``, an entry point) adds a hash of its package's source files, so editing it
does the same. Entries are small JSON files written atomically.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from ..env import package_versions
from ..results import atomic_write_json

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
# the code a cached number depends on: the models, the counters and the measures
_HASHED_CODE = ("models", "complexity", "measures", "registry.py")


def default_cache_dir() -> Path:
    env = os.environ.get("HRBENCH_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hrbench" / "complexity"


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    h = hashlib.sha256()
    for entry in _HASHED_CODE:
        path = _PACKAGE_DIR / entry
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(_PACKAGE_DIR)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _source_files(module_name: str) -> list[Path]:
    """The .py files of the top-level package ``module_name`` belongs to (all of them: a
    model file imports its layers from its neighbours), or the module's own file."""
    import importlib
    top = module_name.split(".")[0]
    try:
        package = sys.modules.get(top) or importlib.import_module(top)
    except Exception:
        return []
    roots = [Path(p) for p in getattr(package, "__path__", ())]
    if roots:
        return sorted({f.resolve() for root in roots for f in root.rglob("*.py")})
    file = getattr(package, "__file__", None)
    return [Path(file).resolve()] if file else []


@functools.lru_cache(maxsize=None)
def _family_hash(family: str) -> str:
    h = hashlib.sha256()
    files = _source_files(family)
    for f in files:
        h.update(f.name.encode() + b"\0")
        try:
            h.update(f.read_bytes())
        except OSError:
            h.update(b"<unreadable>")
    # no source found (a compiled extension, an interactive session): key on the name
    # alone, and say so in the key so such entries are told apart
    return h.hexdigest()[:16] if files else f"no-source:{family}"


def model_source_hash(model_name: str | None) -> str | None:
    """Hash of the source of a model that is not HRBench's own (None for HRBench's
    families, which ``code_hash`` covers, and for names that are not models)."""
    if not model_name:
        return None
    from ..registry import UnknownModelError, get_entry
    try:
        family = get_entry(model_name).family
    except UnknownModelError:
        return None
    if family == "bench" or family.startswith("bench."):
        return None
    return _family_hash(family)


def _tool_versions() -> dict:
    v = package_versions()   # cached once per process
    return {k: v.get(k) for k in ("torch", "fvcore", "ptflops")}


class MeasurementCache:
    def __init__(self, root: Path | None = None, enabled: bool = True):
        self.root = Path(root) if root else default_cache_dir()
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def key(self, **parts: Any) -> str:
        payload = {"parts": parts, "code": code_hash(), "tools": _tool_versions()}
        user = model_source_hash(parts.get("model"))
        if user is not None:     # absent for HRBench's models: their keys stay as they were
            payload["model_source"] = user
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        from ..paths import cache_path
        return cache_path(self.root, key[:2], f"{key}.json")

    def get_or_compute(self, compute: Callable[[], Any], **parts: Any) -> tuple[Any, bool]:
        """Return (value, from_cache)."""
        if not self.enabled:
            self.misses += 1
            return compute(), False
        path = self._path(self.key(**parts))
        if path.is_file():
            try:
                value = json.loads(path.read_text())["value"]
                self.hits += 1
                return value, True
            except (OSError, ValueError, KeyError):
                pass  # a damaged entry is recomputed and overwritten
        value = compute()
        self.misses += 1
        atomic_write_json(path, {"parts": parts, "value": value})
        return value, False
