"""Training objectives by name: the LightningModule a model's :attr:`~neurorack.models.base.ImpactModel.objective`
names.

``impact``: reconstruction from descriptor curves with multi-scale spectral and descriptor-matching
losses (:mod:`.module`); ``fader``: the descriptor-controlled autoencoder's VAE and latent-adversary
objective (:mod:`.fader_module`). A family with a new objective adds its module and one entry here.
"""

from __future__ import annotations

import importlib

from neurorack.errors import NeurorackError
from neurorack.training.module import ImpactTrainingModule

#: objective name -> "module:class" of its LightningModule (imported on first use)
OBJECTIVES: dict[str, str] = {
    "impact": "neurorack.training.module:ImpactTrainingModule",
    "fader": "neurorack.training.fader_module:FaderTrainingModule",
}


def objective_module(name: str) -> type[ImpactTrainingModule]:
    """The LightningModule class of objective ``name``.

    Raises:
        NeurorackError: an unknown objective.
    """
    if name not in OBJECTIVES:
        raise NeurorackError(f"unknown training objective {name!r}; known: {', '.join(sorted(OBJECTIVES))}")
    module, _, cls = OBJECTIVES[name].partition(":")
    found: type[ImpactTrainingModule] = getattr(importlib.import_module(module), cls)
    return found
