"""The device screen's menu tree (SPEC §4) as a pure state machine: no drawing, no I/O.

The tree of the original Neurorack module::

    Neurorack
    ├── Models       Play · Select <model…> · Instrument <note instrument…> (with play --notes) · Reload · Benchmark
    ├── Parameters   one entry per engine parameter (volume, CV range, voices, duration …)
    ├── Assignment   CV1 … CV4 → position | loudness | … | inharmonicity · Encoder → off | CV1 … CV4
    ├── Admin        Statistics · Shutdown (confirm) · Reboot (confirm)
    └── About

Use::

    snap = Snapshot.of(instrument)                   # what the instrument looks like now
    state, actions = handle(state, Event.press(), snap)
    for action in actions: execute(instrument, action)
    image = render(view(state, snap))                # neurorack.device.screen

The encoder sends three events: :meth:`Event.rotate` (± detents; moves the cursor, changes an edited
value or turns the encoder's knob on the Play screen), :meth:`Event.press` (enter, confirm, play) and
:meth:`Event.long_press` (back; cancels an edit). :func:`handle` returns the new state and the
:mod:`~neurorack.device.actions` to carry out; :func:`view` describes the screen to draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Literal

import numpy as np

from neurorack.descriptors import DESCRIPTOR_NAMES
from neurorack.device.actions import (
    Action,
    Assign,
    EncoderTarget,
    Gate,
    Knob,
    ReloadModel,
    SelectInstrument,
    SelectModel,
    SetParameter,
    System,
)
from neurorack.device.params import ordered, spec_for
from neurorack.engine.protocol import N_CVS, EngineStatus, InstrumentControl

#: Titles of the top-level menus, in order (SPEC §4).
TOP_MENUS = ("Models", "Parameters", "Assignment", "Admin", "About")
#: Entries of the Models menu.
MODEL_ENTRIES = ("Play", "Select", "Reload", "Benchmark")
#: Entries of the Admin menu.
ADMIN_ENTRIES = ("Statistics", "Shutdown", "Reboot")

#: What a CV can drive, and the control name shown for it (README descriptor table).
TARGET_LABELS: dict[str, str] = {
    "position": "position",
    "rms": "loudness",
    "zcr": "percussivity",
    "rolloff": "noisiness",
    "flatness": "tonality",
    "bandwidth": "richness",
    "centroid": "brightness",
    "f0": "pitch",
    "inharmonicity": "inharmonicity",
}
#: Assignable targets in menu order: position, the seven descriptors, inharmonicity.
TARGETS: tuple[str, ...] = ("position", *DESCRIPTOR_NAMES, "inharmonicity")

#: Volts per encoder detent when the encoder turns a CV knob on the Play screen.
KNOB_STEP_V = 0.1
#: Range of the encoder's knob, volts (covers both −5…+5 V and 0…10 V conventions).
KNOB_RANGE_V = (-5.0, 10.0)
#: Width of the Play screen's waveform, pixels, and its half height.
WAVE_WIDTH = 128
WAVE_HALF_HEIGHT = 16
#: List rows that fit below the header on the 64-pixel screen.
VISIBLE_ROWS = 5
#: Characters of a two-level title ("Models > Select") that fit beside the header's indicators.
TITLE_CHARS = 16


class EventKind(StrEnum):
    """What the encoder did."""

    ROTATE = "rotate"
    PRESS = "press"
    LONG_PRESS = "long_press"


@dataclass(frozen=True)
class Event:
    """One encoder event; ``steps`` is the signed number of detents of a rotation (clockwise > 0)."""

    kind: EventKind
    steps: int = 0

    @staticmethod
    def rotate(steps: int) -> Event:
        """Turn by ``steps`` detents (negative = counter-clockwise)."""
        return Event(EventKind.ROTATE, int(steps))

    @staticmethod
    def press() -> Event:
        """A short press of the encoder's button: enter, confirm, play."""
        return Event(EventKind.PRESS)

    @staticmethod
    def long_press() -> Event:
        """A long press (held ≥ 0.8 s on hardware): back, or cancel an edit."""
        return Event(EventKind.LONG_PRESS)


