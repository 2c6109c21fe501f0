"""The seven audio descriptors of Neurorack (Devis & Esling 2021, §3.1.2, Table 1).

One implementation, in torch, batched and differentiable where the definition
allows (rms, rolloff aside, every spectral descriptor): :class:`Descriptors`.
:func:`describe` wraps it for NumPy callers. Definitions and units follow
librosa 0.11 exactly (``librosa.feature.rms``, ``zero_crossing_rate``,
``spectral_rolloff``, ``spectral_flatness``, ``spectral_bandwidth``,
``spectral_centroid`` and ``librosa.yin``) with librosa's defaults: Hann window,
centred frames with zero padding (edge padding for zcr), roll-off 0.85,
flatness on the power spectrum with ``amin=1e-10``, YIN trough threshold 0.1.

Columns, always in this order (:data:`DESCRIPTOR_NAMES`):

====== ========== ============================================
column name       unit
====== ========== ============================================
0      rms        linear amplitude (full scale = 1)
1      zcr        crossings per sample (0..1)
2      rolloff    Hz (85 % of the magnitude below)
3      flatness   0..1 (power spectrum)
4      bandwidth  Hz (2nd-order spread around the centroid)
5      centroid   Hz
6      f0         Hz (YIN, fmin 50, fmax 5000)
====== ========== ============================================

Every value is finite for any finite input, including silence, DC, clipping
and input shorter than a frame (librosa's conventions: silence has centroid,
bandwidth and roll-off 0, flatness 1, and YIN's f0 of a flat difference
function, ``sr / floor(sr / fmax)``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from neurorack.audio_io import check_finite
from neurorack.errors import AudioError

DESCRIPTOR_NAMES: tuple[str, ...] = ("rms", "zcr", "rolloff", "flatness", "bandwidth", "centroid", "f0")
N_DESCRIPTORS = len(DESCRIPTOR_NAMES)

#: Perceptual control each descriptor stands for (SPEC §2).
PERCEPTUAL_NAMES: dict[str, str] = {
    "rms": "loudness",
    "zcr": "percussivity",
    "rolloff": "noisiness",
    "flatness": "tonality",
    "bandwidth": "richness",
    "centroid": "brightness",
    "f0": "pitch",
}

_FLOAT32_TINY = float(np.finfo(np.float32).tiny)
_FLOAT64_TINY = float(np.finfo(np.float64).tiny)


def descriptor_index(name: str) -> int:
    """Column of a descriptor, by name (``"centroid"``) or perceptual alias (``"brightness"``)."""
    key = name.strip().lower()
    for idx, (dname) in enumerate(DESCRIPTOR_NAMES):
        if key in (dname, PERCEPTUAL_NAMES[dname]):
            return idx
    known = ", ".join(f"{n} ({PERCEPTUAL_NAMES[n]})" for n in DESCRIPTOR_NAMES)
    raise ValueError(f"unknown descriptor {name!r}; known: {known}")


@dataclass(frozen=True)
class DescriptorConfig:
    """Analysis parameters, stored with every corpus and model.

    Attributes:
        sample_rate: Hz.
        frame_length: samples per analysis frame (FFT size, YIN frame).
        hop_length: samples between frames.
        fmin, fmax: YIN search range in Hz.
        roll_percent: energy fraction for the roll-off.
        trough_threshold: YIN absolute threshold.
    """

    sample_rate: int = 44_100
    frame_length: int = 2048
    hop_length: int = 512
    fmin: float = 50.0
    fmax: float = 5000.0
    roll_percent: float = 0.85
    trough_threshold: float = 0.1

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.frame_length < 16 or self.hop_length < 1:
            raise ValueError("frame_length must be >= 16 and hop_length >= 1")
        if not 0 < self.fmin < self.fmax < self.sample_rate / 2:
            raise ValueError(
                f"need 0 < fmin < fmax < sr/2, got fmin={self.fmin}, fmax={self.fmax}, sr={self.sample_rate}"
            )
        if self.sample_rate / self.fmax < 1:
            raise ValueError("fmax too high for the sample rate")
        if not 0 < self.roll_percent < 1:
            raise ValueError("roll_percent must lie in (0, 1)")

    @property
    def min_period(self) -> int:
        return math.floor(self.sample_rate / self.fmax)

    @property
    def max_period(self) -> int:
        return min(math.ceil(self.sample_rate / self.fmin), self.frame_length - 1)

    def n_frames(self, n_samples: int) -> int:
        """Frames for ``n_samples`` of audio (centred framing): ``1 + T // hop``."""
        return 1 + n_samples // self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DescriptorConfig:
        fields = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in fields})


