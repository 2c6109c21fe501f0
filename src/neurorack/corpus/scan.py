"""Finding the source files of a build: walking sample folders, with each file's stat, label and licence."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from neurorack.audio_io import AUDIO_EXTENSIONS, is_audio_path
from neurorack.corpus.licences import LicenceFinder
from neurorack.errors import CorpusError


@dataclass(frozen=True)
class Candidate:
    """A source file found by :func:`scan_sources`: absolute path, stat, folder label, licence."""

    path: str
    size: int
    mtime_ns: int
    label: str
    licence: str


def scan_sources(
    sources: Sequence[str | os.PathLike[str]], exclude: Path | None = None
) -> tuple[list[Candidate], list[str]]:
    """List the source files of a build.

    Folders are walked recursively (hidden files and folders, and ``exclude``, left out) for
    files with an audio extension; files given explicitly are always candidates.

    Returns:
        ``(candidates, roots)``: candidates in argument order, each folder's files sorted;
        ``roots`` are the absolute folders that were walked.

    Raises:
        CorpusError: no sources, a source that does not exist, or a folder without audio files.
    """
    if not sources:
        raise CorpusError("no sources given: pass folders or files of audio to build a corpus from")
    seen: set[str] = set()
    candidates: list[Candidate] = []
    roots: list[str] = []
    exclude_abs = os.path.abspath(exclude) if exclude is not None else None
    for source in sources:
        src = Path(os.path.abspath(source))
        if not src.exists():
            raise CorpusError(f"{source}: no such file or folder")
        if src.is_dir():
            files = _walk_audio(src, exclude_abs)
            if not files:
                exts = ", ".join(sorted(AUDIO_EXTENSIONS))
                raise CorpusError(f"{source}: contains no audio files (looked for {exts})")
            roots.append(str(src))
            finder = LicenceFinder(src)
        else:
            files = [src]
            finder = LicenceFinder(src.parent)
        for file in files:
            key = str(file)
            if key in seen:
                continue
            seen.add(key)
            try:
                st = file.stat()
                size, mtime_ns = int(st.st_size), int(st.st_mtime_ns)
            except OSError:
                size, mtime_ns = -1, -1
            label = file.parent.name or src.name
            candidates.append(Candidate(key, size, mtime_ns, label, finder.licence_for(file)))
    return candidates, roots


def _walk_audio(root: Path, exclude: str | None) -> list[Path]:
    found: list[Path] = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and os.path.join(folder, d) != exclude)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            if is_audio_path(path) and (path.is_file()):
                found.append(path)
    return found
