"""Pseudo-quadrature mirror filter (PQMF) bank: audio <-> ``n_bands`` critically sampled sub-bands.

The multiband front end of the fader-ae autoencoder (Devis et al. 2023), as in RAVE (Caillon &
Esling 2021): the encoder sees ``Tensor[B, n_bands, T / n_bands]`` instead of ``Tensor[B, 1, T]``,
and the decoder's sub-bands are recombined to audio.

Design (Nguyen 1994, cosine-modulated filter bank):

* Prototype lowpass ``h`` of odd length ``taps``: a Kaiser-window FIR whose length and window
  ``beta`` come from ``scipy.signal.kaiserord(attenuation_db, 1 / n_bands)`` (transition band as
  wide as one sub-band, so each band only overlaps its two neighbours). Its cutoff is then tuned by
  a bounded scalar minimisation so that ``g = h * reversed(h)`` vanishes at every non-zero multiple
  of ``2 * n_bands`` lags (the near-perfect-reconstruction condition), and ``h`` is scaled so that
  ``g[0] = 1 / (2 * n_bands)`` (unit overall gain).
* Analysis filters ``h_k[n] = 2 h[n] cos((2k+1) pi / (2M) (n - (taps-1)/2) + (-1)^k pi / 4)`` and
  synthesis filters ``f_k[n] = M * 2 h[n] cos(... - (-1)^k pi / 4)``, ``M = n_bands``.

Both directions are causal and streamable with explicit state (see
:mod:`neurorack.models.streaming`): ``analysis(audio, state) -> (bands, state)`` and
``synthesis(bands, state) -> (audio, state)``, ``state=None`` meaning silence before the first
sample, so block-by-block processing equals whole-signal processing. Analysis followed by synthesis
reproduces the input delayed by :attr:`PQMF.delay` ``= taps - n_bands`` samples (aliasing and
amplitude distortion about -60 dB or lower at the default 100 dB attenuation).

Cost: analysis is one strided convolution (``taps`` multiply-adds per input sample); synthesis is
polyphase, a stride-1 convolution ``n_bands -> n_bands`` phases on the sub-band rate followed by an
interleave (``n_bands * ceil(taps / n_bands)`` multiply-adds per output sample), never zero-stuffing.
The filters are computed deterministically at construction and kept in non-persistent buffers, so
they are not written into model files.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import optimize, signal
from torch import Tensor, nn

from neurorack.models.streaming import causal_conv1d, conv_context

__all__ = ["PQMF", "prototype_filter"]


def _nyquist_error(cutoff: float, taps: int, beta: float, n_bands: int) -> float:
    """Largest ``|g[2 M m]|``, ``m != 0``, of the prototype's autocorrelation ``g`` (relative to ``g[0]``)."""
    h = signal.firwin(taps, cutoff, window=("kaiser", beta), scale=False)
    g = np.convolve(h, h[::-1])
    centre = len(g) // 2
    return float(np.max(np.abs(g[centre + 2 * n_bands :: 2 * n_bands])) / g[centre])


