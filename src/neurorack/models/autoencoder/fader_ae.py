"""``fader-ae``: a descriptor-controlled multiband autoencoder (SPEC §5).

Devis, Esling et al., "Continuous descriptor-based control for deep audio synthesis" (ICASSP 2023):
a RAVE-like autoencoder (Caillon & Esling 2021) whose latent is stripped of the descriptors by an
adversarial latent discriminator (Fader Networks, Lample et al. 2017), while the decoder gets the
descriptors back as explicit inputs. Encoding any sound and decoding it with its own curves edited
is *attribute transfer*; decoding a sound through a model trained on another corpus is *timbre
transfer*.

Signal path (``hop = n_bands · Π ratios`` samples per latent frame, one latent frame per descriptor
frame)::

    audio [B, 1, T] -> PQMF analysis [B, n_bands, T / n_bands] -> encoder (causal convs, strides
    ``ratios``) -> mean, log-variance [B, latent_dim, T / hop] -> z (sampled while training)
    z + normalised descriptors [B, n_controls, T / hop] -> decoder (upsampling, the descriptors added
    again at every stage) -> per band: tanh waveform x sigmoid amplitude + band noise x gain
    -> PQMF synthesis -> audio [B, 1, T]

Every convolution is causal and every module keeps its streaming state explicit
(:mod:`neurorack.models.streaming`), so :meth:`FaderAE.stream` on consecutive blocks gives exactly
what :meth:`FaderAE.transfer` gives on the whole signal. Output sample ``t`` of the transfer
matches input sample ``t``; live, it comes :attr:`FaderAE.latency` samples later (one latent frame of
buffering plus the PQMF delay).

As an :class:`~neurorack.models.base.ImpactModel` (descriptor curves in, audio out: the instrument,
``generate``, ``eval``) the latent is the model's *timbre* (:meth:`FaderAE.set_timbre`: the mean
latent of its training sounds, set at export) and the seed draws the band noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from neurorack.descriptors import DESCRIPTOR_NAMES, N_DESCRIPTORS
from neurorack.models.base import TransferModel
from neurorack.models.pqmf import PQMF
from neurorack.models.registry import register_model
from neurorack.models.streaming import CausalConv1d, Residual, Streaming, StreamingSequential, SubPixelUpsample

#: Descriptors the decoder takes as controls (and the adversary removes from the latent) by default.
DEFAULT_CONTROLS: tuple[str, ...] = ("rms", "centroid", "bandwidth", "rolloff", "flatness")
#: Initial log-variance of the latent posterior (std e^-3 ≈ 0.05).
LOGVAR_INIT = -6.0
#: Length of the fixed band-noise table used at inference (samples per band; read cyclically).
NOISE_TABLE = 1 << 15


def default_ratios(frames: int) -> tuple[int, ...]:
    """Strides whose product is ``frames`` (sub-band samples per latent frame): 4s, then a 2.

    Raises:
        ValueError: ``frames`` is not a power of two >= 2.
    """
    if frames < 2 or frames & (frames - 1):
        raise ValueError(f"hop_length / n_bands must be a power of two >= 2, got {frames}")
    ratios: list[int] = []
    while frames > 1:
        step = 4 if frames % 4 == 0 else 2
        ratios.append(step)
        frames //= step
    return tuple(ratios)


def stage_width(capacity: int, stage: int) -> int:
    """Channels after encoder stage ``stage``: doubled per stage up to 4 × ``capacity`` (wider costs
    more per streamed block than it brings on one CPU thread)."""
    return capacity * min(2 ** (stage + 1), 4)


def _res_block(channels: int, dilation: int) -> Residual:
    return Residual(
        StreamingSequential(
            nn.LeakyReLU(0.2),
            CausalConv1d(channels, channels, 3, dilation=dilation),
            nn.LeakyReLU(0.2),
            CausalConv1d(channels, channels, 1),
        )
    )


class Encoder(Streaming):
    """Sub-band audio ``[B, n_bands, L]`` -> latent statistics ``[B, 2 · latent_dim, L / Π ratios]``."""

    def __init__(self, n_bands: int, capacity: int, latent_dim: int, ratios: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = [CausalConv1d(n_bands, capacity, 3)]
        channels = capacity
        for i, ratio in enumerate(ratios):
            out = stage_width(capacity, i)
            layers += [_res_block(channels, 1), nn.LeakyReLU(0.2)]
            layers.append(CausalConv1d(channels, out, 2 * ratio, stride=ratio))
            channels = out
        stats = CausalConv1d(channels, 2 * latent_dim, 3)
        # start with a narrow posterior (std e^-3): with unit noise on a small initial mean the decoder
        # learns to ignore the latent at once and the posterior collapses
        nn.init.constant_(stats.conv.bias[latent_dim:], LOGVAR_INIT)  # type: ignore[index]
        layers += [nn.LeakyReLU(0.2), stats]
        self.net = StreamingSequential(*layers)

    def initial_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Any:
        return self.net.initial_state(batch, device, dtype)

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        return self.net(x, state)


class Decoder(Streaming):
    """Latent ``[B, latent_dim, F]`` and controls ``[B, n_controls, F]`` -> band signals ``[B, n_bands, F · Π ratios]``.

    The controls enter at the input and again before every upsampling stage (a 1x1 projection added
    to the activations, computed for all stages at once at the latent rate and held over each frame),
    so the decoder cannot lose them on the way. One head gives, per band, a waveform (tanh), its
    amplitude (sigmoid) and the gain of the band's noise (sigmoid, squared).
    """

    def __init__(
        self,
        n_bands: int,
        capacity: int,
        latent_dim: int,
        n_controls: int,
        ratios: Sequence[int],
        control_stages: bool = False,
    ) -> None:
        super().__init__()
        widths = [*[stage_width(capacity, i) for i in range(len(ratios))][::-1], capacity]  # mirror of the encoder
        self.n_controls = n_controls
        self.ratios = tuple(int(r) for r in ratios[::-1])
        self.widths = tuple(widths[: len(self.ratios)])  # channels entering each upsampling stage
        self.inp = CausalConv1d(latent_dim + n_controls, widths[0], 3)
        self.cond = CausalConv1d(n_controls, sum(self.widths), 1) if control_stages else None
        self.ups = nn.ModuleList(
            StreamingSequential(nn.LeakyReLU(0.2), SubPixelUpsample(widths[i], widths[i + 1], ratio))
            for i, ratio in enumerate(self.ratios)
        )
        self.blocks = nn.ModuleList(_res_block(widths[i + 1], 1) for i in range(len(self.ratios)))
        self.act = nn.LeakyReLU(0.2)
        self.head = CausalConv1d(capacity, 3 * n_bands, 5)  # waveform, amplitude, noise gain

    def _parts(self) -> list[Streaming]:
        parts: list[Streaming] = [self.inp]
        for up, block in zip(self.ups, self.blocks, strict=True):
            assert isinstance(up, Streaming) and isinstance(block, Streaming)
            parts += [up, block]
        return [*parts, self.head]

    def initial_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Any:
        return [p.initial_state(batch, device, dtype) for p in self._parts()]

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """``x``: latent and controls stacked, ``[B, latent_dim + n_controls, F]``.

        Returns ``[B, 3 · n_bands, F · Π ratios]``: waveform, amplitude and noise gain per band (the
        noise itself is added by :class:`FaderAE`, which owns the noise state).
        """
        parts = self._parts()
        states = state if state is not None else [None] * len(parts)
        new: list[Any] = []
        biases = self.cond(x[:, -self.n_controls :])[0].split(self.widths, dim=1) if self.cond is not None else None
        h, s = self.inp(x, states[0])
        new.append(s)
        rate = 1
        for i, ratio in enumerate(self.ratios):
            if biases is not None:  # 1x1 convolution: no state; held over each frame
                h = h + (biases[i].repeat_interleave(rate, dim=-1) if rate > 1 else biases[i])
            h, s = self.ups[i](h, states[1 + 2 * i])
            new.append(s)
            h, s = self.blocks[i](h, states[2 + 2 * i])
            new.append(s)
            rate *= ratio
        out, s = self.head(self.act(h), states[-1])
        new.append(s)
        wave, amp, gain = out.chunk(3, dim=1)
        return torch.cat([torch.tanh(wave), torch.sigmoid(amp), torch.sigmoid(gain - 2.0).square()], dim=1), new


@register_model("fader-ae", tiny={"n_bands": 8, "capacity": 4, "latent_dim": 4})
class FaderAE(TransferModel):
    """Descriptor-controlled multiband variational autoencoder (see the module docstring).

    Args:
        sample_rate, hop_length, frame_length: descriptor analysis settings (Hz, samples); the
            latent has one frame per descriptor frame (``hop_length`` samples).
        n_bands: PQMF bands (power of two).
        capacity: channels of the first encoder stage (doubled at every stride).
        latent_dim: latent channels per frame.
        ratios: encoder strides (product ``hop_length / n_bands``); default: 4s then a 2.
        controls: descriptor names the decoder takes (and the adversary removes from the latent).
        latent_adversary: train with the latent discriminator (``False``: the conditional-VAE ablation,
            registered as ``fader-ae-cvae``). Read by the training module; the network is the same.
        control_stages: add the controls again before every decoder upsampling stage (``False``: at the
            decoder input only, the default: it reconstructs better with the same control and leakage). Files
            written before the option existed were trained with ``True`` (:attr:`legacy_kwargs`).
    """

    #: trained with the fader (latent-adversary) objective of :mod:`neurorack.training.fader_module`
    objective: ClassVar[str] = "fader"
    legacy_kwargs: ClassVar[dict[str, Any]] = {"control_stages": True}
    #: Descriptors the training matches on the output (the impact models' four plus a smooth roll-off,
    #: :func:`neurorack.training.losses.soft_rolloff`: without it nothing teaches the roll-off control).
    trained_descriptors: ClassVar[tuple[str, ...]] = ("rms", "flatness", "bandwidth", "centroid", "rolloff")

    def __init__(
        self,
        *,
        sample_rate: int = 44_100,
        hop_length: int = 512,
        frame_length: int = 2048,
        n_bands: int = 16,
        capacity: int = 32,
        latent_dim: int = 16,
        ratios: Sequence[int] | None = None,
        controls: Sequence[str] = DEFAULT_CONTROLS,
        latent_adversary: bool = True,
        control_stages: bool = False,
    ) -> None:
        super().__init__(sample_rate=sample_rate, hop_length=hop_length, frame_length=frame_length)
        if hop_length % n_bands:
            raise ValueError(f"hop_length {hop_length} must be a multiple of n_bands {n_bands}")
        ratios = tuple(int(r) for r in ratios) if ratios is not None else default_ratios(hop_length // n_bands)
        if math.prod(ratios) * n_bands != hop_length:
            raise ValueError(f"n_bands {n_bands} x ratios {list(ratios)} must equal hop_length {hop_length}")
        unknown = [c for c in controls if c not in DESCRIPTOR_NAMES]
        if unknown or not controls or len(set(controls)) != len(controls):
            raise ValueError(
                f"controls must be distinct names among {', '.join(DESCRIPTOR_NAMES)}, got {list(controls)}"
            )
        self.n_bands = n_bands
        self.latent_dim = latent_dim
        self.ratios = ratios
        self.controls = tuple(controls)
        self.latent_adversary = latent_adversary
        self.config.update(
            n_bands=n_bands,
            capacity=capacity,
            latent_dim=latent_dim,
            ratios=list(ratios),
            controls=list(self.controls),
            latent_adversary=latent_adversary,
            control_stages=control_stages,
        )
        self.register_buffer(
            "control_index", torch.tensor([DESCRIPTOR_NAMES.index(c) for c in self.controls]), persistent=False
        )
        self.pqmf = PQMF(n_bands)
        self.encoder = Encoder(n_bands, capacity, latent_dim, ratios)
        self.decoder = Decoder(n_bands, capacity, latent_dim, len(self.controls), ratios, control_stages)
        # the timbre played from descriptors alone: the mean latent of the training sounds (set_timbre)
        self.register_buffer("timbre", torch.zeros(latent_dim))
        gen = torch.Generator().manual_seed(0x5EED)
        table = torch.rand(n_bands, NOISE_TABLE, generator=gen) * 2 - 1
        self.register_buffer("noise_table", torch.cat([table, table], dim=1), persistent=False)  # read cyclically
        #: frames of zeros appended so the output can be cropped by the PQMF delay
        self.pad_frames = -(-self.pqmf.delay // hop_length)

    control_index: Tensor
    timbre: Tensor
    noise_table: Tensor

    # -- properties ------------------------------------------------------------------------------------------------
    @property
    def latency(self) -> int:
        """Live transfer latency in samples: one latent frame of buffering plus the PQMF delay."""
        return self.hop_length + self.pqmf.delay

    @property
    def stream_delay(self) -> int:
        """The PQMF delay, samples."""
        return int(self.pqmf.delay)

    def set_timbre(self, latent: Tensor) -> None:
        """The latent ``[latent_dim]`` used when generating from descriptor curves alone."""
        self.timbre.copy_(latent.reshape(-1).to(self.timbre))

    def control_features(self, descriptors: Tensor) -> Tensor:
        """Physical curves ``[B, F, 7]`` -> normalised decoder controls ``[B, n_controls, F]``."""
        if descriptors.dim() != 3 or descriptors.shape[-1] != N_DESCRIPTORS:
            raise ValueError(f"descriptors must be [B, F, {N_DESCRIPTORS}], got {list(descriptors.shape)}")
        return self.normalize(descriptors)[..., self.control_index].transpose(1, 2)

    # -- the autoencoder -------------------------------------------------------------------------------------------
    def encode(self, audio: Tensor, state: Any = None) -> tuple[Tensor, Tensor, Any]:
        """``audio [B, 1, T]`` (T a multiple of ``hop_length``) -> mean, log-variance ``[B, latent_dim, T / hop]``."""
        if state is None:
            state = [None, None]
        bands, s0 = self.pqmf.analysis(audio, state[0])
        stats, s1 = self.encoder(bands, state[1])
        mean, logvar = stats.chunk(2, dim=1)
        return mean, logvar.clamp(-12.0, 6.0), [s0, s1]

    def decode(
        self, latent: Tensor, controls: Tensor, noise: Tensor | None = None, state: Any = None
    ) -> tuple[Tensor, Any]:
        """Latent ``[B, latent_dim, F]`` and controls ``[B, n_controls, F]`` -> audio ``[B, 1, F · hop]``.

        ``noise``: band noise ``[B, n_bands, F · hop / n_bands]`` in [-1, 1]; None: training draws fresh
        noise, inference reads the fixed table from the position kept in ``state`` (reproducible, and
        equal whether run at once or in blocks).
        """
        if state is None:
            state = [None, None, torch.zeros((), dtype=torch.long)]
        out, s0 = self.decoder(torch.cat([latent, controls], dim=1), state[0])
        wave, amp, gain = out.chunk(3, dim=1)
        position = state[2]
        length = wave.shape[-1]
        if noise is None:
            if self.training:
                noise = torch.rand_like(wave) * 2 - 1
            else:
                noise = self._table_noise(position, length).unsqueeze(0).expand_as(wave)
        bands = wave * amp + noise * gain
        audio, s1 = self.pqmf.synthesis(bands, state[1])
        return audio, [s0, s1, position + length]

    def _table_noise(self, position: Tensor, length: int) -> Tensor:
        """``length`` samples per band of the cyclic noise table from ``position`` on -> ``[n_bands, length]``."""
        if length <= NOISE_TABLE:  # one slice of the table stored twice over: no index arithmetic per sample
            return self.noise_table.narrow(1, position % NOISE_TABLE, length)
        idx = (position + torch.arange(length, device=position.device)) % NOISE_TABLE
        return self.noise_table[:, idx]

    def latent_of(self, audio: Tensor, frames: int) -> Tensor:
        """Posterior mean ``[latent_dim, frames]`` of one sound ``audio [T]`` (cut or zero-padded to
        ``frames · hop`` samples), one frame per descriptor frame."""
        x = audio.new_zeros(1, 1, (frames + self.pad_frames) * self.hop_length)
        piece = audio[: frames * self.hop_length]
        x[0, 0, : piece.numel()] = piece
        return self.encode(x)[0][0, :, :frames]

    def sample(self, mean: Tensor, logvar: Tensor) -> Tensor:
        """Reparameterised draw ``mean + exp(logvar / 2) · ε`` while training, the mean otherwise."""
        if not self.training:
            return mean
        return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)

    def autoencode(self, audio: Tensor, descriptors: Tensor) -> dict[str, Tensor]:
        """Offline reconstruction / transfer of ``audio [B, T]`` with curves ``descriptors [B, T / hop, 7]``.

        Returns ``audio`` ``[B, T]`` (aligned with the input: the PQMF delay is compensated), ``mean``,
        ``logvar`` and ``latent`` ``[B, latent_dim, T / hop]`` (the latent of the input frames only).
        """
        _batch, length = audio.shape
        frames = descriptors.shape[1]
        if length != frames * self.hop_length:
            raise ValueError(f"audio has {length} samples, descriptors {frames} frames of {self.hop_length}")
        pad = self.pad_frames * self.hop_length
        x = nn.functional.pad(audio, (0, pad)).unsqueeze(1)
        mean, logvar, _ = self.encode(x)
        z = self.sample(mean, logvar)
        controls = self.control_features(self.extend_curves(descriptors))
        y, _ = self.decode(z, controls)
        delay = self.pqmf.delay
        return {
            "audio": y[:, 0, delay : delay + length],
            "mean": mean[..., :frames],
            "logvar": logvar[..., :frames],
            "latent": z[..., :frames],
        }

    def transfer(self, audio: Tensor, descriptors: Tensor) -> Tensor:
        """``audio [B, T]`` re-synthesised with ``descriptors [B, T / hop, 7]`` (edited or not) -> ``[B, T]``."""
        return self.autoencode(audio, descriptors)["audio"]

    # -- streaming -------------------------------------------------------------------------------------------------
    def initial_state(self, batch: int = 1) -> list[Any]:
        """Streaming state of :meth:`stream`: silence before the first block."""
        return [None, None]

    def stream(self, audio: Tensor, descriptors: Tensor, state: list[Any] | None = None) -> tuple[Tensor, list[Any]]:
        """One block of live transfer.

        Args:
            audio: ``[B, 1, N]`` input block, ``N`` a multiple of ``hop_length``.
            descriptors: ``[B, N / hop, 7]`` curves for the block's frames (physical units).
            state: from the previous call (None: the start).

        Returns:
            ``[B, 1, N]`` output, the input delayed by :attr:`pqmf.delay` samples (the first block of a
            stream starts with that many samples of the model's response to silence), and the new state.
        """
        if state is None:
            state = self.initial_state(audio.shape[0])
        mean, _, enc_state = self.encode(audio, state[0])
        y, dec_state = self.decode(mean, self.control_features(descriptors), state=state[1])
        return y, [enc_state, dec_state]

    # -- ImpactModel: curves in, audio out -----------------------------------------------------------------------------
    def make_noise(self, batch: int, frames: int, generator: torch.Generator | None = None) -> Tensor:
        """Band noise in [-1, 1] for ``frames`` descriptor frames (and the padding frames):
        ``[B, n_bands, (frames + pad_frames) · hop / n_bands]``."""
        length = (frames + self.pad_frames) * self.hop_length // self.n_bands
        shape = (batch, self.n_bands, length)
        return torch.rand(shape, generator=generator, device=self.timbre.device) * 2 - 1

    def synthesize(self, descriptors: Tensor, noise: Tensor) -> Tensor:
        """Curves ``[B, F, 7]`` played with the model's timbre latent (:meth:`set_timbre`) -> audio ``[B, F · hop]``.

        ``noise``: the band noise of :meth:`make_noise`.
        """
        batch, frames = descriptors.shape[:2]
        total = frames + self.pad_frames
        expected = (batch, self.n_bands, total * self.hop_length // self.n_bands)
        if tuple(noise.shape) != expected:
            raise ValueError(f"noise must be {list(expected)} (make_noise), got {list(noise.shape)}")
        latent = self.timbre.view(1, -1, 1).expand(batch, -1, total)
        y, _ = self.decode(latent, self.control_features(self.extend_curves(descriptors)), noise=noise)
        delay = self.pqmf.delay
        return y[:, 0, delay : delay + frames * self.hop_length]


@register_model("fader-ae-cvae", tiny={"n_bands": 8, "capacity": 4, "latent_dim": 4})
class ConditionalVAE(FaderAE):
    """The ablation of ``fader-ae`` without the latent adversary: a conditional VAE (same network)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("latent_adversary", False)
        super().__init__(**kwargs)
