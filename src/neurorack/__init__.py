"""neurorack: a playable deep-learning synthesizer.

Public API (SPEC §7)::

    import neurorack as nr
    curves = nr.describe(audio, sr)          # float32 [frames, 7]
    m = nr.load_model()                      # bundled default; or nr.load_model("model.safetensors")
    audio = m.generate(curves)               # float32 [frames * m.hop_length] at m.sample_rate
    n = nr.load_model("notes")               # a note model (SING): n.note(instrument, pitch, velocity)
"""

from __future__ import annotations

import os

from neurorack.descriptors import DESCRIPTOR_NAMES, DescriptorConfig, Descriptors, describe
from neurorack.errors import AudioError, ModelFileError, NeurorackError

__version__ = "0.1.0"

from neurorack.model_file import LoadedModel  # model_file reads __version__ lazily
from neurorack.note_model_file import LoadedNoteModel


def load_model(name_or_path: str | os.PathLike[str] | None = None) -> LoadedModel | LoadedNoteModel:
    """Load a model file: an impact / transfer model (:class:`LoadedModel`, ``m.generate(curves)``) or a note
    model (:class:`LoadedNoteModel`, ``m.note(instrument, pitch, velocity)``), told apart by the file's format.

    Args:
        name_or_path: ``None`` for the bundled default, a bundled name (``default``, ``transfer``, ``notes``) or
            a file path.

    Raises:
        ModelFileError: missing, foreign, corrupt or too-new file, or one this version cannot rebuild.
    """
    from neurorack.model_file import load_model as load_curve_model
    from neurorack.model_file import resolve_model_path
    from neurorack.note_model_file import is_note_model_file, load_note_model

    if name_or_path is not None and is_note_model_file(resolve_model_path(name_or_path)):
        return load_note_model(name_or_path)
    return load_curve_model(name_or_path)


__all__ = [
    "DESCRIPTOR_NAMES",
    "AudioError",
    "DescriptorConfig",
    "Descriptors",
    "LoadedModel",
    "LoadedNoteModel",
    "ModelFileError",
    "NeurorackError",
    "__version__",
    "describe",
    "load_model",
]
