"""Rendering a note corpus in the NSynth layout from a SoundFont (``neurorack notes render``).

Every selected preset is played by FluidSynth over the pitches where it sounds and at each velocity, the key
held for 3 s of a 4 s note (NSynth's protocol, Engel et al. 2017), at 48 kHz, then resampled with soxr to
16 kHz and written as 16-bit wav. The result is what :class:`~neurorack.notes.nsynth.NoteCorpus` reads.

Nothing is half-written: every wav is written atomically, ``examples.json`` only once every instrument is
done, and a journal (``render-journal.jsonl``, one line per finished instrument) lets a killed render resume
where it stopped. Each instrument is rendered on a fresh synthesiser, in a fixed order, so a resumed render
writes the same samples as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from neurorack.atomic import exclusive_lock, write_json
from neurorack.audio_io import resample, write_audio
from neurorack.errors import CorpusError
from neurorack.notes.gm import gm_family
from neurorack.notes.nsynth import (
    AUDIO_DIR,
    EXAMPLES_JSON,
    FAMILIES,
    HOLD_SECONDS,
    NOTE_SECONDS,
    NSYNTH_SAMPLE_RATE,
    SOURCES,
)
from neurorack.notes.soundfont import RENDER_RATE, FluidRenderer, Preset, fluidsynth_version, select_presets
from neurorack.progress import progress_bar

RENDER_JSON = "render.json"
JOURNAL = "render-journal.jsonl"
FORMAT = "neurorack-note-render"
SILENCE_DB = -80.0  # a note whose peak stays below this is not played by the preset (outside its key range)
_SILENCE = float(10 ** (SILENCE_DB / 20))  # the same, linear
_PROBE_SECONDS = 0.5


@dataclass(frozen=True)
class RenderSettings:
    """What a render is made of; a resumed render must ask for the same."""

    soundfont: str
    soundfont_sha256: str
    presets: tuple[tuple[int, int], ...]
    pitches: tuple[int, ...]
    velocities: tuple[int, ...]
    gain: float
    sample_rate: int = NSYNTH_SAMPLE_RATE
    render_rate: int = RENDER_RATE
    hold_seconds: float = HOLD_SECONDS
    note_seconds: float = NOTE_SECONDS
    silence_db: float = SILENCE_DB

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["presets"] = [list(p) for p in self.presets]
        d["pitches"] = list(self.pitches)
        d["velocities"] = list(self.velocities)
        return d


@dataclass
class RenderReport:
    """What a render did: counts per outcome, the instruments, the time."""

    out: Path
    instruments: int = 0
    notes: int = 0
    rendered_instruments: int = 0
    resumed_instruments: int = 0
    silent_notes: int = 0
    clipped_notes: int = 0
    empty_presets: list[str] = field(default_factory=list)
    seconds: float = 0.0
    jobs: int = 1

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


@dataclass(frozen=True)
class InstrumentTask:
    """One preset to render: everything a worker process needs."""

    soundfont: str
    preset: Preset
    instrument_str: str
    pitches: tuple[int, ...]
    settings: RenderSettings
    audio_dir: str


def parse_pitches(spec: str) -> tuple[int, ...]:
    """``21-108`` or ``48,60,72`` (or a mix) → sorted MIDI pitches.

    Raises:
        CorpusError: not numbers, or outside 0–127.
    """
    pitches: set[int] = set()
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        first, _, last = token.partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise CorpusError(f"--pitches: {token!r} is not a MIDI pitch or a range like 21-108") from None
        if not 0 <= lo <= hi <= 127:
            raise CorpusError(f"--pitches: {token!r} is outside MIDI's 0-127 (or reversed)")
        pitches.update(range(lo, hi + 1))
    if not pitches:
        raise CorpusError("--pitches: no pitch given")
    return tuple(sorted(pitches))


def parse_velocities(spec: str) -> tuple[int, ...]:
    """``25,50,75,100,127`` → sorted MIDI velocities 1–127.

    Raises:
        CorpusError: not numbers, or outside 1–127.
    """
    try:
        velocities = {int(t) for t in spec.split(",") if t.strip()}
    except ValueError:
        raise CorpusError(f"--velocities: {spec!r} is not a comma list of numbers") from None
    if not velocities or not all(1 <= v <= 127 for v in velocities):
        raise CorpusError(f"--velocities: {spec!r} must list MIDI velocities 1-127")
    return tuple(sorted(velocities))


def soundfont_slug(path: Path) -> str:
    """The SoundFont's file stem as lowercase letters and digits (``FluidR3_GM.sf2`` → ``fluidr3gm``)."""
    return re.sub(r"[^a-z0-9]", "", path.stem.lower()) or "soundfont"


def instrument_str(slug: str, preset: Preset) -> str:
    """NSynth-style instrument name: ``{family}_{source}_{soundfont}_{bank}_{program}``."""
    return f"{preset.family}_{preset.source}_{slug}_{preset.bank:03d}_{preset.program:03d}"


