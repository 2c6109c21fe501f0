"""MIDI in: the mapping file, a strict decoder of raw MIDI bytes, and ALSA/RtMidi input via mido.

Mapping (TOML, ``neurorack play --midi-map FILE``); every key is optional, the defaults are::

    channel = 0             # 0 = omni, 1..16 = that channel only
    velocity = true         # note-on velocity sets the hit's level (velocity_db parameter, default 24 dB)
    gate1_notes = []        # notes that fire gate 1; [] = every note not in gate2_notes
    gate2_notes = []        # notes that fire gate 2 (re-render)
    gate2_cc = 64           # a CC whose value >= 64 holds gate 2 high (sustain pedal); -1 = none
    notes = false           # true: notes play the note voices (neurorack play --notes MODEL turns it on),
                            # program change picks their instrument; gates then come from CCs, OSC, CV only

    [cc]                    # CC number -> CV 1..4; 0..127 spans the CV range (-5..+5 V or 0..10 V)
    1 = 1                   # modulation wheel -> CV 1 (position)
    2 = 2                   # breath -> CV 2 (loudness)
    74 = 3                  # brightness -> CV 3
    71 = 4                  # harmonic content -> CV 4 (inharmonicity)

Note-on (velocity > 0) fires a gate; note-off (or note-on with velocity 0) lets it fall. Running
status, system real-time bytes and SysEx are ignored; anything malformed (a truncated message,
a data byte where a status byte belongs, a data byte ≥ 128) is counted and ignored.
"""

from __future__ import annotations

import logging
import os
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurorack.errors import NeurorackError

log = logging.getLogger("neurorack.engine.midi")

#: Decoded actions: (kind, index, value).
NONE = 0
GATE_ON = 1  # index: gate 1|2, value: velocity 0..1
GATE_OFF = 2  # index: gate 1|2
CV = 3  # index: CV 1..4, value: 0..1 of the CV range
MALFORMED = 4
NOTE_ON = 5  # index: MIDI pitch, value: velocity 1..127 (notes = true)
NOTE_OFF = 6  # index: MIDI pitch
PROGRAM = 7  # index: program 0..127

#: The ALSA sequencer device RtMidi opens on Linux.
ALSA_SEQUENCER = "/dev/snd/seq"

DEFAULT_CC: dict[int, int] = {1: 1, 2: 2, 74: 3, 71: 4}

_NONE_ACTION: tuple[int, int, float] = (NONE, 0, 0.0)
_MALFORMED_ACTION: tuple[int, int, float] = (MALFORMED, 0, 0.0)


