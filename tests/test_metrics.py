"""Metrics of SPEC §6: MR-STFT distance, control response, speed protocol (never speed thresholds)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from neurorack.audio_io import read_audio
from neurorack.descriptors import DescriptorConfig, describe
from neurorack.errors import AudioError, NeurorackError
from neurorack.generators.dsp_synth import DSPSynth
from neurorack.generators.silence import Silence
from neurorack.metrics import (
    ACTIVE_DB,
    ControlResult,
    active_frames,
    control_response,
    control_response_many,
    impact_curves,
    limit_threads,
    mrstft_distance,
    realtime_factor,
    speed,
    synthetic_impact,
    time_audio,
)

SR = 22_050


def burst(seconds: float = 1.0, decay_per_s: float = 12.0, seed: int = 0, sr: int = SR) -> np.ndarray:
    """A real-ish one-shot: 2 ms attack, exponentially decaying noise plus a low tone, float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    env = np.minimum(1.0, t / 0.002) * np.exp(-decay_per_s * t)
    x = env * (0.4 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 130 * t))
    return x.astype(np.float32)


# -- MR-STFT ---------------------------------------------------------------------------------------


def test_mrstft_identical_is_zero() -> None:
    x = burst()
    assert mrstft_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_mrstft_minus_6db_is_about_one() -> None:
    x = burst()
    d = mrstft_distance(0.5 * x, x)
    # SC = 0.5 where above the floor, log-mag = ln 2 on the loud bins, less on the decayed tail
    assert 0.8 < d < 1.2


def test_mrstft_fully_active_minus_6db_matches_closed_form() -> None:
    """Stationary loud noise: spectral convergence 0.5 + log-magnitude ln 2 exactly."""
    x = (0.5 * np.random.default_rng(1).standard_normal(SR)).astype(np.float32)
    assert mrstft_distance(0.5 * x, x) == pytest.approx(0.5 + math.log(2), abs=1e-3)


def test_mrstft_silence_is_worse_than_a_quieter_copy() -> None:
    x = burst()
    silence = mrstft_distance(np.zeros_like(x), x)
    assert np.isfinite(silence)
    assert silence > mrstft_distance(0.5 * x, x) + 1.0
    assert silence > 2.0


