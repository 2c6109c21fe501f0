"""Shared fixtures: real drum one-shots from the Debian packages (fetched once, cached)."""

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
