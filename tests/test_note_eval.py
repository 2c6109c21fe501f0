"""Note evaluation: the sampler baseline transposes the nearest trained pitch, pitch is measured in cents,
every candidate is scored on the same unseen pitches, a model trained on a test note is refused, and the CLI
round trip on a note corpus."""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from neurorack.audio_io import change_speed
from neurorack.cli import main
from neurorack.errors import AudioError, NeurorackError
from neurorack.evaluation.note_protocol import REAL, SAMPLER, SamplerBaseline, evaluate_notes, pitch_cents
from neurorack.models.registry import build_note_model, note_config
from neurorack.note_model_file import InstrumentInfo, export_note_model, load_note_model
from neurorack.notes.nsynth import NoteCorpus
from test_sing import write_note_corpus

SR = 16_000
INSTRUMENTS = {"keyboard_acoustic_000": 0.5, "synth_lead_synthetic_001": 0.9}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> NoteCorpus:
    root = tmp_path_factory.mktemp("note-eval")
    return NoteCorpus.open(write_note_corpus(root / "corpus", INSTRUMENTS, range(48, 72)))


def _model_file(corpus: NoteCorpus, folder: Path, trained_on: list[str]) -> Path:
    torch.manual_seed(0)
    model = build_note_model("sing", n_instruments=len(corpus.instruments), **note_config("sing", "tiny"))
    infos = [InstrumentInfo(name, name.split("_")[0], "acoustic", 48, 71) for name in corpus.instruments]
    return export_note_model(model.eval(), folder / "sing.safetensors", infos, {"trained_on": trained_on})


def test_change_speed_transposes_like_a_sampler() -> None:
    t = np.arange(SR) / SR
    sine = np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    up = change_speed(sine, 2 ** (7 / 12))  # a fifth up: shorter and higher
    assert abs(len(up) - SR / 2 ** (7 / 12)) <= 2
    spectrum = np.abs(np.fft.rfft(up[1000:9000] * np.hanning(8000)))
    assert abs(np.argmax(spectrum) * SR / 8000 - 440 * 2 ** (7 / 12)) < 2.5
    with pytest.raises(AudioError):
        change_speed(sine, 0.0)


def test_pitch_cents_measures_detuning() -> None:
    t = np.arange(4 * SR) / SR
    detuned = np.sin(2 * np.pi * librosa.midi_to_hz(60) * 2 ** (30 / 1200) * t).astype(np.float32)
    assert pitch_cents(detuned, SR, 60) == pytest.approx(30, abs=3)
    octave = np.sin(2 * np.pi * librosa.midi_to_hz(72) * t).astype(np.float32)
    assert pitch_cents(octave, SR, 60) == pytest.approx(1200, abs=5)  # octave errors count
    assert np.isnan(pitch_cents(np.zeros(4 * SR, np.float32), SR, 60))


def test_sampler_transposes_the_nearest_trained_pitch(corpus: NoteCorpus) -> None:
    train = corpus.split("train")
    baseline = SamplerBaseline(corpus, train)
    target = corpus.split("test")[0]
    source = baseline.source(target)
    assert source is not None and source.instrument_str == target.instrument_str
    assert source.velocity == target.velocity and source.pitch != target.pitch
    nearest = min(abs(n.pitch - target.pitch) for n in train if n.instrument_str == target.instrument_str)
    assert abs(source.pitch - target.pitch) == nearest
    audio = baseline.note(target)
    assert audio.shape == (4 * SR,)
    assert abs(pitch_cents(audio, SR, target.pitch)) < 10


