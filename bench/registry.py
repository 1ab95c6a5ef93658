"""The one model registry.

A registered model is a *frozen spec* (a dataclass describing the architecture) plus a
*builder* turning a spec into an ``nn.Module``. ``create_model(name, **overrides)``
replaces fields of the spec before building, so a variant is a visible one-line change
(``drop_pointwise=2``) rather than a copied file, and a suite can check a row's
overrides against the spec's fields before any work starts.

This module imports neither torch nor the model families: the families register
themselves when ``bench.models`` is imported, which ``create_model`` and
``list_models`` do on first use, together with the models of installed packages (the
``hrbench.models`` entry-point group) and the modules named in ``$HRBENCH_IMPORT``.
A name ``package.module:function`` builds any importable callable: its keyword
arguments (with their defaults) are the overrides, or its spec when the function was
registered with ``register_model``.
"""
from __future__ import annotations

import copy
import dataclasses
import fnmatch
import importlib
import inspect
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

__all__ = [
    "ModelEntry", "register_model", "create_model", "list_models", "get_entry",
    "resolve_spec", "import_models", "UnknownModelError", "BadOverrideError",
    "ModelImportError", "ENTRY_POINT_GROUP", "IMPORT_ENV",
]

# installed packages register models through this entry-point group
ENTRY_POINT_GROUP = "hrbench.models"
# modules (separated by os.pathsep) every process imports for their models: the command
# line's --import sets it, so that training jobs started under torchrun or Slurm see the
# same models
IMPORT_ENV = "HRBENCH_IMPORT"
_CALLABLE_NAME = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


class UnknownModelError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class BadOverrideError(TypeError):
    pass


class ModelImportError(ImportError):
    """A module named by --import / $HRBENCH_IMPORT could not be imported."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    spec: Any                       # frozen dataclass instance: the default architecture
    builder: Callable[[Any], Any]   # spec -> nn.Module
    family: str                     # module that registered it (bench.models.litehrnet)
    doc: str

    @property
    def override_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.spec))


_REGISTRY: dict[str, ModelEntry] = {}
_CALLABLES: dict[str, ModelEntry] = {}     # "package.module:function" names, once resolved
_FAMILIES_LOADED = False
# entry points that failed to load: (what, why); named when a model is not found
_PLUGIN_ERRORS: list[tuple[str, str]] = []


def plugin_errors() -> list[tuple[str, str]]:
    """(what, why) of each model entry point that failed to load, in load order."""
    return list(_PLUGIN_ERRORS)


def register_model(spec: Any):
    """Decorator: register ``builder(spec) -> nn.Module`` under the function's name."""
    if not dataclasses.is_dataclass(spec) or isinstance(spec, type):
        raise TypeError("register_model needs a dataclass *instance* as the default spec")

    def decorator(builder: Callable[[Any], Any]):
        name = builder.__name__
        if name in _REGISTRY:
            other = _REGISTRY[name].family
            raise ValueError(f"model name {name!r} is already registered (by {other})")
        _REGISTRY[name] = ModelEntry(
            name=name, spec=spec, builder=builder, family=builder.__module__,
            doc=(builder.__doc__ or "").strip().splitlines()[0] if builder.__doc__ else "",
        )
        return builder

    return decorator


def _load_families() -> None:
    global _FAMILIES_LOADED
    if not _FAMILIES_LOADED:
        # set first: a plug-in that lists or builds models while it is imported must not
        # start loading all over again
        _FAMILIES_LOADED = True
        try:
            importlib.import_module("bench.models")
            _load_entry_points()
            import_models(m for m in os.environ.get(IMPORT_ENV, "").split(os.pathsep) if m.strip())
        except BaseException:
            _FAMILIES_LOADED = False
            raise


def import_models(modules: Iterable[str]) -> list[str]:
    """Import modules that register models (``bench.register_model``); returns the names
    they added. A module that cannot be imported is a ModelImportError naming it."""
    _load_families()     # first: a name clashing with a built-in model is the user's error
    before = set(_REGISTRY)
    for module in modules:
        module = module.strip()
        try:
            importlib.import_module(module)
        except Exception as err:
            hint = (" (is its folder on PYTHONPATH, or its package installed?)"
                    if isinstance(err, ModuleNotFoundError) else "")
            raise ModelImportError(f"cannot import model module {module!r}: "
                                   f"{type(err).__name__}: {err}{hint}") from err
    return sorted(set(_REGISTRY) - before)


def _load_entry_points() -> None:
    """Models of installed packages: an entry point ``name = "pkg.module"`` is imported
    (its ``register_model`` decorators register), ``name = "pkg.module:build"`` makes
    ``build`` the model ``name``. A package that fails to load is reported, not fatal."""
    from importlib.metadata import entry_points
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        what = f"entry point {ep.name} = {ep.value!r} ({ENTRY_POINT_GROUP})"
        try:
            obj = ep.load()
            if ep.attr is None or ep.name in _REGISTRY:
                continue   # a module (registers on import), or a builder registered under its name
            registered = _registered_builder(obj)
            _REGISTRY[ep.name] = (dataclasses.replace(registered, name=ep.name) if registered
                                  else _callable_entry(ep.name, obj))
        except Exception as err:   # one broken plug-in must not break every other model
            _PLUGIN_ERRORS.append((what, f"{type(err).__name__}: {err}"))
            warnings.warn(f"hrbench: {what} failed to load: {type(err).__name__}: {err}",
                          RuntimeWarning, stacklevel=2)


