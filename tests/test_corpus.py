"""Corpus building, reading and the ``neurorack corpus`` CLI, on real (synthetic) audio files."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from neurorack.audio_io import read_audio, resample
from neurorack.cli import main
from neurorack.corpus import SPLITS, BuildReport, Corpus, build_corpus, split_for
from neurorack.corpus.licences import LicenceFinder, parse_dep5, summarize_licence
from neurorack.corpus.process import FADE_SECONDS, PRE_ROLL_SECONDS, sound_hash, trim
from neurorack.descriptors import N_DESCRIPTORS
from neurorack.errors import CorpusError

SR = 44_100

# name (relative to the source root) -> expected skip kind
BAD_FILES = {
    "bad/corrupt.wav": "unreadable",
    "bad/empty.wav": "empty",
    "bad/text.flac": "unreadable",
    "bad/silent.wav": "silent",
    "bad/short.wav": "too short",
    "bad/nan.wav": "non-finite",
}
GOOD_FILES = (
    "kit_a/sine.wav",
    "kit_a/noise_192k.wav",
    "kit_a/quiet.flac",
    "kit_a/long.wav",
    "kit_b/eight_channels.wav",
    "kit_b/stereo.aiff",
    "kit_b/tom.flac",
    "kit_b/shaker.ogg",
    "kit_c/same.wav",
    "kit_c/same.flac",
)
UNIQUE_SOUNDS = len(GOOD_FILES) - 1  # same.wav and same.flac are one sound


def hit(
    sr: int,
    seconds: float,
    *,
    freq: float,
    noise: float,
    seed: int,
    lead: float = 0.1,
    gain: float = 0.8,
    decay: float = 8.0,
) -> np.ndarray:
    """A decaying (``exp(-decay t)``) sine + noise hit after ``lead`` seconds of silence: float64 [T]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    env = np.exp(-t * decay)
    body = (1 - noise) * np.sin(2 * np.pi * freq * t) + noise * rng.uniform(-1, 1, t.size)
    x = np.concatenate([np.zeros(int(lead * sr)), gain * env * body])
    return x / np.abs(x).max() * gain


