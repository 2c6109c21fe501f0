"""``neurorack bench`` and :mod:`neurorack.bench`: structure and JSON contract (speed itself is never asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from neurorack.bench import SCHEMA, BenchRow, default_generators, render_table, run_bench
from neurorack.cli import main
from neurorack.corpus import build_corpus
from neurorack.descriptors import DescriptorConfig
from neurorack.errors import NeurorackError
from neurorack.generators.base import Generator
from neurorack.generators.silence import Silence

ROW_KEYS = {
    "name",
    "kind",
    "sample_rate",
    "audio_seconds",
    "median_seconds",
    "realtime_factor",
    "ratio",
    "peak_traced_mib",
    "note",
}
MACHINE_KEYS = {"cpu", "logical_cpus", "torch_threads_default", "platform", "python", "torch", "numpy", "neurorack"}


class Hum(Generator):
    """A stand-in for a trained model: a 100 Hz sine at the requested rms."""

    name = "hum"

    def _generate(self, descriptors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = descriptors.shape[0] * self.hop_length
        t = np.arange(n) / self.sample_rate
        level = np.repeat(descriptors[:, 0], self.hop_length) * np.sqrt(2)
        return (level * np.sin(2 * np.pi * 100 * t)).astype(np.float32)


def test_bench_json_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    # the engine's figures have their own test (test_engine_bench.py)
    assert main(["bench", "--json", "--seconds", "0.5", "--repeats", "2", "--no-sinc-nsf", "--no-engine"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)  # nothing but JSON on stdout
    assert set(doc) == {"schema", "settings", "machine", "rows"}
    assert doc["schema"] == SCHEMA
    assert doc["settings"] == {"seconds": 0.5, "repeats": 2, "threads": 1, "reference": "dsp"}
    assert set(doc["machine"]) == MACHINE_KEYS
    names = ["describe", "default", "transfer", "silence", "dsp", "sing-cpu", "sing-paper", "sampler"]
    assert [r["name"] for r in doc["rows"]] == names
    kinds = ["descriptors", "model", "model", "baseline", "baseline", "model", "model", "baseline"]
    assert [r["kind"] for r in doc["rows"]] == kinds
    assert doc["rows"][2]["note"].startswith("streaming transfer")  # the bundled autoencoder, timed as it runs live
    for row in doc["rows"]:
        assert set(row) == ROW_KEYS
        assert row["realtime_factor"] > 0 and row["median_seconds"] > 0
        assert row["realtime_factor"] == pytest.approx(row["audio_seconds"] / row["median_seconds"])
        assert row["sample_rate"] == (16_000 if row["name"] in names[5:] else 44_100)
    # SING notes: one whole 4 s note per run, the sizes in the note
    sing_cpu, sing_paper = doc["rows"][5], doc["rows"][6]
    assert sing_cpu["audio_seconds"] == 4.0 and sing_cpu["note"].startswith("one 4 s note; cpu, ")
    assert "paper, 63.7 M parameters" in sing_paper["note"]  # the paper's ~64 M at generation
    assert sing_cpu["realtime_factor"] > sing_paper["realtime_factor"]
    ref = doc["rows"][4]["realtime_factor"]
    for row in doc["rows"]:
        assert row["ratio"] == pytest.approx(row["realtime_factor"] / ref)
    assert doc["rows"][4]["ratio"] == 1.0


def test_bench_models_beside_the_sinc_nsf_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A model file gets a row, and the faithful sinc-nsf (paper size) is the reference of the ratios."""
    from neurorack.model_file import export_model
    from neurorack.models import build_model

    path = export_model(build_model("ddsp-impact", hidden=16, layers=1), tmp_path / "mine.safetensors")
    args = ["bench", "--json", "--seconds", "0.25", "--repeats", "1", "--no-engine", "--no-notes", "--model", str(path)]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in doc["rows"]] == ["describe", "mine", "sinc-nsf", "silence", "dsp"]
    assert doc["settings"]["reference"] == "sinc-nsf"
    assert doc["rows"][2]["ratio"] == 1.0 and doc["rows"][1]["kind"] == "model"
    assert main(["bench", "--model", str(tmp_path / "missing.safetensors")]) == 2


def test_bench_table_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["bench", "--seconds", "0.25", "--repeats", "1", "--no-engine", "--no-notes", "--reference", "describe"])
        == 0
    )
    captured = capsys.readouterr()
    assert "× real time" in captured.out and "vs describe" in captured.out
    for name in ("describe", "silence", "dsp"):
        assert name in captured.out
    assert "timing dsp" in captured.err  # progress goes to stderr


@pytest.mark.parametrize(
    "args",
    [["--seconds", "0"], ["--repeats", "0"], ["--reference", "no-such-row"], ["--corpus", "/nonexistent/corpus"]],
)
def test_bench_cli_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--json", "--repeats", "1", "--seconds", "0.1", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error" in captured.err


def test_bench_with_a_corpus_adds_nearest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "hits"
    src.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(int(0.3 * 44_100)) / 44_100
    for i in range(6):
        x = np.exp(-12 * t) * (np.sin(2 * np.pi * (80 + 90 * i) * t) + 0.3 * i * rng.standard_normal(t.size))
        sf.write(src / f"hit{i}.wav", (0.4 * x).astype(np.float32), 44_100, subtype="FLOAT")
    build_corpus([src], tmp_path / "corpus", jobs=1, progress=False)
    corpus = str(tmp_path / "corpus")
    args = ["bench", "--json", "--seconds", "0.25", "--repeats", "1", "--no-engine", "--no-notes", "--corpus", corpus]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    nearest = doc["rows"][-1]
    assert nearest["name"] == "nearest" and nearest["kind"] == "baseline"
    assert nearest["note"].endswith("stored sounds")


def test_run_bench_takes_model_rows() -> None:
    config = DescriptorConfig()
    generators = [*default_generators(config), Hum(config)]
    assert [g.name for g in generators] == ["silence", "dsp", "hum"]
    report = run_bench(generators, seconds=0.2, repeats=1, reference="hum", include_descriptors=False)
    assert [r.name for r in report.rows] == ["silence", "dsp", "hum"]
    assert report.row("hum").kind == "model"
    assert report.row("hum").ratio == 1.0
    assert isinstance(report.row("dsp"), BenchRow)
    assert report.to_dict()["settings"]["reference"] == "hum"
    assert render_table(report).row_count == 3
    with pytest.raises(KeyError):
        report.row("sinc-nsf")


def test_run_bench_errors() -> None:
    config = DescriptorConfig()
    with pytest.raises(NeurorackError, match="unique"):
        run_bench([Silence(config), Silence(config)], seconds=0.1, repeats=1)
    with pytest.raises(NeurorackError, match="unknown reference"):
        run_bench([Silence(config)], seconds=0.1, repeats=1, reference="dsp", include_descriptors=False)
    with pytest.raises(NeurorackError, match="nothing"):
        run_bench([], seconds=0.1, repeats=1, include_descriptors=False)
    with pytest.raises(NeurorackError):
        run_bench([Silence(config)], seconds=0.0, repeats=1)


def test_bench_times_an_autoencoder_by_streaming(tiny_fader_path: Path) -> None:
    """A fader-ae runs live as a streaming transfer: that is what its row times (as in eval)."""
    from neurorack.bench import run_bench
    from neurorack.model_file import load_model

    report = run_bench([load_model(tiny_fader_path)], seconds=0.25, repeats=1, include_descriptors=False)
    (row,) = report.rows
    assert row.name == "fader-ae" and row.kind == "model" and "streaming transfer" in row.note
    assert row.realtime_factor > 0 and row.audio_seconds > 0
