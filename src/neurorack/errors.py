"""User-facing errors.

Every error a user can cause (bad file, bad option, missing tool) is a
:class:`NeurorackError` with a one-line message; the CLI prints it and exits
with a non-zero status instead of a traceback.
"""

from __future__ import annotations


class NeurorackError(Exception):
    """An error caused by input or environment, explained in one line."""


class AudioError(NeurorackError):
    """An audio file or array that cannot be used (unreadable, empty, NaN, ...)."""


class CorpusError(NeurorackError):
    """A corpus folder that cannot be built, read or extended."""


class ModelFileError(NeurorackError):
    """A model file that is corrupt, foreign or of an unsupported version."""
