"""``ddsp-impact``: the fast default impact generator.

A DDSP-style model (Engel et al., "DDSP: Differentiable Digital Signal
Processing", ICLR 2020) adapted to impacts and to CPU speed:

* a small non-causal convolutional network over descriptor frames predicts, for
  every synthesis sub-frame, the amplitudes of ``n_partials`` partials, a
  stretch (inharmonicity) coefficient and ``n_bands`` noise band gains (optionally
  a fine amplitude envelope, off by default: ``envelope_steps``);
* partials sit at ``k · f0 · sqrt(1 + β k²)`` (stiff-string stretch, β ≥ 0 learned,
  plus a user offset) and are rendered with inverse-FFT synthesis
  (:mod:`neurorack.models.impact.spectral_synth`), noise as filtered spectra, all in
  one inverse FFT per synthesis frame;
* loudness is explicit: every amplitude is proportional to the requested rms,
  so the loudness control is structural rather than learned.

Without gradients on the CPU the same function is rendered by :mod:`neurorack.models.impact.ddsp_fused`
(a few compiled passes instead of ~700 small tensor operations; ``fused_inference = False`` turns it off).

Shapes: descriptors ``[B, F, 7]`` in physical units -> audio ``[B, F * hop]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from neurorack.models.base import ImpactModel, canonical_focus
from neurorack.models.impact.ddsp_fused import FusedConstants, fused_applies, render_fused
from neurorack.models.impact.loudness_lock import lock_loudness, upsample_gains
from neurorack.models.impact.spectral_kernels import kernels_apply
from neurorack.models.impact.spectral_lock import (
    centroid_tilt,
    floor_and_lock,
    focus_emphasis,
    moment_shaping,
    tonal_floor_share,
)
from neurorack.models.impact.spectral_synth import SpectralSynth, accumulate_phase
from neurorack.models.registry import register_model

#: Largest roll-off the shape lock is asked for, as a share of Nyquist. 15 % of the magnitude above a
#: frequency this close to Nyquist cannot be built from the top bands (white noise measures 0.85), and a
#: request beyond it (a bright hit's roll-off doubled) makes the solver give up.
ROLLOFF_REACH = 0.9


class _ResBlock(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mix(self.act(self.conv(self.act(x))))


@register_model("ddsp-impact", tiny={"hidden": 16, "layers": 1, "n_partials": 4, "n_bands": 8})
class DDSPImpact(ImpactModel):
    """Descriptor-conditioned partials + filtered noise, rendered by inverse FFT.

    Args:
        sample_rate, hop_length, frame_length: descriptor analysis settings (Hz, samples).
        hidden: channels of the frame network.
        layers: residual blocks (kernel 3; dilated convolutions are slow on CPU, so none).
        n_partials: sinusoidal partials.
        n_bands: log-spaced noise bands.
        n_fft: synthesis frame (power of two); synthesis hop is ``n_fft // overlap`` and must divide
            ``hop_length``. Default: 1024 when that fits, else ``overlap * hop_length`` (a finer corpus hop).
        overlap: synthesis frames overlapping each sample (2 or 4): 2 halves the synthesis work.
        envelope_steps: fine amplitude-envelope points per descriptor frame; 0 (the default): none. A fine
            envelope trained on grid-aligned analysis frames learns a pulse train at the frame rate (an
            86 Hz buzz at 44.1 kHz / 512 that YIN reads as the pitch; ``docs/design-notes.md``).
        centroid_lock: tilt each synthesis frame's spectrum (``(f / 1 kHz)^α``, power kept) so its
            expected magnitude-weighted centroid equals the requested one: brightness becomes a
            structural control instead of something the network may learn to ignore (SPEC §3).
        tilt_floor: noise floor added before the lock, relative to the frame's loudest band (centroid
            lock: flat over all bands) or component (shape lock: a bump around the requested centroid
            and spread, :meth:`_target_floor`): a lock cannot brighten bands the network silenced.
            A flat floor costs MR-STFT in the silent regions of real hits.
        noise_comb: depth (0..1) of a comb at the multiples of f0 on the noise (structural pitch: the
            noise is periodic at the requested f0, so pitch follows f0 on noisy hits too).
        shape_lock: lock bandwidth and roll-off too: three-parameter shaping per frame that also holds
            the centroid (:mod:`neurorack.models.impact.spectral_lock`); ``centroid_lock`` is then unused.
        loudness_lock: after synthesis, correct each descriptor frame's gain (smoothly interpolated,
            no gradient through the gain) so the frame rms measured as in :mod:`neurorack.descriptors`
            equals the requested rms (:mod:`neurorack.models.impact.loudness_lock`).
        window_after_filter: window the noise after filtering it (:class:`SpectralSynth`): no broadband
            floor from frame edges under a dark request.
        analysis_masses: the locks weigh noise bands against partials as the descriptors' analysis frame
            (``frame_length``) measures them, not as one synthesis frame does (which under-weighs noise by
            ``sqrt(frame_length / n_fft)``: a drawn kick of partials and a little noise came out 18 % too wide).
        tonal_floor: a tonal request the network answered without partials gets the shape lock's floor as
            partials (:meth:`_target_floor`).
    """

    def __init__(
        self,
        *,
        sample_rate: int = 44_100,
        hop_length: int = 512,
        frame_length: int = 2048,
        hidden: int = 64,
        layers: int = 3,
        n_partials: int = 32,
        n_bands: int = 64,
        n_fft: int | None = None,
        envelope_steps: int = 0,
        centroid_lock: bool = True,
        loudness_lock: bool = True,
        tilt_floor: float = 0.01,
        shape_lock: bool = True,
        overlap: int = 2,
        noise_comb: float = 1.0,
        window_after_filter: bool = True,
        analysis_masses: bool = True,
        tonal_floor: bool = True,
    ) -> None:
        super().__init__(sample_rate=sample_rate, hop_length=hop_length, frame_length=frame_length)
        if n_fft is None:
            n_fft = 1024 if hop_length % (1024 // overlap) == 0 else overlap * hop_length
        self.synth = SpectralSynth(
            sample_rate=sample_rate, n_fft=n_fft, half_width=3, n_bands=n_bands, overlap=overlap,
            window_after_filter=window_after_filter,
        )  # fmt: skip
        if hop_length % self.synth.hop:
            raise ValueError(f"hop_length {hop_length} must be a multiple of n_fft // {overlap} = {self.synth.hop}")
        if envelope_steps < 0 or (envelope_steps and hop_length % envelope_steps):
            raise ValueError(f"envelope_steps {envelope_steps} must be 0 or divide hop_length {hop_length}")
        self.sub = hop_length // self.synth.hop
        self.n_partials = n_partials
        self.n_bands = n_bands
        self.envelope_steps = envelope_steps
        self.config.update(
            hidden=hidden,
            layers=layers,
            n_partials=n_partials,
            n_bands=n_bands,
            n_fft=n_fft,
            envelope_steps=envelope_steps,
            centroid_lock=centroid_lock,
            loudness_lock=loudness_lock,
            tilt_floor=tilt_floor,
            shape_lock=shape_lock,
            overlap=overlap,
            noise_comb=noise_comb,
            window_after_filter=window_after_filter,
            analysis_masses=analysis_masses,
            tonal_floor=tonal_floor,
        )
        self.shape_lock = shape_lock
        self.tonal_floor = tonal_floor
        if not 0.0 <= noise_comb <= 1.0:
            raise ValueError(f"noise_comb must lie in 0..1, got {noise_comb}")
        self.noise_comb = noise_comb
        self.tilt_floor = tilt_floor
        self.centroid_lock = centroid_lock
        self.loudness_lock = loudness_lock
        # expected STFT magnitude per unit: a partial of amplitude 1 (mass over its lobe) and a
        # noise band of gain 1 (mass over its bins), and the power each one carries
        lobe = torch.view_as_complex(self.synth.lobe).abs()[:: self.synth.oversample].numpy()  # integer bins
        bands = self.synth.bands.numpy()
        width = bands.sum(axis=1)
        noise_mag = math.sqrt(math.pi * 3 * n_fft / 8) / 2  # E|X| of Hann-windowed unit white noise
        if analysis_masses:
            # the descriptors' frame sees a band's mass grow as frame^1.5 (bins x sqrt of the window energy)
            # and a partial's as frame: noise weighs sqrt(frame_length / n_fft) more there than at n_fft
            noise_mag *= math.sqrt(frame_length / n_fft)
        self.register_buffer("band_mass", torch.tensor(width * noise_mag, dtype=torch.float32), persistent=False)
        power = width / (n_fft // 2 + 1)
        self.register_buffer("band_power", torch.tensor(power, dtype=torch.float32), persistent=False)
        freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
        centre = (bands * freqs).sum(1) / np.maximum(width, 1e-9)  # bands between two bins have no mass
        self.register_buffer("band_freq", torch.tensor(centre, dtype=torch.float32), persistent=False)
        self.partial_mass = float(lobe.sum() / 2)
        self.inp = nn.Conv1d(7, hidden, 3, padding=1)
        self.blocks = nn.Sequential(*[_ResBlock(hidden, 1) for _ in range(layers)])
        self.per_sub = n_partials + n_bands + 3  # partials, bands, harmonic gain, noise gain, stretch
        self.head = nn.Conv1d(hidden, self.sub * self.per_sub + envelope_steps, 1)
        self.act = nn.LeakyReLU(0.2)
        harmonics = torch.arange(1, n_partials + 1, dtype=torch.float32)
        self.register_buffer("harmonics", harmonics, persistent=False)
        # Schroeder-like initial phases keep the partials from adding up to a click
        self.register_buffer("phase0", math.pi * harmonics * (harmonics - 1) / n_partials, persistent=False)
        self._table: Tensor | None = None
        self.inharmonicity = 0.0  # user offset added to the learned stretch β (a knob, not a weight)
        self.lock_emphasis: np.ndarray | None = None  # the shape lock's priorities (set_focus), None: default
        #: render through :mod:`neurorack.models.impact.ddsp_fused` when it applies (CPU, no gradient, shape lock)
        self.fused_inference = True
        self.fused_constants = FusedConstants()
        for module in self.modules():
            if isinstance(module, nn.Conv1d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)  # type: ignore[arg-type]

    legacy_kwargs: ClassVar[dict[str, Any]] = {
        "shape_lock": False,
        "overlap": 4,
        "noise_comb": 0.0,
        "window_after_filter": False,
        "envelope_steps": 8,
        "analysis_masses": False,
        "tonal_floor": False,
    }
    harmonics: Tensor
    phase0: Tensor
    band_mass: Tensor
    band_power: Tensor
    band_freq: Tensor

    @property
    def rolloff_cap(self) -> float:
        """Largest roll-off (Hz) the shape lock is asked for: :data:`ROLLOFF_REACH` of Nyquist."""
        return ROLLOFF_REACH * self.sample_rate / 2

    def set_focus(self, moved: Mapping[str, float] | None) -> None:
        """Give the moved brightness descriptors priority in the shape lock (:func:`focus_emphasis`)."""
        self.lock_emphasis = focus_emphasis(canonical_focus(moved))

    def lock_spectrum(
        self, band_gains: Tensor, partial_amps: Tensor, freqs: Tensor, descriptors: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Shape ``band_gains [B, M, nb]`` and ``partial_amps [B, M, K]`` (at ``freqs`` Hz) per synthesis frame.

        With ``shape_lock`` the expected magnitude spectrum gets the requested centroid, bandwidth and
        roll-off (:func:`~neurorack.models.impact.spectral_lock.moment_shaping`), otherwise the centroid only
        (:func:`~neurorack.models.impact.spectral_lock.centroid_tilt`). ``descriptors [B, M, 7]`` at synthesis-frame
        rate. The result is rescaled to each frame's original power so loudness is unchanged.
        """
        batch, frames, nb = band_gains.shape
        f = torch.cat([self.band_freq.expand(batch, frames, nb), freqs], dim=-1)
        mass = torch.cat([band_gains * self.band_mass, partial_amps * self.partial_mass], dim=-1)
        centroid = descriptors[..., 5].clamp_min(20.0)
        if self.shape_lock:
            shape = moment_shaping(
                mass, f, centroid, descriptors[..., 4], descriptors[..., 2], emphasis=self.lock_emphasis
            )
        else:
            shape = centroid_tilt(mass, f, centroid)
        power = torch.cat([band_gains.square() * self.band_power, partial_amps.square() / 2], dim=-1)
        # epsilons inside the root: silent frames (power 0) must get a finite gradient
        before = power.sum(-1, keepdim=True) + 1e-20
        keep = torch.sqrt(before / ((power * shape.square()).sum(-1, keepdim=True) + 1e-20))
        gain = shape * keep
        return band_gains * gain[..., :nb], partial_amps * gain[..., nb:]

    def _target_floor(self, bands: Tensor, amps: Tensor, freqs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Floors for the shape lock to work with, shaped like the requested spectrum: ``[B, M, nb]`` on the noise
        bands and ``[B, M, K]`` on the partials (at ``freqs`` Hz).

        A log-normal bump centred on the requested centroid, as wide as the requested bandwidth and
        roll-off reach, scaled to ``tilt_floor`` of the frame's loudest component: the lock can
        brighten or widen into bands the network left silent, while bands far from the request stay
        quiet (a flat floor there is heard, and costs MR-STFT in the silent regions of real hits). With
        ``tonal_floor``, a tonal request the network answered without partials gets (some of) it as partials
        of the same magnitude mass (:func:`~neurorack.models.impact.spectral_lock.tonal_floor_share`): the
        lock then has harmonics of the requested f0 to shape, and a drawn kick or tom gets its pitch.
        """
        c = targets[..., 5:6].clamp_min(20.0)
        reach = torch.maximum(targets[..., 4:5], targets[..., 2:3] - c).clamp_min(0.0)
        sigma = torch.log1p(reach / c).clamp_min(0.25)  # ln units

        def bump(hz: Tensor) -> Tensor:
            return torch.exp(-0.5 * (torch.log(hz.clamp_min(20.0) / c) / sigma).square())

        top = torch.cat([bands, amps], dim=-1).amax(-1, keepdim=True)
        if not self.tonal_floor:
            return self.tilt_floor * top * bump(self.band_freq), torch.zeros_like(amps)
        band_mass, partial_mass = bands * self.band_mass, amps * self.partial_mass
        partials = partial_mass.sum(-1, keepdim=True)
        share = tonal_floor_share(targets[..., 3:4], partials / (partials + band_mass.sum(-1, keepdim=True) + 1e-30))
        top_mass = torch.cat([band_mass, partial_mass], dim=-1).amax(-1, keepdim=True)
        band_floor = (1.0 - share) * self.tilt_floor * top * bump(self.band_freq)
        partial_floor = share * self.tilt_floor * top_mass / self.partial_mass * bump(freqs) * (amps > 0)
        return band_floor, partial_floor

    def controls(self, descriptors: Tensor) -> dict[str, Tensor]:
        """Network outputs at synthesis-frame rate for ``descriptors: [B, F, 7]``.

        Returns a dict of ``partial_amps [B, M, K]``, ``stretch [B, M, 1]``, ``band_gains [B, M, n_bands]``
        (``M = F * sub``, linear amplitudes) and, with ``envelope_steps``, ``envelope [B, F * envelope_steps]``.
        """
        batch, frames, _ = descriptors.shape
        x = self.normalize(descriptors).transpose(1, 2)
        h = self.act(self.blocks(self.inp(x)))
        out = self.head(h)  # [B, C, F]
        split = self.sub * self.per_sub
        params = out[:, :split].transpose(1, 2).reshape(batch, frames * self.sub, self.per_sub)
        k, nb = self.n_partials, self.n_bands
        loud = descriptors[..., 0].clamp_min(0).repeat_interleave(self.sub, dim=1).unsqueeze(-1)
        harm_gain = 2.0 * torch.sigmoid(params[..., k + nb : k + nb + 1] - 2.0)
        noise_gain = 2.0 * torch.sigmoid(params[..., k + nb + 1 : k + nb + 2] - 2.0)
        partial_amps = loud * harm_gain * torch.softmax(params[..., :k], dim=-1) * math.sqrt(2)
        band_gains = loud * noise_gain * 2.0 * torch.sigmoid(params[..., k : k + nb])
        stretch = 1e-3 * nn.functional.softplus(params[..., -1:] - 4.0)
        result = {"partial_amps": partial_amps, "band_gains": band_gains, "stretch": stretch}
        if self.envelope_steps:
            env = out[:, split:].transpose(1, 2).reshape(batch, frames * self.envelope_steps)
            result["envelope"] = 2.0 * torch.sigmoid(env + 2.0)
        return result

    def synth_frames(self, frames: int) -> int:
        """Synthesis frames for ``frames`` descriptor frames (including the lead-in frames)."""
        return frames * self.sub + self.synth.n_fft // self.synth.hop // 2

    def make_noise(self, batch: int, frames: int, generator: torch.Generator | None = None) -> Tensor:
        """Windowed white-noise spectra ``[B, M, bins, 2]``.

        Training draws fresh noise; inference reads a random window of a fixed table (one FFT
        per frame less on the hot path, and no random number generation).
        """
        count = self.synth_frames(frames)
        if self.training:
            return self.synth.white_noise_spectra(batch, count, generator, self.desc_mean.device)
        table = self._noise_table(count)
        starts = torch.randint(0, table.shape[0] - count + 1, (batch,), generator=generator).tolist()
        if batch == 1:
            return table[starts[0] : starts[0] + count].unsqueeze(0)  # a view: nothing is copied
        return torch.stack([table[s : s + count] for s in starts])

    def _noise_table(self, count: int) -> Tensor:
        size = max(4 * count, 2048)
        if self._table is None or self._table.shape[0] < size or self._table.device != self.desc_mean.device:
            gen = torch.Generator().manual_seed(0x5EED)
            self._table = self.synth.white_noise_spectra(1, size, gen)[0].to(self.desc_mean.device)
        return self._table

    def synthesize(self, descriptors: Tensor, noise: Tensor) -> Tensor:
        if fused_applies(self, descriptors, noise):
            return render_fused(self, descriptors, noise)
        frames = descriptors.shape[1]
        n_out = frames * self.hop_length
        c = self.controls(descriptors)
        # synthesis frames: M = frames * sub, centred on m * synth_hop; two extra frames before the start
        pad = self.synth.n_fft // self.synth.hop // 2
        f0 = descriptors[..., 6].clamp(20.0, self.sample_rate / 2).repeat_interleave(self.sub, dim=1)
        stretch = (c["stretch"] + self.inharmonicity).clamp_min(0)
        k = self.harmonics
        freqs = f0.unsqueeze(-1) * k * torch.sqrt(1 + stretch * k.square())  # [B, M, K]
        # partials the synthesis mutes (above max_partial_hz) are not heard: the lock must not count them
        amps = c["partial_amps"] * (freqs <= self.synth.max_partial_hz)
        bands = c["band_gains"]
        if self.centroid_lock or self.shape_lock:
            targets = descriptors.repeat_interleave(self.sub, dim=1)
            # a roll-off above ROLLOFF_REACH of Nyquist cannot be built: ask for the reachable one instead
            capped = targets[..., 2:3].clamp_max(self.rolloff_cap)
            targets = torch.cat([targets[..., :2], capped, targets[..., 3:]], dim=-1)
            # the floor follows the loudest component: a frame made of partials alone still gets noise to shape
            if self.shape_lock and kernels_apply(bands, amps, freqs, targets):
                # the three steps below in one compiled pass
                bands, amps = floor_and_lock(
                    bands, amps, freqs, targets, band_freq=self.band_freq, band_mass=self.band_mass,
                    band_power=self.band_power, partial_mass=self.partial_mass, floor=self.tilt_floor,
                    tonal_floor=self.tonal_floor, emphasis=self.lock_emphasis,
                )  # fmt: skip
            else:
                if self.shape_lock:
                    band_floor, partial_floor = self._target_floor(bands, amps, freqs, targets)
                    bands, amps = bands + band_floor, amps + partial_floor
                else:
                    bands = bands + self.tilt_floor * bands.amax(-1, keepdim=True)
                bands, amps = self.lock_spectrum(bands, amps, freqs, targets)
        freqs, amps, bands = (torch.cat([t[:, :1].expand(-1, pad, -1), t], dim=1) for t in (freqs, amps, bands))
        phases = accumulate_phase(freqs, self.synth.hop, self.sample_rate, self.phase0)
        if noise.shape[1] != freqs.shape[1]:
            raise ValueError(f"noise must have {freqs.shape[1]} frames (make_noise), got {noise.shape[1]}")
        comb_f0 = torch.cat([f0[:, :1].expand(-1, pad), f0], dim=1) if self.noise_comb > 0 else None
        audio = self.synth(freqs, amps, phases, bands, noise, comb_f0, self.noise_comb)
        start = pad * self.synth.hop + self.synth.n_fft // 2  # time 0 = centre of the first real frame
        audio = audio[:, start : start + n_out]
        if "envelope" in c:
            audio = audio * upsample_gains(c["envelope"], n_out)
        if self.loudness_lock:
            audio = lock_loudness(audio, descriptors[..., 0], self.frame_length, self.hop_length)
        return audio
