"""``neurorack corpus synth``: the project's own electronic hits (a held-out library)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from neurorack.cli import main
from neurorack.corpus import Corpus, build_corpus
from neurorack.corpus.synth_hits import VOICES, synth_hit, synth_hits
from neurorack.descriptors import DESCRIPTOR_NAMES, describe
from neurorack.errors import CorpusError

SR = 22_050


def median_active(audio: np.ndarray, name: str) -> float:
    curves = np.asarray(describe(audio, SR))
    active = curves[:, 0] > 0.1 * curves[:, 0].max()
    return float(np.median(curves[active, DESCRIPTOR_NAMES.index(name)]))


def test_every_voice_is_a_finite_hit_at_its_peak() -> None:
    for voice in VOICES:
        audio = synth_hit(voice, np.random.default_rng(0), SR, peak=0.5)
        assert audio.dtype == np.float32 and np.isfinite(audio).all(), voice
        assert float(np.abs(audio).max()) == pytest.approx(0.5, rel=1e-5), voice
        assert 0.05 * SR < audio.size <= 1.5 * SR, voice
        assert audio[-1] == 0.0  # faded out
    # the recipes sound like what they are named: kicks dark, hats bright
    kick = median_active(synth_hit("kick", np.random.default_rng(1), SR), "centroid")
    hat = median_active(synth_hit("hat", np.random.default_rng(1), SR), "centroid")
    assert kick < 300 < 3000 < hat
    with pytest.raises(CorpusError, match="unknown voice"):
        synth_hit("theremin", np.random.default_rng(0), SR)


def test_a_seed_writes_the_same_library_and_builds_a_corpus(tmp_path: Path) -> None:
    a = synth_hits(tmp_path / "a", count=14, seed=3, sample_rate=SR)
    synth_hits(tmp_path / "b", count=14, seed=3, sample_rate=SR)
    other = synth_hits(tmp_path / "c", count=14, seed=4, sample_rate=SR)
    assert a.files == 14 and a.per_voice == dict.fromkeys(VOICES, 2)
    sources = json.loads((tmp_path / "a" / "SOURCES.json").read_text())
    assert sources["seed"] == 3 and len(sources["files"]) == 14
    for rel in sources["files"]:
        x, sr = sf.read(tmp_path / "a" / rel, dtype="float32")
        y, _ = sf.read(tmp_path / "b" / rel, dtype="float32")
        np.testing.assert_array_equal(x, y)
        assert sr == SR
    x, _ = sf.read(tmp_path / "a" / "kick" / "kick_000.wav", dtype="float32")
    z, _ = sf.read(tmp_path / "c" / "kick" / "kick_000.wav", dtype="float32")
    assert x.shape != z.shape or not np.array_equal(x, z)
    assert other.files == 14
    build_corpus([tmp_path / "a"], tmp_path / "corpus", jobs=1, progress=False)
    sounds = Corpus.open(tmp_path / "corpus").sounds()
    assert len(sounds) == 14 and {s.label for s in sounds} == set(VOICES)
    assert all(s.licence.startswith("CC0") for s in sounds)


def test_cli_round_trip_and_bad_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["corpus", "synth", "--out", str(tmp_path / "hits"), "--count", "7", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == 7 and set(report["per_voice"]) == set(VOICES)
    assert main(["corpus", "synth", "--out", str(tmp_path / "hits"), "--count", "0"]) == 2
    err = capsys.readouterr().err
    assert "--count must be >= 1" in err and "Traceback" not in err
