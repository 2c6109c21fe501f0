"""PQMF bank (neurorack.models.pqmf): near-perfect reconstruction, band splitting, streaming, causality."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from neurorack.models.pqmf import PQMF, prototype_filter

SR = 44_100


@pytest.fixture(scope="module", params=[16, 8])
def pqmf(request: pytest.FixtureRequest) -> PQMF:
    return PQMF(request.param)


def _sine(freq: float, length: int, sr: int = SR) -> Tensor:
    t = torch.arange(length, dtype=torch.float64) / sr
    return torch.sin(2 * math.pi * freq * t).float().reshape(1, 1, -1)


def _noise(length: int, seed: int = 0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, 1, length, generator=generator)


def _round_trip(pqmf: PQMF, x: Tensor) -> Tensor:
    bands, _ = pqmf.analysis(x)
    y, _ = pqmf.synthesis(bands)
    return y


def _snr_db(pqmf: PQMF, x: Tensor, y: Tensor) -> float:
    """SNR of ``y`` against ``x`` delayed by ``pqmf.delay``, skipping the first ``delay + taps`` samples."""
    start = pqmf.delay + pqmf.taps
    reference = x[..., start - pqmf.delay : x.shape[-1] - pqmf.delay]
    error = y[..., start:] - reference
    return float(10 * torch.log10(reference.pow(2).sum() / error.pow(2).sum()))


def test_geometry() -> None:
    for n_bands, taps in ((16, 207), (8, 105), (2, 27)):
        pqmf = PQMF(n_bands)
        assert pqmf.n_bands == n_bands
        assert pqmf.taps == taps and taps % 2 == 1
        assert pqmf.delay == taps - n_bands
    # More attenuation -> longer filters.
    assert PQMF(16, attenuation_db=60.0).taps < PQMF(16).taps


@pytest.mark.parametrize("n_bands", [0, 1, 3, 6, 12, -4, 2.0, True])
def test_bad_n_bands(n_bands: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        PQMF(n_bands)


def test_bad_attenuation() -> None:
    with pytest.raises(ValueError, match="attenuation"):
        PQMF(4, attenuation_db=0.0)


def test_filters_are_deterministic_non_persistent_buffers(pqmf: PQMF) -> None:
    assert pqmf.state_dict() == {}
    assert not list(pqmf.parameters())
    assert {name for name, _ in pqmf.named_buffers()} == {"analysis_weight", "synthesis_weight"}
    again = PQMF(pqmf.n_bands)
    assert torch.equal(again.analysis_weight, pqmf.analysis_weight)
    assert torch.equal(again.synthesis_weight, pqmf.synthesis_weight)
    h = prototype_filter(pqmf.n_bands)
    assert h.shape == (pqmf.taps,)
    assert (h == h[::-1]).all()  # linear phase


def test_shapes(pqmf: PQMF) -> None:
    m = pqmf.n_bands
    bands, a_state = pqmf.analysis(torch.zeros(3, 1, 10 * m))
    assert bands.shape == (3, m, 10)
    assert a_state.shape == pqmf.initial_analysis_state(3).shape == (3, 1, pqmf.taps - m)
    audio, s_state = pqmf.synthesis(bands)
    assert audio.shape == (3, 1, 10 * m)
    assert s_state.shape == pqmf.initial_synthesis_state(3).shape == (3, m, -(-pqmf.taps // m) - 1)


def test_bad_inputs(pqmf: PQMF) -> None:
    m = pqmf.n_bands
    with pytest.raises(ValueError, match="multiple of the stride"):
        pqmf.analysis(torch.zeros(1, 1, 10 * m + 1))
    with pytest.raises(ValueError, match=r"Tensor\[B, 1, T\]"):
        pqmf.analysis(torch.zeros(1, 2, 10 * m))
    with pytest.raises(ValueError, match="bands must be"):
        pqmf.synthesis(torch.zeros(1, m + 1, 10))
    with pytest.raises(ValueError, match="state has shape"):
        pqmf.synthesis(torch.zeros(1, m, 10), torch.zeros(1, m, 1000))


@pytest.mark.parametrize("signal_name", ["noise", "sine"])
def test_reconstruction_snr(pqmf: PQMF, signal_name: str) -> None:
    length = SR - SR % pqmf.n_bands
    x = _noise(length) if signal_name == "noise" else _sine(1000.0, length)
    y = _round_trip(pqmf, x)
    assert y.shape == x.shape
    assert _snr_db(pqmf, x, y) >= 40.0


def test_delay_is_the_best_alignment(pqmf: PQMF) -> None:
    """Among all lags, ``delay`` is the one that best aligns the output with the input (by a wide margin)."""
    x = _noise(256 * pqmf.n_bands, seed=1)
    y = _round_trip(pqmf, x)
    n = x.shape[-1]
    lags = range(0, pqmf.taps + pqmf.n_bands)
    correlation = torch.stack([(y[..., lag:] * x[..., : n - lag]).sum() for lag in lags])
    assert int(correlation.argmax()) == pqmf.delay
    gain = float(correlation[pqmf.delay] / x[..., : n - pqmf.delay].pow(2).sum())
    assert gain == pytest.approx(1.0, abs=0.01)
    # A wrong delay gives a poor SNR: the check above is not vacuous.
    shifted = torch.cat((y[..., 1:], y[..., -1:]), dim=-1)
    assert _snr_db(pqmf, x, shifted) < 10.0


def test_band_energy_localisation(pqmf: PQMF) -> None:
    """A sine at the centre of band k, ``sr / (4 M) (2k + 1)``, puts > 90 % of its energy in band k."""
    m = pqmf.n_bands
    length = 512 * m
    skip = -(-pqmf.taps // m)  # frames of onset transient
    for k in range(m):
        bands, _ = pqmf.analysis(_sine(SR / (4 * m) * (2 * k + 1), length))
        energy = bands[0, :, skip:].pow(2).sum(dim=-1)
        share = float(energy[k] / energy.sum())
        assert share > 0.9, f"band {k}: {share:.3f}"


@pytest.mark.parametrize("block_frames", [1, 3, 32])
def test_streaming_equals_whole(pqmf: PQMF, block_frames: int) -> None:
    m = pqmf.n_bands
    x = _noise(96 * m, seed=2)
    block = block_frames * m
    whole_bands, whole_a_state = pqmf.analysis(x)
    whole_audio, whole_s_state = pqmf.synthesis(whole_bands)

    a_state: Tensor | None = None
    s_state: Tensor | None = None
    bands_blocks, audio_blocks = [], []
    for start in range(0, x.shape[-1], block):
        bands, a_state = pqmf.analysis(x[..., start : start + block], a_state)
        audio, s_state = pqmf.synthesis(bands, s_state)
        bands_blocks.append(bands)
        audio_blocks.append(audio)
    torch.testing.assert_close(torch.cat(bands_blocks, -1), whole_bands, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat(audio_blocks, -1), whole_audio, atol=1e-5, rtol=0)
    assert a_state is not None and s_state is not None
    torch.testing.assert_close(a_state, whole_a_state)
    torch.testing.assert_close(s_state, whole_s_state, atol=1e-5, rtol=0)


def test_causality(pqmf: PQMF) -> None:
    """Changing the audio from sample t on leaves band frames < t // M and output samples < t unchanged."""
    m = pqmf.n_bands
    x = _noise(64 * m, seed=3)
    bands = pqmf.analysis(x)[0]
    audio = pqmf.synthesis(bands)[0]
    for t in (5 * m, 20 * m + 3, 63 * m + m - 1):
        changed = x.clone()
        changed[..., t:] = _noise(x.shape[-1] - t, seed=4)
        changed_bands = pqmf.analysis(changed)[0]
        changed_audio = pqmf.synthesis(changed_bands)[0]
        frame = t // m
        assert torch.equal(changed_bands[..., :frame], bands[..., :frame])
        assert not torch.allclose(changed_bands[..., frame], bands[..., frame])
        assert torch.equal(changed_audio[..., : frame * m], audio[..., : frame * m])


def test_float64_and_batch(pqmf: PQMF) -> None:
    """Batch items are processed independently; double precision input gives double output."""
    m = pqmf.n_bands
    x = torch.cat((_noise(32 * m, seed=5), _sine(3000.0, 32 * m)), dim=0).double()
    bands, state = pqmf.analysis(x)
    assert bands.dtype == state.dtype == torch.float64
    single, _ = pqmf.analysis(x[1:])
    torch.testing.assert_close(bands[1:], single)
    audio, _ = pqmf.synthesis(bands)
    assert audio.dtype == torch.float64 and audio.shape == x.shape