def loud_frames(descriptors: np.ndarray, below_peak_db: float) -> np.ndarray:
    """Boolean mask ``[frames]`` of the frames of ``descriptors: float[frames, 7]`` whose rms (column 0)
    lies within ``below_peak_db`` dB of the loudest frame's; all False when the rms is zero everywhere."""
    rms = np.asarray(descriptors, dtype=np.float64)[:, 0]
    peak = float(rms.max(initial=0.0))
    if peak <= 0.0:
        return np.zeros(rms.shape, dtype=bool)
    return rms >= peak * 10.0 ** (-below_peak_db / 20.0)


def frame_rms(audio: Tensor, frame_length: int, hop_length: int) -> Tensor:
    """``audio: [B, T] -> [B, 1 + T // hop]``: rms of zero-padded frames centred on ``f * hop`` (librosa's rms).

    When ``hop`` divides the frame (the usual 2048 / 512) a frame's energy is the sum of its
    ``frame / hop`` hop-long blocks: each sample is squared once and nothing cancels, so quiet
    tail frames are as exact as loud ones. Otherwise a float64 running sum is differenced
    (equal to the direct mean to float32 precision within 60 dB of the loudest frame).
    """
    half = frame_length // 2
    padded = nn.functional.pad(audio, (half, half))
    n_frames = 1 + (padded.shape[-1] - frame_length) // hop_length
    if frame_length % hop_length == 0:
        per = frame_length // hop_length
        blocks = n_frames - 1 + per
        energy_blocks = padded[..., : blocks * hop_length].unflatten(-1, (blocks, hop_length)).square().sum(-1)
        energy = energy_blocks.unfold(-1, per, 1).sum(-1)
        return (energy / frame_length).sqrt()
    power = padded.to(torch.float64).square()
    total = nn.functional.pad(power.cumsum(-1), (1, 0))
    starts = torch.arange(n_frames, device=audio.device) * hop_length
    energy = total[..., starts + frame_length] - total[..., starts]
    return (energy / frame_length).clamp_min(0).sqrt().to(audio.dtype)


