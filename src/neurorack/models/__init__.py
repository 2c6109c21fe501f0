"""Neural models: the shared building blocks here, one subpackage per model family.

Shared by every family: :mod:`.base` (the model base classes and the kind a model declares),
:mod:`.registry` (models by name, each with a tiny test config), :mod:`.generator` (a model behind the
:class:`~neurorack.generators.base.Generator` interface), :mod:`.streaming` (causal convolutions with
explicit state), :mod:`.pqmf` (the PQMF filter bank), :mod:`.compiled_stream` (one streaming block
traced with TorchScript) and :mod:`.transfer` (offline transfer through any transfer model).

Families: :mod:`.impact` (descriptor curves -> impacts) and :mod:`.autoencoder` (the
descriptor-controlled autoencoder).
"""

from neurorack.models.base import GeneratorKind, ImpactModel, TransferModel
from neurorack.models.generator import ModelGenerator
from neurorack.models.registry import MODELS, TINY_CONFIGS, build_model, model_names, register_model

__all__ = [
    "MODELS",
    "TINY_CONFIGS",
    "GeneratorKind",
    "ImpactModel",
    "ModelGenerator",
    "TransferModel",
    "build_model",
    "model_names",
    "register_model",
]
