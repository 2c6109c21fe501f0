"""Fast tests of the engine's parts: voices, limiter, calibration, gates, impact pool, MIDI map."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from neurorack.engine import calibration as cal
from neurorack.engine.gates import GateDetector
from neurorack.engine.impacts import TAIL_FADE, ImpactPool
from neurorack.engine.limiter import SoftLimiter
from neurorack.engine.midi import CV, GATE_OFF, GATE_ON, MALFORMED, NONE, MidiMap, load_midi_map
from neurorack.engine.voices import VoicePool
from neurorack.errors import NeurorackError

# ------------------------------------------------------------------------------------------------
# voices
# ------------------------------------------------------------------------------------------------


def _run(pool: VoicePool, buffers: list[np.ndarray], blocks: int, n: int = 64) -> np.ndarray:
    out = np.zeros(blocks * n, dtype=np.float32)
    for b in range(blocks):
        pool.mix(out[b * n : (b + 1) * n], buffers)
    return out


def test_a_new_hit_does_not_cut_the_previous_tail() -> None:
    buffers = [np.ones(1000, dtype=np.float32), np.full(1000, 2.0, dtype=np.float32)]
    pool = VoicePool(8, 64, limit=4)
    pool.start(0, 1000)
    first = _run(pool, buffers, 2)  # 128 samples of voice 0
    assert np.allclose(first, 1.0)
    pool.start(1, 1000, delay=10)
    out = _run(pool, buffers, 1)
    assert np.allclose(out[:10], 1.0) and np.allclose(out[10:], 3.0)  # both sound
    assert pool.active() == 2


def test_voice_ends_at_the_impact_end_and_onset_is_sample_accurate() -> None:
    buffers = [np.arange(1, 301, dtype=np.float32)]
    pool = VoicePool(4, 128, limit=2)
    pool.start(0, 300, delay=5)
    out = _run(pool, buffers, 4, n=128)
    assert np.all(out[:5] == 0) and out[5] == 1.0
    assert np.array_equal(out[5:305], buffers[0])
    assert np.all(out[305:] == 0)
    assert pool.active() == 0


def test_oldest_voice_is_stolen_with_a_short_fade() -> None:
    buffers = [np.full(10_000, v, dtype=np.float32) for v in (1.0, 10.0, 100.0)]
    pool = VoicePool(8, 64, limit=2, fade=32)
    pool.start(0, 10_000)
    _run(pool, buffers, 1)
    pool.start(1, 10_000)
    _run(pool, buffers, 1)
    pool.start(2, 10_000)  # over the limit: voice of slot 0 fades
    out = _run(pool, buffers, 1)
    assert pool.stolen == 1
    expected_fade = 1.0 * np.linspace(1.0, 0.0, 32, dtype=np.float32)
    assert np.allclose(out[:32], 110.0 + expected_fade, atol=1e-4)
    assert np.allclose(out[32:], 110.0)
    assert pool.active() == 2


def test_voice_limit_is_checked() -> None:
    pool = VoicePool(8, 64, limit=4)
    with pytest.raises(ValueError):
        pool.limit = 0
    with pytest.raises(ValueError):
        pool.limit = 5  # capacity 8 → at most 4


# ------------------------------------------------------------------------------------------------
# limiter
# ------------------------------------------------------------------------------------------------


def test_limiter_passes_quiet_audio_unchanged() -> None:
    lim = SoftLimiter(44100, 128)
    x = (0.5 * np.sin(np.linspace(0, 20, 128))).astype(np.float32)
    y = x.copy()
    lim.process(y)
    assert np.array_equal(x, y)


def test_limiter_keeps_peaks_under_the_ceiling_and_releases() -> None:
    lim = SoftLimiter(44100, 128, threshold=0.9, release=0.01)
    loud = np.full(128, 4.0, dtype=np.float32)
    lim.process(loud)
    assert np.abs(loud).max() <= 0.9 + 1e-6
    assert lim.active_blocks == 1
    for _ in range(200):  # 0.6 s of silence: the gain recovers
        lim.process(np.zeros(128, dtype=np.float32))
    assert lim.gain > 0.99


def test_limiter_never_lets_nan_or_inf_through() -> None:
    lim = SoftLimiter(44100, 128)
    x = np.linspace(-2, 2, 128).astype(np.float32)
    x[3], x[50], x[100] = np.nan, np.inf, -np.inf
    lim.process(x)
    assert np.isfinite(x).all() and np.abs(x).max() <= 1.0
    assert lim.sanitized_blocks == 1


# ------------------------------------------------------------------------------------------------
# calibration
# ------------------------------------------------------------------------------------------------


def test_cv_ranges_map_to_the_same_controls() -> None:
    assert cal.normalise(0.0, 5.0) == 0.0 and cal.normalise(5.0, 10.0) == 0.0
    assert cal.normalise(-5.0, 5.0) == -1.0 and cal.normalise(0.0, 10.0) == -1.0
    assert cal.normalise(12.0, 5.0) == 1.0  # clamped
    assert cal.normalise(float("nan"), 5.0) == 0.0
    assert cal.position(cal.normalise(-5.0)) == 0.0 and cal.position(cal.normalise(5.0)) == 1.0
    for u in (-1.0, -0.3, 0.0, 0.7, 1.0):
        assert math.isclose(cal.normalise(cal.volts_for(u, 10.0), 10.0), u)


def test_descriptor_scales_per_volt_range() -> None:
    assert math.isclose(cal.scale_for("rms", 1.0), 10 ** (24 / 20))  # +5 V: +24 dB
    assert math.isclose(cal.scale_for("centroid", -1.0), 0.5)  # −5 V: one octave down
    assert math.isclose(cal.scale_for("f0", cal.normalise(1.0)), 2.0)  # 1 V/octave
    assert cal.scale_for("bandwidth", 0.0) == 1.0
    assert cal.offset_for("flatness", 1.0) == cal.FLATNESS_RANGE
    assert cal.offset_for("inharmonicity", -1.0) == -cal.INHARMONICITY_RANGE
    assert math.isclose(cal.velocity_gain(1.0), 1.0) and math.isclose(cal.velocity_gain(0.0), 10 ** (-24 / 20))


def test_targets_accept_aliases_and_refuse_nonsense() -> None:
    assert cal.target_name("Brightness") == "centroid"
    assert cal.target_name("position") == "position"
    with pytest.raises(ValueError, match="unknown CV target"):
        cal.target_name("wobble")


# ------------------------------------------------------------------------------------------------
# gates and impacts
# ------------------------------------------------------------------------------------------------


def test_gate_detector_is_sample_accurate_with_hysteresis() -> None:
    det = GateDetector(128)
    block = np.zeros(128, dtype=np.float32)
    block[10:40] = 0.5  # 5 V at 10 V full scale
    block[40:45] = 0.07  # dips to 0.7 V: above the 0.5 V release level, stays high
    block[45:60] = 0.5
    block[80:90] = 0.5
    assert det.process(block, 0.1, 0.05) == 2
    assert list(det.offsets[:2]) == [10, 80]
    assert not det.state
    held = np.full(128, 0.5, dtype=np.float32)
    assert det.process(held, 0.1, 0.05) == 1 and det.offsets[0] == 0
    assert det.process(held, 0.1, 0.05) == 0  # still high: no new edge across blocks


def test_impact_pool_never_hands_out_a_slot_in_use() -> None:
    pool = ImpactPool(4, 1000)
    audio = np.ones(500, dtype=np.float32)
    s0 = pool.acquire(set(), 0)
    pool.write(s0, audio)
    pool.publish(s0, periods_done=10)
    assert pool.current == s0 and pool.lengths[s0] == 500
    assert pool.buffers[s0][499] == 0.0 and pool.buffers[s0][500 - TAIL_FADE] == 1.0  # tail fade
    s1 = pool.acquire({s0}, 10)
    assert s1 != s0
    pool.write(s1, np.full(2000, np.nan, dtype=np.float32))  # too long and NaN: cut and zeroed
    assert pool.lengths[s1] == 1000 and np.isfinite(pool.buffers[s1]).all()
    pool.publish(s1, periods_done=11)  # s0 retired at 11: not reusable before 13
    assert pool.acquire({s1}, 12) not in (s0, s1)
    busy = {i for i in range(4) if i not in (s0, s1)}
    assert pool.acquire(busy, 12) == -1
    assert pool.acquire(busy, 13) == s0


# ------------------------------------------------------------------------------------------------
# MIDI
# ------------------------------------------------------------------------------------------------


def test_default_midi_map() -> None:
    m = MidiMap()
    assert m.decode(bytes([0x90, 60, 127])) == (GATE_ON, 1, 1.0)
    assert m.decode(bytes([0x93, 60, 0])) == (GATE_OFF, 1, 0.0)  # note-on velocity 0 = note-off
    assert m.decode(bytes([0x80, 60, 64])) == (GATE_OFF, 1, 0.0)
    assert m.decode(bytes([0xB0, 74, 127])) == (CV, 3, 1.0)
    assert m.decode(bytes([0xB0, 64, 100])) == (GATE_ON, 2, 1.0)  # sustain pedal: gate 2
    assert m.decode(bytes([0xB0, 10, 5]))[0] == NONE
    assert m.decode(bytes([0xE0, 0, 64]))[0] == NONE  # pitch bend: not mapped
    assert m.decode(bytes([0xF8]))[0] == NONE  # clock


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x40",
        b"\x90\x3c",
        b"\x90\x80\x10",
        b"\x90\x3c\x40\x00",
        b"\xf0\x01\x02",
        b"\xf0\x90\xf7",
        b"\xf4",
        b"\xfe\x00",
    ],
)
def test_malformed_midi_is_flagged_not_raised(data: bytes) -> None:
    assert MidiMap().decode(data)[0] == MALFORMED


def test_midi_map_file(tmp_path: Path) -> None:
    f = tmp_path / "map.toml"
    f.write_text('channel = 10\nvelocity = false\ngate2_notes = [38]\ngate2_cc = -1\n[cc]\n"20" = 2\n21 = 4\n')
    m = load_midi_map(f)
    assert m.decode(bytes([0x99, 36, 20])) == (GATE_ON, 1, 1.0)  # channel 10, velocity ignored
    assert m.decode(bytes([0x99, 38, 20])) == (GATE_ON, 2, 1.0)
    assert m.decode(bytes([0x90, 36, 20]))[0] == NONE  # other channel
    assert m.decode(bytes([0xB9, 21, 0])) == (CV, 4, 0.0)
    assert m.decode(bytes([0xB9, 64, 127]))[0] == NONE


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chanel = 1\n", "unknown key"),
        ("channel = 17\n", "channel"),
        ("velocity = 3\n", "velocity"),
        ("gate1_notes = [1, 200]\n", "gate1_notes"),
        ("gate1_notes = [36]\ngate2_notes = [36]\n", "both"),
        ("[cc]\nx = 1\n", "not a CC number"),
        ("[cc]\n7 = 5\n", "cc.7"),
        ("[cc]\n64 = 1\n", "gate2_cc"),
        ("channel = = 1\n", "not valid TOML"),
    ],
)
def test_bad_midi_maps_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(NeurorackError, match=message) as info:
        load_midi_map(f)
    assert "\n" not in str(info.value)


def test_missing_midi_map_file(tmp_path: Path) -> None:
    with pytest.raises(NeurorackError, match="no such MIDI map"):
        load_midi_map(tmp_path / "nope.toml")