class Descriptors(nn.Module):
    """Batched, librosa-compatible descriptors in torch.

    ``forward(audio: Tensor[B, T]) -> Tensor[B, frames, 7]`` with ``frames = 1 + T // hop``.
    Gradients flow through rms, flatness, bandwidth and centroid; zcr, rolloff
    and f0 are piecewise constant. Spectral descriptors are computed in the
    input's dtype, as librosa does for float32 input.
    """

    window: Tensor
    freqs: Tensor

    def __init__(self, config: DescriptorConfig | None = None) -> None:
        super().__init__()
        self.config = config or DescriptorConfig()
        n_fft = self.config.frame_length
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        freqs = torch.linspace(0, self.config.sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
        self.register_buffer("freqs", freqs, persistent=False)

    # -- framing -----------------------------------------------------------------------------
    def _frames(self, audio: Tensor, mode: str) -> Tensor:
        """Centred frames ``[B, F, frame_length]`` (``mode``: "constant" or "replicate")."""
        half = self.config.frame_length // 2
        if mode == "constant":
            padded = nn.functional.pad(audio, (half, half))
        else:
            padded = nn.functional.pad(audio.unsqueeze(1), (half, half), mode="replicate").squeeze(1)
        return padded.unfold(-1, self.config.frame_length, self.config.hop_length)

    def magnitude(self, audio: Tensor) -> Tensor:
        """Magnitude spectrogram ``[B, F, bins]`` (librosa.stft defaults, centred, zero-padded)."""
        frames = self._frames(audio, "constant")
        return torch.fft.rfft(frames * self.window.to(audio.dtype), dim=-1).abs()

    # -- descriptors -------------------------------------------------------------------------
    def rms(self, audio: Tensor) -> Tensor:
        """``[B, T] -> [B, F]`` root mean square of each zero-padded centred frame."""
        return frame_rms(audio, self.config.frame_length, self.config.hop_length)

    def zcr(self, audio: Tensor) -> Tensor:
        """``[B, T] -> [B, F]`` zero-crossing rate (edge-padded frames, |x| <= 1e-10 counts as +0).

        Counted once per sample with a running sum instead of per frame: exact integer counts.
        """
        half, n, hop = self.config.frame_length // 2, self.config.frame_length, self.config.hop_length
        padded = nn.functional.pad(audio.unsqueeze(1), (half, half), mode="replicate").squeeze(1)
        sign = torch.signbit(torch.where(padded.abs() <= 1e-10, torch.zeros_like(padded), padded))
        crossings = (sign[..., 1:] != sign[..., :-1]).to(torch.int64)
        running = nn.functional.pad(crossings.cumsum(-1), (1, 0))
        starts = torch.arange(0, padded.shape[-1] - n + 1, hop, device=audio.device)
        # crossings inside frame [s, s + n) are those between samples (s, s+1) ... (s+n-2, s+n-1)
        counts = running[..., starts + n - 1] - running[..., starts]
        return counts.to(audio.dtype) / n

    def spectral(self, mag: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``mag: [B, F, bins]`` -> (rolloff, flatness, bandwidth, centroid), each ``[B, F]``."""
        freqs = self.freqs.to(mag.dtype)
        total = mag.sum(-1, keepdim=True)
        tiny = _FLOAT32_TINY if mag.dtype == torch.float32 else _FLOAT64_TINY
        # librosa.util.normalize leaves columns whose norm is below `tiny` unscaled
        norm = torch.where(total < tiny, torch.ones_like(total), total)
        weights = mag / norm
        centroid = (weights * freqs).sum(-1)
        deviation = (freqs - centroid.unsqueeze(-1)).abs()
        bandwidth = (weights * deviation.square()).sum(-1).clamp_min(0).sqrt()
        cumulative = mag.cumsum(-1)
        threshold = self.config.roll_percent * cumulative[..., -1:]
        reached = cumulative >= threshold
        rolloff = freqs[reached.to(torch.uint8).argmax(-1)]
        power = mag.square().clamp_min(1e-10)
        flatness = power.log().mean(-1).exp() / power.mean(-1)
        return rolloff, flatness, bandwidth, centroid

    def f0(self, audio: Tensor) -> Tensor:
        """``[B, T] -> [B, F]`` YIN fundamental frequency in Hz (librosa.yin, in the input's dtype)."""
        cfg = self.config
        frames = self._frames(audio.detach(), "constant")
        n = frames.shape[-1]
        min_p, max_p = cfg.min_period, cfg.max_period
        n_pad = _fast_fft_size(n + max_p)  # no circular wrap for lags <= max_p
        spec = torch.fft.rfft(frames, n=n_pad, dim=-1)
        acf = torch.fft.irfft(spec.real.square() + spec.imag.square(), n=n_pad, dim=-1)[..., : max_p + 1]
        energy = frames.square().cumsum(-1)
        energy[..., 0] = 0
        diff = torch.zeros_like(acf)
        diff[..., 1:] = 2 * (acf[..., :1] - acf[..., 1:]) - energy[..., :max_p]
        numerator = diff[..., min_p : max_p + 1]
        lags = torch.arange(1, max_p + 1, dtype=diff.dtype, device=diff.device)
        cumulative_mean = diff[..., 1:].cumsum(-1) / lags
        denominator = cumulative_mean[..., min_p - 1 : max_p]
        cmnd = numerator / (denominator + torch.finfo(frames.dtype).tiny)
        # parabolic interpolation (zero at the edges and where the vertex is > 1 bin away)
        shifts = torch.zeros_like(cmnd)
        a = cmnd[..., 2:] + cmnd[..., :-2] - 2 * cmnd[..., 1:-1]
        b = (cmnd[..., 2:] - cmnd[..., :-2]) / 2
        safe = b.abs() < a.abs()
        shifts[..., 1:-1] = torch.where(safe, -b / torch.where(safe, a, torch.ones_like(a)), torch.zeros_like(a))
        # troughs: strict local minima (first and last bins compared to their one neighbour)
        trough = torch.zeros_like(cmnd, dtype=torch.bool)
        trough[..., 1:-1] = (cmnd[..., 1:-1] < cmnd[..., :-2]) & (cmnd[..., 1:-1] <= cmnd[..., 2:])
        trough[..., 0] = cmnd[..., 0] < cmnd[..., 1]
        trough[..., -1] = cmnd[..., -1] < cmnd[..., -2]
        below = trough & (cmnd < cfg.trough_threshold)
        first_below = below.to(torch.uint8).argmax(-1)
        period_idx = torch.where(below.any(-1), first_below, cmnd.argmin(-1))
        shift = shifts.gather(-1, period_idx.unsqueeze(-1)).squeeze(-1)
        period = min_p + period_idx.to(shift.dtype) + shift
        return (cfg.sample_rate / period).to(audio.dtype)

    def forward(self, audio: Tensor, with_f0: bool = True) -> Tensor:
        """``audio: Tensor[B, T]`` (or ``[T]``) -> ``Tensor[B, frames, 7]`` (or ``[frames, 7]``).

        ``with_f0=False`` leaves the f0 column at 0 (YIN is the costly part) for callers that do not use it.
        """
        squeeze = audio.dim() == 1
        if squeeze:
            audio = audio.unsqueeze(0)
        if audio.dim() != 2:
            raise ValueError(f"expected audio of shape [B, T], got {list(audio.shape)}")
        mag = self.magnitude(audio)
        rolloff, flatness, bandwidth, centroid = self.spectral(mag)
        f0 = self.f0(audio) if with_f0 else torch.zeros_like(centroid)
        out = torch.stack([self.rms(audio), self.zcr(audio), rolloff, flatness, bandwidth, centroid, f0], dim=-1)
        return out.squeeze(0) if squeeze else out


def _fast_fft_size(minimum: int) -> int:
    """Smallest 2^a * 3^b >= ``minimum`` (sizes pocketfft handles fastest)."""
    best = 1 << (minimum - 1).bit_length()
    three = 1
    while three < best:
        size = three * (1 << max(0, (-(-minimum // three) - 1).bit_length()))
        best = min(best, size)
        three *= 3
    return best


_EXTRACTORS: dict[DescriptorConfig, Descriptors] = {}


def extractor(config: DescriptorConfig) -> Descriptors:
    """A cached :class:`Descriptors` module for ``config``."""
    module = _EXTRACTORS.get(config)
    if module is None:
        module = _EXTRACTORS[config] = Descriptors(config)
    return module


def describe(
    audio: np.ndarray,
    sr: int,
    *,
    frame_length: int = 2048,
    hop_length: int = 512,
    fmin: float = 50.0,
    fmax: float = 5000.0,
) -> np.ndarray:
    """Compute the seven descriptors of a mono signal.

    Args:
        audio: ``float[T]`` mono samples (``[T, C]`` is averaged to mono).
        sr: sample rate in Hz.
        frame_length, hop_length: analysis frame and hop in samples.
        fmin, fmax: YIN pitch range in Hz.

    Returns:
        ``float32[frames, 7]`` with ``frames = 1 + T // hop_length``, columns in
        :data:`DESCRIPTOR_NAMES` order.

    Raises:
        AudioError: empty audio, NaN/inf samples, or a non-positive sample rate.
    """
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr.mean(axis=1) if arr.shape[1] <= arr.shape[0] else arr.mean(axis=0)
    if arr.ndim != 1:
        raise AudioError(f"expected mono audio [T] or [T, C], got shape {list(arr.shape)}")
    if arr.size == 0:
        raise AudioError("cannot describe empty audio (0 samples)")
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise AudioError(f"sample rate must be a positive integer, got {sr!r}")
    check_finite(arr)
    try:
        config = DescriptorConfig(int(sr), frame_length, hop_length, fmin, fmax)
    except ValueError as exc:
        raise AudioError(str(exc)) from None
    # one sound is too small to share between threads: on a busy machine torch's thread pool
    # makes a 5 ms analysis take hundreds of milliseconds, so run on one thread and restore
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            out = extractor(config)(torch.from_numpy(np.ascontiguousarray(arr)))
    finally:
        torch.set_num_threads(previous)
    return out.numpy().astype(np.float32, copy=False)


def describe_with(audio: np.ndarray, config: DescriptorConfig) -> np.ndarray:
    """:func:`describe` with every analysis setting (rate, frame, hop, YIN range) taken from ``config``."""
    return describe(
        audio,
        config.sample_rate,
        frame_length=config.frame_length,
        hop_length=config.hop_length,
        fmin=config.fmin,
        fmax=config.fmax,
    )
