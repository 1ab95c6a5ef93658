"""The one model registry.

A registered model is a *frozen spec* (a dataclass describing the architecture) plus a
*builder* turning a spec into an ``nn.Module``. ``create_model(name, **overrides)``
replaces fields of the spec before building, so a variant is a visible one-line change
(``drop_pointwise=2``) rather than a copied file, and a suite can check a row's
overrides against the spec's fields before any work starts.

This module imports neither torch nor the model families: the families register
themselves when ``bench.models`` is imported, which ``create_model`` and
``list_models`` do on first use.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import importlib
from dataclasses import dataclass
from typing import Any, Callable

__all__ = [
    "ModelEntry", "register_model", "create_model", "list_models", "get_entry",
    "resolve_spec", "UnknownModelError", "BadOverrideError",
]


class UnknownModelError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class BadOverrideError(TypeError):
    pass


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
_FAMILIES_LOADED = False


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
        importlib.import_module("bench.models")
        _FAMILIES_LOADED = True


def get_entry(name: str) -> ModelEntry:
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = fnmatch.filter(sorted(_REGISTRY), f"*{name.split('_')[0]}*")[:5]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise UnknownModelError(f"unknown model {name!r}{hint} (see bench.list_models())") from None


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
