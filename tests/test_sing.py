"""SING: every configuration builds and runs, lengths and windows are exact, the loss, the note model file,
and a few steps of each training stage through the CLI on a note corpus in the NSynth layout."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from neurorack.cli import main
from neurorack.errors import CorpusError, ModelFileError, NeurorackError
from neurorack.models.registry import NOTE_CONFIGS, build_note_model, note_config, note_model_names
from neurorack.models.sing.sequence_generator import velocity_position
from neurorack.note_model_file import InstrumentInfo, export_note_model, load_note_model
from neurorack.notes.nsynth import NoteCorpus, split_of
from neurorack.training.losses import LogPowerSpectralLoss
from neurorack.training.sing_module import SingTrainingModule

SR = 16_000
N = 64_000


def write_note_corpus(folder: Path, instruments: dict[str, float], pitches: range) -> Path:
    """An NSynth-layout corpus of decaying harmonic tones (16-bit, the real field names)."""
    (folder / "audio").mkdir(parents=True)
    examples = {}
    t = np.arange(N) / SR
    for k, (name, brightness) in enumerate(instruments.items()):
        for pitch in pitches:
            for velocity in (25, 127):
                f0 = 440.0 * 2 ** ((pitch - 69) / 12)
                tone = sum(brightness**h * np.sin(2 * np.pi * f0 * (h + 1) * t) for h in range(4))
                env = np.exp(-t * 1.5) * (t < 3.0) + np.exp(-t * 1.5) * np.exp(-(t - 3.0) * 20) * (t >= 3.0)
                audio = 0.3 * velocity / 127 * tone * env / 2
                note_str = f"{name}-{pitch:03d}-{velocity:03d}"
                sf.write(folder / "audio" / f"{note_str}.wav", audio, SR, subtype="PCM_16")
                examples[note_str] = {
                    "note_str": note_str,
                    "instrument_str": name,
                    "instrument": k,
                    "pitch": pitch,
                    "velocity": velocity,
                    "sample_rate": SR,
                    "instrument_family_str": name.split("_")[0],
                    "instrument_family": 4,
                    "instrument_source_str": name.split("_")[1],
                    "instrument_source": 0,
                    "qualities_str": [],
                    "qualities": [0] * 10,
                    "note": len(examples),
                }
    (folder / "examples.json").write_text(json.dumps(examples))
    return folder


@pytest.fixture(scope="module")
def note_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("notes")
    return write_note_corpus(
        root / "corpus", {"keyboard_acoustic_000": 0.5, "synth_lead_synthetic_001": 0.9}, range(55, 67)
    )


def test_note_models_registered_with_configs() -> None:
    assert "sing" in note_model_names()
    assert {"tiny", "paper", "cpu"} <= set(NOTE_CONFIGS["sing"])


@pytest.mark.parametrize("config", ["tiny", "cpu"])
def test_sing_builds_runs_backward_and_has_paper_lengths(config: str) -> None:
    model = build_note_model("sing", n_instruments=3, **note_config("sing", config))
    assert model.frames == 265  # the paper's frames per 4 s note at 16 kHz
    instrument = torch.tensor([0, 2])
    out = model(instrument, torch.tensor([60, 61]), torch.tensor([25.0, 127.0]))
    assert out.shape == (2, N + 2 * model.margin)
    out.square().mean().backward()
    assert model.decoder.grains.weight.grad is not None
    emb = model.encode(torch.randn(2, N))
    assert emb.shape == (2, model.config["dimension"], model.frames)


def test_paper_config_has_the_papers_size() -> None:
    model = build_note_model("sing", n_instruments=1000, **note_config("sing", "paper"))
    generation = sum(p.numel() for k, p in model.named_parameters() if not k.startswith("encoder."))
    assert 60e6 < generation < 68e6  # ~64 M parameters at generation (§4)


def test_decoding_a_window_equals_the_same_samples_of_the_whole_note() -> None:
    module = SingTrainingModule(
        "sing", {"n_instruments": 2, **note_config("sing", "tiny")}, "autoencoder", crop_frames=32
    )
    model = module.model.eval()
    audio = torch.randn(1, N) * 0.1
    with torch.no_grad():
        emb = model.encode(audio)
        whole = model.decode(emb)
        window = model.decode(emb[..., 40:72])
        encoded = module._encode_window(audio, 40)
    torch.testing.assert_close(window, whole[..., 40 * 256 : 40 * 256 + window.shape[-1]])
    torch.testing.assert_close(encoded, emb[..., 40:72])


def test_velocity_interpolates_between_the_trained_rows() -> None:
    pos = velocity_position(torch.tensor([1.0, 25.0, 37.5, 100.0, 113.5, 127.0, 200.0]))
    torch.testing.assert_close(pos, torch.tensor([0.0, 0.0, 0.5, 3.0, 3.5, 4.0, 4.0]))
    model = build_note_model("sing", n_instruments=1, **note_config("sing", "tiny"))
    table = model.sequence.velocity.weight
    mid = model.sequence.velocity_vector(torch.tensor([62.5]))[0]
    torch.testing.assert_close(mid, (table[1] + table[2]) / 2)


def test_spectral_loss_exact_values() -> None:
    loss = LogPowerSpectralLoss()
    x = torch.zeros(1, 4096)
    assert float(loss(x, x)["total"]) == 0.0
    # an impulse of amplitude a: |STFT|^2 = (a·w[n0])^2 in every bin of the frames that see it
    y = x.clone()
    y[0, 2048] = 3.0
    spec = loss.log_power(y)
    centre = 2048 // 256
    torch.testing.assert_close(spec[0, :, centre], torch.full((513,), float(np.log(1 + 9.0))))
    with pytest.raises(ValueError):
        loss(x, torch.zeros(1, 100))
    # the linear-magnitude term: |STFT| of the impulse is 3·w[n0] in the frames that see it
    terms = LogPowerSpectralLoss(magnitude_weight=0.5)(y, x)
    magnitude = loss.power(y).sqrt().mean()
    torch.testing.assert_close(terms["magnitude"], magnitude, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(terms["total"], terms["spectral"] + 0.5 * magnitude, atol=1e-5, rtol=1e-5)
    assert set(loss(y, x)) == {"spectral", "total"}
    # near silence the log-power term's gradient shrinks with the output, the magnitude term's does not
    gradients = []
    for scale in (1e-3, 1e-5):
        quiet = (scale * torch.randn(1, 4096, generator=torch.Generator().manual_seed(0))).requires_grad_()
        grads = []
        for term in ("spectral", "magnitude"):
            (g,) = torch.autograd.grad(LogPowerSpectralLoss(magnitude_weight=1.0)(quiet, y)[term], quiet)
            grads.append(float(g.norm()))
        gradients.append(grads)
    assert gradients[1][0] < 0.02 * gradients[0][0]  # log-power: about 100x smaller at 100x quieter
    assert gradients[1][1] > 0.5 * gradients[0][1]  # magnitude: unchanged


def test_split_keeps_instrument_pitch_pairs_whole(note_corpus: Path) -> None:
    corpus = NoteCorpus.open(note_corpus)
    splits = {name: corpus.split(name) for name in ("train", "validation", "test")}
    assert sum(len(v) for v in splits.values()) == len(corpus.notes)
    owner: dict[tuple[str, int], str] = {}
    for name, notes in splits.items():
        for n in notes:
            assert owner.setdefault((n.instrument_str, n.pitch), name) == name
    assert all(corpus.split("train", seed=0) == splits["train"] for _ in range(2))
    assert split_of("a", 60) == split_of("a", 60)
    with pytest.raises(CorpusError):
        corpus.split("nope")


def test_note_corpus_bad_input(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not a note corpus"):
        NoteCorpus.open(tmp_path)
    (tmp_path / "audio").mkdir()
    (tmp_path / "examples.json").write_text('{"x-060-100": {"instrument_str": "x", "pitch": 60, "velocity": 100}}')
    with pytest.raises(CorpusError, match="missing"):
        NoteCorpus.open(tmp_path)


def test_note_model_file_round_trip(tmp_path: Path) -> None:
    model = build_note_model("sing", n_instruments=2, **note_config("sing", "tiny")).eval()
    infos = [InstrumentInfo("a", "keyboard", "acoustic", 40, 80), InstrumentInfo("b", "bass", "synthetic", 30, 60)]
    path = export_note_model(model, tmp_path / "notes.safetensors", infos, {"corpus": "x"})
    loaded = load_note_model(path)
    assert loaded.instruments == ["a", "b"] and loaded.sample_rate == SR
    note = loaded.note("a", 60, 100)
    with torch.inference_mode():
        vec = model.instrument_vector(torch.tensor([0]))
        expected = model.generate(vec, torch.tensor([60]), torch.tensor([100.0]))[0].numpy()
    np.testing.assert_array_equal(note, expected)
    assert loaded.note(1, 45, 64, seconds=1.0).shape == (SR,)
    morph = loaded.note({"a": 0.5, "b": 0.5}, 50, 80)
    assert morph.shape == (N,) and np.isfinite(morph).all()
    with pytest.raises(NeurorackError, match="outside the range"):
        loaded.note("b", 70)
    with pytest.raises(NeurorackError, match="unknown instrument"):
        loaded.note("zither", 60)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        load_note_model(bad)


def test_train_sing_three_stages_resume_and_export(note_corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", str(note_corpus), "--out", str(run), "--model-config", "tiny", "--max-steps", "2",
            "--batch-size", "4", "--no-progress", "--example-every", "0", "--truncation", "100"]  # fmt: skip
    assert main(args) == 0
    data = json.loads((run / "run.json").read_text())
    assert [s for s in ("autoencoder", "sequence", "end-to-end") if data["stages"][s]["done"]] == [
        "autoencoder",
        "sequence",
        "end-to-end",
    ]
    assert (run / "sequence" / "embeddings.safetensors").is_file()
    loaded = load_note_model(run / "model.safetensors")
    assert loaded.instruments == ["keyboard_acoustic_000", "synth_lead_synthetic_001"]
    assert loaded.pitch_range("keyboard_acoustic_000")[0] >= 55
    assert np.isfinite(loaded.note(0, 60, 100)).all()
    trained = set(loaded.metadata["training"]["trained_on"])
    test_notes = {n.note_str for n in NoteCorpus.open(note_corpus).split("test")}
    assert trained and not trained & test_notes
    # a finished run resumed trains only what is asked for again
    resume = ["train", str(note_corpus), "--out", str(run), "--resume", "--max-steps", "4", "--stages", "end-to-end",
              "--no-progress", "--example-every", "0"]  # fmt: skip
    assert main(resume) == 0
    again = json.loads((run / "run.json").read_text())
    assert again["stages"]["end-to-end"]["steps"] == 4
    assert again["stages"]["autoencoder"]["steps"] == 2
    # neurorack export on a note run: its best checkpoint, here with float16 weights
    half = tmp_path / "half.safetensors"
    assert main(["export", str(run), "--out", str(half), "--half"]) == 0
    assert load_note_model(half).metadata["storage"] == "float16"


def test_train_notes_bad_input(note_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(note_corpus), "--out", str(tmp_path / "r"), "--stages", "decoder"])
    assert code != 0 and "unknown stage" in capsys.readouterr().err
    code = main(["train", str(note_corpus), "--out", str(tmp_path / "r2"), "--frames", "3"])
    assert code != 0 and "not a setting of note models" in capsys.readouterr().err


@pytest.mark.parametrize("config", ["tiny", "cpu"])
def test_streamed_note_equals_the_whole_note(config: str) -> None:
    torch.manual_seed(0)
    model = build_note_model("sing", n_instruments=3, **note_config("sing", config)).eval()
    symbols = (model.instrument_vector(torch.tensor([1, 2])), torch.tensor([60, 70]), torch.tensor([100.0, 30.0]))
    with torch.inference_mode():
        whole = model.generate(*symbols)
        for chunk in (1, 5, 64):
            state = model.stream_state(*symbols)
            parts, frames, first = [], 0, None
            while not state.done:
                audio, state = model.stream(state, chunk)
                frames += chunk
                if first is None and audio.shape[1]:
                    first = frames
                parts.append(audio)
            streamed = torch.cat(parts, dim=1)
            assert streamed.shape == whole.shape
            torch.testing.assert_close(streamed, whole, atol=1e-6 * float(whole.abs().max()), rtol=0)
            # the first samples come once the decoder's look-back and the dropped padding are generated
            assert first == -(-model.latency_frames // chunk) * chunk
        state = model.stream_state(*symbols)
        audio, state = model.stream(state, model.latency_frames)
        assert audio.shape == (2, model.stride)  # one hop of the note is final after latency_frames frames
        audio, state = model.stream(state, 1)
        assert audio.shape == (2, model.stride)


@pytest.mark.slow
def test_ddp_note_run_on_two_cpu_processes(note_corpus: Path, tmp_path: Path) -> None:
    from test_training import neurorack_script

    run = tmp_path / "ddp"
    cmd = [str(neurorack_script()), "train", str(note_corpus), "--out", str(run), "--model-config", "tiny",
           "--max-steps", "2", "--batch-size", "2", "--devices", "2", "--accelerator", "cpu",
           "--example-every", "0", "--no-progress", "--json"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["global_step"] == 2 and report["primary"]
    for stage in ("autoencoder", "sequence", "end-to-end"):
        assert (run / stage / "checkpoints" / "last.ckpt").is_file()
    assert load_note_model(run / "model.safetensors").instruments == NoteCorpus.open(note_corpus).instruments
