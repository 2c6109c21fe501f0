"""Licence discovery for sample folders: one short line per sound.

Three sources of licence information are understood:

* a licence text file (``LICENSE``, ``LICENSE.txt``, ``COPYING``, ``licence.txt``,
  ``license.txt``, any case) in a sound's folder or any parent folder up to the
  root that was scanned -- the closest one wins;
* a Hydrogen ``drumkit.xml`` with a ``<license>`` element, which applies to the
  files of its own folder only;
* Debian machine-readable ``copyright`` files (DEP-5), parsed into stanzas by
  :func:`parse_dep5` (used by :mod:`neurorack.corpus.fetch`).

Everything here only reads files; nothing is ever written.
"""

from __future__ import annotations

import fnmatch
import html
import re
from dataclasses import dataclass
from pathlib import Path

#: Licence file names, lower case (matched case-insensitively).
LICENCE_FILE_NAMES: frozenset[str] = frozenset({"license", "license.txt", "licence", "licence.txt", "copying"})

#: Longest licence string stored in a manifest, in characters.
MAX_LICENCE_CHARS = 160

_DEP5_LICENCE_LINE = re.compile(r"^\s*licen[cs]e\s*:\s*(\S.*)$", re.IGNORECASE)
_XML_LICENSE = re.compile(r"<license>(.*?)</license>", re.IGNORECASE | re.DOTALL)
_MAX_READ_BYTES = 1 << 20

# (regexes that must all match, short name); first match wins, checked on the first 4 kB.
_KNOWN_TEXTS: tuple[tuple[tuple[str, ...], str], ...] = (
    ((r"GNU LESSER GENERAL PUBLIC LICENSE", r"Version 3"), "LGPL-3.0"),
    ((r"GNU LESSER GENERAL PUBLIC LICENSE", r"Version 2\.1"), "LGPL-2.1"),
    ((r"GNU (LIBRARY|LESSER) GENERAL PUBLIC LICENSE",), "LGPL"),
    ((r"GNU AFFERO GENERAL PUBLIC LICENSE",), "AGPL-3.0"),
    ((r"GNU GENERAL PUBLIC LICENSE", r"Version 3"), "GPL-3.0"),
    ((r"GNU GENERAL PUBLIC LICENSE", r"Version 2"), "GPL-2.0"),
    ((r"GNU GENERAL PUBLIC LICENSE",), "GPL"),
    ((r"\bCC0\b|Creative Commons Zero|CC0 1\.0 Universal",), "CC0-1.0"),
    ((r"Attribution[- ]ShareAlike|\bCC[- ]BY[- ]SA\b",), "CC-BY-SA"),
    ((r"Attribution[- ]NonCommercial|\bCC[- ]BY[- ]NC\b",), "CC-BY-NC"),
    ((r"Creative Commons.*Attribution|\bCC[- ]BY\b",), "CC-BY"),
    ((r"Apache License",), "Apache-2.0"),
    ((r"\bMIT License\b|Permission is hereby granted, free of charge",), "MIT"),
    ((r"unencumbered software released into the public domain",), "Unlicense"),
    ((r"public domain",), "public domain"),
)


def one_line(text: str, limit: int = MAX_LICENCE_CHARS) -> str:
    """Collapse whitespace and cut to ``limit`` characters (with an ellipsis)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def summarize_licence(text: str) -> str:
    """A short one-line licence string for a licence text.

    A first line of the form ``License: <name>`` (as written by
    :mod:`neurorack.corpus.fetch`, or DEP-5 style) gives ``<name>``; otherwise a
    well-known licence text (GPL, LGPL, CC, MIT, ...) gives its short name;
    otherwise the first non-empty line is used. Returns ``""`` for empty text.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    match = _DEP5_LICENCE_LINE.match(lines[0])
    if match:
        return one_line(match.group(1))
    head = "\n".join(lines[:60])[:4096]
    for patterns, name in _KNOWN_TEXTS:
        if all(re.search(p, head, re.IGNORECASE) for p in patterns):
            return name
    return one_line(lines[0])


def read_text(path: Path) -> str:
    """Read at most 1 MiB of a text file, decoding leniently (UTF-8, then Latin-1)."""
    with path.open("rb") as fh:
        raw = fh.read(_MAX_READ_BYTES)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def hydrogen_licence(drumkit_xml: Path) -> str:
    """The ``<license>`` of a Hydrogen ``drumkit.xml`` as one line (``""`` when absent or unreadable)."""
    try:
        text = read_text(drumkit_xml)
    except OSError:
        return ""
    match = _XML_LICENSE.search(text)
    return one_line(html.unescape(match.group(1))) if match else ""


