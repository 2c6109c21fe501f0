"""The baselines of SPEC §6 behind the Generator interface: silence, DSP synth, nearest sample."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import soundfile as sf

from neurorack.corpus import Corpus, build_corpus
from neurorack.descriptors import DescriptorConfig, describe
from neurorack.errors import NeurorackError
from neurorack.generators.base import Generator
from neurorack.generators.dsp_synth import DSPSynth
from neurorack.generators.nearest import NearestSample
from neurorack.generators.registry import BASELINES, build_baseline
from neurorack.generators.silence import Silence
from neurorack.metrics import active_frames, synthetic_impact

CFG = DescriptorConfig()
SR = CFG.sample_rate
HOP = CFG.hop_length


def hit(seconds: float, *, freq: float, noise: float, decay: float, seed: int, gain: float = 0.5) -> np.ndarray:
    """Decaying sine + noise one-shot, float32 ``[seconds * SR]``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    body = (1 - noise) * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)
    return (gain * np.exp(-decay * t) * body).astype(np.float32)


def measure(audio: np.ndarray) -> np.ndarray:
    return describe(audio, SR)


@pytest.fixture(scope="module")
def impact_curves() -> np.ndarray:
    return measure(synthetic_impact(SR, 0.8))


@pytest.fixture(scope="module")
def snare_curves() -> np.ndarray:
    return measure(hit(0.5, freq=190, noise=0.7, decay=14.0, seed=2))


def steady(frames: int, *, rms: float, centroid: float, f0: float, flatness: float) -> np.ndarray:
    """Constant curves: a held tone or noise band."""
    curves = np.zeros((frames, 7), dtype=np.float32)
    curves[:] = [rms, 0.05, 2.0 * centroid, flatness, 0.8 * centroid, centroid, f0]
    return curves


# -- silence ---------------------------------------------------------------------------------------


def test_silence_is_exact_zeros(impact_curves: np.ndarray) -> None:
    out = Silence(CFG).generate(impact_curves, seed=1)
    assert out.dtype == np.float32
    assert out.shape == (impact_curves.shape[0] * HOP,)
    assert not out.any()


# -- DSP synth -------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["impact_curves", "snare_curves"])
def test_dsp_rms_tracks_request_within_2db(which: str, request: pytest.FixtureRequest) -> None:
    curves: np.ndarray = request.getfixturevalue(which)
    out = DSPSynth(CFG).generate(curves, seed=0)
    assert out.shape == (curves.shape[0] * HOP,) and out.dtype == np.float32
    got = measure(out)[: curves.shape[0]]
    active = active_frames(curves)
    error_db = 20 * np.log10(got[active, 0] / curves[active, 0])
    assert np.abs(error_db).max() < 2.0


@pytest.mark.parametrize("which", ["impact_curves", "snare_curves"])
def test_dsp_centroid_follows_request(which: str, request: pytest.FixtureRequest) -> None:
    curves: np.ndarray = request.getfixturevalue(which)
    synth = DSPSynth(CFG)
    active = active_frames(curves)
    medians = []
    for scale in (0.5, 1.0, 2.0):
        edited = curves.copy()
        edited[:, 5] *= scale
        medians.append(float(np.median(measure(synth.generate(edited, seed=0))[: curves.shape[0]][active, 5])))
    assert medians[0] < medians[1] < medians[2]
    assert medians[2] > 1.3 * medians[1]


def test_dsp_steady_request_is_measured_back() -> None:
    """A held tone: pitch, level and brightness come back; no gaps or bumps between frames."""
    curves = steady(40, rms=0.1, centroid=660.0, f0=220.0, flatness=1e-4)
    got = measure(DSPSynth(CFG).generate(curves, seed=0))[4:36]  # away from the edges
    assert np.median(got[:, 6]) == pytest.approx(220.0, rel=0.02)
    assert np.median(got[:, 5]) == pytest.approx(660.0, rel=0.25)
    level_db = 20 * np.log10(got[:, 0] / 0.1)
    assert np.abs(level_db).max() < 0.5


def test_dsp_flatness_mixes_noise() -> None:
    synth = DSPSynth(CFG)
    tonal = measure(synth.generate(steady(40, rms=0.1, centroid=3000.0, f0=200.0, flatness=1e-5), seed=0))
    noisy = measure(synth.generate(steady(40, rms=0.1, centroid=3000.0, f0=200.0, flatness=0.5), seed=0))
    assert np.median(noisy[4:36, 3]) > 100 * np.median(tonal[4:36, 3])
    assert np.median(noisy[4:36, 5]) == pytest.approx(3000.0, rel=0.25)