@dataclass(frozen=True)
class Snapshot:
    """What the instrument looks like now; read once per frame or event (all calls are non-blocking).

    ``impact`` is the ``float32[samples]`` audio gate 1 plays (not compared: equal snapshots may hold
    different arrays, the screen compares the drawn waveform instead).
    """

    models: tuple[str, ...] = ()
    current_model: str = ""
    parameters: tuple[tuple[str, float], ...] = ()
    assignments: tuple[tuple[int, str], ...] = ()
    status: EngineStatus | None = None
    impact: np.ndarray | None = field(default=None, compare=False)
    version: str = ""
    #: The note model's instruments (empty without ``play --notes``) and the one playing (-1: a morph).
    instruments: tuple[str, ...] = ()
    instrument: int = -1

    @staticmethod
    def of(instrument: InstrumentControl) -> Snapshot:
        """Read the instrument through its protocol."""
        from neurorack import __version__

        notes = getattr(instrument, "notes", None)
        playing = notes.instrument if notes is not None else -1
        return Snapshot(
            instruments=tuple(notes.model.instruments) if notes is not None else (),
            instrument=playing if isinstance(playing, int) else -1,
            models=tuple(instrument.models()),
            current_model=instrument.current_model(),
            parameters=tuple(instrument.parameters().items()),
            assignments=tuple(sorted(instrument.assignments().items())),
            status=instrument.status(),
            impact=instrument.current_impact(),
            version=__version__,
        )


@dataclass(frozen=True)
class MenuState:
    """Where the user is. Immutable; :func:`handle` returns a new one.

    Attributes:
        path: indices of the entries entered from the root (``()`` = the top menu).
        cursor: highlighted entry of the current menu (or first line shown of an info screen).
        editing: the pending value while a parameter is edited, in its unit; None otherwise.
        encoder_cv: the CV (1–4) the encoder turns on the Play screen, 0 = none.
        knobs: the encoder's knob value per CV, volts (added to the CV input by the device).
        message: a one-line notice shown at the bottom (cleared by the app after a few seconds).
    """

    path: tuple[int, ...] = ()
    cursor: int = 0
    editing: float | None = None
    encoder_cv: int = 1
    knobs: tuple[float, ...] = (0.0,) * N_CVS
    message: str = ""


NodeKind = Literal["menu", "action", "param", "play", "info", "confirm"]


@dataclass(frozen=True)
class Node:
    """One entry of the menu tree.

    ``kind``: ``menu``/``confirm`` list ``children``; ``action`` does ``actions`` when pressed, then goes
    ``back`` levels up and shows ``message``; ``param`` edits parameter ``key``; ``play`` is the play
    screen; ``info`` a read-only screen named by ``key`` (``stats``, ``bench``, ``about``).
    ``value``/``fraction``/``marked`` are how the entry shows in its parent's list; ``cursor`` is
    where the cursor starts when the entry is entered.
    """

    label: str
    kind: NodeKind = "menu"
    children: tuple[Node, ...] = ()
    value: str = ""
    fraction: float | None = None
    marked: bool = False
    actions: tuple[Action, ...] = ()
    back: int = 0
    message: str = ""
    key: str = ""
    cursor: int = 0


@dataclass(frozen=True)
class Row:
    """One line of a list: ``label`` on the left, ``value`` right-aligned, an optional bar (0..1)."""

    label: str
    value: str = ""
    fraction: float | None = None
    marked: bool = False


@dataclass(frozen=True)
class Header:
    """The header line's indicators, from the engine status."""

    voices: int = 0
    max_voices: int = 0
    pending: bool = False
    running: bool = False


ScreenKind = Literal["menu", "info", "edit", "play"]


@dataclass(frozen=True)
class Screen:
    """Everything the renderer draws, and nothing else: equal screens give identical images.

    Attributes:
        kind: ``menu`` (a list with a cursor), ``info`` (a list without), ``edit`` (a value bar),
            ``play`` (waveform, CVs, gates).
        title: the header text.
        rows: list lines (menu, info).
        cursor: highlighted row for menus; first visible row for info screens.
        edit: the parameter being edited (label, value text, fraction 0..1); ``edit_range`` its
            formatted minimum and maximum.
        wave: play screen: per pixel column (128), the impact's peak as a half height in pixels (0..16).
        cvs: CV volts; gates: gate levels (play screen).
        footer: play screen's hint line.
    """

    kind: ScreenKind
    title: str
    header: Header = Header()
    rows: tuple[Row, ...] = ()
    cursor: int = 0
    message: str = ""
    edit: Row | None = None
    edit_range: tuple[str, str] = ("", "")
    wave: tuple[int, ...] | None = None
    cvs: tuple[float, ...] = ()
    gates: tuple[bool, ...] = ()
    footer: str = ""


def model_label(spec: str) -> str:
    """What a model is called on the screen: a bundled name as is, a model file by its stem."""
    return Path(spec).stem if ("/" in spec or spec.endswith(".safetensors")) else spec


