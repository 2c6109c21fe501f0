"""Base class of the impact generators (SPEC §3, §7).

An :class:`ImpactModel` maps descriptor curves in physical units
(``Tensor[B, frames, 7]``, :data:`~neurorack.descriptors.DESCRIPTOR_NAMES`
order) to audio ``Tensor[B, frames * hop_length]`` at ``sample_rate``.
It owns the descriptor normalisation statistics (buffers, saved with the
weights) so an exported model needs nothing from the training corpus.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from neurorack.anchors import column
from neurorack.descriptors import DESCRIPTOR_NAMES, N_DESCRIPTORS, DescriptorConfig

#: Descriptors fed to the network on a log scale (strictly positive quantities in Hz or amplitude).
LOG_DESCRIPTORS: tuple[int, ...] = (0, 2, 3, 4, 5, 6)
LOG_FLOOR = 1e-5


def to_feature_scale(descriptors: Tensor) -> Tensor:
    """Physical units -> network scale: log for rms, rolloff, flatness, bandwidth, centroid, f0.

    ``descriptors: Tensor[..., 7]`` -> ``Tensor[..., 7]``.
    """
    mask = torch.tensor([i in LOG_DESCRIPTORS for i in range(N_DESCRIPTORS)], device=descriptors.device)
    return torch.where(mask, torch.log(descriptors.clamp_min(LOG_FLOOR)), descriptors)


def canonical_focus(moved: Mapping[str, float] | None) -> dict[str, float]:
    """``moved`` (names or perceptual aliases -> ratio) with canonical descriptor names.

    Raises:
        NeurorackError: an unknown descriptor name.
    """
    return {DESCRIPTOR_NAMES[column(key)]: float(ratio) for key, ratio in (moved or {}).items()}


class ImpactModel(nn.Module):
    """Descriptor curves -> impact audio.

    Subclasses implement :meth:`synthesize` and declare ``kwargs`` they were
    built with in ``self.config`` (plain JSON-able values) so checkpoints and
    exports are self-describing.

    Args:
        sample_rate: output rate in Hz.
        hop_length: output samples per descriptor frame.
        frame_length: analysis frame of the descriptors (metadata).
    """

    name: str = "impact-model"
    #: Values of keyword arguments added after files of this model were first exported: a model
    #: file that does not name one was written before it existed and is rebuilt with this value.
    legacy_kwargs: ClassVar[dict[str, Any]] = {}
    desc_mean: Tensor
    desc_std: Tensor

    def __init__(self, *, sample_rate: int = 44_100, hop_length: int = 512, frame_length: int = 2048) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.frame_length = frame_length
        self.config: dict[str, Any] = {
            "sample_rate": sample_rate,
            "hop_length": hop_length,
            "frame_length": frame_length,
        }
        self.register_buffer("desc_mean", torch.zeros(N_DESCRIPTORS))
        self.register_buffer("desc_std", torch.ones(N_DESCRIPTORS))

    @property
    def descriptor_config(self) -> DescriptorConfig:
        return DescriptorConfig(self.sample_rate, self.frame_length, self.hop_length)

    @property
    def latency(self) -> int:
        """Algorithmic latency in samples (0: offline, whole impact rendered at once)."""
        return 0

    @property
    def takes_focus(self) -> bool:
        """True when the subclass overrides :meth:`set_focus` (e.g. ``ddsp-impact``'s shape lock)."""
        return type(self).set_focus is not ImpactModel.set_focus

    def set_focus(self, moved: Mapping[str, float] | None) -> None:
        """Descriptors the player moved (name -> requested / unedited ratio), None to clear.

        See :meth:`neurorack.generators.base.Generator.focus`; models without a trade-off between
        descriptors ignore it (this default, which still checks the names).

        Raises:
            NeurorackError: an unknown descriptor name.
        """
        canonical_focus(moved)

    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Store normalisation statistics of :func:`to_feature_scale` descriptors, each ``[7]``."""
        self.desc_mean.copy_(mean.to(self.desc_mean))
        self.desc_std.copy_(std.to(self.desc_std).clamp_min(1e-4))

    def normalize(self, descriptors: Tensor) -> Tensor:
        """``[B, F, 7]`` physical units -> z-normalised network scale."""
        return (to_feature_scale(descriptors) - self.desc_mean) / self.desc_std

    def forward(self, descriptors: Tensor, noise: Tensor | None = None) -> Tensor:
        """``descriptors: Tensor[B, F, 7]`` (physical units) -> ``audio: Tensor[B, F * hop]``.

        ``noise``: optional noise from :meth:`make_noise` (for reproducibility); drawn from the
        global generator when ``None``.
        """
        if descriptors.dim() != 3 or descriptors.shape[-1] != N_DESCRIPTORS:
            raise ValueError(f"descriptors must be [B, F, {N_DESCRIPTORS}], got {list(descriptors.shape)}")
        if noise is None:
            noise = self.make_noise(descriptors.shape[0], descriptors.shape[1])
        return self.synthesize(descriptors, noise)

    def make_noise(self, batch: int, frames: int, generator: torch.Generator | None = None) -> Tensor:
        """Random input for ``frames`` descriptor frames; default standard normal ``[B, frames * hop]``."""
        return torch.randn(batch, frames * self.hop_length, generator=generator, device=self.desc_mean.device)

    def synthesize(self, descriptors: Tensor, noise: Tensor) -> Tensor:
        """Implementation: physical-unit curves ``[B, F, 7]`` and noise ``[B, F*hop]`` -> ``[B, F*hop]``."""
        raise NotImplementedError