def test_mrstft_crops_and_pads_to_the_reference() -> None:
    x = burst(0.5)
    longer = np.concatenate([x, np.ones(5000, dtype=np.float32)])
    assert mrstft_distance(longer, x) == pytest.approx(0.0, abs=1e-6)
    half = x[: x.size // 2]
    assert mrstft_distance(half, x) == pytest.approx(
        mrstft_distance(np.pad(half, (0, x.size - half.size)), x), rel=1e-6
    )


def test_mrstft_very_short_input() -> None:
    x = burst(0.005)  # 110 samples, shorter than every FFT
    assert x.size < 512
    assert mrstft_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert mrstft_distance(0.5 * x, x) > 0.3


@pytest.mark.parametrize(
    ("generated", "reference"),
    [
        (np.zeros(0, dtype=np.float32), np.ones(100, dtype=np.float32)),
        (np.ones(100, dtype=np.float32), np.zeros(0, dtype=np.float32)),
        (np.full(100, np.nan, dtype=np.float32), np.ones(100, dtype=np.float32)),
        (np.ones(100, dtype=np.float32), np.array([1.0, np.inf] * 50, dtype=np.float32)),
        (np.ones((100, 2), dtype=np.float32), np.ones(100, dtype=np.float32)),
    ],
)
def test_mrstft_bad_inputs(generated: np.ndarray, reference: np.ndarray) -> None:
    with pytest.raises(AudioError):
        mrstft_distance(generated, reference)


def test_mrstft_calibration_on_real_one_shots(drum_files: list[Path]) -> None:
    """SPEC §6 at 22.05 kHz: the sound at −6 dB ≈ 1.0; silence and another sound far worse."""
    sounds: list[np.ndarray] = []
    for path in drum_files[:: max(1, len(drum_files) // 12)]:
        try:
            sounds.append(read_audio(path, SR, max_seconds=2.0)[0])
        except AudioError:  # the packages hold a few malformed files; the corpus skips them too
            continue
        if len(sounds) == 8:
            break
    assert len(sounds) == 8
    quieter = [mrstft_distance(0.5 * x, x) for x in sounds]
    silence = [mrstft_distance(np.zeros_like(x), x) for x in sounds]
    other = [mrstft_distance(sounds[(i + 1) % len(sounds)], x) for i, x in enumerate(sounds)]
    assert 0.7 < float(np.median(quieter)) < 1.25
    assert float(np.median(silence)) > 2.0 * float(np.median(quieter))
    assert float(np.median(other)) > 2.0 * float(np.median(quieter))


# -- control response ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def config() -> DescriptorConfig:
    return DescriptorConfig()


@pytest.fixture(scope="module")
def impact(config: DescriptorConfig) -> np.ndarray:
    return describe(synthetic_impact(config.sample_rate, 0.6), config.sample_rate)


@pytest.fixture(scope="module")
def snare(config: DescriptorConfig) -> np.ndarray:
    return describe(burst(0.4, 15.0, seed=3, sr=config.sample_rate), config.sample_rate)


def test_active_frames_threshold() -> None:
    curves = np.zeros((4, 7), dtype=np.float32)
    curves[:, 0] = [1.0, 10 ** (-49 / 20), 10 ** (-51 / 20), 0.0]
    assert active_frames(curves).tolist() == [True, True, False, False]
    assert ACTIVE_DB == 50.0
    assert not active_frames(np.zeros((3, 7))).any()


def test_control_response_of_dsp_follows_rms_and_centroid(config: DescriptorConfig, impact: np.ndarray) -> None:
    synth = DSPSynth(config)
    rms = control_response(synth, impact, "rms")
    assert isinstance(rms, ControlResult)
    assert rms.valid and rms.reason == ""
    assert rms.slope == pytest.approx(1.0, abs=0.1)  # gain is matched frame by frame
    assert rms.rho == pytest.approx(1.0)
    centroid = control_response(synth, impact, "brightness")  # perceptual alias
    assert centroid.descriptor == "centroid"
    assert centroid.slope > 0.3
    assert centroid.rho > 0.8
    assert len(centroid.measured) == len(centroid.scales) == 5
    assert centroid.active_frames == int(active_frames(impact).sum())


def test_control_response_of_silence_is_flagged(config: DescriptorConfig, impact: np.ndarray) -> None:
    result = control_response(Silence(config), impact, "centroid")
    assert not result.valid and result.constant
    assert "floor" in result.reason and "does not change" in result.reason
    assert result.slope == 0.0 and result.rho == 0.0
    assert set(result.measured) == {1.0}  # clipped at the 1 Hz floor, not log(0)


def test_control_response_of_an_ignored_control_is_no_control(config: DescriptorConfig, impact: np.ndarray) -> None:
    """The DSP synth ignores zcr: a valid, constant result with slope 0 and rho 0 (not excluded from medians)."""
    result = control_response(DSPSynth(config), impact, "zcr")
    assert result.valid and result.constant
    assert result.slope == 0.0 and result.rho == 0.0
    assert len(set(result.measured)) == 1 and result.measured[0] > 1e-3


def test_control_response_many_medians(config: DescriptorConfig, impact: np.ndarray, snare: np.ndarray) -> None:
    synth = DSPSynth(config)
    silent = np.zeros_like(snare)  # no active frame: skipped
    summary = control_response_many(synth, [impact, snare, silent], "rms")
    assert summary.n_sounds == 2 and summary.n_valid == 2
    assert summary.slope == pytest.approx(float(np.median([r.slope for r in summary.results])))
    assert summary.slope == pytest.approx(1.0, abs=0.1)
    flagged = control_response_many(Silence(config), [impact, snare], "rms")
    assert flagged.n_sounds == 2 and flagged.n_valid == 0
    assert math.isnan(flagged.slope) and math.isnan(flagged.rho)


def test_control_response_bad_inputs(config: DescriptorConfig, impact: np.ndarray) -> None:
    synth = Silence(config)
    with pytest.raises(NeurorackError, match="unknown descriptor"):
        control_response(synth, impact, "loudness2")
    with pytest.raises(NeurorackError, match="scales"):
        control_response(synth, impact, "rms", scales=(1.0,))
    with pytest.raises(NeurorackError, match="scales"):
        control_response(synth, impact, "rms", scales=(-1.0, 1.0))
    with pytest.raises(NeurorackError, match="active"):
        control_response(synth, np.zeros((10, 7), dtype=np.float32), "rms")
    with pytest.raises(NeurorackError, match="shape"):
        control_response(synth, impact[:, :6], "rms")
    with pytest.raises(NeurorackError):
        control_response_many(synth, [], "rms")
    with pytest.raises(NeurorackError, match="unknown descriptor"):
        control_response_many(synth, [np.zeros((3, 7))], "nope")


# -- speed protocol ---------------------------------------------------------------------------


def test_limit_threads_restores() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with limit_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), limit_threads(1):
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(NeurorackError), limit_threads(0):
        pass


def test_time_audio_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def job() -> np.ndarray:
        calls.append(1)
        return np.ones(1_000_000)  # 8 MB: visible to tracemalloc

    monkeypatch.setattr(speed, "WARM_SECONDS", 0.0)
    result = time_audio("job", job, 2.0, repeats=3, warmup=2)
    assert len(calls) == 2 + 3 + 1  # warm-up, timed, one traced run
    assert len(result.times) == 3
    assert result.median_seconds == float(np.median(result.times))
    assert result.realtime_factor == pytest.approx(2.0 / result.median_seconds)
    assert result.threads == 1
    assert result.peak_traced_bytes >= 8_000_000
    with pytest.raises(NeurorackError):
        time_audio("job", job, 1.0, repeats=0)
    with pytest.raises(NeurorackError):
        time_audio("job", job, 0.0)


def test_time_audio_warms_fast_jobs_for_warm_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fast job is run untimed until WARM_SECONDS have passed (and at least ``warmup`` times)."""
    monkeypatch.setattr(speed, "WARM_SECONDS", 0.05)
    stamps: list[float] = []

    def job() -> None:
        stamps.append(time.perf_counter())
        time.sleep(0.002)

    time_audio("job", job, 1.0, repeats=2, warmup=1, trace_memory=False)
    warm, first_timed = stamps[:-2], stamps[-2]
    assert len(warm) >= 2
    assert first_timed - warm[0] >= 0.05 - 1e-3  # timing began once WARM_SECONDS had passed
    assert all(t - warm[0] < 0.05 for t in warm)  # and no warm-up run was started after that
    stamps.clear()
    time_audio("job", job, 1.0, repeats=2, warmup=0, trace_memory=False)
    assert len(stamps) == 2  # warmup=0: no warm-up at all


def test_realtime_factor_of_a_generator(config: DescriptorConfig) -> None:
    curves = impact_curves(config, 0.25)
    assert curves.shape == (round(0.25 * config.sample_rate / config.hop_length), 7)
    result = realtime_factor(Silence(config), 0.25, repeats=2)
    assert result.name == "silence"
    assert result.audio_seconds == pytest.approx(curves.shape[0] * config.hop_length / config.sample_rate)
    assert len(result.times) == 2 and result.realtime_factor > 0
    with pytest.raises(NeurorackError):
        realtime_factor(Silence(config), curves=np.zeros((10, 6), dtype=np.float32))
