"""The on-disk corpus format and its read API (:class:`Corpus`, :class:`Sound`).

A corpus is a folder::

    corpus.json                          format, version, descriptor settings, trimming settings
    manifest.sqlite                      one row per sound and one per source file (schema below)
    audio/<hash[:2]>/<hash>.wav          processed mono audio, float32 WAV at the corpus rate
    descriptors/<hash[:2]>/<hash>.npy    float32 [frames, 7] (neurorack.descriptors order)

``hash`` is the SHA-256 (hex) of the processed audio quantised to 16 bit, so two
identical sounds share one entry. The split (train / validation / test) is a pure
function of the hash (:func:`split_for`), so it never changes between rebuilds.

This module only reads corpora (plus the schema the builder creates); building
is :mod:`neurorack.corpus.build`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurorack.atomic import write_json
from neurorack.audio_io import read_audio
from neurorack.descriptors import N_DESCRIPTORS, DescriptorConfig
from neurorack.errors import CorpusError

CORPUS_FORMAT = "neurorack-corpus"
CORPUS_VERSION = 1
SCHEMA_VERSION = 1
CORPUS_JSON = "corpus.json"
MANIFEST_FILE = "manifest.sqlite"
AUDIO_DIR = "audio"
DESCRIPTORS_DIR = "descriptors"

#: Split names, in the order of :func:`split_for`'s buckets.
SPLITS: tuple[str, ...] = ("train", "validation", "test")
#: Upper bounds (exclusive) of each split's bucket in ``int(hash[:8], 16) % 100``.
SPLIT_BOUNDS: tuple[int, ...] = (80, 90, 100)

#: Status of a source file in the manifest.
SOURCE_STATUSES: tuple[str, ...] = ("ok", "duplicate", "skipped")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sounds (
    hash     TEXT PRIMARY KEY,            -- sha256 hex of the processed audio quantised to 16 bit
    split    TEXT NOT NULL CHECK (split IN ('train', 'validation', 'test')),
    source   TEXT NOT NULL,               -- absolute path of the source file (smallest path among duplicates)
    duration REAL NOT NULL,               -- seconds, after trimming
    samples  INTEGER NOT NULL,            -- samples at the corpus rate
    frames   INTEGER NOT NULL,            -- descriptor frames
    label    TEXT NOT NULL,               -- name of the source's folder (e.g. the drum kit)
    licence  TEXT NOT NULL,               -- one line, '' when unknown
    peak     REAL NOT NULL,               -- max |x| of the processed audio (linear, full scale = 1)
    added    TEXT NOT NULL                -- ISO 8601 UTC
);
CREATE INDEX IF NOT EXISTS sounds_split ON sounds (split, hash);
CREATE TABLE IF NOT EXISTS sources (
    path     TEXT PRIMARY KEY,            -- absolute path
    size     INTEGER NOT NULL,            -- bytes
    mtime_ns INTEGER NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('ok', 'duplicate', 'skipped')),
    hash     TEXT,                        -- the sound it gave (ok / duplicate), NULL when skipped
    kind     TEXT NOT NULL DEFAULT '',    -- skip category (empty, unreadable, silent, too short, ...)
    reason   TEXT NOT NULL DEFAULT '',    -- one line, '' unless skipped or duplicate
    label    TEXT NOT NULL DEFAULT '',
    licence  TEXT NOT NULL DEFAULT '',
    updated  TEXT NOT NULL                -- ISO 8601 UTC
);
CREATE INDEX IF NOT EXISTS sources_hash ON sources (hash);
"""


def split_for(sound_hash: str) -> str:
    """The split of a sound, from its hex hash: ``int(hash[:8], 16) % 100`` < 80 train, < 90 validation, else test."""
    bucket = int(sound_hash[:8], 16) % 100
    for name, bound in zip(SPLITS, SPLIT_BOUNDS, strict=True):
        if bucket < bound:
            return name
    raise AssertionError("unreachable: bounds cover 0..99")