def test_dsp_is_deterministic_per_seed(snare_curves: np.ndarray) -> None:
    synth = DSPSynth(CFG)
    a = synth.generate(snare_curves, seed=3)
    assert np.array_equal(a, synth.generate(snare_curves, seed=3))
    assert not np.array_equal(a, synth.generate(snare_curves, seed=4))
    assert np.isfinite(a).all()


def test_dsp_extreme_curves_stay_finite() -> None:
    """Edited or drawn curves can be anything finite: negative, zero, far beyond Nyquist."""
    rng = np.random.default_rng(0)
    scale = np.array([0.1, 0.1, 5000, 0.2, 3000, 3000, 500])
    cases = {
        "one frame": np.array([[0.1, 0.1, 5000, 0.1, 2000, 3000, 200]], dtype=np.float32),
        "zeros": np.zeros((10, 7), dtype=np.float32),
        "negative": np.full((10, 7), -5.0, dtype=np.float32),
        "beyond nyquist": np.array([[0.1, 0.1, 1e6, 0.01, 1e6, 1e6, 1e9]] * 4, dtype=np.float32),
        "noise": (rng.standard_normal((50, 7)) * scale).astype(np.float32),
    }
    synth = DSPSynth(CFG)
    for name, curves in cases.items():
        with np.errstate(invalid="raise", divide="raise"):  # no NaN from 0/0 or log(0)
            out = synth.generate(curves, seed=0)
        assert out.shape == (curves.shape[0] * HOP,), name
        assert np.isfinite(out).all(), name
    assert not synth.generate(cases["zeros"]).any()  # rms 0 is silence
    assert not synth.generate(cases["negative"]).any()


def test_dsp_other_frame_settings() -> None:
    """Not only librosa's 2048 / 512: a 1024 / 256 analysis at 22.05 kHz (and a 2:1 overlap) still works."""
    for cfg in (DescriptorConfig(22_050, 1024, 256), DescriptorConfig(22_050, 1024, 512)):
        curves = describe(hit(0.4, freq=150, noise=0.5, decay=10, seed=1, gain=0.4)[::2], 22_050,
                          frame_length=cfg.frame_length, hop_length=cfg.hop_length)  # fmt: skip
        out = DSPSynth(cfg).generate(curves, seed=0)
        got = describe(out, 22_050, frame_length=cfg.frame_length, hop_length=cfg.hop_length)[: curves.shape[0]]
        active = active_frames(curves, 30.0)
        assert np.abs(20 * np.log10(got[active, 0] / curves[active, 0])).max() < 2.0


# -- nearest sample --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def library() -> list[tuple[np.ndarray, np.ndarray]]:
    sounds = [
        hit(0.6, freq=60, noise=0.1, decay=6, seed=1),  # kick-like
        hit(0.3, freq=190, noise=0.7, decay=15, seed=2),  # snare-like
        hit(0.2, freq=6000, noise=0.95, decay=30, seed=3, gain=0.2),  # hat-like
        hit(0.9, freq=120, noise=0.2, decay=4, seed=4),  # tom-like
        hit(0.4, freq=400, noise=0.0, decay=8, seed=5),  # tonal
    ]
    return [(x, measure(x)) for x in sounds]


def test_nearest_picks_its_own_sound(library: list[tuple[np.ndarray, np.ndarray]]) -> None:
    player = NearestSample(library, CFG)
    assert len(player) == len(library)
    for i, (audio, curves) in enumerate(library):
        assert player.nearest(curves) == i
        assert player.distances(curves)[i] == pytest.approx(0.0, abs=1e-9)
        out = player.generate(curves)
        n = curves.shape[0] * HOP
        expected = np.pad(audio, (0, max(0, n - audio.size)))[:n]
        assert np.array_equal(out, expected)


def test_nearest_crops_and_pads(library: list[tuple[np.ndarray, np.ndarray]]) -> None:
    player = NearestSample(library, CFG)
    kick_audio, kick = library[0]
    short = player.generate(kick[:10])
    assert np.array_equal(short, kick_audio[: 10 * HOP])
    longer = measure(np.pad(kick_audio, (0, 50 * HOP)))  # the same hit followed by silence
    assert player.nearest(longer) == 0
    out = player.generate(longer)
    assert out.shape == (longer.shape[0] * HOP,)
    assert np.array_equal(out[: kick_audio.size], kick_audio) and not out[kick_audio.size :].any()


