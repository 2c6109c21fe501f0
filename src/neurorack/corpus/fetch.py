"""Assembling one-shot collections from Debian packages (SPEC §8): the training drums and held-out libraries.

Collections (:data:`COLLECTIONS`):

* ``drums`` — what the bundled default is trained on: ``hydrogen-drumkits`` and ``lmms-common`` (below);
* ``sonic-pi`` — held out: the drum, electronic, percussion and tabla one-shots of ``sonic-pi-samples``
  (Sonic Pi's library, mostly CC0 recordings from freesound.org, licensed per file), in
  ``OUT/sonic-pi/<family>/`` (``bd``, ``drum``, ``elec``, ``perc``, ``sn``, ``tabla``);
* ``hydrogen-data`` — held out: the two kits Hydrogen itself ships (``GMRockKit``, ``TR808EmulationKit``,
  GPL-2+), in ``OUT/hydrogen-data/<kit>/``.

No package of a held-out collection is used for training the bundled default, so ``neurorack eval`` on
them measures sounds from libraries the model never saw.

For ``drums``: ``hydrogen-drumkits`` (14 Hydrogen kits, ~750 one-shots, CC / GPL) and ``lmms-common``
(LMMS's drum samples, GPL-2+) are fetched with ``apt-get download`` into a cache,
unpacked with ``dpkg-deb -x`` into a temporary folder, and their one-shots copied to::

    OUT/hydrogen/<kit>/...             every file of each kit (audio, drumkit.xml, README)
    OUT/hydrogen/<kit>/LICENSE.txt     the kit's licence (Debian copyright stanza + drumkit.xml)
    OUT/lmms/<folder>/...              lmms samples/drums and the percussive hits of samples/misc
    OUT/lmms/<folder>/LICENSE.txt
    OUT/<package>.copyright            the packages' full copyright files
    OUT/SOURCES.json                   packages, versions, folders, licences, files (written last)

The result is the source tree for ``neurorack corpus build``; the label of each sound
is then its kit or folder name. Re-running when ``SOURCES.json`` lists only files that
are present does nothing. Source packages in the cache are reused.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neurorack.atomic import atomic_path, write_text
from neurorack.audio_io import is_audio_path
from neurorack.corpus.licences import Dep5Stanza, dep5_stanza_for, hydrogen_licence, one_line, parse_dep5, read_text
from neurorack.corpus.manifest import write_json_atomic
from neurorack.errors import CorpusError

HYDROGEN_PACKAGE = "hydrogen-drumkits"
LMMS_PACKAGE = "lmms-common"
SONIC_PI_PACKAGE = "sonic-pi-samples"
HYDROGEN_DATA_PACKAGE = "hydrogen-data"

#: Where the packages install what we take.
HYDROGEN_KITS = "usr/share/hydrogen/data/drumkits"
LMMS_SAMPLES = "usr/share/lmms/samples"
SONIC_PI_SAMPLES = "usr/share/sonic-pi/samples"
#: Sonic Pi sample families taken (file-name prefixes): kicks, drums, electronic hits, percussion,
#: snares, tabla. Left out: ambient textures, basses, guitars, loops, misc, vinyl and other phrases.
SONIC_PI_FAMILIES: tuple[str, ...] = ("bd", "drum", "elec", "perc", "sn", "tabla")

#: LMMS sample folders taken: ``None`` = every audio file, else the listed files only.
#: Left out: drumsynth (.ds synthesis presets, not audio), loops and beats, basses, pads,
#: instruments, single-cycle shapes/waveforms, latin (guitar and brass phrases) and effects (sweeps).
LMMS_SELECTION: dict[str, tuple[str, ...] | None] = {
    "drums": None,
    "misc": (
        "dong01.ogg",
        "dong02.ogg",
        "dong03.ogg",
        "electric_ping01.ogg",
        "hit01.ogg",
        "hit02.ogg",
        "metalish_dong01.ogg",
        "metronome01.ogg",
        "metronome02.ogg",
        "snaph01.ogg",
    ),
}

SOURCES_JSON = "SOURCES.json"
DEFAULT_COLLECTION = "drums"
SOURCES_FORMAT = "neurorack-drum-sources"
SOURCES_VERSION = 1
LICENCE_FILE = "LICENSE.txt"

#: Subprocess time limits, seconds.
DOWNLOAD_TIMEOUT = 1800.0
EXTRACT_TIMEOUT = 600.0
QUERY_TIMEOUT = 60.0


def _missing_tool(tool: str, packages: str) -> str:
    return (
        f"{tool} not found: install the Debian packages {packages} by hand, "
        "or pass folders of your own samples to `neurorack corpus build`"
    )


@dataclass
class FetchReport:
    """What :func:`fetch_drums` assembled.

    Attributes:
        out: the collection folder.
        files: one-shot audio files in it.
        per_source: files per source (``"hydrogen"``, ``"lmms"``).
        packages: Debian package name -> version.
        licences: folder (relative to ``out``) -> one-line licence.
        fetched: ``False`` when ``out`` was already complete and nothing was done.
        seconds: wall-clock duration.
    """

    out: Path
    files: int = 0
    per_source: dict[str, int] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    licences: dict[str, str] = field(default_factory=dict)
    fetched: bool = True
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        data["seconds"] = round(self.seconds, 3)
        return data


def default_cache() -> Path:
    """Default package cache: ``$XDG_CACHE_HOME/neurorack/debian`` (``~/.cache/neurorack/debian``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "neurorack" / "debian"


def fetch_drums(
    out: str | os.PathLike[str],
    cache: str | os.PathLike[str] | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> FetchReport:
    """Assemble the drum one-shots of ``hydrogen-drumkits`` and ``lmms-common`` in ``out``
    (:func:`fetch_collection` of ``drums``)."""
    return fetch_collection(DEFAULT_COLLECTION, out, cache, log=log)


def fetch_collection(
    name: str,
    out: str | os.PathLike[str],
    cache: str | os.PathLike[str] | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> FetchReport:
    """Assemble the one-shots of the collection ``name`` (:data:`COLLECTIONS`) in ``out``.

    Args:
        name: ``drums``, ``sonic-pi`` or ``hydrogen-data``.
        out: destination folder (created). Files already there are kept; ours are overwritten.
        cache: folder for the downloaded ``.deb`` files (default :func:`default_cache`); a
            ``.deb`` already there is reused.
        log: called with one-line progress messages.

    Returns:
        a :class:`FetchReport`; instant when ``out/SOURCES.json`` says the collection is complete.

    Raises:
        CorpusError: an unknown collection, apt-get or dpkg-deb missing, a download or extraction that fails
            or times out, ``out`` holding another collection.
    """
    if name not in COLLECTIONS:
        raise CorpusError(f"unknown collection {name!r}; known: {', '.join(COLLECTIONS)}")
    started = time.perf_counter()
    say = log or (lambda _msg: None)
    out_dir = Path(os.path.abspath(out))
    sources = _read_sources(out_dir)
    other = _collection_in(sources)
    if other is not None and other != name:
        raise CorpusError(f"--out {out_dir} holds the collection {other!r}; fetch {name!r} into another folder")
    existing = _complete(out_dir, sources)
    if existing is not None:
        existing.seconds = time.perf_counter() - started
        return existing
    if out_dir.exists() and not out_dir.is_dir():
        raise CorpusError(f"--out {out_dir}: exists and is not a folder")
    cache_dir = Path(os.path.abspath(cache)) if cache is not None else default_cache()
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        raise CorpusError(_missing_tool("dpkg-deb", " and ".join(p for p, _ in COLLECTIONS[name])))
    cache_dir.mkdir(parents=True, exist_ok=True)

    report = FetchReport(out=out_dir)
    packages: list[dict[str, Any]] = []
    folders: list[dict[str, Any]] = []
    files: dict[str, int] = {}
    for package, copier in COLLECTIONS[name]:
        deb = _cached_deb(cache_dir, package, dpkg_deb)
        if deb is None:
            say(f"downloading {package} with apt-get into {cache_dir}")
            deb = _download(package, cache_dir, dpkg_deb)
        version = _deb_field(deb, "Version", dpkg_deb)
        report.packages[package] = version
        say(f"unpacking {deb.name}")
        with tempfile.TemporaryDirectory(prefix="neurorack-deb-") as tmp:
            root = Path(tmp)
            _run([dpkg_deb, "-x", str(deb), str(root)], EXTRACT_TIMEOUT, f"dpkg-deb -x {deb.name}")
            copyright_text = _copy_copyright(root, package, out_dir)
            stanzas = parse_dep5(copyright_text)
            found = copier(root, out_dir, stanzas, package, version, files)
        if not found:
            raise CorpusError(f"{deb.name}: no one-shots found where expected; the package layout may have changed")
        folders.extend(found)
        count = sum(f["files"] for f in found)
        report.per_source[found[0]["path"].split("/", 1)[0]] = count
        packages.append(
            {
                "name": package,
                "version": version,
                "deb": deb.name,
                "sha256": _sha256(deb),
                "copyright": f"{package}.copyright",
                "files": count,
            }
        )
        say(f"{package} {version}: {count} one-shots")
    report.files = len(files)
    report.licences = {f["path"]: f["licence"] for f in folders}
    write_json_atomic(
        out_dir / SOURCES_JSON,
        {
            "format": SOURCES_FORMAT,
            "version": SOURCES_VERSION,
            "collection": name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "total": len(files),
            "packages": packages,
            "folders": folders,
            "files": dict(sorted(files.items())),
        },
    )
    report.seconds = time.perf_counter() - started
    return report


# -- completeness --------------------------------------------------------------------------------


def _read_sources(out: Path) -> dict[str, Any] | None:
    """``out/SOURCES.json`` of an earlier fetch (any version), ``None`` when absent or not ours."""
    try:
        data = json.loads((out / SOURCES_JSON).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == SOURCES_FORMAT else None


def _collection_in(sources: dict[str, Any] | None) -> str | None:
    """The collection an earlier fetch's ``sources`` describe (``drums`` for files older than the field)."""
    return None if sources is None else str(sources.get("collection", DEFAULT_COLLECTION))


def _complete(out: Path, data: dict[str, Any] | None) -> FetchReport | None:
    """The report of a complete earlier fetch into ``out`` whose SOURCES.json is ``data`` (every listed file
    present with its size), else ``None``."""
    if data is None or data.get("version") != SOURCES_VERSION:
        return None
    try:
        files = {str(k): int(v) for k, v in data["files"].items()}
        for rel, size in files.items():
            if (out / rel).stat().st_size != size:
                return None
        per_source: dict[str, int] = {}
        for rel in files:
            top = rel.split("/", 1)[0]
            per_source[top] = per_source.get(top, 0) + 1
        return FetchReport(
            out=out,
            files=len(files),
            per_source=per_source,
            packages={str(p["name"]): str(p["version"]) for p in data["packages"]},
            licences={str(f["path"]): str(f["licence"]) for f in data["folders"]},
            fetched=False,
        )
    except (OSError, KeyError, TypeError, ValueError, AttributeError):
        return None


# -- packages ------------------------------------------------------------------------------------


def _cached_deb(cache: Path, package: str, dpkg_deb: str) -> Path | None:
    """The newest valid ``<package>_*.deb`` in ``cache`` (corrupt ones are deleted), or ``None``."""
    debs = sorted(cache.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime, reverse=True)
    for deb in debs:
        try:
            if _deb_field(deb, "Package", dpkg_deb) == package:
                return deb
        except CorpusError:
            pass
        deb.unlink(missing_ok=True)
    return None


def _download(package: str, cache: Path, dpkg_deb: str) -> Path:
    """``apt-get download`` into a private folder of ``cache``, then move the ``.deb`` into ``cache``."""
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise CorpusError(_missing_tool("apt-get", package))
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=cache))
    try:
        staging.chmod(0o777)  # apt drops root privileges to the _apt user while downloading
        _run([apt_get, "-q", "download", package], DOWNLOAD_TIMEOUT, f"apt-get download {package}", cwd=staging)
        debs = sorted(staging.glob(f"{package}_*.deb"))
        if not debs:
            raise CorpusError(f"apt-get download {package} produced no .deb file in {staging}")
        target = cache / debs[0].name
        os.replace(debs[0], target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if _deb_field(target, "Package", dpkg_deb) != package:
        target.unlink(missing_ok=True)
        raise CorpusError(f"{target.name}: downloaded file is not the package {package}")
    return target


def _deb_field(deb: Path, name: str, dpkg_deb: str) -> str:
    result = _run([dpkg_deb, "-f", str(deb), name], QUERY_TIMEOUT, f"dpkg-deb -f {deb.name}")
    return result.strip()


def _run(cmd: list[str], timeout: float, what: str, cwd: Path | None = None) -> str:
    """Run a command without a shell or stdin; returns stdout. Failures become one-line CorpusErrors."""
    env = {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
    try:
        result = subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CorpusError(f"{what} did not finish within {timeout:.0f} s; check the network and retry") from None
    except OSError as exc:
        raise CorpusError(f"{what} could not run: {exc.strerror or exc}") from None
    if result.returncode != 0:
        lines = [ln.strip() for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("E:")] or lines
        detail = errors[-1] if errors else f"exit status {result.returncode}"
        hint = " (is the network to the Debian mirror up? try `apt-get update`)" if "apt-get" in what else ""
        raise CorpusError(f"{what} failed: {detail}{hint}")
    return result.stdout


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# -- copying -------------------------------------------------------------------------------------


def _copy_copyright(root: Path, package: str, out: Path) -> str:
    src = root / "usr/share/doc" / package / "copyright"
    if not src.is_file():
        return ""
    _copy_file(src, out / f"{package}.copyright")
    return read_text(src)


def _copy_file(src: Path, dst: Path) -> None:
    """Copy with metadata (mtime kept, so corpus builds see unchanged files), atomically; skip if identical."""
    st = src.stat()
    try:
        dst_st = dst.stat()
        if dst_st.st_size == st.st_size and dst_st.st_mtime_ns == st.st_mtime_ns:
            return
    except OSError:
        pass
    with atomic_path(dst) as tmp:
        shutil.copy2(src, tmp)


def _write_text_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    write_text(path, text)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _xml_field(xml: Path, tag: str) -> str:
    if not xml.is_file():
        return ""
    match = re.search(rf"<{tag}>(.*?)</{tag}>", read_text(xml), re.IGNORECASE | re.DOTALL)
    return one_line(html.unescape(match.group(1))) if match else ""


def _kit_stanza(stanzas: list[Dep5Stanza], names: list[str]) -> Dep5Stanza | None:
    """The ``Files: drumkits/<kit>.h2drumkit`` stanza of a kit, matched on its folder or drumkit.xml name."""
    keys = {_norm(n) for n in names} - {""}
    loose: Dep5Stanza | None = None
    for stanza in stanzas:
        for pattern in stanza.files:
            if not (pattern.startswith("drumkits/") and pattern.endswith(".h2drumkit")):
                continue
            stem = _norm(pattern[len("drumkits/") : -len(".h2drumkit")].replace("?", " "))
            if stem in keys:
                return stanza
            if len(stem) >= 6 and any(k.startswith(stem) or stem.startswith(k) for k in keys if len(k) >= 6):
                loose = loose or stanza
    return loose


def _licence_line(stanza: Dep5Stanza | None, fallback: str, package: str) -> str:
    if stanza is None or not stanza.licence:
        return fallback or f"unknown (see {package}.copyright)"
    holders = stanza.copyright
    credit = holders if holders and len(holders) <= 100 else f"see {package}.copyright"
    return one_line(f"{stanza.licence} ({credit})")


def _licence_file(licence: str, lines: list[str], stanza: Dep5Stanza | None, package: str) -> str:
    parts = [f"License: {licence}", "", *lines, ""]
    if stanza is not None:
        parts += [
            f"Debian copyright stanza (licence texts in ../../{package}.copyright):",
            "",
            stanza.text,
            "",
        ]
    return "\n".join(parts)


def _copy_hydrogen(
    root: Path,
    out: Path,
    stanzas: list[Dep5Stanza],
    package: str,
    version: str,
    files: dict[str, int],
    top: str = "hydrogen",
) -> list[dict[str, Any]]:
    """Every Hydrogen kit of a package, into ``out/<top>/<kit>/``."""
    kits_dir = root / HYDROGEN_KITS
    if not kits_dir.is_dir():
        return []
    folders: list[dict[str, Any]] = []
    for kit in sorted(p for p in kits_dir.iterdir() if p.is_dir()):
        xml = kit / "drumkit.xml"
        kit_name = _xml_field(xml, "name")
        author = _xml_field(xml, "author")
        xml_licence = hydrogen_licence(xml) if xml.is_file() else ""
        dest = out / top / kit.name
        count = 0
        for src in sorted(p for p in kit.rglob("*") if p.is_file() and p.name.lower() != LICENCE_FILE.lower()):
            rel = src.relative_to(kit)
            _copy_file(src, dest / rel)
            if is_audio_path(src):
                files[(Path(top) / kit.name / rel).as_posix()] = src.stat().st_size
                count += 1
        if not count:
            continue
        stanza = _kit_stanza(stanzas, [kit.name, kit_name])
        licence = _licence_line(stanza, xml_licence, package)
        lines = [
            f"Hydrogen drum kit {kit_name or kit.name!r}" + (f" by {author}" if author else "") + ".",
            f"From the Debian package {package} {version} ({HYDROGEN_KITS}/{kit.name}).",
        ]
        if xml_licence:
            lines.append(f"drumkit.xml says: {xml_licence}")
        _write_text_if_changed(dest / LICENCE_FILE, _licence_file(licence, lines, stanza, package))
        folders.append(
            {
                "path": f"{top}/{kit.name}",
                "package": package,
                "from": f"{HYDROGEN_KITS}/{kit.name}",
                "files": count,
                "licence": licence,
                "author": author,
            }
        )
    return folders


def _copy_lmms(
    root: Path, out: Path, stanzas: list[Dep5Stanza], package: str, version: str, files: dict[str, int]
) -> list[dict[str, Any]]:
    samples = root / LMMS_SAMPLES
    folders: list[dict[str, Any]] = []
    for folder, selection in LMMS_SELECTION.items():
        src_dir = samples / folder
        if not src_dir.is_dir():
            continue
        chosen = sorted(
            p
            for p in src_dir.iterdir()
            if p.is_file() and is_audio_path(p) and (selection is None or p.name in selection)
        )
        if not chosen:
            continue
        dest = out / "lmms" / folder
        for src in chosen:
            _copy_file(src, dest / src.name)
            files[f"lmms/{folder}/{src.name}"] = src.stat().st_size
        # the upstream tree keeps samples under data/samples/
        stanza = dep5_stanza_for(stanzas, f"data/samples/{folder}/{chosen[0].name}")
        licence = _licence_line(stanza, "", package)
        lines = [
            f"LMMS samples ({folder}), from the Debian package {package} {version} ({LMMS_SAMPLES}/{folder}).",
        ]
        _write_text_if_changed(dest / LICENCE_FILE, _licence_file(licence, lines, stanza, package))
        folders.append(
            {
                "path": f"lmms/{folder}",
                "package": package,
                "from": f"{LMMS_SAMPLES}/{folder}",
                "files": len(chosen),
                "licence": licence,
                "author": "LMMS contributors",
            }
        )
    return folders


def _copy_sonic_pi(
    root: Path, out: Path, stanzas: list[Dep5Stanza], package: str, version: str, files: dict[str, int]
) -> list[dict[str, Any]]:
    """The one-shots of :data:`SONIC_PI_FAMILIES` into ``out/sonic-pi/<family>/``, each file's licence listed."""
    samples = root / SONIC_PI_SAMPLES
    if not samples.is_dir():
        return []
    folders: list[dict[str, Any]] = []
    for family in SONIC_PI_FAMILIES:
        chosen = sorted(p for p in samples.glob(f"{family}_*") if p.is_file() and is_audio_path(p))
        if not chosen:
            continue
        dest = out / "sonic-pi" / family
        origin = f"from the Debian package {package} {version} ({SONIC_PI_SAMPLES})"
        lines = [f"Sonic Pi samples ({family}_*), {origin}.", ""]
        licences: list[str] = []
        for src in chosen:
            _copy_file(src, dest / src.name)
            files[f"sonic-pi/{family}/{src.name}"] = src.stat().st_size
            # the upstream tree keeps samples under etc/samples/
            licence = _licence_line(dep5_stanza_for(stanzas, f"etc/samples/{src.name}"), "", package)
            licences.append(licence.split(" ", 1)[0])
            lines.append(f"{src.name}: {licence}")
        kinds = sorted(set(licences))
        summary = kinds[0] if len(kinds) == 1 else f"per file: {', '.join(kinds)}"
        _write_text_if_changed(dest / LICENCE_FILE, _licence_file(summary, lines, None, package))
        folders.append(
            {
                "path": f"sonic-pi/{family}",
                "package": package,
                "from": f"{SONIC_PI_SAMPLES}/{family}_*",
                "files": len(chosen),
                "licence": summary,
                "author": "Sonic Pi contributors (see LICENSE.txt)",
            }
        )
    return folders


#: What :func:`fetch_collection` assembles: per collection, its Debian packages and how each is copied.
COLLECTIONS: dict[str, tuple[tuple[str, Callable[..., list[dict[str, Any]]]], ...]] = {
    DEFAULT_COLLECTION: ((HYDROGEN_PACKAGE, _copy_hydrogen), (LMMS_PACKAGE, _copy_lmms)),
    "sonic-pi": ((SONIC_PI_PACKAGE, _copy_sonic_pi),),
    "hydrogen-data": ((HYDROGEN_DATA_PACKAGE, functools.partial(_copy_hydrogen, top="hydrogen-data")),),
}