#: Hex digits of a sound's hash a model file keeps for each sound it trained on (64 bits: no collision
#: between the few thousand sounds of a corpus; 17 bytes per sound in the file's JSON).
SOUND_ID_DIGITS = 16


def sound_id(sound_hash: str) -> str:
    """The short id of a sound (the first :data:`SOUND_ID_DIGITS` hex digits of its hash), lower case."""
    return sound_hash[:SOUND_ID_DIGITS].lower()


def audio_relpath(sound_hash: str) -> Path:
    """Path of a sound's audio relative to the corpus folder."""
    return Path(AUDIO_DIR) / sound_hash[:2] / f"{sound_hash}.wav"


def descriptors_relpath(sound_hash: str) -> Path:
    """Path of a sound's descriptor array relative to the corpus folder."""
    return Path(DESCRIPTORS_DIR) / sound_hash[:2] / f"{sound_hash}.npy"


def read_corpus_json(folder: Path) -> dict[str, Any]:
    """Read and validate ``folder/corpus.json``.

    Raises:
        CorpusError: missing, unreadable, not a neurorack corpus, or an unsupported version.
    """
    meta_path = folder / CORPUS_JSON
    if not meta_path.is_file():
        raise CorpusError(
            f"{folder}: not a neurorack corpus (no {CORPUS_JSON}); build one with `neurorack corpus build`"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorpusError(f"{meta_path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != CORPUS_FORMAT:
        raise CorpusError(f"{meta_path}: not a neurorack corpus (format is not {CORPUS_FORMAT!r})")
    if meta.get("version") != CORPUS_VERSION:
        raise CorpusError(
            f"{meta_path}: corpus format version {meta.get('version')!r} is not supported "
            f"(this neurorack reads version {CORPUS_VERSION}); rebuild it with `neurorack corpus build`"
        )
    return meta


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON via a temporary file and an atomic rename."""
    write_json(path, data)


def config_from_meta(meta: dict[str, Any]) -> DescriptorConfig:
    """The :class:`DescriptorConfig` stored in a ``corpus.json`` dict."""
    try:
        return DescriptorConfig.from_dict(dict(meta["descriptors"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CorpusError(f"corpus.json: invalid descriptor settings ({exc})") from None


@dataclass(frozen=True)
class Sound:
    """One sound of a corpus.

    Attributes:
        hash: SHA-256 hex of the processed audio quantised to 16 bit.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        source: absolute path of the file it was made from.
        duration: seconds (after trimming).
        frames: number of descriptor frames.
        label: name of the source's folder (for the drum corpus, the kit).
        licence: one line, ``""`` when unknown.
        audio_path: float32 WAV at the corpus sample rate.
        descriptors_path: ``.npy`` with float32 ``[frames, 7]``.
    """

    hash: str
    split: str
    source: str
    duration: float
    frames: int
    label: str
    licence: str
    audio_path: Path
    descriptors_path: Path

    def audio(self) -> np.ndarray:
        """The processed audio: float32 ``[T]`` mono at the corpus sample rate (levels as stored)."""
        audio, _ = read_audio(self.audio_path)
        return audio

    def descriptors(self) -> np.ndarray:
        """The precomputed descriptors: float32 ``[frames, 7]``.

        Raises:
            CorpusError: missing or malformed file.
        """
        try:
            arr = np.load(self.descriptors_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CorpusError(f"{self.descriptors_path}: cannot load descriptors ({exc})") from None
        if arr.ndim != 2 or arr.shape[1] != N_DESCRIPTORS or arr.dtype != np.float32:
            got = f"{arr.dtype} {list(arr.shape)}"
            raise CorpusError(f"{self.descriptors_path}: expected float32 [frames, {N_DESCRIPTORS}], got {got}")
        return arr


class Corpus:
    """A built corpus folder, read-only.

    Use :meth:`open`; the manifest is opened read-only for each query, so a
    :class:`Corpus` holds no open file and can be shared between processes.

    Attributes:
        path: the corpus folder.
        config: descriptor settings the corpus was built with (``config.sample_rate`` is the audio rate, Hz).
        meta: the whole ``corpus.json`` content.
    """

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.meta = meta
        self.config: DescriptorConfig = config_from_meta(meta)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Corpus:
        """Open a corpus folder.

        Raises:
            CorpusError: missing folder, not a corpus, foreign version, or unreadable manifest.
        """
        folder = Path(path)
        if not folder.exists():
            raise CorpusError(f"{folder}: no such corpus folder")
        if not folder.is_dir():
            raise CorpusError(f"{folder}: not a folder (a corpus is a folder with {CORPUS_JSON})")
        meta = read_corpus_json(folder)
        corpus = cls(folder, meta)
        if not corpus.manifest_path.is_file():
            raise CorpusError(f"{folder}: {MANIFEST_FILE} is missing; rebuild with `neurorack corpus build`")
        with corpus._query() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or int(row[0]) != SCHEMA_VERSION:
            raise CorpusError(f"{corpus.manifest_path}: unsupported manifest schema {row[0] if row else None!r}")
        return corpus

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def sample_rate(self) -> int:
        """Sample rate of the stored audio in Hz."""
        return self.config.sample_rate

    def sounds(self, split: str | None = None) -> list[Sound]:
        """The sounds of one split (``"train"``, ``"validation"``, ``"test"``) or all (``None``), sorted by hash."""
        if split is not None and split not in SPLITS:
            raise CorpusError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        sql = "SELECT hash, split, source, duration, frames, label, licence FROM sounds"
        args: tuple[str, ...] = ()
        if split is not None:
            sql += " WHERE split = ?"
            args = (split,)
        sql += " ORDER BY hash"
        with self._query() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [
            Sound(
                hash=h,
                split=s,
                source=src,
                duration=float(dur),
                frames=int(frames),
                label=label,
                licence=licence,
                audio_path=self.path / audio_relpath(h),
                descriptors_path=self.path / descriptors_relpath(h),
            )
            for h, s, src, dur, frames, label, licence in rows
        ]

    def skipped(self) -> list[tuple[str, str]]:
        """Source files that were skipped, as ``(source path, reason)``, sorted by path."""
        with self._query() as conn:
            rows = conn.execute("SELECT path, reason FROM sources WHERE status = 'skipped' ORDER BY path").fetchall()
        return [(str(p), str(r)) for p, r in rows]

    def duplicates(self) -> list[tuple[str, str]]:
        """Source files whose sound was already in the corpus, as ``(source path, hash)``, sorted by path."""
        with self._query() as conn:
            rows = conn.execute("SELECT path, hash FROM sources WHERE status = 'duplicate' ORDER BY path").fetchall()
        return [(str(p), str(h)) for p, h in rows]

    def __len__(self) -> int:
        with self._query() as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM sounds").fetchone()
        return int(count)

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r}, sounds={len(self)}, sample_rate={self.sample_rate})"

    @contextmanager
    def _query(self) -> Iterator[sqlite3.Connection]:
        uri = self.manifest_path.resolve().as_uri() + "?mode=ro"
        try:
            with closing(sqlite3.connect(uri, uri=True)) as conn:
                yield conn
        except sqlite3.Error as exc:
            raise CorpusError(f"{self.manifest_path}: cannot read manifest ({exc})") from None


def connect_manifest(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) a manifest for writing, with the schema in place."""
    conn = sqlite3.connect(str(path), timeout=30.0)
    conn.execute("PRAGMA foreign_keys = ON")
    with conn:
        conn.executescript(SCHEMA)
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or int(row[0]) != SCHEMA_VERSION:
        conn.close()
        raise CorpusError(f"{path}: unsupported manifest schema {row[0] if row else None!r}; use a new --out folder")
    return conn