@dataclass(frozen=True)
class MidiMap:
    """What MIDI messages do (see the module docstring for the file format and defaults).

    Attributes:
        channel: 0 = omni, else 1..16.
        velocity: note-on velocity sets the level of the hit.
        gate1_notes: notes that fire gate 1 (empty: every note not in ``gate2_notes``).
        gate2_notes: notes that fire gate 2.
        gate2_cc: CC number whose value ≥ 64 holds gate 2 high, or -1.
        cc: CC number → CV index 1..4.
        notes: note messages play the note voices (``NOTE_ON`` / ``NOTE_OFF``) and program change picks their
            instrument (``PROGRAM``), instead of firing gates.
    """

    channel: int = 0
    velocity: bool = True
    gate1_notes: frozenset[int] = frozenset()
    gate2_notes: frozenset[int] = frozenset()
    gate2_cc: int = 64
    cc: dict[int, int] = field(default_factory=lambda: dict(DEFAULT_CC))
    notes: bool = False

    def __post_init__(self) -> None:
        # lookup tables for the audio thread: note -> gate (0 = ignored), cc -> cv (0 = ignored)
        note_gate = [0] * 128
        for n in range(128):
            if n in self.gate2_notes:
                note_gate[n] = 2
            elif not self.gate1_notes or n in self.gate1_notes:
                note_gate[n] = 1
        cc_cv = [0] * 128
        for num, cv in self.cc.items():
            cc_cv[num] = cv
        object.__setattr__(self, "_note_gate", note_gate)
        object.__setattr__(self, "_cc_cv", cc_cv)

    def decode(self, data: bytes | bytearray | memoryview) -> tuple[int, int, float]:
        """One raw MIDI message → ``(kind, index, value)`` (see the ``GATE_ON`` … constants).

        Never raises: malformed input gives ``MALFORMED``, messages this map ignores ``NONE``.
        """
        n = len(data)
        if n == 0:
            return _MALFORMED_ACTION
        status = data[0]
        if status < 0x80:
            return _MALFORMED_ACTION  # running status / stray data byte: not accepted from JACK
        if status >= 0xF0:
            if status == 0xF0:  # SysEx: must end with F7 and carry only data bytes
                if n < 2 or data[n - 1] != 0xF7 or any(b >= 0x80 for b in data[1 : n - 1]):
                    return _MALFORMED_ACTION
                return _NONE_ACTION
            if status >= 0xF8:  # real-time: one byte
                return _NONE_ACTION if n == 1 else _MALFORMED_ACTION
            return _NONE_ACTION if status in (0xF1, 0xF2, 0xF3, 0xF6) else _MALFORMED_ACTION
        kind = status & 0xF0
        need = 2 if kind in (0xC0, 0xD0) else 3
        if n != need:
            return _MALFORMED_ACTION
        for i in range(1, n):
            if data[i] >= 0x80:
                return _MALFORMED_ACTION
        if self.channel and (status & 0x0F) + 1 != self.channel:
            return _NONE_ACTION
        if self.notes and (kind == 0x90 or kind == 0x80):
            if kind == 0x90 and data[2] > 0:
                return (NOTE_ON, data[1], float(data[2]) if self.velocity else 100.0)
            return (NOTE_OFF, data[1], 0.0)
        if self.notes and kind == 0xC0:
            return (PROGRAM, data[1], 0.0)
        if kind == 0x90 or kind == 0x80:
            gate: int = self._note_gate[data[1]]  # type: ignore[attr-defined]
            if not gate:
                return _NONE_ACTION
            vel = data[2]
            if kind == 0x90 and vel > 0:
                return (GATE_ON, gate, vel / 127.0 if self.velocity else 1.0)
            return (GATE_OFF, gate, 0.0)
        if kind == 0xB0:
            num, value = data[1], data[2]
            if num == self.gate2_cc:
                return (GATE_ON, 2, 1.0) if value >= 64 else (GATE_OFF, 2, 0.0)
            cv: int = self._cc_cv[num]  # type: ignore[attr-defined]
            if cv:
                return (CV, cv, value / 127.0)
        return _NONE_ACTION


