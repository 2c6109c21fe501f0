"""Registry of impact model classes by name, each with a tiny configuration for tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from neurorack.errors import NeurorackError
from neurorack.models.base import ImpactModel

M = TypeVar("M", bound=type[ImpactModel])

MODELS: dict[str, type[ImpactModel]] = {}
TINY_CONFIGS: dict[str, dict[str, Any]] = {}


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


def build_model(name: str, **kwargs: Any) -> ImpactModel:
    """Instantiate a registered model with keyword arguments."""
    _import_all()
    if name not in MODELS:
        raise NeurorackError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)


def model_names() -> list[str]:
    _import_all()
    return sorted(MODELS)


def _import_all() -> None:
    """Import the model modules so their decorators run."""
    import neurorack.models.ddsp_impact
    import neurorack.models.sinc_nsf  # noqa: F401
