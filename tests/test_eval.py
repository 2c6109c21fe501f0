"""``neurorack eval`` and :mod:`neurorack.evaluation`: JSON contract, report files, clean failures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from neurorack.cli import main
from neurorack.cli.eval_cmd import DEFAULT_CONTROL_LIMIT as CLI_CONTROL_LIMIT
from neurorack.corpus import Corpus, build_corpus
from neurorack.curves.descriptor_prior import DescriptorPrior
from neurorack.descriptors import DescriptorConfig, describe
from neurorack.errors import NeurorackError
from neurorack.evaluation import (
    DEFAULT_CONTROL_LIMIT,
    SCHEMA,
    TABLE_DESCRIPTORS,
    ControlEntry,
    EvalReport,
    evaluate,
    is_tonal,
    load_candidates,
    periodicity,
    render_markdown,
    render_table,
    select_test_sounds,
    table_rows,
)
from neurorack.metrics.control import DEFAULT_SCALES
from neurorack.model_file import export_model
from neurorack.models import TINY_CONFIGS, build_model, model_names

SR = 44_100
GENERATOR_KEYS = {
    "transfer",
    "leakage",
    "accuracy",
    "presets_followed",
    "name",
    "kind",
    "class",
    "source",
    "sample_rate",
    "hop_length",
    "parameters",
    "file_bytes",
    "note",
    "mrstft",
    "control",
    "speed",
    "control_focused",
    "control_bare",
}
CONTROL_KEYS = {"slope", "rho", "n_sounds", "n_valid", "response"}


def _hit(i: int, rng: np.random.Generator) -> np.ndarray:
    """A drum-like one-shot: tonal (tom / kick with a short click) or noisy (snare / hat)."""
    seconds = 0.12 + 0.03 * (i % 4)
    t = np.arange(int(seconds * SR)) / SR
    if i % 2 == 0:
        f0 = 70.0 + 37.0 * i
        x = np.sin(2 * np.pi * f0 * t) * np.exp(-t * (8 + i)) + 0.05 * rng.standard_normal(t.size) * np.exp(-t * 80)
    else:
        noise = rng.standard_normal(t.size)
        if i % 3 == 0:
            noise = np.diff(noise, prepend=0.0)  # brighter
        x = noise * np.exp(-t * (15 + 2 * i)) + 0.3 * np.sin(2 * np.pi * (180 + 10 * i) * t) * np.exp(-t * 30)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny corpus (with a non-empty test split) and a tiny ddsp-impact model file at its rate."""
    root = tmp_path_factory.mktemp("eval")
    src = root / "hits"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(30):
        sf.write(src / f"hit{i:02d}.wav", _hit(i, rng), SR, subtype="FLOAT")
    corpus = root / "corpus"
    build_corpus([src], corpus, jobs=1, progress=False)
    assert len(Corpus.open(corpus).sounds("test")) >= 3
    model_names()
    model = build_model("ddsp-impact", **TINY_CONFIGS["ddsp-impact"])
    model.set_statistics(torch.zeros(7), torch.ones(7))
    prior = DescriptorPrior.fit(s.descriptors() for s in Corpus.open(corpus).sounds("train"))
    path = export_model(model.eval(), root / "tiny.safetensors", prior=prior)
    return corpus, path


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error:") and "Traceback" not in captured.err
    return lines[0]