def test_every_candidate_is_scored_on_the_same_unseen_notes(corpus: NoteCorpus, tmp_path: Path) -> None:
    trained = [n.note_str for n in corpus.split("train") + corpus.split("validation")]
    model = load_note_model(_model_file(corpus, tmp_path, trained))
    report = evaluate_notes([("sing", model)], corpus, limit=6, examples=2)
    assert [s.name for s in report.scores] == [REAL, "sing", SAMPLER]
    assert len(report.notes) == 6 and all(n in {m.note_str for m in corpus.split("test")} for n in report.notes)
    for s in report.scores:
        assert len(s.spectral) == len(s.mrstft) == len(s.cents) == 6
    real, sing, sampler = (s.summary() for s in report.scores)
    assert real["spectral_mean"] == 0.0 and real["mrstft_median"] == 0.0
    assert sampler["spectral_mean"] < sing["spectral_mean"]  # an untrained model loses to the sampler
    assert len(report.examples) == 2 and set(report.examples[0]) == {"note_str", REAL, "sing", SAMPLER}
    leaked = load_note_model(_model_file(corpus, tmp_path / "leak", [report.notes[0]]))
    with pytest.raises(NeurorackError, match="trained on 1 of the test notes"):
        evaluate_notes([("leaky", leaked)], corpus)


def test_nr_load_model_tells_note_models_apart(corpus: NoteCorpus, tmp_path: Path) -> None:
    import neurorack as nr

    path = _model_file(corpus, tmp_path, [])
    m = nr.load_model(path)
    assert isinstance(m, nr.LoadedNoteModel) and m.instruments == corpus.instruments
    assert m.note(0, 60, 100).shape == (4 * SR,)
    assert isinstance(nr.load_model(), nr.LoadedModel)  # the bundled impact default is unchanged


def test_a_streamed_note_equals_the_whole_note(corpus: NoteCorpus, tmp_path: Path) -> None:
    import soxr

    m = load_note_model(_model_file(corpus, tmp_path, []))
    stream = m.stream(0, 60, 100)
    first = stream.read(stream.latency_frames - 1)
    assert first.size == 0  # nothing is final before latency_frames
    parts = [first]
    while not stream.done:
        parts.append(stream.read(3))
    np.testing.assert_allclose(np.concatenate(parts), m.note(0, 60, 100), rtol=0, atol=1e-6)
    morph = {corpus.instruments[0]: 0.5, corpus.instruments[1]: 0.5}
    stream = m.stream(morph, 55, 80, sample_rate=44_100)  # at the engine's rate: resampled on the way
    parts = []
    while not stream.done:
        parts.append(stream.read(5))
    whole = soxr.resample(m.note(morph, 55, 80), SR, 44_100, quality="HQ")
    streamed = np.concatenate(parts)
    assert streamed.shape == whole.shape == (176_400,)
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-5 * float(np.abs(whole).max()) + 1e-7)
    with pytest.raises(NeurorackError, match="outside the range"):
        m.stream(0, 100, 100)


def test_a_half_precision_file_is_half_the_size_and_plays_the_same(corpus: NoteCorpus, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_note_model("sing", n_instruments=2, **note_config("sing", "cpu")).eval()
    infos = [InstrumentInfo(name, "keyboard", "acoustic", 48, 71) for name in corpus.instruments]
    full = export_note_model(model, tmp_path / "full.safetensors", infos)
    half = export_note_model(model, tmp_path / "half.safetensors", infos, half=True)
    assert half.stat().st_size < 0.52 * full.stat().st_size
    a, b = load_note_model(full), load_note_model(half)
    assert b.metadata["storage"] == "float16" and b.model.decoder.grains.weight.dtype == torch.float32
    x, y = a.note(0, 60, 100), b.note(0, 60, 100)
    assert float(np.abs(x - y).max()) < 2e-3 * float(np.abs(x).max())  # float16 weights: ~3 significant digits


def test_eval_cli_on_a_note_corpus(corpus: NoteCorpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trained = [n.note_str for n in corpus.split("train") + corpus.split("validation")]
    model = _model_file(corpus, tmp_path, trained)
    report = tmp_path / "report"
    argv = ["eval", str(model), "--corpus", str(corpus.path), "--limit", "4", "--json", "--report", str(report)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["schema"] == "neurorack-note-eval/1" and result["notes"] == 4
    assert [r["name"] for r in result["results"]] == [REAL, "sing", SAMPLER]
    assert (report / "summary.md").is_file() and len(list(report.glob("spectrogram-*.png"))) == 4
    assert main(["eval", "--corpus", str(corpus.path), "--limit", "3", "--no-baselines"]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