class LicenceFinder:
    """Finds the licence of sound files below a root folder, caching per folder.

    Args:
        root: the folder that was scanned; licence files above it are not consulted.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._licence_file: dict[Path, str | None] = {}
        self._hydrogen: dict[Path, str] = {}

    def licence_for(self, path: Path) -> str:
        """Licence string for the file ``path`` (``""`` when nothing is known)."""
        folder = Path(path).parent
        own = self._folder_licence_file(folder)
        if own:
            return own
        kit = self._hydrogen_kit(folder)
        if kit:
            return kit
        if folder == self.root or self.root not in folder.parents:
            return ""
        for parent in folder.parents:
            found = self._folder_licence_file(parent)
            if found:
                return found
            if parent == self.root:
                break
        return ""

    def _folder_licence_file(self, folder: Path) -> str | None:
        if folder not in self._licence_file:
            self._licence_file[folder] = _licence_file_in(folder)
        return self._licence_file[folder]

    def _hydrogen_kit(self, folder: Path) -> str:
        if folder not in self._hydrogen:
            xml = folder / "drumkit.xml"
            self._hydrogen[folder] = hydrogen_licence(xml) if xml.is_file() else ""
        return self._hydrogen[folder]


def _licence_file_in(folder: Path) -> str | None:
    """Summary of the first licence file in ``folder`` (sorted by name), or ``None``."""
    try:
        names = sorted(entry.name for entry in folder.iterdir() if entry.name.lower() in LICENCE_FILE_NAMES)
    except OSError:
        return None
    for name in names:
        candidate = folder / name
        if not candidate.is_file():
            continue
        try:
            summary = summarize_licence(read_text(candidate))
        except OSError:
            continue
        if summary:
            return summary
    return None


# -- Debian machine-readable copyright files (DEP-5) ----------------------------------------------


@dataclass(frozen=True)
class Dep5Stanza:
    """One paragraph of a DEP-5 ``copyright`` file.

    Attributes:
        fields: field name (as written, e.g. ``"Files"``) -> value; continuation lines are
            kept, joined with newlines, with the leading space removed and ``.`` lines as blank lines.
        text: the paragraph verbatim.
    """

    fields: dict[str, str]
    text: str

    def get(self, name: str) -> str:
        """Value of a field, case-insensitively (``""`` when absent)."""
        for key, value in self.fields.items():
            if key.lower() == name.lower():
                return value
        return ""

    @property
    def files(self) -> list[str]:
        """The whitespace-separated patterns of the ``Files`` field."""
        return self.get("Files").split()

    @property
    def licence(self) -> str:
        """The short licence name: the first line of the ``License`` field."""
        return self.get("License").split("\n", 1)[0].strip()

    @property
    def copyright(self) -> str:
        """The ``Copyright`` field as one line (holders separated by ``;``)."""
        holders = [line.strip() for line in self.get("Copyright").split("\n") if line.strip()]
        return "; ".join(holders)


def dep5_stanza_for(stanzas: list[Dep5Stanza], relpath: str) -> Dep5Stanza | None:
    """The ``Files`` stanza governing ``relpath`` (path in the upstream source tree): the last match wins."""
    found: Dep5Stanza | None = None
    for stanza in stanzas:
        if any(fnmatch.fnmatchcase(relpath, pattern) for pattern in stanza.files):
            found = stanza
    return found


def parse_dep5(text: str) -> list[Dep5Stanza]:
    """Parse a DEP-5 machine-readable ``copyright`` file into its paragraphs."""
    stanzas: list[Dep5Stanza] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        if not block.strip():
            continue
        fields: dict[str, str] = {}
        current: str | None = None
        for line in block.split("\n"):
            if line[:1] in (" ", "\t") and current is not None:
                content = line[1:].rstrip()
                fields[current] += "\n" + ("" if content.strip() == "." else content)
            elif ":" in line:
                key, _, value = line.partition(":")
                current = key.strip()
                fields[current] = value.strip()
        if fields:
            stanzas.append(Dep5Stanza(fields, block.strip("\n")))
    return stanzas
