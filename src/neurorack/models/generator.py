"""Any :class:`~neurorack.models.base.ImpactModel` behind the NumPy generator interface (SPEC §7)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import torch

from neurorack.curves.descriptor_prior import MOVABLE, DescriptorPrior
from neurorack.generators.base import Generator
from neurorack.models.base import ImpactModel, canonical_focus


class ModelGenerator(Generator):
    """Wrap a model: ``generate(descriptors: float[frames, 7], seed=None) -> float32[frames * hop]``.

    The model is put in eval mode and run under :func:`torch.inference_mode` with batch 1. Its noise
    input (standard normal, ``[1, frames * hop]``) comes from a :class:`torch.Generator` on the model's
    device, seeded with a 63-bit integer drawn from ``numpy.random.default_rng(seed)``: the same seed
    always gives the same audio, ``seed=None`` a fresh one.

    A model that takes the moved-knob hint (:attr:`takes_focus`) and comes with a
    :class:`~neurorack.curves.descriptor_prior.DescriptorPrior` reads the hint from the curves when none is
    given: without a :meth:`focus` naming one of the prior's movable descriptors, ``generate`` runs as
    if the knob :meth:`DescriptorPrior.focus <neurorack.curves.descriptor_prior.DescriptorPrior.focus>` names
    had been turned. Set ``guess_focus = False`` to render the bare curves.

    Args:
        model: the network (its ``sample_rate``, ``hop_length`` and ``frame_length`` become the
            generator's :class:`~neurorack.descriptors.DescriptorConfig`).
        prior: the descriptor prior of the model's training sounds, None for none.
    """

    def __init__(self, model: ImpactModel, prior: DescriptorPrior | None = None) -> None:
        super().__init__(model.descriptor_config)
        self.model = model.eval()
        self.name = model.name
        self.prior = prior
        #: read the moved knob from the curves when no hint names one (needs a prior)
        self.guess_focus = True
        self._hint: dict[str, float] = {}

    @property
    def latency(self) -> int:
        """Algorithmic latency of the model, in samples."""
        return self.model.latency

    @property
    def takes_focus(self) -> bool:
        """True when the model overrides :meth:`ImpactModel.set_focus` (e.g. ``ddsp-impact``'s shape lock)."""
        return self.model.takes_focus

    @contextmanager
    def focus(self, moved: Mapping[str, float]) -> Iterator[None]:
        """:meth:`Generator.focus`, passed to the model (:meth:`ImpactModel.set_focus`)."""
        self.model.set_focus(moved)
        self._hint = canonical_focus(moved)
        try:
            yield
        finally:
            self.model.set_focus(None)
            self._hint = {}

    def guessed_focus(self, descriptors: np.ndarray) -> dict[str, float]:
        """The hint ``generate`` would add for these curves (``{}``: none): the prior's guess, when the model
        takes hints, guessing is on and the current :meth:`focus` moves none of the prior's descriptors."""
        if self.prior is None or not self.guess_focus or not self.takes_focus:
            return {}
        if any(d in MOVABLE and r > 0 and r != 1.0 for d, r in self._hint.items()):
            return {}
        return self.prior.focus(descriptors)

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
        guessed = self.guessed_focus(descriptors)
        if guessed:
            self.model.set_focus({**self._hint, **guessed})
        try:
            with torch.inference_mode():
                noise = self.model.make_noise(1, descriptors.shape[0], generator)
                curves = torch.from_numpy(descriptors).to(device=device, dtype=torch.float32).unsqueeze(0)
                audio = self.model(curves, noise)
        finally:
            if guessed:
                self.model.set_focus(self._hint or None)
        return audio[0].float().cpu().numpy()