def build_tree(snap: Snapshot, state: MenuState | None = None) -> Node:
    """The menu tree for the instrument as it is now (models, parameters and assignments come from ``snap``)."""
    encoder_cv = state.encoder_cv if state is not None else 0
    models = snap.models
    current = snap.current_model
    labels = [model_label(m) for m in models]  # the engine lists files by path, names what plays by stem
    playing = next((i for i, m in enumerate(models) if current in (m, labels[i])), None)
    select = Node(
        "Select",
        value=current,
        children=tuple(
            Node(label, "action", marked=i == playing, actions=(SelectModel(m),), back=1, message=f"loading {label}")
            for i, (m, label) in enumerate(zip(models, labels, strict=True))
        ),
        cursor=playing or 0,
    )
    instrument_menu: tuple[Node, ...] = ()
    if snap.instruments:
        shown = snap.instruments[snap.instrument] if 0 <= snap.instrument < len(snap.instruments) else "morph"
        instrument_menu = (
            Node(
                "Instrument",
                value=shown,
                children=tuple(
                    Node(name, "action", marked=i == snap.instrument, actions=(SelectInstrument(i),), back=1)
                    for i, name in enumerate(snap.instruments)
                ),
                cursor=max(snap.instrument, 0),
            ),
        )
    model_menu = Node(
        "Models",
        children=(
            Node("Play", "play"),
            select,
            *instrument_menu,
            Node("Reload", "action", actions=(ReloadModel(),), message=f"reloading {current}"),
            Node("Benchmark", "info", key="bench"),
        ),
    )

    values = dict(snap.parameters)
    param_nodes = []
    for name in ordered(values):
        spec = spec_for(name, values[name])
        param_nodes.append(
            Node(spec.label, "param", value=spec.format(values[name]), fraction=spec.fraction(values[name]), key=name)
        )

    assigned = dict(snap.assignments)
    cv_nodes = []
    for cv in range(1, N_CVS + 1):
        now = assigned.get(cv, "")
        targets = TARGETS if now in TARGETS or not now else (*TARGETS, now)
        cv_nodes.append(
            Node(
                f"CV{cv}",
                value=TARGET_LABELS.get(now, now),
                children=tuple(
                    Node(
                        TARGET_LABELS.get(t, t),
                        "action",
                        value=t if TARGET_LABELS.get(t, t) != t else "",
                        marked=t == now,
                        actions=(Assign(cv, t),),
                        back=1,
                        message=f"CV{cv} -> {TARGET_LABELS.get(t, t)}",
                    )
                    for t in targets
                ),
                cursor=targets.index(now) if now in targets else 0,
            )
        )
    encoder_names = ("off", *(f"CV{cv}" for cv in range(1, N_CVS + 1)))
    cv_nodes.append(
        Node(
            "Encoder",
            value=encoder_names[encoder_cv],
            children=tuple(
                Node(
                    name,
                    "action",
                    marked=k == encoder_cv,
                    actions=(EncoderTarget(k),),
                    back=1,
                    message=f"encoder -> {name}",
                )
                for k, name in enumerate(encoder_names)
            ),
            cursor=encoder_cv,
        )
    )

    def confirm(label: str, command: Literal["shutdown", "reboot"], verb: str) -> Node:
        return Node(
            label,
            "confirm",
            children=(
                Node("Cancel", "action", back=1),
                Node(f"{verb} now", "action", actions=(System(command),), back=1, message=f"{command} requested"),
            ),
        )

    admin = Node(
        "Admin",
        children=(
            Node("Statistics", "info", key="stats"),
            confirm("Shutdown", "shutdown", "Shut down"),
            confirm("Reboot", "reboot", "Reboot"),
        ),
    )
    return Node(
        "Neurorack",
        children=(
            model_menu,
            Node("Parameters", children=tuple(param_nodes)),
            Node("Assignment", children=tuple(cv_nodes)),
            admin,
            Node("About", "info", key="about"),
        ),
    )


def _walk(root: Node, path: tuple[int, ...]) -> tuple[list[Node], tuple[int, ...]]:
    """The nodes along ``path`` (root first) and the part of ``path`` that still exists in the tree."""
    nodes = [root]
    for depth, index in enumerate(path):
        children = nodes[-1].children
        if not 0 <= index < len(children):
            return nodes, path[:depth]
        nodes.append(children[index])
    return nodes, path


def _clamp(value: int, size: int) -> int:
    return 0 if size <= 0 else min(size - 1, max(0, value))


def _up(state: MenuState, levels: int) -> MenuState:
    path, cursor = state.path, state.cursor
    for _ in range(min(levels, len(path))):
        path, cursor = path[:-1], path[-1]
    return replace(state, path=path, cursor=cursor, editing=None)


