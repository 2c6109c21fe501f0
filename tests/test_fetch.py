"""``fetch_drums`` and the held-out collections with the real Debian packages (the Debian mirror the first time)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from neurorack.audio_io import is_audio_path
from neurorack.corpus import Corpus, build_corpus, fetch_drums
from neurorack.corpus.fetch import LICENCE_FILE, SONIC_PI_FAMILIES, fetch_collection
from neurorack.errors import CorpusError

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian/Ubuntu)")


@pytest.mark.slow
def test_fetch_drums_real_packages(tmp_path: Path) -> None:
    out = tmp_path / "drums-src"
    report = fetch_drums(out)  # default cache: ~/.cache/neurorack/debian, reused across runs
    assert report.fetched
    audio = [p for p in out.rglob("*") if p.is_file() and is_audio_path(p)]
    assert len(audio) == report.files >= 600
    assert report.per_source["hydrogen"] >= 600 and report.per_source["lmms"] >= 60
    assert set(report.packages) == {"hydrogen-drumkits", "lmms-common"}
    assert not any(p.suffix == ".ds" for p in out.rglob("*"))  # no drumsynth presets
    # every folder of sounds has its licence next to it, and the full copyright files are there
    for folder in {p.parent for p in audio}:
        licence = (folder / LICENCE_FILE).read_text()
        assert licence.startswith("License: ") and "unknown" not in licence.splitlines()[0], folder
    assert (out / "hydrogen-drumkits.copyright").is_file() and (out / "lmms-common.copyright").is_file()
    assert report.licences["hydrogen/Audiophob"].startswith("CC0")
    assert report.licences["hydrogen/rumpf_kit_z01_h2"].startswith("CC-BY-3.0")
    sources = json.loads((out / "SOURCES.json").read_text())
    assert sources["total"] == report.files and len(sources["files"]) == report.files
    assert {p["name"]: p["version"] for p in sources["packages"]} == report.packages

    # idempotent and fast once complete
    started = time.perf_counter()
    again = fetch_drums(out)
    assert not again.fetched and again.files == report.files
    assert time.perf_counter() - started < 2.0

    # the licences and kit names reach the corpus
    corpus_dir = tmp_path / "corpus"
    build_corpus([out / "hydrogen" / "Audiophob"], corpus_dir, jobs=1, progress=False)
    sounds = Corpus.open(corpus_dir).sounds()
    assert len(sounds) >= 10
    assert {s.label for s in sounds} == {"Audiophob"}
    assert all(s.licence.startswith("CC0") for s in sounds)


@pytest.mark.slow
def test_fetch_held_out_collections(tmp_path: Path) -> None:
    sonic = fetch_collection("sonic-pi", tmp_path / "sonic-pi")
    assert set(sonic.packages) == {"sonic-pi-samples"} and sonic.per_source == {"sonic-pi": sonic.files}
    audio = [p for p in (tmp_path / "sonic-pi").rglob("*") if p.is_file() and is_audio_path(p)]
    assert len(audio) == sonic.files >= 80
    assert {p.parent.name for p in audio} == set(SONIC_PI_FAMILIES)
    assert all(p.name.startswith(p.parent.name + "_") for p in audio)  # no ambient, bass or loop samples
    licence = (tmp_path / "sonic-pi" / "sonic-pi" / "bd" / LICENCE_FILE).read_text()
    assert "bd_haus.flac: CC0 (2011 Rodrigo The Mad)" in licence  # the file's own stanza
    kits = fetch_collection("hydrogen-data", tmp_path / "h2")
    assert set(kits.licences) == {"hydrogen-data/GMRockKit", "hydrogen-data/TR808EmulationKit"}
    assert kits.files >= 50
    with pytest.raises(CorpusError, match="holds the collection 'sonic-pi'"):
        fetch_collection("drums", tmp_path / "sonic-pi")
    with pytest.raises(CorpusError, match="unknown collection"):
        fetch_collection("nsynth", tmp_path / "x")


def test_fetch_without_apt_get_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dpkg_deb = shutil.which("dpkg-deb")
    assert dpkg_deb is not None
    os.symlink(dpkg_deb, bin_dir / "dpkg-deb")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(CorpusError, match="apt-get not found: install the Debian packages") as info:
        fetch_drums(tmp_path / "out", cache=tmp_path / "empty-cache")
    assert "\n" not in str(info.value)
