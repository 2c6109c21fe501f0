"""The optional adversarial waveform stage of ``fader-ae``: a multi-scale STFT discriminator and its losses.

As in RAVE's second stage (Caillon & Esling 2021) and EnCodec (Défossez et al. 2022), a discriminator
learns to tell real crops from the decoder's reconstructions, and the autoencoder learns to fool it
and to match its intermediate features. The discriminator is EnCodec's MS-STFTD, sized small:

* per scale, a complex STFT of the waveform (Hann window ``n_fft``, hop ``n_fft / 4``, normalised),
  real and imaginary parts as 2 input channels, laid out ``[B, 2, frames, bins]``;
* a 2-D convolution, then one per dilation with dilation in time and stride 2 in frequency, a last
  one and a 1-channel output convolution; LeakyReLU(0.2) after all but the output, weight norm on all;
* each scale returns its logits map ``[B, 1, frames, bins']`` and its feature maps (the activations
  after each hidden convolution).

Losses are functions of the discriminator's outputs returning named scalar terms:

* :func:`discriminator_hinge`: ``disc_real`` = mean relu(1 - D(x)), ``disc_fake`` = mean relu(1 + D(G));
* :func:`generator_hinge`: ``adversarial_wave`` = -mean D(G) (the hinge GAN generator loss, as in
  RAVE and EnCodec; unbounded below, it is weighted small next to the reconstruction terms);
* :func:`feature_matching`: ``feature_matching`` = mean over feature maps of
  ``mean |f_fake - f_real| / mean |f_real|``.

Every term is averaged over the scales (and the feature maps), so its size does not depend on how
many there are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

#: STFT sizes of the default discriminator (samples; hop a quarter of each).
DEFAULT_N_FFTS: tuple[int, ...] = (2048, 1024, 512)
#: Channels of every hidden convolution by default (EnCodec uses 32; 16 keeps a CPU step cheap).
DEFAULT_FILTERS = 16
#: Floor of the feature-matching normalisation (mean absolute value of a real feature map).
FM_EPS = 1e-8

#: What one scale returns: the logits map ``[B, 1, frames, bins']`` and its feature maps.
ScaleOutput = tuple[Tensor, list[Tensor]]


def _same_padding(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    return ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)


def _conv(
    in_ch: int,
    out_ch: int,
    kernel: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
) -> nn.Module:
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, dilation=dilation, padding=_same_padding(kernel, dilation))
    return weight_norm(conv)


def _as_batch(audio: Tensor) -> Tensor:
    """``[B, T]`` or ``[B, 1, T]`` -> ``[B, T]``."""
    if audio.dim() == 3 and audio.shape[1] == 1:
        return audio[:, 0]
    if audio.dim() != 2:
        raise ValueError(f"audio must be [B, T] or [B, 1, T], got {list(audio.shape)}")
    return audio


class STFTDiscriminator(nn.Module):
    """One scale of the MS-STFT discriminator (EnCodec's ``DiscriminatorSTFT``).

    Args:
        n_fft: STFT size and Hann window length (samples).
        hop_length: STFT hop (default ``n_fft // 4``).
        filters: channels of every hidden convolution.
        kernel_size: ``(time, frequency)`` kernel of the dilated convolutions.
        dilations: time dilations of the strided convolutions (each halves the frequency axis).

    ``forward(audio [B, T] or [B, 1, T])`` -> ``(logits [B, 1, frames, bins'], [feature maps
    [B, filters, frames, bins_i]])`` with ``frames = 1 + T // hop_length`` (centred, zero-padded
    frames: any length works) and ``bins' = ceil((n_fft / 2 + 1) / 2 ** len(dilations))``.
    """

    window: Tensor

    def __init__(
        self,
        n_fft: int,
        hop_length: int | None = None,
        filters: int = DEFAULT_FILTERS,
        kernel_size: tuple[int, int] = (3, 9),
        dilations: Sequence[int] = (1, 2, 4),
    ) -> None:
        super().__init__()
        if n_fft < 8 or filters < 1:
            raise ValueError(f"n_fft must be >= 8 and filters >= 1, got {n_fft} and {filters}")
        self.n_fft = n_fft
        self.hop_length = hop_length if hop_length is not None else n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        square = (kernel_size[0], kernel_size[0])
        layers = [_conv(2, filters, kernel_size)]
        for dilation in dilations:
            layers.append(_conv(filters, filters, kernel_size, stride=(1, 2), dilation=(dilation, 1)))
        layers.append(_conv(filters, filters, square))
        self.convs = nn.ModuleList(layers)
        self.post = _conv(filters, 1, square)
        self.act = nn.LeakyReLU(0.2)

    def spectrum(self, audio: Tensor) -> Tensor:
        """``audio [B, T]`` -> real and imaginary STFT parts ``[B, 2, frames, n_fft / 2 + 1]``."""
        spec = torch.stft(
            _as_batch(audio),
            self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            normalized=True,
            return_complex=True,
        )  # [B, bins, frames]
        return torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)

    def forward(self, audio: Tensor) -> ScaleOutput:
        h = self.spectrum(audio)
        features: list[Tensor] = []
        for conv in self.convs:
            h = self.act(conv(h))
            features.append(h)
        return self.post(h), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """EnCodec's MS-STFTD: one :class:`STFTDiscriminator` per STFT size.

    Args:
        n_ffts: STFT sizes (hops a quarter of each).
        filters: channels of every hidden convolution of every scale.
        kernel_size, dilations: see :class:`STFTDiscriminator`.

    ``forward(audio [B, T] or [B, 1, T])`` -> per scale ``(logits, feature maps)`` (in ``n_ffts`` order).
    """

    def __init__(
        self,
        n_ffts: Sequence[int] = DEFAULT_N_FFTS,
        filters: int = DEFAULT_FILTERS,
        kernel_size: tuple[int, int] = (3, 9),
        dilations: Sequence[int] = (1, 2, 4),
    ) -> None:
        super().__init__()
        if not n_ffts:
            raise ValueError("n_ffts must name at least one STFT size")
        self.scales = nn.ModuleList(
            STFTDiscriminator(int(n), filters=filters, kernel_size=kernel_size, dilations=dilations) for n in n_ffts
        )

    def forward(self, audio: Tensor) -> list[ScaleOutput]:
        return [scale(audio) for scale in self.scales]


# -- losses ----------------------------------------------------------------------------------------------------
def _check_scales(a: Sequence[object], b: Sequence[object]) -> None:
    if len(a) != len(b) or not a:
        raise ValueError(f"expected the same non-zero number of scales, got {len(a)} and {len(b)}")


def discriminator_hinge(real: Sequence[ScaleOutput], fake: Sequence[ScaleOutput]) -> dict[str, Tensor]:
    """Hinge loss of the discriminator on real crops and (detached) reconstructions.

    Returns:
        ``{"disc_real": mean relu(1 - D(real)), "disc_fake": mean relu(1 + D(fake))}``, each averaged over
        the scales; the discriminator minimises their sum.
    """
    _check_scales(real, fake)
    disc_real = torch.stack([torch.relu(1.0 - logits).mean() for logits, _ in real]).mean()
    disc_fake = torch.stack([torch.relu(1.0 + logits).mean() for logits, _ in fake]).mean()
    return {"disc_real": disc_real, "disc_fake": disc_fake}


def generator_hinge(fake: Sequence[ScaleOutput]) -> dict[str, Tensor]:
    """Hinge adversarial loss of the generator: ``{"adversarial_wave": -mean D(fake)}``, averaged over the scales."""
    if not fake:
        raise ValueError("expected at least one scale")
    return {"adversarial_wave": torch.stack([-logits.mean() for logits, _ in fake]).mean()}


def feature_matching(real: Sequence[ScaleOutput], fake: Sequence[ScaleOutput]) -> dict[str, Tensor]:
    """Feature matching: L1 between the fake and real feature maps, each over the real map's mean absolute value.

    The real maps are detached (they are targets). Returns ``{"feature_matching": the mean over all
    feature maps of all scales}``: 0 for identical inputs.
    """
    _check_scales(real, fake)
    terms: list[Tensor] = []
    for (_, real_maps), (_, fake_maps) in zip(real, fake, strict=True):
        if len(real_maps) != len(fake_maps):
            raise ValueError(f"expected the same feature maps, got {len(real_maps)} and {len(fake_maps)}")
        for r, f in zip(real_maps, fake_maps, strict=True):
            r = r.detach()
            terms.append((f - r).abs().mean() / r.abs().mean().clamp_min(FM_EPS))
    return {"feature_matching": torch.stack(terms).mean()}
