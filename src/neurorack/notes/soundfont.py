"""SoundFonts through FluidSynth: checking a file, listing its presets, rendering one note offline.

FluidSynth (the Debian ``fluidsynth`` library, driven through ``pyfluidsynth``) is the synthesiser: nothing is
re-implemented here. Notes are rendered in 32-bit float (``fluid_synth_write_float``), reverb and chorus off,
so a note holds only the instrument; the synthesiser is reset after every note.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from neurorack.errors import CorpusError
from neurorack.notes.gm import gm_family, is_melodic

RENDER_RATE = 48_000
_BLOCK = 64  # FluidSynth's internal block: event times are quantised to it


@dataclass(frozen=True)
class Preset:
    """One preset of a SoundFont, with the NSynth family and source of its GM program."""

    bank: int
    program: int
    name: str

    @property
    def family(self) -> str:
        return gm_family(self.program)[0]

    @property
    def source(self) -> str:
        return gm_family(self.program)[1]

    @property
    def melodic(self) -> bool:
        return is_melodic(self.bank, self.program)

    @property
    def label(self) -> str:
        """``bank:program 'name'``, as messages show it."""
        return f"{self.bank}:{self.program} {self.name!r}"


def check_soundfont(path: str | os.PathLike[str]) -> Path:
    """The path of a readable SoundFont 2 file (``RIFF`` … ``sfbk``; SF3 too).

    Raises:
        CorpusError: missing, unreadable, or not a SoundFont.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(12)
    except IsADirectoryError:
        raise CorpusError(f"{p}: a folder, not a SoundFont (.sf2)") from None
    except OSError as exc:
        raise CorpusError(f"{p}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise CorpusError(f"{p}: not a SoundFont (no RIFF sfbk header)")
    return p


def _fluidsynth():  # type: ignore[no-untyped-def]
    """The pyfluidsynth module, its log output silenced (errors are reported by us, in one line)."""
    try:
        import fluidsynth
    except (ImportError, OSError):
        raise CorpusError(
            "FluidSynth is not installed: apt-get install fluidsynth, then pip install pyfluidsynth"
        ) from None
    lib = fluidsynth._fl
    if not getattr(lib, "_neurorack_ready", False):
        lib.fluid_set_log_function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        for level in range(5):  # FLUID_PANIC ... FLUID_DBG
            lib.fluid_set_log_function(level, None, None)
        lib.fluid_synth_write_float.argtypes = [ctypes.c_void_p, ctypes.c_int] + [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
        ] * 2
        lib.fluid_synth_write_float.restype = ctypes.c_int
        lib._neurorack_ready = True
    return fluidsynth


def fluidsynth_version() -> str:
    """The FluidSynth library's runtime version, e.g. ``2.3.1``."""
    lib = _fluidsynth()._fl
    major, minor, micro = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    lib.fluid_version(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(micro))
    return f"{major.value}.{minor.value}.{micro.value}"


class FluidRenderer:
    """One FluidSynth synthesiser with one SoundFont loaded, rendering notes offline.

    Args:
        soundfont: the .sf2 / .sf3 file.
        gain: FluidSynth's ``synth.gain`` (its default is 0.2, meant for many voices; one note needs more).
        sample_rate: the rendering rate, Hz.

    Raises:
        CorpusError: not a SoundFont, or FluidSynth cannot load it.
    """

    def __init__(self, soundfont: str | os.PathLike[str], *, gain: float = 0.8, sample_rate: int = RENDER_RATE):
        path = check_soundfont(soundfont)
        fs = _fluidsynth()
        self.sample_rate = sample_rate
        self._lib = fs._fl
        settings = {"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.cpu-cores": 1}
        self._synth = fs.Synth(gain=float(gain), samplerate=float(sample_rate), **settings)
        self._sfid = self._synth.sfload(str(path))
        if self._sfid < 0:
            self._synth.delete()
            raise CorpusError(f"{path}: FluidSynth cannot load this SoundFont (damaged or unsupported)")
        self.presets = self._list_presets()
        if not self.presets:
            self.close()
            raise CorpusError(f"{path}: the SoundFont holds no presets")
        self._reset()

    def _list_presets(self) -> list[Preset]:
        found = []
        for bank in range(129):
            for program in range(128):
                name = self._synth.sfpreset_name(self._sfid, bank, program)
                if name is not None:
                    found.append(Preset(bank, program, name.strip() or f"preset {bank}:{program}"))
        return found

    def _write(self, frames: int) -> np.ndarray:
        """Run the synthesiser for ``frames`` samples; mono float32 (the mean of left and right)."""
        left = np.zeros(frames, np.float32)
        right = np.zeros(frames, np.float32)
        if frames:
            self._lib.fluid_synth_write_float(
                self._synth.synth, frames, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1
            )
        return (left + right) * np.float32(0.5)

    def _reset(self) -> None:
        """All sound off, every controller to its default, and a block of silence to let it take effect."""
        self._synth.all_sounds_off(0)
        self._synth.system_reset()
        self._write(_BLOCK * 16)

    def render(self, preset: Preset, pitch: int, velocity: int, *, hold: float, seconds: float) -> np.ndarray:
        """One note: key down ``hold`` s, then the tail until ``seconds``; mono float32 ``[T]`` at the render rate.

        Times are rounded to FluidSynth's 64-sample block so the key-off falls where it is asked.
        """
        total = round(seconds * self.sample_rate)
        down = min(total, _BLOCK * round(hold * self.sample_rate / _BLOCK))
        self._synth.program_select(0, self._sfid, preset.bank, preset.program)
        self._synth.noteon(0, int(pitch), int(velocity))
        held = self._write(down)
        self._synth.noteoff(0, int(pitch))
        tail = self._write(total - down)
        self._reset()
        return np.concatenate([held, tail])

    def close(self) -> None:
        """Free the synthesiser (also done by ``with``)."""
        if self._synth is not None:
            self._synth.delete()
            self._synth = None

    def __enter__(self) -> FluidRenderer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def select_presets(presets: list[Preset], spec: str) -> list[Preset]:
    """The presets an ``--instruments`` selection names, sorted by (bank, program).

    ``spec`` is ``melodic`` (every preset but percussion kits and GM sound effects), ``all``, or a comma list
    of: a program ``24`` or range ``0-7`` (bank 0), ``bank:program`` or ``bank:first-last``, a family
    (``string``, ``synth_lead``, …), or a preset name (case-insensitive).

    Raises:
        CorpusError: a token that matches no preset.
    """
    from neurorack.notes.nsynth import FAMILIES

    spec = spec.strip()
    if spec in ("", "melodic"):
        return [p for p in presets if p.melodic]
    if spec == "all":
        return list(presets)
    chosen: set[Preset] = set()
    by_name = {p.name.lower(): p for p in presets}
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token in FAMILIES:
            matched = [p for p in presets if p.family == token and p.melodic]
        elif token.lower() in by_name:
            matched = [by_name[token.lower()]]
        else:
            bank_text, _, programs = token.rpartition(":")
            try:
                bank = int(bank_text) if bank_text else 0
                first, _, last = programs.partition("-")
                lo, hi = int(first), int(last or first)
            except ValueError:
                raise CorpusError(
                    f"--instruments: {token!r} is not a program, bank:program, range, family or preset name"
                ) from None
            matched = [p for p in presets if p.bank == bank and lo <= p.program <= hi]
        if not matched:
            raise CorpusError(f"--instruments: {token!r} matches no preset of this SoundFont (see notes list)")
        chosen.update(matched)
    return sorted(chosen, key=lambda p: (p.bank, p.program))
