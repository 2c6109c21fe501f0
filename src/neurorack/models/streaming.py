"""Causal convolutions with explicit streaming state (building blocks of the fader-ae autoencoder).

Every block is a :class:`Streaming` module: ``forward(x, state=None) -> (y, new_state)``. The state
is an ordinary value handed in and returned (a tensor, a list of sub-states, or ``None`` for
stateless blocks); nothing is stored in the module between calls. ``state=None`` stands for the
initial state, i.e. silence (zeros) before the first sample. This is why we do not use the
``cached_conv`` package, whose caches live in hidden module buffers behind a global switch: with
an explicit state one model can serve several voices at once, a voice can be rewound by keeping an
old state, and a unit test can compare streamed and whole-signal outputs directly.

No block looks ahead: output sample ``n`` of a block with stride ``s`` depends only on inputs
``<= n * s + s - 1``. Hence running a network on a whole signal at once (``state=None``) gives the
same output, up to float rounding, as running it block by block with the carried state, for any
block length that is a multiple of the network's total stride (see :func:`stream`).

Shapes follow ``torch.nn.Conv1d``: ``Tensor[B, C, T]`` with ``T`` in samples (or frames) of the
block's input rate.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CausalConv1d",
    "Residual",
    "Streaming",
    "StreamingSequential",
    "Upsample",
    "causal_conv1d",
    "conv_context",
    "stream",
]


def conv_context(kernel_size: int, *, stride: int = 1, dilation: int = 1) -> int:
    """Input samples a causal strided convolution must remember between blocks.

    ``context = (kernel_size - 1) * dilation + 1 - stride``: the receptive field of one output minus
    the ``stride`` new samples each output consumes.

    Raises:
        ValueError: a non-positive argument, or a negative context (``stride`` larger than the
            receptive field ``(kernel_size - 1) * dilation + 1``: some inputs would be skipped).
    """
    if kernel_size < 1 or stride < 1 or dilation < 1:
        raise ValueError(f"kernel_size, stride and dilation must be >= 1, got {kernel_size=}, {stride=}, {dilation=}")
    context = (kernel_size - 1) * dilation + 1 - stride
    if context < 0:
        raise ValueError(
            f"stride {stride} exceeds the receptive field (kernel_size - 1) * dilation + 1 = "
            f"{(kernel_size - 1) * dilation + 1}: the convolution would skip input samples"
        )
    return context


def causal_conv1d(
    x: Tensor,
    state: Tensor | None,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    context: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Functional causal convolution with explicit state (the computation behind :class:`CausalConv1d`).

    Args:
        x: ``Tensor[B, C_in, T]``, ``T`` a multiple of ``stride``.
        state: ``Tensor[B, C_in, context]``, the last ``context`` input samples before ``x``
            (:func:`conv_context`); ``None`` means zeros (silence).
        weight: ``Tensor[C_out, C_in // groups, K]`` as for ``torch.nn.functional.conv1d``.
        bias: ``Tensor[C_out]`` or ``None``.
        context: :func:`conv_context` of the weight, when the caller has it (a plain number keeps a traced
            step free of shape arithmetic); ``None``: computed here.

    Returns:
        ``(y, new_state)``: ``y: Tensor[B, C_out, T // stride]`` where ``y[..., n]`` depends on inputs
        ``<= n * stride + stride - 1`` only; ``new_state: Tensor[B, C_in, context]``.

    Raises:
        ValueError: ``T`` not a multiple of ``stride``, or a state of the wrong shape.
    """
    if context is None:
        context = conv_context(weight.shape[-1], stride=stride, dilation=dilation)
    batch, channels, length = x.shape
    if length % stride:
        raise ValueError(f"input length {length} is not a multiple of the stride {stride}")
    if state is None:
        state = x.new_zeros(batch, channels, context)
    elif state.shape != (batch, channels, context):
        raise ValueError(f"state has shape {tuple(state.shape)}, expected {(batch, channels, context)}")
    padded = torch.cat((state, x), dim=-1) if context else x
    y = F.conv1d(padded, weight, bias, stride=stride, dilation=dilation, groups=groups)
    # constant slices (no shape arithmetic: a traced step stays a short graph); a view would keep padded alive
    new_state = padded[..., -context:].clone() if context else x[..., :0].clone()
    return y, new_state


class Streaming(nn.Module):
    """Base of modules with explicit streaming state: ``forward(x, state=None) -> (y, new_state)``.

    ``state=None`` means the initial state (silence before the first sample). Subclasses override
    :meth:`forward` and, if they carry state, :meth:`initial_state`; the default is stateless.
    """

    def initial_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Any:
        """The state before the first sample for a batch of ``batch`` signals (``None``: stateless)."""
        return None

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """``x: Tensor[B, C, T]`` -> ``(y: Tensor[B, C', T'], new_state)``."""
        raise NotImplementedError