def make_sources(root: Path) -> Path:
    """Write the fixture tree: good files of various formats, bad files, a licence and a drumkit.xml."""
    (root / "kit_a").mkdir(parents=True)
    (root / "kit_b").mkdir()
    (root / "kit_c").mkdir()
    (root / "bad").mkdir()
    (root / "no_audio").mkdir()
    sf.write(root / "kit_a/sine.wav", hit(SR, 0.5, freq=220, noise=0.0, seed=1), SR, subtype="PCM_16")
    sf.write(root / "kit_a/noise_192k.wav", hit(192_000, 0.4, freq=3000, noise=0.7, seed=2), 192_000, subtype="FLOAT")
    sf.write(root / "kit_a/quiet.flac", hit(48_000, 0.3, freq=440, noise=0.2, seed=3, gain=0.0316), 48_000)
    sf.write(root / "kit_a/long.wav", hit(SR, 3.5, freq=110, noise=0.1, seed=4, lead=0.0, gain=0.5, decay=1.0), SR)
    eight = np.stack([hit(48_000, 0.3, freq=100 * (k + 1), noise=0.3, seed=10 + k) for k in range(8)], axis=1)
    sf.write(root / "kit_b/eight_channels.wav", eight, 48_000, subtype="PCM_24")
    stereo = np.stack([hit(SR, 0.3, freq=300, noise=0.5, seed=5), hit(SR, 0.3, freq=310, noise=0.5, seed=6)], 1)
    sf.write(root / "kit_b/stereo.aiff", stereo, SR, subtype="PCM_16")
    sf.write(root / "kit_b/tom.flac", hit(96_000, 0.6, freq=150, noise=0.05, seed=7), 96_000, subtype="PCM_24")
    sf.write(root / "kit_b/shaker.ogg", hit(SR, 0.3, freq=5000, noise=0.9, seed=8), SR, format="OGG", subtype="VORBIS")
    same = np.round(hit(SR, 0.4, freq=600, noise=0.4, seed=9) * 32767).astype(np.int16)  # exact in both formats
    sf.write(root / "kit_c/same.wav", same, SR, subtype="PCM_16")
    sf.write(root / "kit_c/same.flac", same, SR, subtype="PCM_16")
    (root / "LICENSE.txt").write_text("License: CC0-1.0\n\nDo what you want.\n")
    (root / "kit_b/drumkit.xml").write_text("<drumkit_info><name>B</name><license>GPL</license></drumkit_info>")
    # bad ones
    (root / "bad/corrupt.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "bad/empty.wav").write_bytes(b"")
    (root / "bad/text.flac").write_text("these are my notes, not a FLAC file\n" * 20)
    sf.write(root / "bad/silent.wav", np.zeros(SR // 2), SR)
    sf.write(root / "bad/short.wav", hit(SR, 0.02, freq=900, noise=0.5, seed=11, lead=0.2), SR)
    nan = hit(SR, 0.3, freq=200, noise=0.1, seed=12)
    nan[5000:5010] = np.nan
    sf.write(root / "bad/nan.wav", nan, SR, subtype="FLOAT")
    (root / "bad/notes.txt").write_text("ignored\n")
    (root / "bad/cover.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (root / "no_audio/readme.txt").write_text("nothing to see\n")
    return root


def digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def audio_sources(root: Path) -> list[Path]:
    """The whole fixture tree as one source (``no_audio/`` is just a folder without audio there)."""
    return [root]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, BuildReport, dict[str, str]]:
    """One corpus built with two worker processes: (sources root, corpus folder, report, source digests)."""
    root = make_sources(tmp_path_factory.mktemp("src"))
    before = digest_tree(root)
    out = tmp_path_factory.mktemp("corpora") / "c"
    report = build_corpus(audio_sources(root), out, jobs=2, progress=False)
    return root, out, report, before


def test_build_counts_and_skipped_reasons(built: tuple[Path, Path, BuildReport, dict[str, str]]) -> None:
    root, _, report, _ = built
    assert report.jobs == 2
    assert report.sources == len(GOOD_FILES) + len(BAD_FILES)  # .txt/.png in folders are ignored
    assert report.added == UNIQUE_SOUNDS
    assert report.duplicates == 1
    assert report.unchanged == 0
    assert report.sounds == UNIQUE_SOUNDS
    assert sum(report.splits.values()) == UNIQUE_SOUNDS
    skipped = {str(Path(p).relative_to(root)): reason for p, reason in report.skipped}
    assert set(skipped) == set(BAD_FILES)
    for name, kind in BAD_FILES.items():
        assert skipped[name].startswith(kind + ":"), (name, skipped[name])
        assert "\n" not in skipped[name]
        assert "Traceback" not in skipped[name]
    assert report.reasons == {"unreadable": 2, "empty": 1, "silent": 1, "too short": 1, "non-finite": 1}


def test_sources_are_never_modified(built: tuple[Path, Path, BuildReport, dict[str, str]]) -> None:
    root, _, _, before = built
    assert digest_tree(root) == before


def test_layout_and_read_api(built: tuple[Path, Path, BuildReport, dict[str, str]]) -> None:
    root, out, _, _ = built
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["format"] == "neurorack-corpus" and meta["version"] == 1
    assert meta["descriptors"]["sample_rate"] == SR and meta["descriptors"]["hop_length"] == 512
    assert meta["max_seconds"] == 2.0 and meta["min_seconds"] == 0.05
    assert meta["neurorack_version"] and meta["created"]

    corpus = Corpus.open(out)
    assert corpus.path == out
    assert corpus.config.sample_rate == SR and corpus.config.frame_length == 2048
    sounds = corpus.sounds()
    assert len(corpus) == len(sounds) == UNIQUE_SOUNDS
    assert [s.hash for s in sounds] == sorted(s.hash for s in sounds)
    by_split = {split: corpus.sounds(split) for split in SPLITS}
    assert sorted(s.hash for ss in by_split.values() for s in ss) == [s.hash for s in sounds]
    for split, members in by_split.items():
        assert all(s.split == split == split_for(s.hash) for s in members)
    for sound in sounds:
        assert sound.audio_path == out / "audio" / sound.hash[:2] / f"{sound.hash}.wav"
        assert sound.descriptors_path == out / "descriptors" / sound.hash[:2] / f"{sound.hash}.npy"
        info = sf.info(str(sound.audio_path))
        assert info.samplerate == SR and info.channels == 1 and info.subtype == "FLOAT"
        audio = sound.audio()
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert sound.duration == pytest.approx(audio.size / SR)
        assert sound_hash(audio) == sound.hash
        curves = sound.descriptors()
        assert curves.dtype == np.float32 and curves.shape == (sound.frames, N_DESCRIPTORS)
        assert sound.frames == 1 + audio.size // 512
        assert np.isfinite(curves).all()
        assert Path(sound.source).is_file() and Path(sound.source).is_relative_to(root)
        assert sound.label == Path(sound.source).parent.name
    licences = {Path(s.source).name: s.licence for s in sounds}
    assert licences["sine.wav"] == "CC0-1.0"  # LICENSE.txt at the root
    assert licences["tom.flac"] == "GPL"  # drumkit.xml of kit_b wins over the root licence
    assert {p for p, _ in corpus.skipped()} == {str(root / n) for n in BAD_FILES}


def test_manifest_records_every_source(built: tuple[Path, Path, BuildReport, dict[str, str]]) -> None:
    root, out, _, _ = built
    with sqlite3.connect(out / "manifest.sqlite") as conn:
        rows = {
            str(Path(p).relative_to(root)): (status, size, reason)
            for p, status, size, reason in conn.execute("SELECT path, status, size, reason FROM sources")
        }
        peaks = conn.execute("SELECT peak, duration, added FROM sounds").fetchall()
    assert set(rows) == set(GOOD_FILES) | set(BAD_FILES)
    assert rows["kit_c/same.wav"][0] == "duplicate" and rows["kit_c/same.wav"][2].startswith("duplicate of sound")
    assert rows["kit_c/same.flac"][0] == "ok"
    assert rows["kit_a/sine.wav"][1] == (root / "kit_a/sine.wav").stat().st_size
    assert all(rows[n][0] == "skipped" for n in BAD_FILES)
    assert all(peak > 0 and duration > 0 and added for peak, duration, added in peaks)


def test_dedup_across_formats(built: tuple[Path, Path, BuildReport, dict[str, str]]) -> None:
    root, out, _, _ = built
    corpus = Corpus.open(out)
    same = [s for s in corpus.sounds() if s.label == "kit_c"]
    assert len(same) == 1
    assert same[0].source == str(root / "kit_c/same.flac")  # smallest path owns the sound
    assert corpus.duplicates() == [(str(root / "kit_c/same.wav"), same[0].hash)]


def test_levels_kept_resampled_and_trimmed(built: tuple[Path, Path, BuildReport, dict[str, str]]) -> None:
    root, out, _, _ = built
    sounds = {Path(s.source).name: s for s in Corpus.open(out).sounds()}
    for name in ("noise_192k.wav", "quiet.flac", "tom.flac", "eight_channels.wav", "sine.wav"):
        source, sr = read_audio(root / sounds[name].label / name)
        expected = resample(source, sr, SR)
        stored = sounds[name].audio()
        assert float(np.abs(stored).max()) == pytest.approx(float(np.abs(expected).max()), rel=2e-3), name
        # onset-trimmed: the 0.1 s of leading silence is gone, only the pre-roll is kept
        onset = int(np.argmax(np.abs(stored) >= np.abs(stored).max() * 0.01))
        assert onset <= round(PRE_ROLL_SECONDS * SR) + 1, name
        assert stored.size < expected.size, name
    quiet = sounds["quiet.flac"].audio()
    assert 20 * np.log10(np.abs(quiet).max()) == pytest.approx(-30.0, abs=0.5)  # not normalised
    long = sounds["long.wav"].audio()
    assert long.size == 2 * SR  # capped to --max-seconds
    assert abs(float(long[-1])) < 1e-6 and np.abs(long[-round(FADE_SECONDS * SR) :]).max() > 0  # faded out


def test_rebuild_is_deterministic_and_split_stable(
    built: tuple[Path, Path, BuildReport, dict[str, str]], tmp_path: Path
) -> None:
    root, out, _, _ = built
    report = build_corpus(audio_sources(root), tmp_path / "again", jobs=1, progress=False)
    assert report.jobs == 1
    first = {(s.hash, s.split, s.source, s.frames) for s in Corpus.open(out).sounds()}
    second = {(s.hash, s.split, s.source, s.frames) for s in Corpus.open(tmp_path / "again").sounds()}
    assert first == second
    # the split is a pure function of the hash
    assert split_for("00000000" + "f" * 56) == "train"
    assert split_for(f"{85:08x}" + "0" * 56) == "validation"
    assert split_for(f"{95:08x}" + "0" * 56) == "test"


def test_incremental_rebuild(tmp_path: Path) -> None:
    root = make_sources(tmp_path / "src")
    out = tmp_path / "corpus"
    sources = audio_sources(root)
    first = build_corpus(sources, out, jobs=1, progress=False)
    second = build_corpus(sources, out, jobs=1, progress=False)
    assert second.unchanged == second.sources == first.sources
    assert (second.added, second.duplicates, second.newly_skipped, second.refreshed) == (0, 0, 0, 0)
    assert len(second.skipped) == len(BAD_FILES)  # still listed, not reprocessed

    old = {Path(s.source).name: s for s in Corpus.open(out).sounds()}["sine.wav"]
    sf.write(root / "kit_a/sine.wav", hit(SR, 0.5, freq=330, noise=0.0, seed=1), SR, subtype="PCM_16")
    third = build_corpus(sources, out, jobs=1, progress=False)
    assert third.added == 1 and third.unchanged == third.sources - 1
    corpus = Corpus.open(out)
    assert old.hash not in {s.hash for s in corpus.sounds()}
    assert not old.audio_path.exists() and not old.descriptors_path.exists()
    assert len(corpus) == UNIQUE_SOUNDS

    # the owner of a duplicated sound disappears: the duplicate takes over
    (root / "kit_c/same.flac").unlink()
    fourth = build_corpus(sources, out, jobs=1, progress=False)
    assert fourth.removed == 1 and fourth.unchanged == fourth.sources
    corpus = Corpus.open(out)
    assert len(corpus) == UNIQUE_SOUNDS
    assert str(root / "kit_c/same.wav") in {s.source for s in corpus.sounds()}
    assert corpus.duplicates() == []

    # a file fixed in place is picked up
    sf.write(root / "bad/silent.wav", hit(SR, 0.3, freq=700, noise=0.2, seed=13), SR)
    fifth = build_corpus(sources, out, jobs=1, progress=False)
    assert fifth.added == 1 and len(fifth.skipped) == len(BAD_FILES) - 1


def test_settings_mismatch_and_bad_outputs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "a.wav", hit(SR, 0.3, freq=200, noise=0.3, seed=1), SR)
    out = tmp_path / "corpus"
    build_corpus([src], out, jobs=1, progress=False)
    with pytest.raises(CorpusError, match="new --out"):
        build_corpus([src], out, sample_rate=22_050, jobs=1, progress=False)
    with pytest.raises(CorpusError, match="hop length"):
        build_corpus([src], out, hop_length=256, jobs=1, progress=False)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(CorpusError, match="not empty"):
        build_corpus([src], stranger, jobs=1, progress=False)
    with pytest.raises(CorpusError, match="min-seconds"):
        build_corpus([src], tmp_path / "x", min_seconds=3.0, jobs=1, progress=False)
    # an output folder inside the source folder is not scanned on rebuild
    inner = src / "corpus"
    build_corpus([src], inner, jobs=1, progress=False)
    assert build_corpus([src], inner, jobs=1, progress=False).unchanged == 1


def test_missing_and_empty_sources(tmp_path: Path) -> None:
    root = make_sources(tmp_path / "src")
    with pytest.raises(CorpusError, match="no such file or folder"):
        build_corpus([tmp_path / "nope"], tmp_path / "c1", progress=False)
    with pytest.raises(CorpusError, match="contains no audio"):
        build_corpus([root / "no_audio"], tmp_path / "c2", progress=False)
    assert not (tmp_path / "c1").exists() and not (tmp_path / "c2").exists()


def test_explicit_files_are_always_considered(tmp_path: Path) -> None:
    root = make_sources(tmp_path / "src")
    report = build_corpus([root / "kit_a/sine.wav", root / "bad/notes.txt"], tmp_path / "c", jobs=1, progress=False)
    assert report.added == 1
    assert [(Path(p).name, r.split(":")[0]) for p, r in report.skipped] == [("notes.txt", "not audio")]
    assert Corpus.open(tmp_path / "c").sounds()[0].label == "kit_a"


def test_open_refuses_non_corpora(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such corpus"):
        Corpus.open(tmp_path / "missing")
    with pytest.raises(CorpusError, match="not a neurorack corpus"):
        Corpus.open(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "a.wav", hit(SR, 0.3, freq=200, noise=0.3, seed=1), SR)
    build_corpus([src], tmp_path / "c", jobs=1, progress=False)
    meta = json.loads((tmp_path / "c/corpus.json").read_text())
    (tmp_path / "c/corpus.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(CorpusError, match="version 99"):
        Corpus.open(tmp_path / "c")
    with pytest.raises(CorpusError, match="version 99"):
        build_corpus([src], tmp_path / "c", jobs=1, progress=False)
    (tmp_path / "c/corpus.json").write_text(json.dumps({**meta, "format": "something-else"}))
    with pytest.raises(CorpusError, match="not a neurorack corpus"):
        Corpus.open(tmp_path / "c")
    (tmp_path / "c/corpus.json").write_text(json.dumps(meta))
    with pytest.raises(CorpusError, match="unknown split"):
        Corpus.open(tmp_path / "c").sounds("training")


def test_trim_and_hash_units() -> None:
    x = np.zeros(SR, dtype=np.float32)
    x[10_000:20_000] = np.float32(0.5) * np.exp(-np.arange(10_000) / 2000.0).astype(np.float32)
    y = trim(x, SR, max_seconds=2.0)
    pre = round(PRE_ROLL_SECONDS * SR)
    assert np.array_equal(y[:pre], np.zeros(pre, dtype=np.float32))
    assert y[pre] == np.float32(0.5)
    assert y.size < 10_000 + 2 * pre + 1
    assert np.abs(y).max() == np.float32(0.5)  # levels kept
    assert trim(np.zeros(100, dtype=np.float32), SR, 2.0).size == 0
    capped = trim(np.full(3 * SR, 0.25, dtype=np.float32), SR, max_seconds=1.0)
    assert capped.size == SR and capped[0] == np.float32(0.25) and capped[-1] == 0.0
    assert sound_hash(x) == sound_hash(x.astype(np.float64))
    quantised = np.round(x.astype(np.float64) * 32767) / 32767
    assert sound_hash(x) == sound_hash(quantised)  # the hash is of the 16-bit audio
    assert sound_hash(x) != sound_hash(x * 0.5)


def test_licence_helpers(tmp_path: Path) -> None:
    assert summarize_licence("License: CC-BY-3.0 (someone)\nmore") == "CC-BY-3.0 (someone)"
    gpl = "GNU GENERAL PUBLIC LICENSE\n   Version 2, June 1991\n\n Copyright (C) 1989 ..."
    assert summarize_licence(gpl) == "GPL-2.0"
    assert summarize_licence("\n\nAll rights reserved by me.\n") == "All rights reserved by me."
    (tmp_path / "kit/sub").mkdir(parents=True)
    (tmp_path / "COPYING").write_text(gpl)
    (tmp_path / "kit/sub/license").write_text("License: CC0")
    finder = LicenceFinder(tmp_path / "kit")
    assert finder.licence_for(tmp_path / "kit/sub/a.wav") == "CC0"
    assert finder.licence_for(tmp_path / "kit/a.wav") == ""  # COPYING is above the scanned root
    assert LicenceFinder(tmp_path).licence_for(tmp_path / "kit/a.wav") == "GPL-2.0"
    stanzas = parse_dep5(
        "Files: *\nCopyright: 2004 A\n 2005 B\nLicense: GPL-2+\n text\n .\n more\n\nFiles: x/*\nLicense: MIT\n"
    )
    assert stanzas[0].files == ["*"] and stanzas[0].licence == "GPL-2+" and stanzas[0].copyright == "2004 A; 2005 B"
    assert stanzas[1].licence == "MIT"


# -- the command line ----------------------------------------------------------------------------


def test_cli_build_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_sources(tmp_path / "src")
    out = tmp_path / "corpus"
    argv = ["corpus", "build", str(root / "kit_a"), str(root / "bad"), "--out", str(out), "--jobs", "1"]
    assert main([*argv, "--json", "--no-progress"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["added"] == 4 and summary["sounds"] == 4 and summary["out"] == str(out)
    assert {s["reason"].split(":")[0] for s in summary["skipped"]} == set(BAD_FILES.values())
    assert "Traceback" not in captured.err
    assert len(Corpus.open(out)) == 4

    assert main(argv) == 0  # human-readable: table on stdout, progress (none here) on stderr
    captured = capsys.readouterr()
    assert "unchanged" in captured.out and "sounds in corpus" in captured.out
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["corpus", "build", "{tmp}/nope", "--out", "{tmp}/c"], "no such file or folder"),
        (["corpus", "build", "{src}/no_audio", "--out", "{tmp}/c"], "contains no audio"),
        (["corpus", "build", "{src}/kit_a", "--out", "{tmp}/c", "--max-seconds", "0"], "max-seconds"),
        (["corpus", "build", "{src}/kit_a", "--out", "{tmp}/c", "--jobs", "0"], "--jobs"),
        (["corpus", "build", "{src}/kit_a", "--out", "{src}/kit_b"], "not empty"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    root = make_sources(tmp_path / "src")
    args = [a.format(tmp=tmp_path, src=root) for a in argv]
    assert main(args) != 0
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.out + captured.err
    assert err.startswith("error:") and message in err
    assert len(err.splitlines()) == 1 or message in err.splitlines()[0]


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["corpus", "fetch", "cymbals", "--out", str(tmp_path)]) != 0
    assert main(["corpus", "build", str(tmp_path)]) != 0  # --out missing
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err


def test_copy_of_a_corpus_still_opens(built: tuple[Path, Path, BuildReport, dict[str, str]], tmp_path: Path) -> None:
    _, out, _, _ = built
    moved = tmp_path / "moved corpus #1"
    shutil.copytree(out, moved)
    corpus = Corpus.open(moved)
    assert len(corpus) == UNIQUE_SOUNDS
    assert all(s.audio_path.is_file() and s.audio_path.is_relative_to(moved) for s in corpus.sounds())
