"""Faithful harmonic-plus-noise neural source-filter model with trainable sinc filters (SPEC §3).

This is the reference model of the Neurorack module: **hn-sinc-NSF** of Wang & Yamagishi (2019),
"Neural harmonic-plus-noise waveform model with trainable maximum voice frequency for text-to-speech
synthesis" (arXiv:1908.10256, NII ``project-NN-pytorch-scripts``, ``project/01-nsf/hn-sinc-nsf-9``), as
adapted by Devis & Esling (2021), "Neurorack: deep audio learning in hardware synthesizers" (§3.1): the
BLSTM of the condition module is replaced by three convolutions and the input is the seven audio
descriptors (:data:`neurorack.descriptors.DESCRIPTOR_NAMES`) instead of mel-spectrogram + F0.

Signal flow (``B`` batch, ``F`` frames, ``N = F * hop_length`` samples, ``C = hidden_dim``)::

    descriptors [B,F,7] --z-norm--> 3 x (conv k=3, tanh) --> h [B,C,F]
        h[:, :C-1] ++ norm. f0 --nearest x hop, 2 x moving average (hop)--> context [B,N,C]
        h[:, C-1]  --same, *0.2 + 0.4*uv + 0.3, moving average (4 hop)--> cut-off [B,N] (x Nyquist)
    f0 (Hz) * uv --> sines of f0 * (1 .. harmonic_num+1), amp 0.1, + noise --> Linear+tanh --> e_h [B,N]
    e_h --> n_blocks neural filter blocks (convs_per_block dilated causal convs) --> low-pass sinc(cut-off)
    Gaussian noise * sine_amp/3 --> 1 neural filter block (noise_convs convs) --> high-pass sinc(cut-off)
    output = low-passed harmonic branch + high-passed noise branch                        [B,N]

Everything follows the original code; where its behaviour is implicit it is documented here:

* **Normalisation.** The original z-normalises the *raw* descriptors with training statistics. We
  z-normalise :func:`neurorack.models.base.to_feature_scale` descriptors instead (log for rms, roll-off,
  flatness, bandwidth, centroid and f0, stored in ``desc_mean``/``desc_std``): these quantities span
  several decades, the log keeps the z-scores of quiet or dark frames away from a single point, and it
  is the convention every model of this package shares. The last context channel is the normalised f0
  (log-f0 here, raw f0 in the original).
* **Voiced / unvoiced.** NII's F0 is 0 in unvoiced frames (``voiced_threshold = 0``). YIN never returns
  0, so Neurorack's model treated every frame as voiced. We decide it from the descriptors: a frame is
  voiced iff ``f0_min <= f0 <= f0_max`` (YIN's search range, which excludes the out-of-range value YIN
  reports for silence) and ``flatness < voiced_max_flatness`` (tone-like spectrum; the default 0.1,
  i.e. -10 dB, separates white/pink noise from tones and pitched drums). Unvoiced frames get f0 = 0,
  as in the original: no sine, a louder noise (``sine_amp / 3``) in the harmonic source, and a cut-off
  0.4 x Nyquist lower. ``voiced_max_flatness > 1`` and a wide f0 range reproduce Neurorack.
* **Noise.** All randomness comes from the ``noise`` argument (standard normal, ``[B, N]``) so that a
  fixed noise gives a fixed output: the noise branch uses it as is (times ``sine_amp / 3``); the
  per-harmonic additive noise of the sine source enters the model only through the merging Linear layer,
  where ``w . n`` with ``n ~ N(0, s^2 I)`` has the law of ``||w|| s z``, ``z ~ N(0, 1)``, so it is drawn
  as one stream, the time-reversed ``noise``; the random initial phases of the overtones are
  ``Phi(noise[:, 1:H+1])`` (normal CDF, hence uniform).
* **Speed** (same arithmetic, different evaluation order): the nearest upsampling and its two moving
  averages are one polyphase matrix product at frame rate (exact, including the replicate padding); the
  cut-off's moving average is a running-sum difference instead of a 4·hop-tap convolution; the sine
  phases are one float64 cumulative sum for the fundamental, multiplied by the harmonic number; the
  dilated convolutions are three matrix products on time-major data, evaluated in cache-sized
  chunks in place when no gradient is needed; the time-varying FIR is an unfold and a weighted sum.
* **Initialisation:** Xavier-uniform weights and zero biases (Neurorack §3.1.1).
* **Delay:** the windowed-sinc filters are causal, as in the original, so the output lags the
  descriptor curves by ``(sinc_order - 1) // 2`` samples (15); :attr:`latency` stays 0 (offline model).

Parameter count at the default configuration: 708,594 (the original's trainable parameters, ≈0.71 M;
its fixed moving-average weights and the block scale are not parameters here).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from neurorack.descriptors import DESCRIPTOR_NAMES
from neurorack.models.base import ImpactModel
from neurorack.models.registry import register_model

F0_COLUMN = DESCRIPTOR_NAMES.index("f0")
FLATNESS_COLUMN = DESCRIPTOR_NAMES.index("flatness")

#: Cut-off (fraction of Nyquist) = ``CUTOFF_HIDDEN_GAIN * hidden + CUTOFF_VOICED_GAIN * uv + CUTOFF_OFFSET``:
#: unvoiced (0.1, 0.5), voiced (0.5, 0.9) for ``hidden`` in (-1, 1) (NII ``get_cut_f``).
CUTOFF_HIDDEN_GAIN = 0.2
CUTOFF_VOICED_GAIN = 0.4
CUTOFF_OFFSET = 0.3

#: Time steps per chunk of the in-place inference path of the neural filter blocks (fits the L2 cache).
INFERENCE_CHUNK = 1024


# ------------------------------------------------------------------------------------------------
# DSP building blocks
# ------------------------------------------------------------------------------------------------
def _box(window: int) -> tuple[np.ndarray, int]:
    """Centred moving-average kernel of ``window`` taps and the index of its first tap.

    Matches NII ``MovingAverage`` (non-causal ``Conv1dKeepLength``): ``y[n]`` is the mean of
    ``x[n - (window-1)//2 .. n + window - 1 - (window-1)//2]``; as a convolution ``y = g * x`` the
    kernel ``g`` lives on ``[-(window - 1 - (window-1)//2), (window-1)//2]``.
    """
    pad_le = (window - 1) // 2
    pad_ri = window - 1 - pad_le
    return np.full(window, 1.0 / window), -pad_ri


class SmoothUpsampler(nn.Module):
    """Nearest-neighbour upsampling by ``hop`` followed by centred moving averages, as one matrix product.

    Equivalent to NII ``UpSampleLayer`` (``nn.Upsample`` then ``MovingAverage`` layers with replicate
    padding): the composite kernel ``K = ones(hop) * g_1 * g_2`` is split in ``hop`` phases, and output
    sample ``q * hop + p`` is ``sum_j x[q - j] K[j * hop + p]`` over the few frames the kernel reaches.
    Replicating the edge frames reproduces the original's sample-level replicate padding exactly for one
    moving average of any length, or two of at most ``hop`` samples each (NII: two of ``hop``); longer
    chains would see smoothed edge samples the frame extension does not, so they are refused.

    Args:
        hop: upsampling factor (samples per frame).
        windows: moving-average lengths in samples, applied in order (empty: plain nearest upsampling).

    Raises:
        ValueError: non-positive sizes, or a chain of windows the frame-rate form cannot reproduce.

    ``forward(x: Tensor[B, C, F]) -> Tensor[B, C, F * hop]``.
    """

    phases: Tensor

    def __init__(self, hop: int, windows: tuple[int, ...] = ()) -> None:
        super().__init__()
        if hop < 1 or any(w < 1 for w in windows):
            raise ValueError(f"hop and windows must be positive, got hop={hop}, windows={windows}")
        if len(windows) > 2 or (len(windows) == 2 and max(windows) > hop):
            raise ValueError(f"windows {windows} are not exact at frame rate for hop {hop}")
        kernel, start = np.ones(hop), 0
        for window in windows:
            box, box_start = _box(window)
            kernel = np.convolve(kernel, box)
            start += box_start
        end = start + len(kernel) - 1
        self.hop = hop
        self.j_min, self.j_max = start // hop, end // hop  # frame offsets the kernel reaches
        taps = self.j_max - self.j_min + 1
        matrix = np.zeros((taps, hop))
        for i in range(taps):  # window slot i holds frame q - (j_max - i)
            j = self.j_max - i
            for p in range(hop):
                m = j * hop + p - start
                if 0 <= m < len(kernel):
                    matrix[i, p] = kernel[m]
        self.register_buffer("phases", torch.from_numpy(matrix).float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, frames = x.shape
        padded = F.pad(x, (self.j_max, -self.j_min), mode="replicate") if self.phases.shape[0] > 1 else x
        windows = padded.unfold(-1, self.phases.shape[0], 1)  # [B, C, F, J]
        out = windows @ self.phases.to(x.dtype)  # [B, C, F, hop]
        return out.reshape(batch, channels, frames * self.hop)


def moving_average(x: Tensor, window: int) -> Tensor:
    """Centred moving average with replicate padding (NII ``MovingAverage``), by cumulative sums.

    ``x: Tensor[B, N] -> Tensor[B, N]``; ``y[n]`` is the mean of
    ``x[n - (window-1)//2 .. n + window - 1 - (window-1)//2]``, edge samples repeated beyond the ends.
    The running sum is accumulated in float64 so long windows stay exact to float32 precision.
    """
    pad_le = (window - 1) // 2
    padded = F.pad(x.unsqueeze(1), (pad_le, window - 1 - pad_le), mode="replicate").squeeze(1)
    running = F.pad(torch.cumsum(padded.double(), dim=-1), (1, 0))
    return ((running[..., window:] - running[..., :-window]) / window).to(x.dtype)


def sinc_filter_coefficients(cut_f: Tensor, order: int) -> tuple[Tensor, Tensor]:
    """Hamming-windowed sinc low-pass and high-pass FIR coefficients for each cut-off (NII ``SincFilter``).

    Args:
        cut_f: ``Tensor[...]`` cut-off frequencies as a fraction of Nyquist (0..1).
        order: number of taps; made odd (``2 * ((order - 1) // 2) + 1``).

    Returns:
        ``(lp, hp)``, each ``Tensor[..., taps]`` for tap index ``n = -(taps-1)/2 .. (taps-1)/2``:
        ``lp ∝ cut_f sinc(cut_f n) w(n)`` normalised to unit gain at DC and
        ``hp ∝ (sinc(n) - cut_f sinc(cut_f n)) w(n)`` normalised to unit gain at Nyquist, with the
        window ``w(n) = 0.54 + 0.46 cos(2 pi n / taps)``.
    """
    half = (order - 1) // 2
    taps = 2 * half + 1
    n = torch.arange(-half, half + 1, device=cut_f.device, dtype=cut_f.dtype)
    window = 0.54 + 0.46 * torch.cos(2 * math.pi * n / taps)
    cut = cut_f.unsqueeze(-1)
    lowpass = cut * torch.sinc(cut * n) * window
    # sinc(n) * w(n) is a unit impulse at n = 0 (w(0) = 1)
    highpass = (n == 0).to(cut_f.dtype) - lowpass
    alternating = 1.0 - 2.0 * (n.abs() % 2)  # (-1)^n
    lowpass = lowpass / lowpass.sum(-1, keepdim=True)
    highpass = highpass / (highpass * alternating).sum(-1, keepdim=True)
    return lowpass, highpass


def time_varying_fir(signal: Tensor, coef: Tensor) -> Tensor:
    """Causal time-varying FIR filter (NII ``TimeVarFIRFilter``).

    ``y[b, n] = sum_k signal[b, n - k] * coef[b, n, k]`` with zeros before the start.

    Args:
        signal: ``Tensor[B, N]``.
        coef: ``Tensor[B, N, K]``, one filter per output sample.

    Returns:
        ``Tensor[B, N]``.
    """
    taps = coef.shape[-1]
    windows = F.pad(signal, (taps - 1, 0)).unfold(-1, taps, 1)  # windows[n, i] = signal[n - (taps-1-i)]
    return (windows * coef.flip(-1)).sum(-1)


# ------------------------------------------------------------------------------------------------
# Network modules (attribute names follow the original so its weights map one to one)
# ------------------------------------------------------------------------------------------------
class NeuralFilterBlock(nn.Module):
    """One NSF neural filter block (Wang et al. 2019; NII ``NeuralFilterBlock``).

    ``signal -> tanh(Linear(1, C)) -> [h = h + tanh(dilated causal conv(h)) + context] x L -> * scale
    -> tanh(Linear(C, C/4)) -> tanh(Linear(C/4, 1)) -> + signal``; dilations ``1, 2, ..., 2^(L-1)``,
    no biases.

    Args:
        hidden: channels ``C`` (also the context dimension).
        kernel_size: taps of the dilated convolutions.
        n_convs: number of dilated convolutions ``L``.
        scale: fixed scale before the output layers (0.1, "legacy CURRENNT configuration").

    ``forward(signal: Tensor[B, N], context: Tensor[B, N, C]) -> Tensor[B, N]``.
    """

    def __init__(self, hidden: int, kernel_size: int = 3, n_convs: int = 10, scale: float = 0.1) -> None:
        super().__init__()
        if hidden < 4:
            raise ValueError(f"hidden must be >= 4, got {hidden}")
        self.hidden = hidden
        self.kernel_size = kernel_size
        self.scale = scale
        self.dilations = [2**i for i in range(n_convs)]
        self.l_ff_1 = nn.Linear(1, hidden, bias=False)
        self.l_convs = nn.ModuleList(
            nn.Conv1d(hidden, hidden, kernel_size, dilation=d, bias=False) for d in self.dilations
        )
        self.l_ff_2 = nn.Linear(hidden, hidden // 4, bias=False)
        self.l_ff_3 = nn.Linear(hidden // 4, 1, bias=False)

    @property
    def receptive_field(self) -> int:
        """Samples of past input each output sample depends on (plus itself)."""
        return (self.kernel_size - 1) * sum(self.dilations) + 1

    def _tap_weights(self) -> list[list[Tensor]]:
        """Per convolution, per tap ``k``, the ``[C_in, C_out]`` matrix applied to ``h[n - (K-1-k) d]``."""
        weights = [conv.weight for conv in self.l_convs if isinstance(conv, nn.Conv1d)]
        return [[w[:, :, k].t() for k in range(self.kernel_size)] for w in weights]

    def forward(self, signal: Tensor, context: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            return self._forward_autograd(signal, context)
        return self._forward_inplace(signal, context)

    def _forward_autograd(self, signal: Tensor, context: Tensor) -> Tensor:
        n = signal.shape[-1]
        hidden = torch.tanh(signal.unsqueeze(-1) * self.l_ff_1.weight[:, 0])  # [B, N, C]
        for dilation, taps in zip(self.dilations, self._tap_weights(), strict=True):
            reach = (self.kernel_size - 1) * dilation
            padded = F.pad(hidden, (0, 0, reach, 0))
            conv = padded[:, :n] @ taps[0]
            for k in range(1, self.kernel_size):
                start = k * dilation
                conv = torch.baddbmm(conv, padded[:, start : start + n], taps[k].expand(hidden.shape[0], -1, -1))
            hidden = torch.add(hidden, context).add_(torch.tanh(conv))
        hidden = torch.tanh((hidden * self.scale) @ self.l_ff_2.weight.t())
        hidden = torch.tanh(hidden @ self.l_ff_3.weight.t())
        return hidden.squeeze(-1) + signal

    @torch.no_grad()
    def _forward_inplace(self, signal: Tensor, context: Tensor) -> Tensor:
        """Same arithmetic without autograd: zero-margined ping-pong buffers, chunk by chunk."""
        n = signal.shape[-1]
        margin = (self.kernel_size - 1) * self.dilations[-1] if self.dilations else 0
        taps_all = [[w.contiguous() for w in taps] for taps in self._tap_weights()]
        w_in = self.l_ff_1.weight[:, 0]
        w2, w3 = (self.l_ff_2.weight.t() * self.scale).contiguous(), self.l_ff_3.weight.t().contiguous()
        out = torch.empty_like(signal)
        step = INFERENCE_CHUNK
        for b in range(signal.shape[0]):
            src = signal.new_zeros(margin + n, self.hidden)
            dst = signal.new_zeros(margin + n, self.hidden)
            torch.tanh(torch.outer(signal[b], w_in), out=src[margin:])
            ctx = context[b]
            conv = signal.new_empty(min(step, n), self.hidden)
            for dilation, taps in zip(self.dilations, taps_all, strict=True):
                for s in range(0, n, step):
                    e = min(n, s + step)
                    acc = conv[: e - s]
                    lag = (self.kernel_size - 1) * dilation
                    torch.mm(src[margin + s - lag : margin + e - lag], taps[0], out=acc)
                    for k in range(1, self.kernel_size):
                        lag = (self.kernel_size - 1 - k) * dilation
                        acc.addmm_(src[margin + s - lag : margin + e - lag], taps[k])
                    acc.tanh_()
                    torch.add(src[margin + s : margin + e], ctx[s:e], out=dst[margin + s : margin + e]).add_(acc)
                src, dst = dst, src
            hidden = src[margin:]
            for s in range(0, n, step):
                e = min(n, s + step)
                small = torch.tanh(hidden[s:e] @ w2)
                out[b, s:e] = torch.tanh(small @ w3).squeeze(-1) + signal[b, s:e]
        return out


class CondModuleHnSincNSF(nn.Module):
    """Condition module: 3 non-causal convolutions (k=3, tanh), then upsampling to the sample rate.

    Args:
        input_dim: descriptor count (7).
        hidden: output channels ``C``.
        hop: samples per frame.
        kernel_size: convolution taps (non-causal, zero padding).
        n_layers: number of convolutions.
        cutoff_smooth_frames: moving-average length of the cut-off, in frames (NII: 4).

    ``forward(features: Tensor[B, F, input_dim] (z-normalised), uv: Tensor[B, F] (0/1))`` ->
    ``(context: Tensor[B, N, C], cut_f: Tensor[B, N])``: context = smoothed upsampled hidden features
    with the last channel replaced by the smoothed normalised f0 (last input column); ``cut_f`` the
    smoothed cut-off as a fraction of Nyquist.
    """

    def __init__(
        self,
        input_dim: int,
        hidden: int,
        hop: int,
        kernel_size: int = 3,
        n_layers: int = 3,
        cutoff_smooth_frames: int = 4,
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.kernel_size = kernel_size
        sizes = [input_dim] + [hidden] * n_layers
        self.l_conv1ds = nn.ModuleList(nn.Conv1d(i, o, kernel_size) for i, o in itertools.pairwise(sizes))
        self.cut_window = cutoff_smooth_frames * hop
        self.l_upsamp = SmoothUpsampler(hop, (hop, hop))
        self.l_upsamp_uv = SmoothUpsampler(hop)

    def forward(self, features: Tensor, uv: Tensor) -> tuple[Tensor, Tensor]:
        x = features.transpose(1, 2)  # [B, 7, F]
        pad_le = (self.kernel_size - 1) // 2
        pad_ri = self.kernel_size - 1 - pad_le
        for conv in self.l_conv1ds:
            x = torch.tanh(conv(F.pad(x, (pad_le, pad_ri))))
        c = self.hidden
        upsampled = self.l_upsamp(torch.cat([x, features[:, :, -1:].transpose(1, 2)], dim=1))  # [B, C+1, N]
        context = torch.cat([upsampled[:, : c - 1], upsampled[:, c:]], dim=1).transpose(1, 2).contiguous()
        voiced = self.l_upsamp_uv(uv.unsqueeze(1)).squeeze(1)
        cut_f = CUTOFF_HIDDEN_GAIN * upsampled[:, c - 1] + CUTOFF_VOICED_GAIN * voiced + CUTOFF_OFFSET
        return context, moving_average(cut_f, self.cut_window)


class SourceModuleHnNSF(nn.Module):
    """Harmonic source: sines at f0 and its overtones, additive noise, merged by Linear + tanh.

    NII ``SineGen`` + ``SourceModuleHnNSF``: ``harmonic_num + 1`` sines at ``f0 * (1 .. harmonic_num+1)``
    of amplitude ``sine_amp`` (the fundamental starts at phase 0, overtones at random phases), zero in
    unvoiced samples, plus Gaussian noise of std ``noise_std`` (voiced) or ``sine_amp / 3`` (unvoiced),
    then ``tanh(Linear(harmonic_num + 1, 1))``. Overtones above Nyquist alias, as in the original.

    Args:
        sample_rate: Hz.
        harmonic_num: overtones above the fundamental.
        sine_amp: amplitude of each sine.
        noise_std: additive noise std in voiced samples.
    """

    def __init__(
        self, sample_rate: int, harmonic_num: int = 16, sine_amp: float = 0.1, noise_std: float = 0.003
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.harmonic_num = harmonic_num
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.l_linear = nn.Linear(harmonic_num + 1, 1)

    @torch.no_grad()
    def sines(self, f0: Tensor, uv: Tensor, initial_phase: Tensor) -> Tensor:
        """Voiced sine waveforms.

        Args:
            f0: ``Tensor[B, N]`` fundamental in Hz (0 where unvoiced).
            uv: ``Tensor[B, N]`` 1 voiced, 0 unvoiced.
            initial_phase: ``Tensor[B, harmonic_num + 1]`` in cycles (0..1).

        Returns:
            ``Tensor[B, N, harmonic_num + 1]``: ``sine_amp * sin(2 pi phase_k) * uv``; the phase of
            harmonic ``k`` (1-based) at sample ``n`` is ``k * sum_{i<=n} f0[i] / sr + initial_phase``.
        """
        cycles = torch.cumsum(f0.double() / self.sample_rate, dim=-1)
        cycles = cycles - torch.floor(cycles)
        numbers = torch.arange(1, self.harmonic_num + 2, device=f0.device, dtype=torch.float64)
        phase = cycles.unsqueeze(-1) * numbers + initial_phase.double().unsqueeze(1)
        phase = (phase - torch.floor(phase)).to(f0.dtype)
        return torch.sin(2 * math.pi * phase) * (self.sine_amp * uv.unsqueeze(-1))

    def forward(self, f0: Tensor, uv: Tensor, noise: Tensor) -> Tensor:
        """``f0, uv, noise: Tensor[B, N]`` (Hz, 0/1, standard normal) -> excitation ``Tensor[B, N]`` in (-1, 1).

        The per-harmonic additive noise is folded through the Linear layer (see the module docstring):
        ``w . n = ||w|| * std * z`` with ``z`` the time-reversed ``noise``.
        """
        n = noise.shape[-1]
        slots = torch.arange(1, self.harmonic_num + 1, device=noise.device) % n
        initial_phase = F.pad(torch.special.ndtr(noise[:, slots]), (1, 0))  # fundamental starts at 0
        sines = self.sines(f0, uv, initial_phase)
        noise_amp = uv * self.noise_std + (1 - uv) * (self.sine_amp / 3)
        weight = self.l_linear.weight[0]
        merged = sines @ weight + self.l_linear.bias + noise_amp * weight.norm() * noise.flip(-1)
        return torch.tanh(merged)


class FilterModuleHnSincNSF(nn.Module):
    """Neural filters and time-varying sinc filters of both branches (NII ``FilterModuleHnSincNSF``).

    Args:
        hidden: channels of the filter blocks.
        sinc_order: taps of the windowed-sinc filters (odd).
        n_blocks: filter blocks of the harmonic branch.
        kernel_size: dilated-convolution taps.
        convs_per_block: dilated convolutions per harmonic block.
        noise_convs: dilated convolutions of the single noise block.
        block_scale: fixed scale inside each block.

    ``forward(harmonic, noise: Tensor[B, N], context: Tensor[B, N, C], cut_f: Tensor[B, N]) -> Tensor[B, N]``.
    """

    def __init__(
        self,
        hidden: int,
        sinc_order: int = 31,
        n_blocks: int = 5,
        kernel_size: int = 3,
        convs_per_block: int = 10,
        noise_convs: int = 5,
        block_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.sinc_order = sinc_order
        self.l_har_blocks = nn.ModuleList(
            NeuralFilterBlock(hidden, kernel_size, convs_per_block, block_scale) for _ in range(n_blocks)
        )
        self.l_noi_blocks = nn.ModuleList([NeuralFilterBlock(hidden, kernel_size, noise_convs, block_scale)])

    def forward(self, harmonic: Tensor, noise: Tensor, context: Tensor, cut_f: Tensor) -> Tensor:
        for block in self.l_har_blocks:
            harmonic = block(harmonic, context)
        for block in self.l_noi_blocks:
            noise = block(noise, context)
        lowpass, highpass = sinc_filter_coefficients(cut_f, self.sinc_order)
        return time_varying_fir(harmonic, lowpass) + time_varying_fir(noise, highpass)


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------
@register_model(
    "sinc-nsf",
    tiny={
        "sample_rate": 16_000,
        "hop_length": 64,
        "frame_length": 512,
        "hidden_dim": 8,
        "n_blocks": 1,
        "convs_per_block": 2,
        "noise_convs": 2,
        "harmonic_num": 4,
        "sinc_order": 7,
    },
)
class SincNSF(ImpactModel):
    """hn-sinc-NSF for impacts (Wang & Yamagishi 2019; Devis & Esling 2021 §3.1). See the module docstring.

    ``forward(descriptors: Tensor[B, F, 7] (physical units), noise: Tensor[B, F*hop] | None)``
    -> ``Tensor[B, F * hop_length]`` audio at ``sample_rate``.

    Args:
        sample_rate: output rate in Hz (the Neurorack checkpoint: 22,050).
        hop_length: samples per descriptor frame (Neurorack: 512).
        frame_length: descriptor analysis frame (metadata).
        hidden_dim: channels of the condition module and filter blocks (64).
        cond_layers: convolutions of the condition module (3).
        cond_kernel: their kernel size (3, non-causal).
        n_blocks: neural filter blocks of the harmonic branch (5).
        convs_per_block: dilated causal convolutions per harmonic block (10: dilations 1 .. 512).
        noise_convs: dilated convolutions of the noise-branch block (5, NII ``conv_num_in_block // 2``).
        kernel_size: dilated-convolution kernel size (3).
        block_scale: fixed scale inside the blocks (0.1).
        harmonic_num: overtones above f0 in the sine source (16: 17 sines).
        sine_amp: amplitude of each sine (0.1).
        noise_std: additive noise std of voiced source samples (0.003).
        sinc_order: taps of the windowed-sinc filters (31).
        cutoff_smooth_frames: moving-average length of the cut-off in frames (4).
        f0_min: lowest voiced f0 in Hz (50, YIN's range).
        f0_max: highest voiced f0 in Hz (5000).
        voiced_max_flatness: frames with spectral flatness at or above this are unvoiced (0.1).
    """

    def __init__(
        self,
        *,
        sample_rate: int = 44_100,
        hop_length: int = 512,
        frame_length: int = 2048,
        hidden_dim: int = 64,
        cond_layers: int = 3,
        cond_kernel: int = 3,
        n_blocks: int = 5,
        convs_per_block: int = 10,
        noise_convs: int = 5,
        kernel_size: int = 3,
        block_scale: float = 0.1,
        harmonic_num: int = 16,
        sine_amp: float = 0.1,
        noise_std: float = 0.003,
        sinc_order: int = 31,
        cutoff_smooth_frames: int = 4,
        f0_min: float = 50.0,
        f0_max: float = 5000.0,
        voiced_max_flatness: float = 0.1,
    ) -> None:
        super().__init__(sample_rate=sample_rate, hop_length=hop_length, frame_length=frame_length)
        self.config.update(
            hidden_dim=hidden_dim,
            cond_layers=cond_layers,
            cond_kernel=cond_kernel,
            n_blocks=n_blocks,
            convs_per_block=convs_per_block,
            noise_convs=noise_convs,
            kernel_size=kernel_size,
            block_scale=block_scale,
            harmonic_num=harmonic_num,
            sine_amp=sine_amp,
            noise_std=noise_std,
            sinc_order=sinc_order,
            cutoff_smooth_frames=cutoff_smooth_frames,
            f0_min=f0_min,
            f0_max=f0_max,
            voiced_max_flatness=voiced_max_flatness,
        )
        self.sine_amp = sine_amp
        self.f0_min = f0_min
        self.f0_max = f0_max
        self.voiced_max_flatness = voiced_max_flatness
        self.m_cond = CondModuleHnSincNSF(
            len(DESCRIPTOR_NAMES), hidden_dim, hop_length, cond_kernel, cond_layers, cutoff_smooth_frames
        )
        self.m_source = SourceModuleHnNSF(sample_rate, harmonic_num, sine_amp, noise_std)
        self.m_filter = FilterModuleHnSincNSF(
            hidden_dim, sinc_order, n_blocks, kernel_size, convs_per_block, noise_convs, block_scale
        )
        self.l_upsamp_nearest = SmoothUpsampler(hop_length)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights, zero biases (Neurorack §3.1.1)."""
        for name, param in self.named_parameters():
            if param.dim() >= 2:
                nn.init.xavier_uniform_(param)
            elif name.endswith("bias"):
                nn.init.zeros_(param)

    def voicing(self, descriptors: Tensor) -> Tensor:
        """``descriptors: Tensor[B, F, 7]`` (physical units) -> ``Tensor[B, F]``, 1.0 voiced, 0.0 unvoiced."""
        f0 = descriptors[..., F0_COLUMN]
        flatness = descriptors[..., FLATNESS_COLUMN]
        voiced = (f0 >= self.f0_min) & (f0 <= self.f0_max) & (flatness < self.voiced_max_flatness)
        return voiced.to(descriptors.dtype)

    def synthesize(self, descriptors: Tensor, noise: Tensor) -> Tensor:
        """Physical-unit curves ``[B, F, 7]`` and standard normal noise ``[B, F*hop]`` -> audio ``[B, F*hop]``."""
        expected = (descriptors.shape[0], descriptors.shape[1] * self.hop_length)
        if tuple(noise.shape) != expected:
            raise ValueError(f"noise must be {list(expected)}, got {list(noise.shape)}")
        uv_frames = self.voicing(descriptors)
        features = self.normalize(descriptors)
        context, cut_f = self.m_cond(features, uv_frames)
        frame_rate = torch.stack([descriptors[..., F0_COLUMN] * uv_frames, uv_frames], dim=1)  # [B, 2, F]
        f0, uv = self.l_upsamp_nearest(frame_rate).unbind(1)
        harmonic = self.m_source(f0, uv, noise)
        noise_source = noise * (self.sine_amp / 3)
        return self.m_filter(harmonic, noise_source, context, cut_f)