def test_nearest_prefers_the_similar_sound(library: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """A different take of the snare (other noise, slightly louder) still finds the snare."""
    player = NearestSample(library, CFG)
    take = measure(hit(0.3, freq=195, noise=0.7, decay=14, seed=99, gain=0.6))
    assert player.nearest(take) == 1


def test_nearest_lazy_loading(library: list[tuple[np.ndarray, np.ndarray]]) -> None:
    loads: list[int] = []

    def loader(i: int) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            loads.append(i)
            return library[i][0]

        return load

    player = NearestSample([(loader(i), c) for i, (_, c) in enumerate(library)], CFG, names=list("abcde"))
    assert loads == []
    assert player.nearest_name(library[3][1]) == "d"
    player.generate(library[3][1])
    player.generate(library[3][1])
    assert loads == [3]  # cached after the first load


def test_nearest_bad_construction(library: list[tuple[np.ndarray, np.ndarray]]) -> None:
    with pytest.raises(NeurorackError, match="at least one"):
        NearestSample([], CFG)
    with pytest.raises(NeurorackError, match="sound 0"):
        NearestSample([(library[0][0], library[0][1][:, :6])], CFG)
    with pytest.raises(NeurorackError, match="sound 0"):
        NearestSample([(np.full(100, np.nan, dtype=np.float32), library[0][1])], CFG)
    with pytest.raises(NeurorackError):
        NearestSample(library, CFG, match_frames=0)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    src = tmp_path_factory.mktemp("hits")
    rng = np.random.default_rng(0)
    for i in range(24):
        x = hit(
            float(rng.uniform(0.2, 0.6)),
            freq=float(rng.uniform(50, 3000)),
            noise=float(rng.uniform(0, 1)),
            decay=float(rng.uniform(4, 30)),
            seed=i,
        )
        sf.write(src / f"hit{i:02d}.wav", x, SR, subtype="FLOAT")
    out = tmp_path_factory.mktemp("corpus") / "c"
    build_corpus([src], out, jobs=1, progress=False)
    return Corpus.open(out)


def test_nearest_from_corpus_never_returns_held_out_sounds(small_corpus: Corpus) -> None:
    train = small_corpus.sounds("train")
    held_out = small_corpus.sounds("validation") + small_corpus.sounds("test")
    assert train and held_out
    player = NearestSample.from_corpus(small_corpus, split="train")
    assert len(player) == len(train)
    train_hashes = {s.hash for s in train}
    for sound in train[:3]:
        assert player.nearest_name(sound.descriptors()) == sound.hash
        out = player.generate(sound.descriptors())
        assert np.array_equal(out[: sound.audio().size], sound.audio()[: out.size])
    for sound in held_out:
        assert player.nearest_name(sound.descriptors()) in train_hashes


# -- registry and input validation ---------------------------------------------------------------


def test_registry_builds_every_baseline(small_corpus: Corpus) -> None:
    assert BASELINES == ("silence", "dsp", "nearest")
    assert isinstance(build_baseline("silence", CFG), Silence)
    assert isinstance(build_baseline(" DSP ", CFG), DSPSynth)
    nearest = build_baseline("nearest", small_corpus.config, small_corpus)
    assert isinstance(nearest, NearestSample) and nearest.name == "nearest"
    for name in BASELINES:
        gen = build_baseline(name, small_corpus.config, small_corpus)
        assert isinstance(gen, Generator) and gen.name == name


def test_registry_errors(small_corpus: Corpus) -> None:
    with pytest.raises(NeurorackError, match="unknown baseline 'sinc'"):
        build_baseline("sinc", CFG)
    with pytest.raises(NeurorackError, match="needs a corpus"):
        build_baseline("nearest", CFG)
    with pytest.raises(NeurorackError, match="analysed with"):
        build_baseline("nearest", DescriptorConfig(22_050), small_corpus)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 6), dtype=np.float32),
        np.zeros((0, 7), dtype=np.float32),
        np.zeros(70, dtype=np.float32),
        np.full((10, 7), np.nan, dtype=np.float32),
        np.full((10, 7), np.inf, dtype=np.float32),
    ],
    ids=["six-columns", "empty", "flat", "nan", "inf"],
)
def test_generators_reject_bad_curves(bad: np.ndarray, library: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for gen in (Silence(CFG), DSPSynth(CFG), NearestSample(library, CFG)):
        with pytest.raises(NeurorackError):
            gen.generate(bad)
