"""Shared fixtures: real drum one-shots from the Debian packages (fetched once, cached), a corpus of synthetic
hits for the training tests, an untrained tiny fader-ae file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neurorack.audio_io import is_audio_path


def drums_root() -> Path:
    """Where the test suite keeps the fetched open drum samples (override with NEURORACK_TEST_DRUMS)."""
    env = os.environ.get("NEURORACK_TEST_DRUMS")
    return Path(env) if env else Path.home() / ".cache" / "neurorack" / "test-drums"


@pytest.fixture(scope="session")
def drum_dir() -> Path:
    """A folder of ≥ 600 real one-shots (hydrogen-drumkits + lmms-common), fetched with apt-get download."""
    from neurorack.corpus.fetch import fetch_drums

    root = drums_root()
    fetch_drums(root)
    return root


@pytest.fixture(scope="session")
def drum_files(drum_dir: Path) -> list[Path]:
    files = sorted(p for p in drum_dir.rglob("*") if p.is_file() and is_audio_path(p))
    assert len(files) >= 600
    return files


@pytest.fixture(scope="session")
def tiny_fader_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny ``fader-ae`` exported to a model file (fixed seed and statistics)."""
    import torch

    from neurorack.model_file import export_model
    from neurorack.models import TINY_CONFIGS, build_model, model_names

    model_names()
    torch.manual_seed(0)
    model = build_model("fader-ae", **TINY_CONFIGS["fader-ae"])
    model.set_statistics(torch.tensor([-3.0, -2.0, 8.0, -3.0, 7.5, 7.5, 5.0]), torch.full((7,), 1.5))
    return export_model(model.eval(), tmp_path_factory.mktemp("fader") / "fader.safetensors")


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus of the training tests' synthetic hits (:func:`test_training.write_hits`), one per test module."""
    from neurorack.corpus import build_corpus
    from test_training import FRAME, HOP, SR, write_hits

    root = tmp_path_factory.mktemp("training")
    out = root / "corpus"
    build_corpus(
        [write_hits(root / "hits")], out, sample_rate=SR, frame_length=FRAME, hop_length=HOP, jobs=1, progress=False
    )
    return out