class CausalConv1d(Streaming):
    """Causal (left-padded, no lookahead) 1-D convolution, optionally strided, dilated or grouped.

    Weights live in ``self.conv: nn.Conv1d`` (padding 0), at ``conv.weight`` / ``conv.bias``.

    ``forward(x: Tensor[B, in, T], state) -> (y: Tensor[B, out, T // stride], state)`` with ``T`` a
    multiple of ``stride``. The state is ``Tensor[B, in, context]``, the last ``context`` input samples
    (zeros initially), ``context = (kernel_size - 1) * dilation + 1 - stride`` (may be 0). Output
    sample ``n`` depends only on inputs ``<= n * stride + stride - 1``.

    Raises:
        ValueError: ``context < 0`` (stride larger than the receptive field); at call time, ``T``
            not a multiple of ``stride`` or a state of the wrong shape.
    """

    context: int

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.context = conv_context(kernel_size, stride=stride, dilation=dilation)
        self.stride = stride
        self.conv = nn.Conv1d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=0,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )

    def initial_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Tensor:
        """Zeros ``Tensor[batch, in, context]`` (on the weight's device/dtype unless given)."""
        weight = self.conv.weight
        return torch.zeros(
            batch,
            self.conv.in_channels,
            self.context,
            device=weight.device if device is None else device,
            dtype=weight.dtype if dtype is None else dtype,
        )

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x: Tensor[B, in, T]`` -> ``(Tensor[B, out, T // stride], Tensor[B, in, context])``."""
        conv = self.conv
        return causal_conv1d(
            x,
            state,
            conv.weight,
            conv.bias,
            stride=self.stride,
            dilation=conv.dilation[0],
            groups=conv.groups,
            context=self.context,
        )


class StreamingSequential(Streaming):
    """Modules run in order, each on the previous one's output.

    :class:`Streaming` modules get their own sub-state; any other module (activation, ``nn.Identity``,
    normalisation without running statistics, ...) is called as ``module(x)`` and has state ``None``.
    The state is a ``list`` with one entry per module; ``state=None`` means every sub-state initial.
    """

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(modules)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> nn.Module:
        return self.layers[index]

    def initial_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> list[Any]:
        """One initial sub-state per module (``None`` for non-streaming modules)."""
        return [
            layer.initial_state(batch, device, dtype) if isinstance(layer, Streaming) else None for layer in self.layers
        ]

    def forward(self, x: Tensor, state: list[Any] | None = None) -> tuple[Tensor, list[Any]]:
        """``x: Tensor[B, C, T]`` -> ``(y, [sub_state, ...])``."""
        states: list[Any] = [None] * len(self.layers) if state is None else list(state)
        if len(states) != len(self.layers):
            raise ValueError(f"state has {len(states)} entries, expected one per module ({len(self.layers)})")
        new_states: list[Any] = []
        for layer, sub_state in zip(self.layers, states, strict=True):
            if isinstance(layer, Streaming):
                x, sub_state = layer(x, sub_state)
            else:
                x = layer(x)
            new_states.append(sub_state)
        return x, new_states


class Residual(Streaming):
    """``y = x + body(x)``; the body must keep the shape (same channels, no stride). State = body's state."""

    def __init__(self, body: Streaming) -> None:
        super().__init__()
        self.body = body

    def initial_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Any:
        return self.body.initial_state(batch, device, dtype)

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """``x: Tensor[B, C, T]`` -> ``(Tensor[B, C, T], body_state)``."""
        y, state = self.body(x, state)
        if y.shape != x.shape:
            raise ValueError(f"residual body changed the shape {tuple(x.shape)} -> {tuple(y.shape)}")
        return x + y, state


class Upsample(Streaming):
    """Nearest-neighbour upsampling: each sample repeated ``factor`` times. Stateless (state ``None``).

    ``x: Tensor[B, C, T]`` -> ``Tensor[B, C, T * factor]``.
    """

    def __init__(self, factor: int) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f"upsampling factor must be >= 1, got {factor}")
        self.factor = factor

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, None]:
        return torch.repeat_interleave(x, self.factor, dim=-1), None


class SubPixelUpsample(Streaming):
    """Learned upsampling by ``factor`` computed at the low rate (sub-pixel convolution, Shi et al. 2016).

    A causal convolution makes ``out_channels · factor`` channels at the input rate, which are then
    interleaved in time: the cost of a transposed convolution without its checkerboard artefacts, and a
    ``factor`` times cheaper than upsampling first and convolving at the high rate.

    ``x: Tensor[B, in, T]`` -> ``Tensor[B, out, T * factor]``; state: the convolution's.
    """

    def __init__(self, in_channels: int, out_channels: int, factor: int, kernel_size: int = 3) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f"upsampling factor must be >= 1, got {factor}")
        self.factor = factor
        self.out_channels = out_channels
        self.conv = CausalConv1d(in_channels, out_channels * factor, kernel_size)

    def initial_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Any:
        return self.conv.initial_state(batch, device, dtype)

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        y, state = self.conv(x, state)  # [B, out · factor, T]
        y = y.unflatten(1, (self.out_channels, self.factor)).transpose(2, 3)  # [B, out, T, factor]
        return y.flatten(2), state


def stream(module: Streaming, x: Tensor, block: int, state: Any = None) -> tuple[Tensor, Any]:
    """Run ``module`` over ``x: Tensor[..., T]`` in consecutive blocks of ``block`` samples, concatenating outputs.

    ``T`` must be a multiple of ``block`` (and ``block`` a multiple of the module's total stride).
    Returns ``(y, final_state)``; ``y`` equals ``module(x, state)[0]`` up to float rounding.

    Raises:
        ValueError: ``block < 1`` or ``T`` not a multiple of ``block``.
    """
    length = x.shape[-1]
    if block < 1 or length % block:
        raise ValueError(f"signal length {length} is not a multiple of the block length {block}")
    outputs = []
    for start in range(0, length, block):
        y, state = module(x[..., start : start + block], state)
        outputs.append(y)
    if not outputs:
        return module(x, state)
    return torch.cat(outputs, dim=-1), state
