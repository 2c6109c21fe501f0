"""One block of live transfer compiled by TorchScript tracing (the engine's and the benchmark's path).

:meth:`TransferModel.stream <neurorack.models.base.TransferModel.stream>` runs ~90 small PyTorch operations per
block through Python (module calls, shape checks, state bookkeeping): at 2048-sample blocks that
overhead costs as much as the convolutions themselves. :class:`CompiledStream` traces the step once for
a fixed batch and block length (``torch.jit.trace``) and runs the recorded graph instead: same
operations, same weights, same output (the test compares them exactly), faster per block.

``torch.jit.trace`` is deprecated in favour of ``torch.compile`` / ``torch.export``, but neither fits
here: ``torch.compile`` needs a C++ toolchain and tens of seconds at start-up, and the module of
``torch.export`` runs its graph op by op in Python, slower than the trace. The
torch version is pinned; the test compares the trace with the eager step, so a change would show.

The state stays explicit, as everywhere in :mod:`neurorack.models.streaming`: ``step(audio, curves,
state) -> (audio, state)`` where the state is a flat ``list[Tensor]`` (:meth:`CompiledStream.initial_state`
is silence, the same as ``state=None`` for :meth:`TransferModel.stream`).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from neurorack.descriptors import N_DESCRIPTORS

if TYPE_CHECKING:
    from neurorack.models.base import TransferModel

__all__ = ["CompiledStream"]


def _leaves(state: Any) -> list[Tensor | None]:
    """Leaves of a nested-list streaming state, depth first (``None`` for stateless modules)."""
    if isinstance(state, (list, tuple)):
        return [leaf for item in state for leaf in _leaves(item)]
    return [state]


def _rebuild(template: Any, leaves: list[Tensor | None], start: int = 0) -> tuple[Any, int]:
    """The nested list shaped like ``template`` with ``leaves[start:]`` in place of its leaves."""
    if isinstance(template, (list, tuple)):
        items = []
        for item in template:
            value, start = _rebuild(item, leaves, start)
            items.append(value)
        return items, start
    return leaves[start], start + 1


class _Step(nn.Module):
    """``TransferModel.stream`` with the state flattened to tensors, as ``torch.jit.trace`` needs."""

    def __init__(self, model: TransferModel, template: Any, slots: list[int], n_leaves: int) -> None:
        super().__init__()
        self.model = model
        self.template = template
        self.slots = slots
        self.n_leaves = n_leaves

    def forward(self, audio: Tensor, descriptors: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        leaves: list[Tensor | None] = [None] * self.n_leaves
        for slot, tensor in zip(self.slots, state, strict=True):
            leaves[slot] = tensor
        y, new = self.model.stream(audio, descriptors, _rebuild(self.template, leaves)[0])
        flat = _leaves(new)
        return (y, *[t for t in (flat[slot] for slot in self.slots) if t is not None])


class CompiledStream:
    """:meth:`TransferModel.stream` for blocks of ``block`` samples, traced once (see the module docstring).

    Args:
        model: the autoencoder, in eval mode (its weights are used, not copied: do not train it after).
        block: samples per call, a positive multiple of ``model.hop_length``.
        batch: signals per call.

    Call: ``step(audio: Tensor[batch, 1, block], descriptors: Tensor[batch, block / hop, 7], state)``
    -> ``(Tensor[batch, 1, block], new_state)``, exactly :meth:`TransferModel.stream`'s output.

    Raises:
        ValueError: a block that is not a positive multiple of the hop, a model in training mode; at call
            time, inputs of another shape than the traced one or a state of the wrong length.
    """

    def __init__(self, model: TransferModel, block: int, batch: int = 1) -> None:
        hop = model.hop_length
        if block < hop or block % hop:
            raise ValueError(f"the block must be a positive multiple of the hop ({hop}), got {block}")
        if model.training:
            raise ValueError("compile the stream of a model in eval mode (model.eval())")
        self.block = int(block)
        self.batch = int(batch)
        self.frames = self.block // hop
        self.latency = model.latency
        audio = torch.zeros(self.batch, 1, self.block)
        curves = torch.zeros(self.batch, self.frames, N_DESCRIPTORS)
        with torch.no_grad():
            _, after = model.stream(audio, curves, None)  # the structure of the state
            leaves = _leaves(after)
            slots = [i for i, leaf in enumerate(leaves) if leaf is not None]
            self._zeros = [torch.zeros_like(t) for t in leaves if t is not None]  # silence, as state=None
            step = _Step(model, after, slots, len(leaves))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks become constants
                warnings.simplefilter("ignore", DeprecationWarning)  # deliberate: see the module docstring
                self._traced = torch.jit.trace(step, (audio, curves, *self._zeros), check_trace=False)

    def initial_state(self) -> list[Tensor]:
        """Silence before the first block (what ``state=None`` means for :meth:`TransferModel.stream`)."""
        return [t.clone() for t in self._zeros]

    def __call__(
        self, audio: Tensor, descriptors: Tensor, state: list[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """One block: ``audio [batch, 1, block]``, ``descriptors [batch, block / hop, 7]`` -> (audio, state)."""
        if tuple(audio.shape) != (self.batch, 1, self.block):
            raise ValueError(f"audio must be [{self.batch}, 1, {self.block}], got {list(audio.shape)}")
        if tuple(descriptors.shape) != (self.batch, self.frames, N_DESCRIPTORS):
            raise ValueError(
                f"descriptors must be [{self.batch}, {self.frames}, {N_DESCRIPTORS}], got {list(descriptors.shape)}"
            )
        if state is None:
            state = self._zeros
        elif len(state) != len(self._zeros):
            raise ValueError(f"state has {len(state)} tensors, expected {len(self._zeros)} (initial_state)")
        out = self._traced(audio, descriptors, *state)
        return out[0], list(out[1:])