def probe_pitches(renderer: FluidRenderer, preset: Preset, pitches: tuple[int, ...]) -> tuple[int, ...]:
    """The pitches at which a preset sounds (a short loud note above :data:`SILENCE_DB` peak)."""
    sounding = []
    for pitch in pitches:
        audio = renderer.render(preset, pitch, 127, hold=_PROBE_SECONDS, seconds=_PROBE_SECONDS)
        if float(np.abs(audio).max(initial=0.0)) > _SILENCE:
            sounding.append(pitch)
    return tuple(sounding)


def render_instrument(task: InstrumentTask) -> dict[str, object]:
    """Render one preset's notes into ``audio_dir`` (each wav atomic); its journal entry.

    The entry lists the notes' examples.json fields (without the corpus-wide indices), the silent
    (pitch, velocity) pairs and how many notes had to be clipped.
    """
    s = task.settings
    notes: list[dict[str, object]] = []
    silent: list[list[int]] = []
    clipped = 0
    family, source = gm_family(task.preset.program)
    with FluidRenderer(task.soundfont, gain=s.gain, sample_rate=s.render_rate) as renderer:
        for pitch in task.pitches:
            for velocity in s.velocities:
                audio = renderer.render(task.preset, pitch, velocity, hold=s.hold_seconds, seconds=s.note_seconds)
                audio = resample(audio, s.render_rate, s.sample_rate)[: round(s.note_seconds * s.sample_rate)]
                peak = float(np.abs(audio).max(initial=0.0))
                if peak <= _SILENCE:
                    silent.append([pitch, velocity])
                    continue
                if peak > 1.0:
                    clipped += 1
                note_str = f"{task.instrument_str}-{pitch:03d}-{velocity:03d}"
                write_audio(
                    Path(task.audio_dir) / f"{note_str}.wav",
                    np.clip(audio, -1.0, 32767 / 32768),
                    s.sample_rate,
                    subtype="PCM_16",
                )
                notes.append(
                    {
                        "note_str": note_str,
                        "instrument_str": task.instrument_str,
                        "pitch": pitch,
                        "velocity": velocity,
                        "sample_rate": s.sample_rate,
                        "instrument_family": FAMILIES.index(family),
                        "instrument_family_str": family,
                        "instrument_source": SOURCES.index(source),
                        "instrument_source_str": source,
                        "qualities_str": [],
                        "instrument_name": task.preset.name,
                        "soundfont": Path(task.soundfont).name,
                        "bank": task.preset.bank,
                        "program": task.preset.program,
                    }
                )
    return {"instrument_str": task.instrument_str, "notes": notes, "silent": silent, "clipped": clipped}


def _read_journal(path: Path) -> dict[str, dict[str, object]]:
    """Finished instruments by name; a line cut short by a kill is ignored."""
    done: dict[str, dict[str, object]] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            done[str(entry["instrument_str"])] = entry
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return done


def _complete(entry: dict[str, object], audio: Path) -> bool:
    notes = entry.get("notes")
    return isinstance(notes, list) and all((audio / f"{n['note_str']}.wav").is_file() for n in notes)