def prototype_filter(n_bands: int, attenuation_db: float = 100.0) -> np.ndarray:
    """Prototype lowpass of the PQMF bank: ``float64[taps]``, odd ``taps``, symmetric (linear phase).

    Kaiser window from ``kaiserord(attenuation_db, 1 / n_bands)``; cutoff (relative to Nyquist) tuned
    around ``1 / (2 n_bands)`` for near-perfect reconstruction; scaled to ``sum(h**2) = 1 / (2 n_bands)``.
    """
    taps, beta = signal.kaiserord(attenuation_db, 1.0 / n_bands)
    taps = 2 * (int(taps) // 2) + 1
    nominal = 0.5 / n_bands
    result = optimize.minimize_scalar(
        _nyquist_error,
        bounds=(0.8 * nominal, 1.5 * nominal),
        args=(taps, beta, n_bands),
        method="bounded",
        options={"xatol": 1e-12},
    )
    h = signal.firwin(taps, float(result.x), window=("kaiser", beta), scale=False)
    return np.asarray(h / math.sqrt(2 * n_bands * float(np.dot(h, h))), dtype=np.float64)


class PQMF(nn.Module):
    """Cosine-modulated PQMF bank (Nguyen 1994; as used by RAVE, Caillon & Esling 2021).

    Args:
        n_bands: number of sub-bands ``M``, a power of two ``>= 2``; also the decimation factor.
        attenuation_db: stop-band attenuation of the prototype in dB (sets ``taps``).

    Attributes:
        n_bands: ``M``.
        taps: prototype (and every band filter) length, always odd (207 for ``M = 16``, 105 for
            ``M = 8`` at 100 dB).
        delay: algorithmic delay in samples of analysis followed by synthesis, ``taps - n_bands``:
            ``synthesis(analysis(x))[..., n] ~= x[..., n - delay]``.

    Raises:
        ValueError: ``n_bands`` not a power of two ``>= 2``, or ``attenuation_db <= 0``.
    """

    n_bands: int
    taps: int
    delay: int
    analysis_weight: Tensor
    synthesis_weight: Tensor

    def __init__(self, n_bands: int = 16, attenuation_db: float = 100.0) -> None:
        super().__init__()
        if isinstance(n_bands, bool) or not isinstance(n_bands, int) or n_bands < 2 or n_bands & (n_bands - 1):
            raise ValueError(f"n_bands must be a power of two >= 2, got {n_bands!r}")
        if not attenuation_db > 0:
            raise ValueError(f"attenuation_db must be > 0, got {attenuation_db!r}")
        h = prototype_filter(n_bands, attenuation_db)
        taps = len(h)
        if taps < n_bands:  # only for absurdly low attenuations
            h = np.pad(h, (0, n_bands - taps))
            taps = n_bands
        self.n_bands = n_bands
        self.attenuation_db = float(attenuation_db)
        self.taps = taps
        self.delay = taps - n_bands

        k = np.arange(n_bands)[:, None]
        t = np.arange(taps)[None, :] - (taps - 1) / 2
        omega = (2 * k + 1) * math.pi / (2 * n_bands)
        phase = (-1.0) ** k * math.pi / 4
        analysis = 2 * h * np.cos(omega * t + phase)  # h_k[n], [M, taps]
        synthesis = n_bands * 2 * h * np.cos(omega * t - phase)  # f_k[n], [M, taps]

        # Analysis: conv1d is a correlation, so the kernel is h_k reversed. [M, 1, taps]
        self.register_buffer(
            "analysis_weight", torch.from_numpy(analysis[:, None, ::-1].copy()).float(), persistent=False
        )
        # Synthesis, polyphase: y[qM + r] = sum_k sum_j bands_k[q - j] f_k[jM + r], j < J = ceil(taps / M).
        # As a causal conv1d from the M bands to the M phases r: weight[r, k, J - 1 - j] = f_k[jM + r].
        n_phases = -(-taps // n_bands)
        padded = np.pad(synthesis, ((0, 0), (0, n_phases * n_bands - taps)))  # [k, J*M]
        poly = padded.reshape(n_bands, n_phases, n_bands).transpose(2, 0, 1)[:, :, ::-1]  # [r, k, J - 1 - j]
        self.register_buffer("synthesis_weight", torch.from_numpy(poly.copy()).float(), persistent=False)
        self.analysis_context = conv_context(taps, stride=n_bands)
        self.synthesis_context = conv_context(n_phases)

    def extra_repr(self) -> str:
        return f"n_bands={self.n_bands}, taps={self.taps}, delay={self.delay}, attenuation_db={self.attenuation_db}"

    def initial_analysis_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """Zeros ``Tensor[batch, 1, taps - n_bands]``: the last audio samples before the first block."""
        weight = self.analysis_weight
        return torch.zeros(
            batch,
            1,
            self.analysis_context,
            device=weight.device if device is None else device,
            dtype=weight.dtype if dtype is None else dtype,
        )

    def initial_synthesis_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """Zeros ``Tensor[batch, n_bands, ceil(taps / n_bands) - 1]``: the last sub-band frames before the first."""
        weight = self.synthesis_weight
        return torch.zeros(
            batch,
            self.n_bands,
            self.synthesis_context,
            device=weight.device if device is None else device,
            dtype=weight.dtype if dtype is None else dtype,
        )

    def analysis(self, audio: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Audio -> sub-bands.

        Args:
            audio: ``Tensor[B, 1, T]``, ``T`` a multiple of ``n_bands``.
            state: ``Tensor[B, 1, taps - n_bands]`` from the previous block, or ``None`` (silence).

        Returns:
            ``(bands: Tensor[B, n_bands, T // n_bands], new_state)``; band frame ``m`` depends on
            audio samples ``<= m * n_bands + n_bands - 1`` only.

        Raises:
            ValueError: wrong channel count, ``T`` not a multiple of ``n_bands``, or a bad state.
        """
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise ValueError(f"audio must be Tensor[B, 1, T], got shape {tuple(audio.shape)}")
        weight = self.analysis_weight.to(audio.dtype)
        return causal_conv1d(audio, state, weight, stride=self.n_bands, context=self.analysis_context)

    def synthesis(self, bands: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Sub-bands -> audio.

        Args:
            bands: ``Tensor[B, n_bands, L]``.
            state: ``Tensor[B, n_bands, ceil(taps / n_bands) - 1]`` from the previous block, or ``None``.

        Returns:
            ``(audio: Tensor[B, 1, L * n_bands], new_state)``; audio samples ``m * n_bands ..
            m * n_bands + n_bands - 1`` depend on band frames ``<= m`` only.

        Raises:
            ValueError: wrong band count or a bad state.
        """
        if bands.dim() != 3 or bands.shape[1] != self.n_bands:
            raise ValueError(f"bands must be Tensor[B, {self.n_bands}, L], got shape {tuple(bands.shape)}")
        weight = self.synthesis_weight.to(bands.dtype)
        phases, state = causal_conv1d(bands, state, weight, context=self.synthesis_context)  # [B, M phases, L]
        return phases.transpose(1, 2).flatten(1).unsqueeze(1), state
