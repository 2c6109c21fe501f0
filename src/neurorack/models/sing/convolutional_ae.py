"""SING's convolutional autoencoder: waveform <-> one embedding per 256-sample frame.

Défossez, Zeghidour, Usunier, Bottou & Bach, "SING: Symbol-to-Instrument Neural Generator" (NeurIPS 2018), §3.1
and Fig. 1. The decoder turns a sequence of ``dimension``-dimensional embeddings into a waveform: a convolution
over ``context`` frames, ``rewrite_layers`` 1×1 convolutions, then one transposed convolution whose kernel
(``kernel_size`` samples, hop ``stride``) is windowed by a squared Hann window, so the output is an
overlap-add of smooth learned grains. The encoder (used only to pre-train the decoder) mirrors it.

Lengths: a note of ``N`` samples (``N`` a multiple of ``stride``) is padded by :attr:`pad` zeros on each side
for the encoder, which gives :meth:`frames` embeddings; the decoder turns those into ``N + 2 · margin``
samples, the note with ``margin`` samples of (ideally silent) context on each side.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def squared_hann(length: int) -> Tensor:
    """Periodic Hann window squared, ``Tensor[length]``: the grain shape of the output kernel."""
    return torch.hann_window(length, periodic=True) ** 2


class WindowedConv1d(nn.Conv1d):
    """A :class:`torch.nn.Conv1d` whose kernel is multiplied by a squared Hann window at every call."""

    window: Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)
        self.register_buffer("window", squared_hann(kernel_size), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(x, self.weight * self.window, self.bias, self.stride)


class WindowedConvTranspose1d(nn.ConvTranspose1d):
    """A :class:`torch.nn.ConvTranspose1d` whose kernel is windowed (squared Hann): smooth overlap-added grains."""

    window: Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.register_buffer("window", squared_hann(kernel_size), persistent=False)

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        return F.conv_transpose1d(x, self.weight * self.window, self.bias, self.stride, self.padding)  # type: ignore[arg-type]


class ConvolutionalDecoder(nn.Module):
    """Embeddings ``Tensor[B, dimension, L]`` -> waveform ``Tensor[B, (L - context + 2) · stride - kernel_size]``.

    Args:
        channels: width of every inner layer (paper: 4096).
        dimension: embedding size per frame (paper: 128).
        kernel_size, stride: the output grains: length and hop in samples (paper: 1024, 256).
        context: frames seen by the first convolution (paper: 9).
        rewrite_layers: 1×1 convolutions after it (paper: 2).
    """

    def __init__(
        self, *, channels: int, dimension: int, kernel_size: int, stride: int, context: int, rewrite_layers: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(dimension, channels, context), nn.ReLU()]
        for _ in range(rewrite_layers):
            layers += [nn.Conv1d(channels, channels, 1), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.grains = WindowedConvTranspose1d(channels, 1, kernel_size, stride, padding=kernel_size - stride)
        self.context = context
        self.stride = stride
        self.kernel_size = kernel_size

    def forward(self, embeddings: Tensor) -> Tensor:
        return self.grains(self.body(embeddings)).squeeze(1)

    def output_length(self, frames: int) -> int:
        """Samples decoded from ``frames`` embeddings."""
        return (frames - self.context + 2) * self.stride - self.kernel_size


class ConvolutionalEncoder(nn.Module):
    """Waveform ``Tensor[B, T]`` -> embeddings ``Tensor[B, dimension, (T - kernel_size) // stride + 1]``.

    A windowed strided convolution, ``rewrite_layers`` 1×1 convolutions, a 1×1 projection to ``dimension``.
    """

    def __init__(self, *, channels: int, dimension: int, kernel_size: int, stride: int, rewrite_layers: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [WindowedConv1d(1, channels, kernel_size, stride), nn.ReLU()]
        for _ in range(rewrite_layers):
            layers += [nn.Conv1d(channels, channels, 1), nn.ReLU()]
        layers.append(nn.Conv1d(channels, dimension, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, audio: Tensor) -> Tensor:
        return self.layers(audio.unsqueeze(1))