def _check_out(out: Path, settings: RenderSettings) -> None:
    """Refuse a folder that is neither empty, nor a render of these settings."""
    if not out.exists():
        return
    if not out.is_dir():
        raise CorpusError(f"{out}: exists and is not a folder")
    render_json = out / RENDER_JSON
    if render_json.is_file():
        try:
            previous = json.loads(render_json.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise CorpusError(f"{render_json}: unreadable; render into a new folder") from None
        if previous.get("format") != FORMAT or previous.get("settings") != settings.to_dict():
            changed = sorted(k for k, v in settings.to_dict().items() if (previous.get("settings") or {}).get(k) != v)
            raise CorpusError(
                f"{out}: rendered with other settings ({', '.join(changed) or 'format'}); use a new --out"
            )
        return
    if any(p.name != ".lock" for p in out.iterdir()):
        raise CorpusError(f"{out}: not empty and not a note render; choose a new --out folder")


def render_corpus(
    soundfont: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    instruments: str = "melodic",
    pitches: str = "21-108",
    velocities: str = "25,50,75,100,127",
    gain: float = 0.8,
    jobs: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> RenderReport:
    """Render (or finish rendering) an NSynth-layout note corpus from a SoundFont into ``out``.

    Args:
        soundfont: the .sf2 file.
        out: the corpus folder (new, empty, or an unfinished render with the same settings).
        instruments: a :func:`~neurorack.notes.soundfont.select_presets` selection.
        pitches: MIDI pitches (``21-108``); each preset keeps those where it sounds.
        velocities: MIDI velocities.
        gain: FluidSynth's master gain; notes louder than full scale are clipped and counted.
        jobs: worker processes (default: the number of CPUs).

    Raises:
        CorpusError: a bad SoundFont or option, a folder that is not ours, an explicitly named silent preset;
            all checked before anything is written.
    """
    say = log or (lambda _msg: None)
    start = time.monotonic()
    out_dir = Path(out)
    sf_path = Path(soundfont).resolve()
    pitch_list = parse_pitches(pitches)
    velocity_list = parse_velocities(velocities)
    if not 0.0 < gain <= 10.0:
        raise CorpusError(f"--gain {gain}: must be in (0, 10]")
    with FluidRenderer(sf_path, gain=gain) as probe:  # checks the file first
        with sf_path.open("rb") as fh:
            soundfont_sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
        chosen = select_presets(probe.presets, instruments)
        if not chosen:
            raise CorpusError(f"{sf_path}: --instruments {instruments!r} selects no preset")
        settings = RenderSettings(
            soundfont=str(sf_path),
            soundfont_sha256=soundfont_sha256,
            presets=tuple((p.bank, p.program) for p in chosen),
            pitches=pitch_list,
            velocities=velocity_list,
            gain=float(gain),
        )
        _check_out(out_dir, settings)
        slug = soundfont_slug(sf_path)
        report = RenderReport(out=out_dir)
        playable: dict[Preset, tuple[int, ...]] = {}
        with progress_bar(len(chosen), label="finding key ranges", unit="presets", enabled=progress) as advance:
            for preset in chosen:
                playable[preset] = probe_pitches(probe, preset, pitch_list)
                advance(1)
    named = instruments.strip() not in ("", "melodic", "all")
    empty = [p for p in chosen if not playable[p]]
    if empty and named:
        raise CorpusError(f"preset {empty[0].label} sounds at no pitch in --pitches {pitches}")
    report.empty_presets = [p.label for p in empty]
    for p in empty:
        say(f"skipping preset {p.label}: silent at every pitch asked for")
    tasks = [
        InstrumentTask(str(sf_path), p, instrument_str(slug, p), playable[p], settings, str(out_dir / AUDIO_DIR))
        for p in chosen
        if playable[p]
    ]

    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir, "`neurorack notes render`"):
        header = {"format": FORMAT, "settings": settings.to_dict(), "fluidsynth": fluidsynth_version()}
        write_json(out_dir / RENDER_JSON, {**header, "complete": False})
        journal_path = out_dir / JOURNAL
        done = {k: v for k, v in _read_journal(journal_path).items() if _complete(v, out_dir / AUDIO_DIR)}
        todo = [t for t in tasks if t.instrument_str not in done]
        report.resumed_instruments = len(tasks) - len(todo)
        n_jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
        report.jobs = n_jobs
        total_notes = sum(len(t.pitches) for t in todo) * len(velocity_list)
        with (
            journal_path.open("a", encoding="utf-8") as journal,
            progress_bar(
                total_notes, label="rendering notes", unit="notes", enabled=progress and bool(todo)
            ) as advance,
        ):

            def finished(task: InstrumentTask, entry: dict[str, object]) -> None:
                journal.write(json.dumps(entry) + "\n")
                journal.flush()
                os.fsync(journal.fileno())
                done[task.instrument_str] = entry
                report.rendered_instruments += 1
                advance(len(task.pitches) * len(velocity_list))

            _run(todo, n_jobs, finished)
        _write_examples(out_dir, [done[t.instrument_str] for t in tasks], report)
        write_json(
            out_dir / RENDER_JSON,
            {
                **header,
                "complete": True,
                "instruments": report.instruments,
                "notes": report.notes,
                "silent_notes": report.silent_notes,
                "clipped_notes": report.clipped_notes,
                "empty_presets": report.empty_presets,
            },
        )
    report.seconds = time.monotonic() - start
    return report


def _write_examples(out: Path, entries: list[dict[str, object]], report: RenderReport) -> None:
    """``examples.json`` (atomic), keyed by note_str, with NSynth's running ``note`` and ``instrument`` ids."""
    examples: dict[str, dict[str, object]] = {}
    for index, entry in enumerate(sorted(entries, key=lambda e: str(e["instrument_str"]))):
        notes = entry["notes"]
        assert isinstance(notes, list)
        for note in notes:
            examples[str(note["note_str"])] = {**note, "instrument": index}
        report.silent_notes += len(entry.get("silent") or [])  # type: ignore[arg-type]
        report.clipped_notes += int(entry.get("clipped") or 0)  # type: ignore[call-overload]
    examples = {k: {"note": i, **examples[k]} for i, k in enumerate(sorted(examples))}
    report.instruments = len(entries)
    report.notes = len(examples)
    write_json(out / EXAMPLES_JSON, examples)


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the pool


def _run(tasks: list[InstrumentTask], jobs: int, finished: Callable[[InstrumentTask, dict[str, object]], None]) -> None:
    """Render the tasks in this process (``jobs == 1``) or in ``jobs`` spawned worker processes."""
    if jobs <= 1:
        for task in tasks:
            finished(task, render_instrument(task))
        return
    # spawn, not fork: the parent may hold torch/OpenMP threads that do not survive a fork
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker) as pool:
        futures = {pool.submit(render_instrument, t): t for t in tasks}
        try:
            for future in as_completed(futures):
                finished(futures[future], future.result())
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
