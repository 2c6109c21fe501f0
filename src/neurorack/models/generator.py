"""Any :class:`~neurorack.models.base.ImpactModel` behind the NumPy generator interface (SPEC §7)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import torch

from neurorack.generators.base import Generator
from neurorack.models.base import ImpactModel


class ModelGenerator(Generator):
    """Wrap a model: ``generate(descriptors: float[frames, 7], seed=None) -> float32[frames * hop]``.

    The model is put in eval mode and run under :func:`torch.inference_mode` with batch 1. Its noise
    input (standard normal, ``[1, frames * hop]``) comes from a :class:`torch.Generator` on the model's
    device, seeded with a 63-bit integer drawn from ``numpy.random.default_rng(seed)``: the same seed
    always gives the same audio, ``seed=None`` a fresh one.

    Args:
        model: the network (its ``sample_rate``, ``hop_length`` and ``frame_length`` become the
            generator's :class:`~neurorack.descriptors.DescriptorConfig`).
    """

    def __init__(self, model: ImpactModel) -> None:
        super().__init__(model.descriptor_config)
        self.model = model.eval()
        self.name = model.name

    @property
    def latency(self) -> int:
        """Algorithmic latency of the model, in samples."""
        return self.model.latency

    @property
    def takes_focus(self) -> bool:
        """True when the model overrides :meth:`ImpactModel.set_focus` (e.g. ``ddsp-impact``'s shape lock)."""
        return type(self.model).set_focus is not ImpactModel.set_focus

    @contextmanager
    def focus(self, moved: Mapping[str, float]) -> Iterator[None]:
        """:meth:`Generator.focus`, passed to the model (:meth:`ImpactModel.set_focus`)."""
        self.model.set_focus(moved)
        try:
            yield
        finally:
            self.model.set_focus(None)

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters (CPU for a parameter-less model)."""
        first = next(self.model.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    def _generate(self, descriptors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        device = self.device
        # decaying hits end in denormal floats, which x86 computes ~100x slower; flushing them to zero
        # is inaudible (< 1e-38) and per thread, so it is set by the thread that renders
        torch.set_flush_denormal(True)
        generator = torch.Generator(device=device)
        generator.manual_seed(int(rng.integers(0, 2**63 - 1)))
        with torch.inference_mode():
            noise = self.model.make_noise(1, descriptors.shape[0], generator)
            curves = torch.from_numpy(descriptors).to(device=device, dtype=torch.float32).unsqueeze(0)
            audio = self.model(curves, noise)
        return audio[0].float().cpu().numpy()