def current_node(state: MenuState, snap: Snapshot) -> Node:
    """The node the user is in (the top menu, a submenu, a parameter being edited, the play screen …)."""
    nodes, _ = _walk(build_tree(snap, state), state.path)
    return nodes[-1]


def handle(state: MenuState, event: Event, snap: Snapshot) -> tuple[MenuState, tuple[Action, ...]]:
    """Apply one encoder event. Returns the new state and the actions to carry out on the instrument.

    Rotation clamps at the ends of a list (no wrap-around); parameter edits clamp to the parameter's
    range; a long press goes back one level (and cancels an edit without changing anything).
    """
    root = build_tree(snap, state)
    nodes, path = _walk(root, state.path)
    if path != state.path:  # the tree changed under us (a model list shrank): stay where still valid
        state = replace(state, path=path, cursor=0, editing=None)
    node = nodes[-1]

    if event.kind is EventKind.LONG_PRESS:
        return (_up(state, 1), ()) if state.path else (state, ())

    if node.kind == "param":
        values = dict(snap.parameters)
        spec = spec_for(node.key, values.get(node.key, 0.0))
        pending = state.editing if state.editing is not None else values.get(node.key, 0.0)
        if event.kind is EventKind.ROTATE:
            return replace(state, editing=spec.nudge(pending, event.steps)), ()
        value = spec.clamp(pending)
        return replace(_up(state, 1), message=f"{spec.label} = {spec.format(value)}"), (SetParameter(node.key, value),)

    if node.kind == "play":
        if event.kind is EventKind.PRESS:
            return state, (Gate(1, True), Gate(1, False))
        if not state.encoder_cv or event.steps == 0:
            return state, ()
        index = state.encoder_cv - 1
        lo, hi = KNOB_RANGE_V
        volts = round(min(hi, max(lo, state.knobs[index] + event.steps * KNOB_STEP_V)), 6)
        knobs = tuple(volts if i == index else v for i, v in enumerate(state.knobs))
        return replace(state, knobs=knobs), (Knob(state.encoder_cv, volts),)

    if node.kind == "info":
        if event.kind is EventKind.ROTATE:
            size = max(1, len(info_rows(node.key, snap)) - VISIBLE_ROWS + 1)
            return replace(state, cursor=_clamp(state.cursor + event.steps, size)), ()
        if node.key == "bench":
            return replace(state, message="re-rendering"), (Gate(2, True), Gate(2, False))
        return state, ()

    # menu / confirm
    if event.kind is EventKind.ROTATE:
        return replace(state, cursor=_clamp(state.cursor + event.steps, len(node.children))), ()
    if not node.children:
        return state, ()
    child = node.children[_clamp(state.cursor, len(node.children))]
    entered = replace(state, path=(*state.path, _clamp(state.cursor, len(node.children))), editing=None)
    if child.kind == "action":
        after = _up(state, child.back) if child.back else state
        actions: list[Action] = []
        for action in child.actions:
            if isinstance(action, EncoderTarget):
                after = replace(after, encoder_cv=action.cv)
            else:
                actions.append(action)
        if child.message:
            after = replace(after, message=child.message)
        return after, tuple(actions)
    if child.kind == "param":
        return replace(entered, editing=dict(snap.parameters).get(child.key, 0.0), cursor=0), ()
    return replace(entered, cursor=child.cursor), ()


def _header(status: EngineStatus | None) -> Header:
    if status is None:
        return Header()
    return Header(status.voices, status.max_voices, status.pending, status.running)


