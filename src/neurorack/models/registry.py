"""Registry of model classes by name, each with a tiny configuration for tests.

A model family is a subpackage of :mod:`neurorack.models` whose ``__init__`` imports its model
modules; :func:`register_model` on a class is its one registration. The registry imports every
family package the first time a name is looked up.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

from neurorack.errors import NeurorackError
from neurorack.models.base import ImpactModel, NoteModel

M = TypeVar("M", bound=type[ImpactModel])
N = TypeVar("N", bound=type[NoteModel])

MODELS: dict[str, type[ImpactModel]] = {}
TINY_CONFIGS: dict[str, dict[str, Any]] = {}
#: note models (:class:`NoteModel`: symbols -> notes), kept apart: nothing that plays curves can play them
NOTE_MODELS: dict[str, type[NoteModel]] = {}
#: note model -> its named configurations (``tiny`` for tests, and e.g. ``paper``, ``cpu``)
NOTE_CONFIGS: dict[str, dict[str, dict[str, Any]]] = {}


def register_model(name: str, tiny: dict[str, Any]) -> Callable[[M], M]:
    """Class decorator: register ``cls`` under ``name`` with a tiny test configuration."""

    def wrap(cls: M) -> M:
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        cls.name = name
        MODELS[name] = cls
        TINY_CONFIGS[name] = dict(tiny)
        return cls

    return wrap


def register_note_model(name: str, configs: dict[str, dict[str, Any]]) -> Callable[[N], N]:
    """Class decorator: register note model ``cls`` under ``name`` with named configurations (``tiny`` required)."""
    if "tiny" not in configs:
        raise ValueError(f"note model {name!r} needs a 'tiny' configuration")

    def wrap(cls: N) -> N:
        if name in NOTE_MODELS or name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        cls.name = name
        NOTE_MODELS[name] = cls
        NOTE_CONFIGS[name] = {key: dict(value) for key, value in configs.items()}
        return cls

    return wrap


def note_model_names() -> list[str]:
    _import_all()
    return sorted(NOTE_MODELS)


def build_note_model(name: str, **kwargs: Any) -> NoteModel:
    """Instantiate a registered note model with keyword arguments.

    Raises:
        NeurorackError: an unknown name.
    """
    _import_all()
    if name not in NOTE_MODELS:
        raise NeurorackError(f"unknown note model {name!r}; known: {', '.join(sorted(NOTE_MODELS))}")
    return NOTE_MODELS[name](**kwargs)


def note_config(name: str, config: str) -> dict[str, Any]:
    """The named configuration ``config`` of note model ``name`` (keyword arguments).

    Raises:
        NeurorackError: an unknown model or configuration name.
    """
    _import_all()
    if name not in NOTE_CONFIGS:
        raise NeurorackError(f"unknown note model {name!r}; known: {', '.join(sorted(NOTE_MODELS))}")
    configs = NOTE_CONFIGS[name]
    if config not in configs:
        raise NeurorackError(f"{name} has no configuration {config!r}; known: {', '.join(sorted(configs))}")
    return dict(configs[config])


def build_model(name: str, **kwargs: Any) -> ImpactModel:
    """Instantiate a registered model with keyword arguments."""
    _import_all()
    if name not in MODELS:
        raise NeurorackError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)


def legacy_kwargs(name: str) -> dict[str, Any]:
    """:attr:`ImpactModel.legacy_kwargs` of a registered model."""
    _import_all()
    if name not in MODELS:
        raise NeurorackError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return dict(MODELS[name].legacy_kwargs)


def rebuild_model(name: str, kwargs: dict[str, Any]) -> ImpactModel:
    """Rebuild a model from the keyword arguments stored in a file or run.

    Arguments the model gained after the file was written take their value of that time
    (:attr:`ImpactModel.legacy_kwargs`), not today's default, so old files sound as they did.
    """
    return build_model(name, **{**legacy_kwargs(name), **kwargs})


def model_names() -> list[str]:
    _import_all()
    return sorted(MODELS)


def family_packages() -> list[str]:
    """Module names of the model families: the subpackages of :mod:`neurorack.models`."""
    import neurorack.models as package

    return sorted(f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__) if m.ispkg)


def _import_all() -> None:
    """Import every family package so the decorators of its models run."""
    for name in family_packages():
        importlib.import_module(name)
