"""The generator interface shared by models and baselines (SPEC §7).

Everything that turns descriptor curves into sound — trained models, the
faithful ``sinc-nsf``, and the baselines (silence, DSP synth, nearest sample) —
is a :class:`Generator`, so ``eval``, ``bench`` and the engine treat them alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from neurorack.descriptors import N_DESCRIPTORS, DescriptorConfig
from neurorack.errors import NeurorackError

if TYPE_CHECKING:
    from neurorack.metrics.following import FollowReport


class Generator(ABC):
    """Descriptor curves in, mono audio out.

    Attributes:
        name: registry name (``"silence"``, ``"dsp"``, ``"nearest"``, model names ...).
        descriptor_config: analysis parameters the curves were computed with
            (sample rate, frame and hop length).
    """

    name: str = "generator"

    def __init__(self, descriptor_config: DescriptorConfig) -> None:
        self.descriptor_config = descriptor_config

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz."""
        return self.descriptor_config.sample_rate

    @property
    def hop_length(self) -> int:
        """Output samples per descriptor frame."""
        return self.descriptor_config.hop_length

    @property
    def latency(self) -> int:
        """Algorithmic latency in samples (0 for offline generators)."""
        return 0

    @property
    def takes_focus(self) -> bool:
        """Whether :meth:`focus` changes anything for this generator."""
        return False

    @contextmanager
    def focus(self, moved: Mapping[str, float]) -> Iterator[None]:
        """Within the block, tell the generator which descriptors the player moved, and by what factor.

        ``moved`` maps descriptor names (or perceptual aliases) to the ratio of the requested to the
        unedited curve (2.0: doubled). When the requested curves cannot all be met at once (a doubled
        roll-off at the same centroid and bandwidth), a generator that can trade them off gives the
        moved ones priority; others ignore the hint (this default). The engine and ``generate --set``
        know which knob was turned; a bare ``generate(curves)`` does not (a model with a descriptor prior
        reads it from the curves: :class:`~neurorack.models.generator.ModelGenerator`).
        """
        yield

    def generate(self, descriptors: np.ndarray, *, seed: int | None = None) -> np.ndarray:
        """Render ``descriptors: float[frames, 7]`` to ``float32[frames * hop_length]``.

        Args:
            descriptors: curves in :data:`neurorack.descriptors.DESCRIPTOR_NAMES` order and units.
            seed: seed for any randomness (noise sources); ``None`` draws a fresh one.

        Raises:
            NeurorackError: wrong shape or non-finite values.
        """
        curves = check_descriptors(descriptors)
        audio = self._generate(curves, np.random.default_rng(seed))
        expected = curves.shape[0] * self.hop_length
        if audio.shape != (expected,):
            raise AssertionError(f"{self.name} returned {audio.shape}, expected ({expected},)")
        return np.ascontiguousarray(audio, dtype=np.float32)

    def follow(self, descriptors: np.ndarray, audio: np.ndarray, measured: np.ndarray | None = None) -> FollowReport:
        """How closely ``audio`` (a render of ``descriptors``) followed them: per-descriptor error in octaves,
        the descriptors it missed (and whether the drawing asked for a spectrum that cannot exist), and its
        peak level (:mod:`neurorack.metrics.following`). ``measured``: the audio's descriptors, when already
        computed with this generator's :attr:`descriptor_config`."""
        from neurorack.metrics.following import follow_report

        return follow_report(check_descriptors(descriptors), audio, self.descriptor_config, measured=measured)

    @abstractmethod
    def _generate(self, descriptors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Render validated ``float32[frames, 7]`` curves to ``float32[frames * hop]``."""


def check_descriptors(descriptors: np.ndarray) -> np.ndarray:
    """Validate descriptor curves: ``float[frames, 7]``, finite, at least one frame."""
    arr = np.asarray(descriptors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != N_DESCRIPTORS:
        raise NeurorackError(f"descriptors must have shape [frames, {N_DESCRIPTORS}], got {list(arr.shape)}")
    if arr.shape[0] == 0:
        raise NeurorackError("descriptors have no frames")
    if not np.isfinite(arr).all():
        raise NeurorackError("descriptors contain NaN or infinite values")
    return arr