def wave_columns(impact: np.ndarray | None, width: int = WAVE_WIDTH, half: int = WAVE_HALF_HEIGHT) -> tuple[int, ...]:
    """The impact's peak per pixel column as half heights in pixels (0..``half``), ``width`` columns.

    Scaled to the impact's own peak (with a floor of 0.05 so near-silence stays flat).
    """
    if impact is None or len(impact) == 0:
        return ()
    x = np.asarray(impact, dtype=np.float32).reshape(-1)
    x = np.nan_to_num(np.abs(x[:: max(1, len(x) // (width * 64))]))  # ~64 samples per column suffice
    edges = np.linspace(0, len(x), width + 1).astype(np.int64)
    peaks = np.maximum.reduceat(x, np.minimum(edges[:-1], len(x) - 1))  # one sample when columns > samples
    scale = max(float(x.max()), 0.05)
    return tuple(int(v) for v in np.clip(np.round(peaks / scale * half), 0, half))


def _volts(v: float) -> str:
    return f"{v:+.2f} V"


def info_rows(key: str, snap: Snapshot) -> tuple[Row, ...]:
    """The lines of a read-only screen: ``stats`` (Admin → Statistics), ``bench`` (Models → Benchmark), ``about``."""
    s = snap.status
    impact_s = 0.0
    if s is not None and snap.impact is not None and s.sample_rate > 0:
        impact_s = len(snap.impact) / s.sample_rate
    if key == "stats":
        if s is None:
            return (Row("engine", "no status"),)
        rows = [
            Row("voices", f"{s.voices}/{s.max_voices}"),
            Row("xruns", str(s.xruns)),
            Row("cb load", f"{100.0 * s.callback_load:.1f} %", fraction=min(1.0, max(0.0, s.callback_load))),
            Row("render", f"{s.render_ms:.1f} ms"),
            Row("pending", "yes" if s.pending else "no"),
            Row("backend", s.backend if s.running else f"{s.backend} (off)"),
            Row("rate", f"{s.sample_rate} Hz"),
            Row("period", f"{s.period} fr"),
            Row("gates", " ".join("1" if g else "0" for g in s.gates)),
            *(Row(f"CV{i + 1}", _volts(v)) for i, v in enumerate(s.cvs)),
            Row("rec", s.recording.rsplit("/", 1)[-1] if s.recording else "-"),
        ]
        rows += [Row(k, f"{v:g}") for k, v in sorted(s.extra.items())]
        if s.message:
            rows.append(Row("msg", s.message))
        return tuple(rows)
    if key == "bench":
        if s is None:
            return (Row("engine", "no status"),)
        speed = impact_s * 1000.0 / s.render_ms if s.render_ms > 0 and impact_s > 0 else 0.0
        return (
            Row("render", f"{s.render_ms:.1f} ms"),
            Row("impact", f"{impact_s:.2f} s"),
            Row("speed", f"{speed:.0f}x RT" if speed else "-"),
            Row("cb load", f"{100.0 * s.callback_load:.1f} %", fraction=min(1.0, max(0.0, s.callback_load))),
            Row("xruns", str(s.xruns)),
            Row("press", "re-render"),
        )
    if key == "about":
        rows = [Row("neurorack", snap.version), Row("model", snap.current_model or "-")]
        if s is not None:
            rows += [Row("rate", f"{s.sample_rate} Hz"), Row("backend", s.backend)]
        if impact_s:
            rows.append(Row("impact", f"{impact_s:.2f} s"))
        rows += [Row("models", str(len(snap.models))), Row("licence", "GPL-3.0+")]
        return tuple(rows)
    return ()


def view(state: MenuState, snap: Snapshot) -> Screen:
    """Describe the screen for ``state`` (pure; feed it to :func:`neurorack.device.screen.render`)."""
    root = build_tree(snap, state)
    nodes, _ = _walk(root, state.path)
    node = nodes[-1]
    header = _header(snap.status)
    title = " > ".join(n.label for n in nodes[1:][-2:]) or root.label
    if len(title) > TITLE_CHARS:
        title = node.label
    if node.kind == "param":
        values = dict(snap.parameters)
        spec = spec_for(node.key, values.get(node.key, 0.0))
        value = spec.clamp(state.editing if state.editing is not None else values.get(node.key, 0.0))
        return Screen(
            "edit",
            title,
            header,
            edit=Row(spec.label, spec.format(value), spec.fraction(value)),
            edit_range=(
                spec.format(spec.minimum if not spec.choices else spec.choices[0][0]),
                spec.format(spec.maximum if not spec.choices else spec.choices[-1][0]),
            ),
            message=state.message,
        )
    if node.kind == "play":
        s = snap.status
        if state.encoder_cv:
            footer = f"enc CV{state.encoder_cv} {_volts(state.knobs[state.encoder_cv - 1])}"
        else:
            footer = "press: play"
        return Screen(
            "play",
            f"Play {snap.current_model}",
            header,
            wave=wave_columns(snap.impact) if snap.impact is not None else None,
            cvs=tuple(round(v, 1) for v in s.cvs) if s is not None else (),
            gates=s.gates if s is not None else (),
            footer=footer,
            message=state.message,
        )
    if node.kind == "info":
        rows = info_rows(node.key, snap)
        cursor = _clamp(state.cursor, max(1, len(rows) - VISIBLE_ROWS + 1))
        return Screen("info", title, header, rows, cursor, message=state.message)
    rows = tuple(Row(c.label, c.value, c.fraction, c.marked) for c in node.children)
    return Screen("menu", title, header, rows, _clamp(state.cursor, len(rows)), message=state.message)
