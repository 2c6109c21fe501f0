"""Impact generator models (SPEC §3): registry, faithful sinc-nsf, fast default."""

from neurorack.models.base import ImpactModel
from neurorack.models.ddsp_impact import DDSPImpact
from neurorack.models.generator import ModelGenerator
from neurorack.models.registry import MODELS, TINY_CONFIGS, build_model, model_names, register_model
from neurorack.models.sinc_nsf import SincNSF

__all__ = [
    "MODELS",
    "TINY_CONFIGS",
    "DDSPImpact",
    "ImpactModel",
    "ModelGenerator",
    "SincNSF",
    "build_model",
    "model_names",
    "register_model",
]
