"""Training losses: multi-scale spectral reconstruction, descriptor matching, control augmentation.

SPEC §3: reconstruction alone does not teach control (a model can infer one descriptor from the
others and ignore it). Two terms make the controls count:

* :class:`DescriptorLoss` measures the descriptors of the *generated* audio (differentiable
  rms, flatness, bandwidth and centroid, librosa definitions) and compares them with the requested
  curves, in the log domain, over active frames;
* :func:`edit_curves` makes requests the corpus never contains (curves scaled by random factors
  in [0.5, 2]); for those items there is no target audio, so only the descriptor loss applies.

Every loss module returns a dict of named scalar terms plus ``"total"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import auraloss
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from neurorack.descriptors import DESCRIPTOR_NAMES, DescriptorConfig

#: FFT sizes of the training spectral loss: large for low drums, small for sharp attacks.
DEFAULT_FFT_SIZES: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64)
#: Descriptors the descriptor loss compares by default.
LOSS_DESCRIPTORS: tuple[str, ...] = ("rms", "flatness", "bandwidth", "centroid")
#: Descriptors the descriptor loss can compare: the defaults and a smooth roll-off (:func:`soft_rolloff`).
SUPPORTED_DESCRIPTORS: tuple[str, ...] = (*LOSS_DESCRIPTORS, "rolloff")
#: Width of the step of :func:`soft_rolloff`, as a share of the total magnitude.
ROLLOFF_SOFTNESS = 0.02
#: Descriptors :func:`edit_curves` scales.
EDITABLE_DESCRIPTORS: tuple[str, ...] = ("rms", "rolloff", "bandwidth", "centroid")
#: Floors added before the logarithm, per descriptor (units of the descriptor).
LOG_FLOORS: dict[str, float] = {"rms": 1e-5, "flatness": 1e-5, "bandwidth": 10.0, "centroid": 10.0, "rolloff": 10.0}


def soft_rolloff(mag: Tensor, freqs: Tensor, percent: float = 0.85, softness: float = ROLLOFF_SOFTNESS) -> Tensor:
    """A differentiable spectral roll-off, Hz: ``mag [..., bins]`` (linear magnitudes at ``freqs [bins]``) -> ``[...]``.

    librosa's roll-off is the first bin whose cumulative magnitude reaches ``percent`` of the total: a
    step with no gradient. Here each bin below counts through a sigmoid of how far its cumulative share
    is below ``percent`` (width ``softness``), so ``Σ Δf · σ((percent - share) / softness)`` moves
    smoothly with the magnitudes and equals the bin frequency when the shares are far from the threshold.
    """
    total = mag.sum(-1, keepdim=True) + 1e-8
    share = torch.cumsum(mag, dim=-1)[..., :-1] / total
    step = freqs[1:] - freqs[:-1]
    return (torch.sigmoid((percent - share) / softness) * step).sum(-1) + freqs[0]


class MultiScaleSpectralLoss(nn.Module):
    """Multi-resolution STFT loss (spectral convergence + L1 log magnitude, auraloss), eq. (2) of Neurorack.

    Args:
        fft_sizes: FFT sizes (samples); windows are as long as the FFT, hops ``hop_fraction`` of it.
        hop_fraction: hop as a fraction of the FFT size.

    ``forward(generated [B, T], target [B, T])`` -> ``{"total", "sc", "log_mag"}`` (scalars, averaged
    over resolutions; spectral convergence is computed over the whole batch as auraloss does).
    """

    def __init__(self, fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES, hop_fraction: float = 0.25) -> None:
        super().__init__()
        sizes = [int(n) for n in fft_sizes]
        if not sizes or any(n < 8 for n in sizes):
            raise ValueError(f"fft_sizes must be >= 8, got {sizes}")
        self.fft_sizes = sizes
        self.mrstft = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=sizes,
            hop_sizes=[max(1, int(n * hop_fraction)) for n in sizes],
            win_lengths=sizes,
            output="full",
        )

    def forward(self, generated: Tensor, target: Tensor) -> dict[str, Tensor]:
        if generated.shape != target.shape or generated.dim() != 2:
            raise ValueError(f"expected two [B, T] tensors, got {list(generated.shape)} and {list(target.shape)}")
        total, sc, log_mag, _, _ = self.mrstft(generated.unsqueeze(1), target.unsqueeze(1))
        return {"total": total, "sc": torch.stack(sc).mean(), "log_mag": torch.stack(log_mag).mean()}


class DescriptorLoss(nn.Module):
    """L1 distance of log descriptors of generated audio to target curves, over active frames.

    Descriptors are computed like :class:`neurorack.descriptors.Descriptors` (centred Hann frames,
    zero padding, librosa definitions) with small epsilons so gradients stay finite on silence.

    Args:
        config: descriptor analysis settings (sample rate, frame, hop) of the curves.
        names: descriptors compared (subset of :data:`LOSS_DESCRIPTORS`).
        active_db: frames whose target rms lies more than this below the item's loudest frame are ignored.

    ``forward(audio [B, F*hop], target [B, F, 7], mask [B, F] | None)`` -> ``{name: scalar, ..., "total"}``
    (``total`` is the sum over ``names``; each term is a mean absolute natural-log ratio).
    """

    window: Tensor
    freqs: Tensor

    def __init__(
        self, config: DescriptorConfig, names: Sequence[str] = LOSS_DESCRIPTORS, active_db: float = -50.0
    ) -> None:
        super().__init__()
        unknown = set(names) - set(SUPPORTED_DESCRIPTORS)
        if unknown:
            raise ValueError(f"descriptor loss supports {SUPPORTED_DESCRIPTORS}, got {sorted(unknown)}")
        self.config = config
        self.names = tuple(names)
        self.active_db = active_db
        n = config.frame_length
        self.register_buffer("window", torch.hann_window(n, periodic=True), persistent=False)
        self.register_buffer("freqs", torch.linspace(0, config.sample_rate / 2, n // 2 + 1), persistent=False)

    def curves(self, audio: Tensor) -> dict[str, Tensor]:
        """Differentiable descriptors of ``audio: [B, T]``: ``{name: [B, 1 + T // hop]}`` (linear units, Hz)."""
        n, hop = self.config.frame_length, self.config.hop_length
        frames = F.pad(audio, (n // 2, n // 2)).unfold(-1, n, hop)  # [B, F, n]
        spec = torch.fft.rfft(frames * self.window, dim=-1)
        power = spec.real.square() + spec.imag.square()
        mag = (power + 1e-12).sqrt()
        total = mag.sum(-1) + 1e-8
        centroid = (mag * self.freqs).sum(-1) / total
        spread = (mag * (self.freqs - centroid.unsqueeze(-1)).square()).sum(-1) / total
        clamped = power.clamp_min(1e-10)
        return {
            "rms": (frames.square().mean(-1) + 1e-12).sqrt(),
            "flatness": clamped.log().mean(-1).exp() / clamped.mean(-1),
            "bandwidth": (spread + 1e-6).sqrt(),
            "centroid": centroid,
            "rolloff": soft_rolloff(mag, self.freqs),
        }

    def active(self, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Bool ``[B, F]``: frames of ``target [B, F, 7]`` within ``active_db`` of each item's loudest, in ``mask``."""
        rms = target[..., 0]
        peak = rms.amax(dim=-1, keepdim=True)
        keep = (rms >= peak * 10 ** (self.active_db / 20)) & (rms > 1e-4)
        return keep if mask is None else keep & mask

    def forward(self, audio: Tensor, target: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        frames = target.shape[1]
        got = self.curves(audio)
        keep = self.active(target, mask).to(audio.dtype)
        count = keep.sum().clamp_min(1.0)
        out: dict[str, Tensor] = {}
        total = audio.new_zeros(())
        for name in self.names:
            col = DESCRIPTOR_NAMES.index(name)
            floor = LOG_FLOORS[name]
            diff = (torch.log(got[name][:, :frames] + floor) - torch.log(target[..., col].clamp_min(0) + floor)).abs()
            term = (diff * keep).sum() / count
            out[name] = term
            total = total + term
        out["total"] = total
        return out


def edit_curves(
    descriptors: Tensor,
    *,
    low: float = 0.5,
    high: float = 2.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Scale descriptor curves by random factors, for control training.

    Each item ``[F, 7]`` of ``descriptors: [B, F, 7]`` (physical units) gets one of three edits,
    with equal probability and factors log-uniform in ``[low, high]``:

    0. *brightness*: rolloff, bandwidth and centroid scaled by one common factor;
    1. *one descriptor*: one of :data:`EDITABLE_DESCRIPTORS` scaled alone;
    2. *independent*: each of :data:`EDITABLE_DESCRIPTORS` scaled by its own factor.

    Returns ``(edited [B, F, 7], factors [B, 7])`` (factors 1 for untouched columns); pass the
    edited curves through :func:`clamp_curves` to keep them physically possible.
    """
    batch = descriptors.shape[0]
    device = descriptors.device
    cols = torch.tensor([DESCRIPTOR_NAMES.index(n) for n in EDITABLE_DESCRIPTORS])
    bright = torch.tensor([DESCRIPTOR_NAMES.index(n) for n in ("rolloff", "bandwidth", "centroid")])
    span = math.log(high) - math.log(low)

    def draw(*shape: int) -> Tensor:
        return torch.exp(math.log(low) + span * torch.rand(*shape, generator=generator))

    modes = torch.randint(0, 3, (batch,), generator=generator)
    factors = torch.ones(batch, len(DESCRIPTOR_NAMES))
    common = draw(batch)
    single = torch.randint(0, len(cols), (batch,), generator=generator)
    independent = draw(batch, len(cols))
    one = draw(batch)
    for b in range(batch):
        mode = int(modes[b])
        if mode == 0:
            factors[b, bright] = common[b]
        elif mode == 1:
            factors[b, cols[int(single[b])]] = one[b]
        else:
            factors[b, cols] = independent[b]
    factors = factors.to(device=device, dtype=descriptors.dtype)
    return descriptors * factors.unsqueeze(1), factors


def clamp_curves(descriptors: Tensor, sample_rate: int) -> Tensor:
    """Keep edited curves physically possible: rms <= 1, flatness <= 1, Hz values <= 0.45 × ``sample_rate``."""
    out = descriptors.clone()
    out[..., 0] = out[..., 0].clamp(0.0, 1.0)
    out[..., 3] = out[..., 3].clamp(0.0, 1.0)
    for name in ("rolloff", "bandwidth", "centroid"):
        col = DESCRIPTOR_NAMES.index(name)
        out[..., col] = out[..., col].clamp(0.0, 0.45 * sample_rate)
    return out


class LogPowerSpectralLoss(nn.Module):
    """SING's spectral loss (Défossez et al. 2018, eq. 3): mean ``|log(ε + |STFT(ŷ)|²) − log(ε + |STFT(y)|²)|``.

    Phase-free, so a note can be generated at once without matching the waveform; ``ε = 1`` keeps very quiet
    bins from dominating. ``generated, target: Tensor[B, T]`` (same length) -> ``{"spectral", "total"}``, plus
    ``"magnitude"`` when ``magnitude_weight > 0``: the mean L1 distance of the linear magnitudes, whose gradient
    keeps its size near silence (the log-power term's shrinks with the output: on quiet notes a fresh model
    collapses to silence and stays there; see docs/sing.md).

    Args:
        n_fft, hop_length: the STFT (Hann window of ``n_fft``; paper: 1024, 256).
        epsilon: the floor inside the logarithm (paper: 1).
        magnitude_weight: weight of the linear-magnitude term in ``total`` (paper: 0).
    """

    window: Tensor

    def __init__(
        self, n_fft: int = 1024, hop_length: int = 256, epsilon: float = 1.0, magnitude_weight: float = 0.0
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.epsilon = epsilon
        self.magnitude_weight = magnitude_weight
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def power(self, audio: Tensor) -> Tensor:
        """``audio: Tensor[B, T]`` -> ``|STFT|²``, ``Tensor[B, n_fft / 2 + 1, frames]``."""
        spec = torch.stft(
            audio,
            self.n_fft,
            self.hop_length,
            window=self.window.to(audio),
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        return spec.real.square() + spec.imag.square()

    def log_power(self, audio: Tensor) -> Tensor:
        """``audio: Tensor[B, T]`` -> ``log(ε + |STFT|²)``, ``Tensor[B, n_fft / 2 + 1, frames]``."""
        return torch.log(self.epsilon + self.power(audio))

    def forward(self, generated: Tensor, target: Tensor) -> dict[str, Tensor]:
        if generated.shape != target.shape:
            raise ValueError(f"generated {list(generated.shape)} and target {list(target.shape)} differ")
        p_gen, p_tgt = self.power(generated), self.power(target)
        spectral = (torch.log(self.epsilon + p_gen) - torch.log(self.epsilon + p_tgt)).abs().mean()
        if not self.magnitude_weight:
            return {"spectral": spectral, "total": spectral}
        # sqrt of the power, kept differentiable at exact zeros
        magnitude = ((p_gen + 1e-12).sqrt() - (p_tgt + 1e-12).sqrt()).abs().mean()
        return {"spectral": spectral, "magnitude": magnitude, "total": spectral + self.magnitude_weight * magnitude}
