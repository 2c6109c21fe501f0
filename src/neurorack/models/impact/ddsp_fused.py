"""Fused inference path of ``ddsp-impact``: descriptor curves to audio in a few compiled passes.

At inference a 1 s hit is ~90 frames, and the step-by-step path of
:meth:`~neurorack.models.impact.ddsp_impact.DDSPImpact.synthesize` spends more time dispatching its ~700
small tensor operations than computing. This path computes the same audio with

1. the frame network as matrix products in ``[frames, channels]`` layout (each kernel-3
   convolution unfolded into one product: PyTorch's CPU ``conv1d`` takes its slow im2col path on
   these small inputs, ~40 % slower);
2. :func:`_frame_controls`: the output heads (softmax, sigmoids, softplus), the stretched partial
   frequencies, the lock's targets and the fine envelope in one loop;
3. the shape lock, phase accumulation, comb-filtered noise and partial spectra: the same numba
   kernels as the step-by-step path (:mod:`~neurorack.models.impact.spectral_lock`,
   :mod:`~neurorack.models.impact.spectral_kernels`), called on NumPy views;
4. one inverse FFT (PyTorch's, MKL: 4× NumPy's on these frames);
5. :func:`_finish`: overlap-add, the fine envelope and the loudness lock in one loop.

It runs on the CPU without gradients (float32) for models with the shape lock; the tests check it
against the step-by-step path (``DDSPImpact.fused_inference = False``), which itself is checked
against the differentiable one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import torch
from torch import Tensor, nn

from neurorack.models.impact import spectral_lock
from neurorack.models.impact.loudness_lock import JUDGED_SHARE, LEVEL_RANGE, LOUDNESS_FLOOR, LOUDNESS_RANGE
from neurorack.models.impact.spectral_kernels import phases_rows
from neurorack.numba_math import FAST_MATH, fast_exp

if TYPE_CHECKING:
    from neurorack.models.impact.ddsp_impact import DDSPImpact


def fused_applies(model: DDSPImpact, descriptors: Tensor, noise: Tensor) -> bool:
    """Whether :func:`render_fused` may render this call: no gradient wanted, CPU float32, shape lock on."""
    if torch.is_grad_enabled() or not model.shape_lock or not model.fused_inference:
        return False
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in (descriptors, noise, model.desc_mean))


class FusedConstants:
    """What the fused path reads from the model, in the form it needs, rebuilt when a parameter or buffer changes.

    ``layers``: the frame network's convolutions as ``(W [k · in, out], b [out], k)``; a kernel-``k``
    convolution (padding ``k // 2``, no dilation) of ``x: [F, in]`` is then ``unfold(x) @ W + b`` with
    ``unfold(x)[f] = [x[f - k//2], ..., x[f + k//2]]`` (zero outside). ``tables``: the lock's band tables
    (float64) and ``phase0`` (float64), as NumPy arrays.
    """

    def __init__(self) -> None:
        self._key: tuple[tuple[int, int], ...] | None = None
        self._sources: list[Tensor] = []
        self._buffer_ids: tuple[int, ...] = ()
        self.layers: list[tuple[Tensor, Tensor, int]] = []
        self.tables: tuple[np.ndarray, ...] = ()
        self.phase0 = np.zeros(0)

    def get(self, model: DDSPImpact) -> FusedConstants:
        """These constants, up to date with ``model``.

        Changes are seen through the tensors' version counters and storage (``load_state_dict``, an optimiser
        step, ``.to()``) and the identity of the model's buffers (``.to()`` replaces them); fetching every
        tensor through the module tree each call would cost as much as the checks save.
        """
        buffer_ids = tuple(map(id, model._buffers.values()))
        if buffer_ids != self._buffer_ids:
            self._sources = [model.band_freq, model.band_mass, model.band_power, model.phase0]
            self._sources += [t for c in _convolutions(model) for t in (c.weight, c.bias) if t is not None]
            self._buffer_ids = buffer_ids
        key = tuple((t.data_ptr(), t._version) for t in self._sources)
        if key != self._key:
            self.layers = [self._matrix(c) for c in _convolutions(model)]
            self.tables = tuple(_numpy(t, np.float64) for t in (model.band_freq, model.band_mass, model.band_power))
            self.phase0 = _numpy(model.phase0, np.float64)
            self._key = key
        return self

    @staticmethod
    def _matrix(conv: nn.Conv1d) -> tuple[Tensor, Tensor, int]:
        weight = conv.weight.detach()  # [out, in, k]
        out, inp, k = weight.shape
        if conv.dilation != (1,) or conv.stride != (1,) or conv.padding != (k // 2,) or k % 2 == 0:
            raise ValueError("the fused path needs odd, centred, undilated convolutions")
        bias = conv.bias.detach() if conv.bias is not None else weight.new_zeros(out)
        return weight.permute(2, 1, 0).reshape(k * inp, out).contiguous().clone(), bias.contiguous().clone(), k


def _numpy(t: Tensor, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=dtype).copy()


def _convolutions(model: DDSPImpact) -> list[nn.Conv1d]:
    inner = [conv for block in model.blocks for conv in (block.conv, block.mix)]
    return [model.inp, *inner, model.head]  # type: ignore[list-item]


def _layer(x: np.ndarray, layer: tuple[Tensor, Tensor, int], slope: float) -> Tensor:
    """The convolution ``layer`` of ``leaky_relu(x, slope)`` (slope 1: of ``x``), ``x: [F, in]`` -> ``[F, out]``."""
    weight, bias, k = layer
    unfolded = np.empty((x.shape[0], k * x.shape[1]), dtype=np.float32)
    kernel: Any = _unfold  # numba dispatcher
    kernel(x, k, slope, unfolded)
    return torch.addmm(bias, torch.from_numpy(unfolded), weight)


def network_outputs(model: DDSPImpact, descriptors: np.ndarray, constants: FusedConstants) -> np.ndarray:
    """The frame network's head output ``float32[F, channels]`` for one item's curves ``descriptors: float32[F, 7]``.

    Matrix products by PyTorch (they follow its thread setting), the rest in numba.
    """
    features = model.normalize(torch.from_numpy(descriptors)).numpy()
    layers = constants.layers
    h = _layer(features, layers[0], 1.0)
    for i, block in enumerate(model.blocks):
        slope = float(block.act.negative_slope)  # type: ignore[union-attr,arg-type]
        inner = _layer(h.numpy(), layers[1 + 2 * i], slope)
        h += _layer(inner.numpy(), layers[2 + 2 * i], slope)
    return _layer(h.numpy(), layers[-1], float(model.act.negative_slope)).numpy()


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _unfold(x: np.ndarray, k: int, slope: float, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out [F, k · C]``: row ``f`` holds rows ``f - k//2 ... f + k//2`` of ``leaky_relu(x [F, C], slope)``
    (zeros outside; slope 1: ``x`` itself)."""
    frames, channels = x.shape
    half = k // 2
    s = np.float32(slope)
    for f in range(frames):
        for j in range(k):
            dst = out[f, j * channels : (j + 1) * channels]
            source = f + j - half
            if source < 0 or source >= frames:
                dst[:] = 0.0
                continue
            row = x[source]
            for c in range(channels):
                v = row[c]
                dst[c] = v if v >= 0.0 else v * s


def render_fused(model: DDSPImpact, descriptors: Tensor, noise: Tensor) -> Tensor:
    """``descriptors: [B, F, 7]`` (physical units) and ``noise: [B, M, bins, 2]`` -> audio ``[B, F · hop]``.

    The same function as the step-by-step path; see the module docstring for the conditions. As there,
    the lock solves the frames of all items in one sequence (each frame starts from the previous one's
    solution, the first of an item from the last of the item before).
    """
    synth = model.synth
    batch, frames, _ = descriptors.shape
    k, nb, sub = model.n_partials, model.n_bands, model.sub
    pad = synth.n_fft // synth.hop // 2
    count = pad + frames * sub
    if noise.shape[:2] != (batch, count):
        raise ValueError(f"noise must have {count} frames (make_noise), got {noise.shape[1]}")
    desc = descriptors.detach().contiguous().numpy()
    constants = model.fused_constants.get(model)
    # per synthesis frame of each item: the lead-in frames first (copies of the first real frame)
    freqs = np.empty((batch, count, k), dtype=np.float32)
    amps = np.empty((batch, count, k), dtype=np.float32)
    bands = np.empty((batch, count, nb), dtype=np.float32)
    f0 = np.empty((batch, count), dtype=np.float64)
    rows = batch * frames * sub
    raw_amps = np.empty((rows, k), dtype=np.float32)
    raw_bands = np.empty((rows, nb), dtype=np.float32)
    raw_freqs = np.empty((rows, k), dtype=np.float32)
    log_freqs = np.empty((rows, k), dtype=np.float32)
    targets = np.empty((rows, 7), dtype=np.float32)
    envelope = np.empty((batch, frames * model.envelope_steps), dtype=np.float32)
    kernel: Any = _frame_controls  # numba dispatcher
    for i in range(batch):
        head = network_outputs(model, desc[i], constants)
        part = slice(i * frames * sub, (i + 1) * frames * sub)
        kernel(
            head, desc[i], k, nb, sub, model.envelope_steps, float(model.sample_rate), synth.max_partial_hz,
            model.rolloff_cap, float(model.inharmonicity), raw_amps[part], raw_bands[part], raw_freqs[part],
            log_freqs[part], targets[part], f0[i, pad:], envelope[i],
        )  # fmt: skip
    locked_bands = np.empty_like(raw_bands)
    locked_amps = np.empty_like(raw_amps)
    spectral_lock.lock_rows(
        raw_bands, raw_amps, raw_freqs, log_freqs, targets, *constants.tables, partial_mass=model.partial_mass,
        floor=model.tilt_floor, tonal_floor=model.tonal_floor, emphasis=model.lock_emphasis, bands_out=locked_bands,
        amps_out=locked_amps,
    )  # fmt: skip
    for padded, real in ((freqs, raw_freqs), (amps, locked_amps), (bands, locked_bands)):
        padded[:, pad:] = real.reshape(batch, frames * sub, -1)
        padded[:, :pad] = padded[:, pad : pad + 1]
    f0[:, :pad] = f0[:, pad : pad + 1]
    audio = np.empty((batch, frames * model.hop_length), dtype=np.float32)
    finish: Any = _finish  # numba dispatcher
    for i in range(batch):
        phases = phases_rows(freqs[i], synth.hop / model.sample_rate, constants.phase0)
        spectra = synth.noise_rows(noise[i].detach().contiguous().numpy(), bands[i], f0[i], model.noise_comb)
        synth.add_partial_rows(spectra, freqs[i], amps[i], phases)
        time_frames = torch.fft.irfft(torch.view_as_complex(torch.from_numpy(spectra)), n=synth.n_fft, dim=-1)
        finish(
            time_frames.numpy(), synth.hop, pad * synth.hop + synth.n_fft // 2, 2.0 / synth.overlap, envelope[i],
            desc[i, :, 0].copy(), model.frame_length, model.hop_length, model.loudness_lock, audio[i],
        )  # fmt: skip
    return torch.from_numpy(audio)


@numba.njit(inline="always", fastmath=FAST_MATH)
def _sigmoid(x: float) -> float:  # pragma: no cover - compiled
    """Logistic function from :func:`fast_exp` (vectorises); saturated beyond ±80 (exact in float32)."""
    return 1.0 / (1.0 + fast_exp(-min(max(x, -80.0), 80.0)))


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _frame_controls(
    head: np.ndarray,
    desc: np.ndarray,
    k: int,
    nb: int,
    sub: int,
    env_steps: int,
    sample_rate: float,
    max_hz: float,
    reach: float,
    inharmonicity: float,
    amps: np.ndarray,
    bands: np.ndarray,
    freqs: np.ndarray,
    log_freqs: np.ndarray,
    targets: np.ndarray,
    f0s: np.ndarray,
    envelope: np.ndarray,
) -> None:  # pragma: no cover - compiled; tested against the step-by-step path
    """``DDSPImpact.controls`` after the network and the per-frame set-up of ``synthesize``, for one item.

    ``head: [F, sub · (k + nb + 3) + env_steps]`` network output, ``desc: [F, 7]``; writes, per synthesis
    frame ``m = f · sub + s``: ``amps, freqs, log_freqs [M, k]`` (partials above ``max_hz`` muted),
    ``bands [M, nb]``, ``targets [M, 7]`` (roll-off capped at ``reach``), ``f0s [M]``; and ``envelope
    [F · env_steps]``.
    """
    frames = desc.shape[0]
    per = k + nb + 3
    weights = np.empty(k)
    for f in range(frames):
        loud = max(np.float64(desc[f, 0]), 0.0)
        f0 = np.float32(min(max(np.float64(desc[f, 6]), 20.0), sample_rate / 2))
        for s in range(sub):
            m = f * sub + s
            row = head[f, s * per : (s + 1) * per]
            top = -np.inf
            for j in range(k):
                top = max(top, np.float64(row[j]))
            total = 0.0
            for j in range(k):  # softmax
                weights[j] = fast_exp(max(np.float64(row[j]) - top, -100.0))
                total += weights[j]
            harm = 2.0 * _sigmoid(np.float64(row[k + nb]) - 2.0)
            noise = 2.0 * _sigmoid(np.float64(row[k + nb + 1]) - 2.0)
            x = np.float64(row[per - 1]) - 4.0
            soft = x if x > 20.0 else math.log1p(math.exp(x))  # softplus, PyTorch's threshold
            stretch = max(np.float64(np.float32(1e-3 * soft)) + inharmonicity, 0.0)
            scale = loud * harm * math.sqrt(2.0) / total
            for j in range(k):
                h = j + 1.0
                fr = np.float32(f0 * h * math.sqrt(1.0 + stretch * h * h))
                freqs[m, j] = fr
                amps[m, j] = scale * weights[j] if fr <= max_hz else 0.0
            for j in range(k):
                log_freqs[m, j] = math.log(max(np.float64(freqs[m, j]), 1e-30))
            gain = loud * noise * 2.0
            logits = row[k : k + nb]  # a slice, not row[k + b]: a possibly negative index stops vectorisation
            for b in range(nb):
                bands[m, b] = gain * _sigmoid(np.float64(logits[b]))
            for d in range(7):
                targets[m, d] = desc[f, d]
            targets[m, 2] = min(np.float64(desc[f, 2]), reach)
            f0s[m] = f0
        env_logits = head[f, sub * per : sub * per + env_steps]
        env = envelope[f * env_steps : (f + 1) * env_steps]
        for e in range(env_steps):
            env[e] = 2.0 * _sigmoid(np.float64(env_logits[e]) + 2.0)


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _finish(
    time_frames: np.ndarray,
    hop: int,
    start: int,
    gain: float,
    envelope: np.ndarray,
    rms: np.ndarray,
    frame_length: int,
    hop_length: int,
    loudness_lock: bool,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; tested against the step-by-step path
    """Overlap-add ``time_frames [M, n_fft]`` (frame ``m`` starts at sample ``m · hop - start`` of ``out``) times
    ``gain``, the fine ``envelope`` (smooth between equally spaced points; empty: none), then the loudness lock: each
    descriptor frame's centred rms made ``rms [F]`` (gain limited to ±80 dB, smooth between frames:
    :mod:`neurorack.models.impact.loudness_lock`)."""
    n_out = out.shape[0]
    count, n_fft = time_frames.shape
    out[:] = 0.0
    for m in range(count):
        offset = m * hop - start
        lo = max(0, -offset)
        hi = min(n_fft, n_out - offset)
        if hi <= lo:
            continue
        # slices, not offset + n indices: a possibly negative index is wrapped and stops vectorisation
        dst = out[offset + lo : offset + hi]
        src = time_frames[m, lo:hi]
        for n in range(hi - lo):
            dst[n] += src[n]
    if envelope.shape[0]:
        _apply_envelope(out, envelope, gain)
    else:
        for i in range(n_out):
            out[i] *= gain
    if not loudness_lock:
        return
    frames = rms.shape[0]
    correction = np.empty(frames, dtype=np.float32)
    for f in range(frames):
        ratio = max(np.float64(rms[f]), 0.0) / max(_frame_rms(out, f, frame_length, hop_length), LOUDNESS_FLOOR)
        correction[f] = np.float32(min(max(ratio, 1.0 / LOUDNESS_RANGE), LOUDNESS_RANGE))
    _apply_envelope(out, correction, 1.0)
    # the last scalar: median measured / requested over the frames within -40 dB of the loudest request
    peak = 0.0
    for f in range(frames):
        peak = max(peak, np.float64(rms[f]))
    ratios = np.empty(frames, dtype=np.float64)
    count = 0
    for f in range(frames):
        target = np.float64(rms[f])
        if target > 0 and target >= JUDGED_SHARE * peak:
            ratios[count] = _frame_rms(out, f, frame_length, hop_length) / max(target, LOUDNESS_FLOOR)
            count += 1
    if count == 0:
        return
    ordered = np.sort(ratios[:count])
    bias = min(max(ordered[(count - 1) // 2], 1.0 / LEVEL_RANGE), LEVEL_RANGE)  # the lower middle, as torch
    scale = np.float32(1.0 / bias)
    for i in range(n_out):
        out[i] *= scale


@numba.njit(inline="always", fastmath=FAST_MATH)
def _frame_rms(out: np.ndarray, f: int, frame_length: int, hop_length: int) -> float:  # pragma: no cover - compiled
    """Rms of ``out``'s frame ``f``: librosa's centred, zero-padded frames (``descriptors.frame_rms``), in float64."""
    n_out = out.shape[0]
    half = frame_length // 2
    lo = min(max(f * hop_length - half, 0), n_out)
    hi = min(max(f * hop_length - half + frame_length, 0), n_out)
    frame = out[lo:hi]
    energy = 0.0
    for i in range(hi - lo):
        v = np.float64(frame[i])
        energy += v * v
    return math.sqrt(energy / frame_length)


@numba.njit(inline="always", fastmath=FAST_MATH)
def _apply_envelope(out: np.ndarray, points: np.ndarray, gain: float) -> None:  # pragma: no cover - compiled
    """``out *= gain · smooth interpolation of points [P]`` placed at the starts of ``P`` equal segments
    (the last one held), as :func:`~neurorack.models.impact.loudness_lock.upsample_gains`."""
    count = points.shape[0]
    step = out.shape[0] // count
    t = np.arange(step) / step
    ramp = (t * t * (3.0 - 2.0 * t)).astype(np.float32)  # loudness_lock.smooth_ramp
    g = np.float32(gain)
    for p in range(count):
        a = points[p]
        slope = points[min(p + 1, count - 1)] - a
        segment = out[p * step : (p + 1) * step]
        for i in range(step):
            segment[i] = (segment[i] * g) * (a + slope * ramp[i])
