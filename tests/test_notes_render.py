"""Note corpora rendered from a real SoundFont (Debian's TimGM6mb) by the real FluidSynth: the NSynth layout
and fields, the note protocol (16 kHz, 4 s, key up at 3 s), velocity and pitch, determinism, resuming a killed
render, and bad input refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from neurorack.cli import main
from neurorack.errors import AudioError, CorpusError
from neurorack.notes import render as render_module
from neurorack.notes.gm import gm_family, is_melodic
from neurorack.notes.nsynth import NoteCorpus
from neurorack.notes.render import JOURNAL, parse_pitches, parse_velocities, render_corpus
from neurorack.notes.soundfont import FluidRenderer, Preset, select_presets

TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
pytestmark = pytest.mark.skipif(not TIMGM.is_file(), reason="needs Debian's timgm6mb-soundfont and fluidsynth")

# piano (decays), flute (sustains while held), at a few pitches around middle C
SELECTION = "0,73"
PITCHES = "58-62"
VELOCITIES = "25,127"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render") / "tim"
    render_corpus(TIMGM, out, instruments=SELECTION, pitches=PITCHES, velocities=VELOCITIES, jobs=1, progress=False)
    return out


def test_gm_table_covers_every_program() -> None:
    assert [gm_family(p) for p in (0, 4, 24, 33, 40, 56, 73, 81)] == [
        ("keyboard", "acoustic"), ("keyboard", "electronic"), ("guitar", "acoustic"), ("bass", "electronic"),
        ("string", "acoustic"), ("brass", "acoustic"), ("flute", "acoustic"), ("synth_lead", "synthetic"),
    ]  # fmt: skip
    assert all(gm_family(p)[0] for p in range(128))
    with pytest.raises(ValueError):
        gm_family(128)
    assert is_melodic(0, 0) and not is_melodic(128, 0) and not is_melodic(0, 127)


def test_preset_selection() -> None:
    presets = [Preset(0, 0, "Piano 1"), Preset(0, 40, "Violin"), Preset(0, 125, "Helicopter"), Preset(128, 0, "Kit")]
    assert select_presets(presets, "melodic") == presets[:2]
    assert select_presets(presets, "all") == presets
    assert select_presets(presets, "violin,0") == presets[:2]
    assert select_presets(presets, "string") == [presets[1]]
    assert select_presets(presets, "128:0-3") == [presets[3]]
    with pytest.raises(CorpusError, match="matches no preset"):
        select_presets(presets, "7")
    with pytest.raises(CorpusError, match="not a program"):
        select_presets(presets, "x:y")
    assert parse_pitches("21-23,60") == (21, 22, 23, 60)
    assert parse_velocities("127,25") == (25, 127)
    for bad in ("60-20", "200", "c4"):
        with pytest.raises(CorpusError):
            parse_pitches(bad)
    with pytest.raises(CorpusError):
        parse_velocities("0,64")


def test_render_writes_the_nsynth_layout(rendered: Path) -> None:
    examples = json.loads((rendered / "examples.json").read_text())
    assert len(examples) == 2 * 5 * 2
    note = examples["flute_acoustic_timgm6mb_000_073-060-127"]
    assert note["note_str"] == "flute_acoustic_timgm6mb_000_073-060-127"
    assert note["instrument_str"] == "flute_acoustic_timgm6mb_000_073"
    assert (note["pitch"], note["velocity"], note["sample_rate"]) == (60, 127, 16_000)
    assert (note["instrument_family_str"], note["instrument_source_str"]) == ("flute", "acoustic")
    assert (note["bank"], note["program"], note["soundfont"]) == (0, 73, "TimGM6mb.sf2")
    assert note["instrument_name"] and note["qualities_str"] == []
    assert sorted(e["note"] for e in examples.values()) == list(range(20))
    info = sf.info(str(rendered / "audio" / f"{note['note_str']}.wav"))
    assert (info.samplerate, info.frames, info.channels, info.subtype) == (16_000, 64_000, 1, "PCM_16")
    corpus = NoteCorpus.open(rendered)
    assert corpus.instruments == ["flute_acoustic_timgm6mb_000_073", "keyboard_acoustic_timgm6mb_000_000"]
    assert corpus.pitch_range("keyboard_acoustic_timgm6mb_000_000") == (58, 62)


def test_notes_follow_the_protocol(rendered: Path) -> None:
    def read(name: str) -> np.ndarray:
        audio, sr = sf.read(rendered / "audio" / f"{name}.wav", dtype="float32")
        assert sr == 16_000
        return audio

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))

    flute = read("flute_acoustic_timgm6mb_000_073-060-127")
    # held for 3 s: the flute still sounds just before the key-off and has died away after it
    assert rms(flute[int(2.5 * 16_000) : 3 * 16_000]) > 30 * rms(flute[int(3.6 * 16_000) :])
    assert rms(flute) > 2 * rms(read("flute_acoustic_timgm6mb_000_073-060-025"))
    f0, voiced, _ = librosa.pyin(flute[16_000 : 2 * 16_000], fmin=100, fmax=800, sr=16_000)
    cents = 1200 * np.log2(np.nanmedian(f0[voiced]) / librosa.midi_to_hz(60))
    assert abs(cents) < 50
    piano = read("keyboard_acoustic_timgm6mb_000_000-062-127")
    assert np.abs(piano).max() <= 1.0 and rms(piano[:16_000]) > rms(piano[2 * 16_000 : 3 * 16_000])


def test_rendering_is_deterministic() -> None:
    with FluidRenderer(TIMGM) as renderer:
        flute = next(p for p in renderer.presets if (p.bank, p.program) == (0, 73))
        first = renderer.render(flute, 60, 100, hold=1.0, seconds=1.5)
    with FluidRenderer(TIMGM) as renderer:
        again = renderer.render(flute, 60, 100, hold=1.0, seconds=1.5)
    assert first.shape == (72_000,) and np.array_equal(first, again)


def test_a_killed_render_resumes_to_the_same_files(
    rendered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "resumed"
    real = render_module.render_instrument
    calls = []

    def killed_on_second(task: render_module.InstrumentTask) -> dict[str, object]:
        calls.append(task.instrument_str)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(render_module, "render_instrument", killed_on_second)
    with pytest.raises(KeyboardInterrupt):
        render_corpus(TIMGM, out, instruments=SELECTION, pitches=PITCHES, velocities=VELOCITIES, jobs=1, progress=False)
    assert not (out / "examples.json").exists()  # not a corpus until complete
    assert len((out / JOURNAL).read_text().splitlines()) == 1
    monkeypatch.setattr(render_module, "render_instrument", real)
    report = render_corpus(
        TIMGM, out, instruments=SELECTION, pitches=PITCHES, velocities=VELOCITIES, jobs=1, progress=False
    )
    assert (report.resumed_instruments, report.rendered_instruments, report.notes) == (1, 1, 20)
    assert json.loads((out / "examples.json").read_text()) == json.loads((rendered / "examples.json").read_text())
    for wav in sorted((rendered / "audio").iterdir()):
        assert (out / "audio" / wav.name).read_bytes() == wav.read_bytes()


def test_bad_input_is_refused_before_writing(rendered: Path, tmp_path: Path) -> None:
    not_sf = tmp_path / "fake.sf2"
    not_sf.write_bytes(b"RIFX" + bytes(100))
    with pytest.raises(CorpusError, match="not a SoundFont"):
        render_corpus(not_sf, tmp_path / "a", progress=False)
    with pytest.raises(CorpusError, match="matches no preset"):
        render_corpus(TIMGM, tmp_path / "b", instruments="8:99", progress=False)
    with pytest.raises(CorpusError, match="sounds at no pitch"):  # a drum kit has no drum on the lowest keys
        render_corpus(TIMGM, tmp_path / "c", instruments="128:0", pitches="0-5", progress=False)
    assert not any((tmp_path / d).exists() for d in "abc")
    with pytest.raises(CorpusError, match="other settings"):
        render_corpus(TIMGM, rendered, instruments=SELECTION, pitches="58-63", velocities=VELOCITIES, progress=False)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "song.wav").write_bytes(b"")
    with pytest.raises(CorpusError, match="not empty"):
        render_corpus(TIMGM, foreign, instruments=SELECTION, progress=False)
    assert [p.name for p in foreign.iterdir()] == ["song.wav"]


def test_an_unreadable_wav_in_a_corpus_is_one_line(rendered: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    (copy / "audio").mkdir(parents=True)
    (copy / "examples.json").write_bytes((rendered / "examples.json").read_bytes())
    for wav in (rendered / "audio").iterdir():
        (copy / "audio" / wav.name).write_bytes(wav.read_bytes())
    broken = copy / "audio" / "flute_acoustic_timgm6mb_000_073-060-127.wav"
    broken.write_bytes(b"not a wav")
    corpus = NoteCorpus.open(copy)
    note = next(n for n in corpus.notes if n.path == broken)
    with pytest.raises(AudioError, match="flute_acoustic_timgm6mb_000_073-060-127"):
        corpus.read(note)


def test_notes_cli_round_trip(rendered: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["notes", "render", str(TIMGM), "--out", str(out), "--instruments", "flute", "--pitches", "60-61"]
    assert main([*argv, "--velocities", "100", "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["notes"] >= 2 and report["clipped_notes"] == 0
    assert main(["notes", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["notes"] == report["notes"] and set(info["families"]) == {"flute"}
    assert main(["notes", "list", str(TIMGM), "--json"]) == 0
    presets = json.loads(capsys.readouterr().out)
    assert any((p["bank"], p["program"], p["family"]) == (0, 73, "flute") for p in presets)
    assert sum(p["melodic"] for p in presets) == 120  # GM 0-119 of bank 0: no kits, no sound effects
    assert main(["notes", "render", "/nonexistent.sf2", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and len(err.strip().splitlines()) == 1