def _int_list(value: Any, key: str, low: int, high: int) -> frozenset[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise NeurorackError(f"MIDI map: {key} must be a list of integers, got {value!r}")
    bad = [v for v in value if not low <= v <= high]
    if bad:
        raise NeurorackError(f"MIDI map: {key} values must lie in {low}..{high}, got {bad}")
    return frozenset(value)


def _int(value: Any, key: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise NeurorackError(f"MIDI map: {key} must be an integer in {low}..{high}, got {value!r}")
    return value


def parse_midi_map(data: dict[str, Any], notes_default: bool = False) -> MidiMap:
    """A :class:`MidiMap` from parsed TOML (see the module docstring).

    Raises:
        NeurorackError: unknown keys, wrong types, values out of range, one CC used twice.
    """
    known = {"channel", "velocity", "gate1_notes", "gate2_notes", "gate2_cc", "cc", "notes"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise NeurorackError(f"MIDI map: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    channel = _int(data.get("channel", 0), "channel", 0, 16)
    velocity = data.get("velocity", True)
    if not isinstance(velocity, bool):
        raise NeurorackError(f"MIDI map: velocity must be true or false, got {velocity!r}")
    g1 = _int_list(data.get("gate1_notes", []), "gate1_notes", 0, 127)
    g2 = _int_list(data.get("gate2_notes", []), "gate2_notes", 0, 127)
    if g1 & g2:
        raise NeurorackError(f"MIDI map: notes {sorted(g1 & g2)} are in both gate1_notes and gate2_notes")
    gate2_cc = _int(data.get("gate2_cc", 64), "gate2_cc", -1, 127)
    raw_cc = data.get("cc", DEFAULT_CC)
    if not isinstance(raw_cc, dict):
        raise NeurorackError("MIDI map: [cc] must be a table of CC number = CV index")
    cc: dict[int, int] = {}
    for key, cv in raw_cc.items():
        try:
            num = int(key)
        except (TypeError, ValueError):
            raise NeurorackError(f"MIDI map: [cc] key {key!r} is not a CC number") from None
        if not 0 <= num <= 127:
            raise NeurorackError(f"MIDI map: CC number {num} must lie in 0..127")
        if num == gate2_cc:
            raise NeurorackError(f"MIDI map: CC {num} is both gate2_cc and mapped to a CV")
        cc[num] = _int(cv, f"cc.{key}", 1, 4)
    notes = data.get("notes", notes_default)
    if not isinstance(notes, bool):
        raise NeurorackError(f"MIDI map: notes must be true or false, got {notes!r}")
    return MidiMap(
        channel=channel, velocity=velocity, gate1_notes=g1, gate2_notes=g2, gate2_cc=gate2_cc, cc=cc, notes=notes
    )


def load_midi_map(path: str | os.PathLike[str] | None, notes_default: bool = False) -> MidiMap:
    """The mapping in a TOML file, or the defaults for ``None`` (``notes_default``: the ``notes`` key's default,
    on when the engine plays a note model).

    Raises:
        NeurorackError: missing or unreadable file, invalid TOML, invalid mapping (one line).
    """
    if path is None:
        return MidiMap(notes=notes_default)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NeurorackError(f"{p}: no such MIDI map file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NeurorackError(f"{p}: cannot read the MIDI map ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NeurorackError(f"{p}: not valid TOML ({exc})") from None
    try:
        return parse_midi_map(data, notes_default)
    except NeurorackError as exc:
        raise NeurorackError(f"{p}: {exc}") from None


class RtMidiInput:
    """ALSA/CoreMIDI/WinMM input through mido's RtMidi backend (python-rtmidi), opened on every port
    whose name contains ``name`` (default: all ports).

    Args:
        handle: called with the raw bytes of each message, on RtMidi's thread.
        name: substring of the port names to open, or None for every port.

    Raises:
        NeurorackError: python-rtmidi not installed, no MIDI system (ALSA sequencer) or no port.
    """

    def __init__(self, handle: Callable[[bytes], None], name: str | None = None) -> None:
        try:
            import rtmidi  # noqa: F401
        except ImportError:
            raise NeurorackError(
                "ALSA/RtMidi MIDI input needs python-rtmidi (pip install python-rtmidi); "
                "with --audio jack, MIDI arrives on the JACK MIDI port midi_in instead"
            ) from None
        import mido

        if sys.platform.startswith("linux") and not os.path.exists(ALSA_SEQUENCER):
            raise NeurorackError(
                f"no ALSA sequencer ({ALSA_SEQUENCER} is missing: load the snd-seq module, "
                "or use JACK MIDI on the port midi_in with --audio jack)"
            )
        self._handle = handle
        self.ports: list[Any] = []
        try:
            backend = mido.Backend("mido.backends.rtmidi")
            names = [n for n in backend.get_input_names() if name is None or name in n]
        except Exception as exc:  # rtmidi raises its own types; no ALSA sequencer in containers
            raise NeurorackError(f"no MIDI system available ({str(exc).strip() or type(exc).__name__})") from None
        if not names:
            raise NeurorackError("no MIDI input port found" + (f" matching {name!r}" if name else ""))
        for n in names:
            self.ports.append(backend.open_input(n, callback=self._on_message))
        log.info("MIDI input: %s", ", ".join(names))

    def _on_message(self, message: Any) -> None:
        try:
            self._handle(bytes(message.bytes()))
        except Exception as exc:  # never let a bad message kill the MIDI thread
            log.warning("ignored MIDI message %r: %s", message, exc)

    def close(self) -> None:
        """Close every port."""
        for port in self.ports:
            port.close()
        self.ports.clear()