def _registered_builder(obj: Any) -> ModelEntry | None:
    return next((e for e in _REGISTRY.values() if e.builder is obj), None)


class _Required:
    """The default of a builder argument without one: the suite row must give it."""
    def __repr__(self) -> str:
        return "<required>"

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


REQUIRED = _Required()


def _callable_entry(name: str, fn: Callable) -> ModelEntry:
    """An entry for a plain callable ``fn(**kwargs) -> nn.Module``: its keyword
    arguments become the fields of a frozen spec (defaults kept; one without a default
    must be given as an override), the builder calls it with the spec's values."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    fields, required = [], []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.kind is p.POSITIONAL_ONLY:
            if p.default is p.empty:
                raise TypeError(f"model {name!r}: argument {p.name!r} is positional-only and "
                                "has no default; a suite row can only pass keyword arguments")
            continue
        if p.default is p.empty:
            required.append(p.name)
            fields.append((p.name, Any, dataclasses.field(default=REQUIRED)))
            continue
        default = _freeze(p.default)
        if type(default).__hash__ is None:      # a dict default: copied per spec
            fields.append((p.name, Any, dataclasses.field(
                default_factory=lambda d=default: copy.deepcopy(d))))
        else:
            fields.append((p.name, Any, dataclasses.field(default=default)))

    def validate(spec) -> None:
        missing = [n for n in required if getattr(spec, n) is REQUIRED]
        if missing:
            raise ValueError(f"{', '.join(map(repr, missing))} {'has' if len(missing) == 1 else 'have'} "
                             "no default: give it in the suite row (model: {name: ..., "
                             f"{missing[0]}: ...}})")

    names = {f[0] for f in fields}
    namespace = {"validate": validate} if "validate" not in names else {}
    spec_type = dataclasses.make_dataclass(
        re.sub(r"\W", "_", name) + "_spec", fields, frozen=True, namespace=namespace)

    def build(spec):
        model = fn(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)})
        import torch
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model {name!r} returned a {type(model).__name__}, "
                            "not a torch.nn.Module")
        return model

    doc = (inspect.getdoc(fn) or "").strip()
    return ModelEntry(name=name, spec=spec_type(), builder=build,
                      family=getattr(fn, "__module__", None) or name.partition(":")[0],
                      doc=doc.splitlines()[0] if doc else "")


def _resolve_callable(name: str) -> ModelEntry:
    """``package.module:function`` -> an entry (cached): the function's registered spec
    when ``register_model`` registered it, else its keyword arguments."""
    if name in _CALLABLES:
        return _CALLABLES[name]
    module_name, _, attr = name.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except Exception as err:
        hint = (" (is its folder on PYTHONPATH, or its package installed?)"
                if isinstance(err, ModuleNotFoundError) else "")
        raise UnknownModelError(f"model {name!r}: cannot import {module_name!r}: "
                                f"{type(err).__name__}: {err}{hint}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UnknownModelError(f"model {name!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UnknownModelError(f"model {name!r}: {attr!r} is a {type(obj).__name__}, "
                                "not a function building a model")
    registered = _registered_builder(obj)
    try:
        entry = (dataclasses.replace(registered, name=name) if registered
                 else _callable_entry(name, obj))
    except TypeError as err:
        raise UnknownModelError(str(err)) from None
    _CALLABLES[name] = entry
    return entry


def get_entry(name: str) -> ModelEntry:
    _load_families()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if _CALLABLE_NAME.fullmatch(name):
        return _resolve_callable(name)
    close = fnmatch.filter(sorted(_REGISTRY), f"*{name.split('_')[0]}*")[:5]
    hint = f"; similar: {', '.join(close)}" if close else ""
    broken = "".join(f"; {what} failed to load: {why}" for what, why in _PLUGIN_ERRORS)
    raise UnknownModelError(f"unknown model {name!r}{hint} (see bench.list_models(); a "
                            f"model of your own: 'package.module:function'){broken}")


def _freeze(value: Any) -> Any:
    # YAML gives lists; specs hold tuples so that they stay hashable and comparable.
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def resolve_spec(name: str, **overrides: Any) -> Any:
    """The spec ``create_model(name, **overrides)`` would build, without building it."""
    entry = get_entry(name)
    unknown = sorted(set(overrides) - set(entry.override_names))
    if unknown:
        raise BadOverrideError(
            f"model {name!r} has no argument {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(entry.override_names)}")
    spec = dataclasses.replace(entry.spec, **{k: _freeze(v) for k, v in overrides.items()})
    check = getattr(spec, "validate", None)
    if check is not None:
        try:
            check()
        except ValueError as err:
            raise BadOverrideError(f"model {name!r}: {err}") from None
        except (TypeError, KeyError, AttributeError, IndexError) as err:
            # an override of the wrong type (a number where the spec expects a list, ...)
            # that the spec's own checks trip over: a suite's error, not a crash
            given = ", ".join(f"{k}={v!r}" for k, v in sorted(overrides.items()))[:200]
            raise BadOverrideError(f"model {name!r}: an override has the wrong type "
                                   f"({type(err).__name__}: {err}; given: {given})") from None
    return spec


def create_model(name: str, **overrides: Any):
    """Build registered model ``name`` (backbone + task head), random init, on the CPU."""
    spec = resolve_spec(name, **overrides)
    model = get_entry(name).builder(spec)
    model.registry_name = name
    model.spec = spec
    return model


def list_models(pattern: str = "*") -> list[str]:
    _load_families()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))