def test_eval_json_through_the_cli(setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    corpus, model = setup
    args = ["eval", str(model), "--corpus", str(corpus), "--json", "--limit", "3", "--control-limit", "2"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)  # nothing but JSON on stdout
    assert set(doc) == {"schema", "settings", "machine", "sounds", "generators"}
    assert doc["schema"] == SCHEMA == "neurorack-eval/1"
    settings = doc["settings"]
    assert settings["limit"] == 3 and settings["control_limit"] == 2 and settings["seed"] == 0
    assert settings["split"] == "test" and settings["corpus"] == str(corpus.resolve())
    assert settings["descriptors"] == list(TABLE_DESCRIPTORS)
    assert settings["scales"] == list(DEFAULT_SCALES)
    assert settings["speed"] == {"seconds": 1.0, "repeats": 5, "threads": 1}
    assert {"cpu", "logical_cpus", "torch", "neurorack"} <= set(doc["machine"])
    sounds = doc["sounds"]
    assert len(sounds["mrstft"]) == 3 and sounds["control"] == sounds["mrstft"][:2]
    assert set(sounds["f0"]) <= set(sounds["mrstft"]) and len(sounds["f0"]) <= 2
    gens = {g["name"]: g for g in doc["generators"]}
    assert [g["name"] for g in doc["generators"]] == ["tiny", "silence", "dsp", "nearest"]
    for g in doc["generators"]:
        assert set(g) == GENERATOR_KEYS
        assert g["mrstft"]["n"] == 3 and len(g["mrstft"]["values"]) == 3
        assert g["mrstft"]["median"] == pytest.approx(float(np.median(g["mrstft"]["values"])))
        assert list(g["control"]) == list(TABLE_DESCRIPTORS)
        for name, entry in g["control"].items():
            assert set(entry) == CONTROL_KEYS
            assert entry["n_sounds"] == (len(sounds["f0"]) if name == "f0" else 2)
            assert len(entry["response"]) == len(DEFAULT_SCALES)
        assert g["speed"]["name"] == g["name"] and g["speed"]["realtime_factor"] > 0
        assert g["sample_rate"] == SR
    model_row = gens["tiny"]
    assert model_row["kind"] == "model" and model_row["class"] == "ddsp-impact"
    # ddsp-impact takes the hint of the moved knob: its brightness controls are measured again with it
    assert list(model_row["control_focused"]) == ["centroid", "bandwidth", "rolloff"]
    assert all(e["n_sounds"] == 2 and set(e) == CONTROL_KEYS for e in model_row["control_focused"].values())
    assert all(g["control_focused"] == {} for g in doc["generators"] if g["kind"] == "baseline")
    # its file carries a descriptor prior: the same again with the guess of the moved knob off
    assert list(model_row["control_bare"]) == ["centroid", "bandwidth", "rolloff"]
    assert all(g["control_bare"] == {} for g in doc["generators"] if g["kind"] == "baseline")
    assert model_row["parameters"] > 0 and model_row["file_bytes"] == model.stat().st_size
    assert model_row["source"] == str(model)
    assert gens["dsp"]["kind"] == "baseline" and gens["dsp"]["parameters"] is None
    assert gens["nearest"]["note"].endswith("train sounds")
    # real-ish hits: the DSP synth beats silence, and follows the loudness control
    assert gens["silence"]["mrstft"]["median"] > gens["dsp"]["mrstft"]["median"]
    assert gens["dsp"]["control"]["rms"]["slope"] == pytest.approx(1.0, abs=0.15)
    # silence is unmeasurable: no valid rms result, written as null rather than NaN
    assert gens["silence"]["control"]["rms"]["n_valid"] == 0
    assert gens["silence"]["control"]["rms"]["slope"] is None
    # absolute accuracy, octaves off the request: the DSP synth's loudness is exact on its own curves
    for g in doc["generators"]:
        assert set(g["accuracy"]) == {"reconstruction", "presets"}
        assert set(g["accuracy"]["presets"]) == set(TABLE_DESCRIPTORS)
        assert g["presets_followed"][1] == 5 and 0 <= g["presets_followed"][0] <= 5
    assert gens["dsp"]["accuracy"]["reconstruction"]["rms"] < 0.05
    assert gens["silence"]["accuracy"]["reconstruction"]["rms"] > 20  # silence is ~30 octaves too quiet
    assert gens["silence"]["presets_followed"][0] == 0


def test_eval_whole_corpus_held_out(setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """--split all measures every sound of a library no model trained on, without the nearest baseline."""
    corpus, model = setup
    args = ["eval", str(model), "--corpus", str(corpus), "--split", "all", "--json", "--control-limit", "0"]
    assert main([*args, "--no-speed"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["settings"]["split"] == "all"
    assert len(doc["sounds"]["mrstft"]) == len(Corpus.open(corpus).sounds())
    assert [g["name"] for g in doc["generators"]] == ["tiny", "silence", "dsp"]
    assert main(["eval", str(model), "--corpus", str(corpus), "--split", "train", "--no-speed"]) == 2
    assert "--split" in _one_line_error(capsys)


def test_eval_leaves_out_sounds_the_model_trained_on(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """A held-out library that ships a training sample: that sound is left out for every generator."""
    corpus = Corpus.open(setup[0])
    every = sorted(corpus.sounds(), key=lambda s: s.hash)
    model = build_model("ddsp-impact", **TINY_CONFIGS["ddsp-impact"])
    model.set_statistics(torch.zeros(7), torch.ones(7))
    trained = export_model(model.eval(), tmp_path / "seen.safetensors", training={"trained_on": [every[1].hash[:16]]})
    candidates = load_candidates([trained], corpus)
    assert candidates[0].trained_on == {every[1].hash[:16]}
    report = evaluate(candidates, corpus, split="all", control_limit=0, speed=False)
    assert every[1].hash not in report.mrstft_sounds and len(report.mrstft_sounds) == len(every) - 1
    assert report.settings.left_out_trained == 1 and report.settings.test_sounds_available == len(every) - 1
    assert "1 more left out" in render_markdown(report)
    with pytest.raises(NeurorackError, match="trained on"):
        select_test_sounds(corpus, split="all", exclude={s.hash[:16] for s in every})


def test_eval_report_and_table(setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus, model = setup
    out = tmp_path / "report"
    args = ["eval", str(model), "--corpus", str(corpus), "--limit", "2", "--control-limit", "1", "--no-speed"]
    assert main([*args, "--report", str(out)]) == 0
    captured = capsys.readouterr()
    assert "MR-STFT" in captured.out and "│ tiny" in captured.out and "│ nearest" in captured.out
    assert "dsp: done" in captured.err and "wrote" in captured.err  # progress on stderr
    doc = json.loads((out / "eval.json").read_text())
    assert doc["schema"] == SCHEMA and doc["settings"]["speed"] is None and doc["settings"]["baselines"]
    assert [g["name"] for g in doc["generators"]] == ["tiny", "silence", "dsp", "nearest"]
    assert all(g["speed"] is None for g in doc["generators"])
    summary = (out / "summary.md").read_text()
    assert "| name | kind |" in summary and "| tiny | ddsp-impact |" in summary and "| silence | baseline |" in summary
    assert "neurorack eval " in summary and "--no-speed" in summary and "--limit 2" in summary
    spectrograms = sorted(out.glob("spectrogram-*.png"))
    assert [p.name[12:24] for p in spectrograms] == sorted(h[:12] for h in doc["sounds"]["mrstft"])
    for d in TABLE_DESCRIPTORS:
        if d != "f0" or doc["sounds"]["f0"]:
            assert (out / f"control-{d}.png").stat().st_size > 1000
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_eval_baselines_only_and_no_control(setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    corpus, _ = setup
    args = ["eval", "--corpus", str(corpus), "--json", "--limit", "1", "--control-limit", "0", "--no-speed"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [g["name"] for g in doc["generators"]] == ["silence", "dsp", "nearest"]
    assert doc["sounds"]["control"] == [] and doc["sounds"]["f0"] == []
    for g in doc["generators"]:
        assert all(e["n_sounds"] == 0 and e["slope"] is None for e in g["control"].values())


def test_evaluate_api_and_renderings(setup: tuple[Path, Path]) -> None:
    corpus_dir, model = setup
    corpus = Corpus.open(corpus_dir)
    candidates = load_candidates([model, model], corpus, baselines=False)
    assert [c.name for c in candidates] == ["tiny", "tiny#2"]
    run = corpus_dir.parent / "run7"
    run.mkdir(exist_ok=True)
    (run / "model.safetensors").write_bytes(model.read_bytes())
    assert [c.name for c in load_candidates([run / "model.safetensors"], corpus, baselines=False)] == ["run7"]
    calls: list[tuple[str, int, int]] = []
    report = evaluate(
        candidates[:1],
        corpus,
        limit=2,
        control_limit=1,
        descriptors=("rms", "centroid"),
        speed=False,
        examples=1,
        progress=lambda task, done, total: calls.append((task, done, total)),
    )
    assert isinstance(report, EvalReport)
    assert report.result("tiny").mrstft.n == 2
    assert list(report.result("tiny").control) == ["rms", "centroid"]
    assert len(report.examples) == 1 and set(report.examples[0].generated) == {"tiny"}
    assert list(report.result("tiny").control_focused) == ["centroid"]  # only the descriptors asked for
    assert list(report.result("tiny").control_bare) == ["centroid"]
    # rms, centroid, centroid named, centroid with the prior off, the five drawn presets
    assert calls[-1][1] == calls[-1][2] == 2 + 4 * len(DEFAULT_SCALES) + 5
    assert all(task.startswith("tiny: ") for task, _, _ in calls)
    assert render_table(report).row_count == 3  # the model, with the knob named, with the prior off
    markdown = render_markdown(report, "neurorack eval x")
    assert markdown.count("\n| tiny | ddsp-impact |") == 1 and markdown.count("\n| tiny, knob named |") == 1
    assert markdown.count("\n| tiny, prior off |") == 1
    assert "| tiny | test sounds |" in markdown and "| tiny | drawn presets |" in markdown
    with pytest.raises(KeyError):
        report.result("dsp")
    with pytest.raises(NeurorackError, match="unique"):
        evaluate([candidates[0], candidates[0]], corpus, limit=1, speed=False)
    with pytest.raises(NeurorackError, match="limit"):
        select_test_sounds(corpus, 0)
    assert DEFAULT_CONTROL_LIMIT == CLI_CONTROL_LIMIT


def test_is_tonal() -> None:
    config = DescriptorConfig()
    t = np.arange(SR // 2) / SR
    env = np.exp(-t * 6)
    tone = (0.5 * np.sin(2 * np.pi * 220 * t) * env).astype(np.float32)
    noise = (0.5 * np.random.default_rng(0).standard_normal(t.size) * env).astype(np.float32)
    glide = (0.5 * np.sin(2 * np.pi * np.cumsum(400 * np.exp(-t * 8) + 60) / SR) * env).astype(np.float32)
    assert is_tonal(describe(tone, SR), config)
    assert not is_tonal(describe(noise, SR), config)
    assert not is_tonal(describe(glide, SR), config)
    assert not is_tonal(np.zeros((10, 7), dtype=np.float32), config)
    # a steady 80 Hz tone is pitched, but halved it falls below YIN's 50 Hz floor: not measurable
    low = (0.5 * np.sin(2 * np.pi * 80 * t) * env).astype(np.float32)
    assert not is_tonal(describe(low, SR), config)
    assert is_tonal(describe(low, SR), config, scales=(1.0, 2.0))


def test_control_entry_without_sounds_is_null_in_json() -> None:
    entry = ControlEntry.empty("f0", DEFAULT_SCALES)
    assert entry.n_sounds == 0 and math.isnan(entry.slope)
    assert all(math.isnan(v) for v in entry.response)


def test_eval_cli_errors(setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus, model = setup
    fast = ["--json", "--limit", "1", "--control-limit", "0", "--no-speed"]

    assert main(["eval", str(model), "--corpus", str(tmp_path / "missing"), *fast]) == 2
    assert "no such corpus" in _one_line_error(capsys)

    assert main(["eval", str(model), *fast]) == 2
    assert "--corpus" in _one_line_error(capsys)

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model at all")
    assert main(["eval", str(junk), "--corpus", str(corpus), *fast]) == 2
    assert "junk.safetensors" in _one_line_error(capsys)

    assert main(["eval", str(tmp_path / "nope.safetensors"), "--corpus", str(corpus), *fast]) == 2
    assert "no such model file" in _one_line_error(capsys)

    other = build_model("ddsp-impact", **{**TINY_CONFIGS["ddsp-impact"], "sample_rate": 22_050})
    other_path = export_model(other.eval(), tmp_path / "other.safetensors")
    assert main(["eval", str(other_path), "--corpus", str(corpus), *fast]) == 2
    assert "22050 Hz" in _one_line_error(capsys)

    assert main(["eval", "--corpus", str(corpus), "--no-baselines", *fast]) == 2
    assert "nothing to evaluate" in _one_line_error(capsys)

    assert main(["eval", str(model), "--corpus", str(corpus), "--json", "--limit", "0"]) == 2
    assert "--limit" in _one_line_error(capsys)

    assert main(["eval", str(model), "--corpus", str(corpus), "--json", "--control-limit", "-1"]) == 2
    assert "--control-limit" in _one_line_error(capsys)

    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["eval", str(model), "--corpus", str(corpus), *fast, "--report", str(blocker)]) == 2
    assert "not a folder" in _one_line_error(capsys)


def test_eval_corpus_without_test_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "hits"
    src.mkdir()
    rng = np.random.default_rng(1)
    # one sound only; pick one whose hash does not land in the test split
    for i in range(8):
        for p in src.iterdir():
            p.unlink()
        sf.write(src / "hit.wav", _hit(i, rng), SR, subtype="FLOAT")
        corpus = tmp_path / f"corpus{i}"
        build_corpus([src], corpus, jobs=1, progress=False)
        if not Corpus.open(corpus).sounds("test"):
            break
    else:  # pragma: no cover - 8 sounds all in test is a 1e-8 event
        pytest.skip("every candidate sound landed in the test split")
    assert main(["eval", "--corpus", str(corpus), "--json", "--no-speed"]) == 2
    assert "test split" in _one_line_error(capsys)


def test_periodicity_separates_tones_from_noise() -> None:
    config = DescriptorConfig()
    t = np.arange(SR // 2) / SR
    env = np.exp(-t * 6)
    tone = (0.5 * np.sin(2 * np.pi * 220 * t) * env).astype(np.float32)
    noise = (0.5 * np.random.default_rng(0).standard_normal(t.size) * env).astype(np.float32)
    assert periodicity(tone, describe(tone, SR), config) > 0.95
    assert periodicity(noise, describe(noise, SR), config) < 0.3
    assert periodicity(tone, np.zeros((10, 7), dtype=np.float32), config) == 0.0
    # a tone whose stored curves look steady is still not tonal when its audio is noise
    assert is_tonal(describe(tone, SR), config, audio=tone)
    assert not is_tonal(describe(tone, SR), config, audio=noise)


def test_eval_measures_autoencoders_by_transfer(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """fader-ae and its ablation: transfer rows, latent leakage per control, streaming speed, Markdown table."""
    corpus_dir, _ = setup
    corpus = Corpus.open(corpus_dir)
    paths = []
    for name in ("fader-ae", "fader-ae-cvae"):
        torch.manual_seed(0)
        model = build_model(name, **TINY_CONFIGS[name])
        model.set_statistics(torch.zeros(7), torch.ones(7))
        paths.append(export_model(model.eval(), tmp_path / f"{name}.safetensors"))
    report = evaluate(
        load_candidates(paths, corpus, baselines=False),
        corpus,
        limit=3,
        control_limit=2,
        descriptors=("rms", "centroid"),
        speed_seconds=0.2,
        speed_repeats=1,
    )
    for result in report.results:
        assert result.transfer
        assert list(result.leakage) == ["rms", "centroid", "bandwidth", "rolloff", "flatness"]
        assert all(np.isfinite(v) and v <= 1.0 for v in result.leakage.values())
        assert result.speed is not None and "streaming" in result.speed.note
        assert result.mrstft.n == 3 and np.isfinite(result.mrstft.median)
        assert result.control["centroid"].n_sounds == 2
    doc = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert doc["generators"][0]["transfer"] is True and doc["generators"][1]["leakage"]
    header, rows = table_rows(report)
    assert "leakage R²" in header and rows[0][1] == "fader-ae (transfer)"
    markdown = render_markdown(report)
    assert "## Latent leakage" in markdown and "| fader-ae-cvae |" in markdown
