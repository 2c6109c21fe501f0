"""neurorack: a playable deep-learning synthesizer.

Public API (SPEC §7)::

    import neurorack as nr
    curves = nr.describe(audio, sr)          # float32 [frames, 7]
    m = nr.load_model()                      # bundled default; or nr.load_model("model.safetensors")
    audio = m.generate(curves)               # float32 [frames * m.hop_length] at m.sample_rate
"""

from neurorack.descriptors import DESCRIPTOR_NAMES, DescriptorConfig, Descriptors, describe
from neurorack.errors import AudioError, ModelFileError, NeurorackError

__version__ = "0.1.0"

from neurorack.model_file import LoadedModel, load_model  # model_file reads __version__ lazily

__all__ = [
    "DESCRIPTOR_NAMES",
    "AudioError",
    "DescriptorConfig",
    "Descriptors",
    "LoadedModel",
    "ModelFileError",
    "NeurorackError",
    "__version__",
    "describe",
    "load_model",
]
