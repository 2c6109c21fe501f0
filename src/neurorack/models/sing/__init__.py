"""The SING family: symbols (instrument, pitch, velocity) -> notes (Défossez et al., NeurIPS 2018).

:mod:`.convolutional_ae` (the waveform autoencoder with windowed grains), :mod:`.sequence_generator` (the
LSTM over look-up embeddings), :mod:`.sing` (the model, its ``paper``, ``cpu`` and ``tiny`` configurations).
"""

from neurorack.models.sing.sing import SING_CONFIGS, Sing

__all__ = ["SING_CONFIGS", "Sing"]
