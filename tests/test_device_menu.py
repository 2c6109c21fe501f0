"""The device menu (SPEC §4): tree, navigation by encoder events, and the calls it makes on the instrument."""

from __future__ import annotations

import pytest

from neurorack.device.actions import Assign, Gate, Knob, SelectModel, SetParameter, System, execute
from neurorack.device.menu import (
    ADMIN_ENTRIES,
    KNOB_RANGE_V,
    MODEL_ENTRIES,
    TOP_MENUS,
    Event,
    MenuState,
    Snapshot,
    build_tree,
    current_node,
    handle,
    view,
)
from neurorack.device.params import KNOWN_PARAMETERS, spec_for
from test_device_double import RecordingInstrument

R, P, L = Event.rotate, Event.press(), Event.long_press()


def drive(inst: RecordingInstrument, events: list[Event], state: MenuState | None = None) -> MenuState:
    """Feed events like the device app does: snapshot, handle, carry out the actions."""
    state = state or MenuState()
    for event in events:
        state, actions = handle(state, event, Snapshot.of(inst))
        for action in actions:
            assert execute(inst, action) == ""
    return state


def labels(state: MenuState, inst: RecordingInstrument) -> list[str]:
    return [row.label for row in view(state, Snapshot.of(inst)).rows]


def test_menu_tree_is_the_original_modules() -> None:
    inst = RecordingInstrument()
    root = build_tree(Snapshot.of(inst), MenuState())
    assert (
        [n.label for n in root.children] == list(TOP_MENUS) == ["Models", "Parameters", "Assignment", "Admin", "About"]
    )
    models, params, assignment, admin, about = root.children
    assert [n.label for n in models.children] == list(MODEL_ENTRIES) == ["Play", "Select", "Reload", "Benchmark"]
    assert [n.label for n in models.children[1].children] == ["default", "808-kit", "sinc-nsf"]
    assert [n.key for n in params.children] == ["volume_db", "cv_range", "max_voices", "duration"]
    assert [n.label for n in params.children] == ["volume", "CV range", "voices", "duration"]
    assert [(n.label, n.value) for n in assignment.children] == [
        ("CV1", "position"),
        ("CV2", "loudness"),
        ("CV3", "brightness"),
        ("CV4", "inharmonicity"),
        ("Encoder", "CV1"),
    ]
    assert [n.label for n in admin.children] == list(ADMIN_ENTRIES) == ["Statistics", "Shutdown", "Reboot"]
    assert about.kind == "info"
    # every CV can drive position, the seven descriptors or inharmonicity
    cv1 = assignment.children[0]
    assert [n.actions[0] for n in cv1.children][:2] == [Assign(1, "position"), Assign(1, "rms")]
    assert len(cv1.children) == 9


def test_rotate_press_long_press_navigation() -> None:
    inst = RecordingInstrument()
    state = drive(inst, [R(1)])
    assert view(state, Snapshot.of(inst)).cursor == 1
    state = drive(inst, [R(-5)], state)  # clamps, no wrap-around
    assert state.cursor == 0
    state = drive(inst, [R(99)], state)
    assert state.cursor == 4
    state = drive(inst, [R(-4), P], state)  # into Models
    assert labels(state, inst) == ["Play", "Select", "Reload", "Benchmark"]
    assert view(state, Snapshot.of(inst)).title == "Models"
    state = drive(inst, [L], state)  # back to the top, cursor on Models
    assert state.path == () and state.cursor == 0
    assert drive(inst, [L], state) == state  # long press at the top does nothing
    assert inst.calls == []


def test_select_another_model_calls_select_model() -> None:
    inst = RecordingInstrument()
    state = drive(inst, [P, R(1), P])  # Models > Select
    screen = view(state, Snapshot.of(inst))
    assert screen.title == "Models > Select"
    assert [r.label for r in screen.rows] == ["default", "808-kit", "sinc-nsf"]
    assert screen.cursor == 0 and screen.rows[0].marked  # starts on the current model, marked
    state, actions = handle(state, R(2), Snapshot.of(inst))
    state, actions = handle(state, P, Snapshot.of(inst))
    assert actions == (SelectModel("sinc-nsf"),)
    assert execute(inst, actions[0]) == ""
    assert inst.named_calls("select_model") == [("sinc-nsf",)]
    assert inst.current_model() == "sinc-nsf"
    # back in Models with the cursor on Select, and a notice
    assert labels(state, inst)[state.cursor] == "Select"
    assert state.message == "loading sinc-nsf"
    again = drive(inst, [P], state)
    assert view(again, Snapshot.of(inst)).cursor == 2  # re-entering starts on the new current model


def test_model_files_are_shown_by_name_and_the_playing_one_is_marked() -> None:
    """The engine lists model files by path but names the playing one by its stem: the screen agrees."""
    snap = Snapshot(models=("default", "/home/me/runs/kit/model.safetensors"), current_model="model")
    select = build_tree(snap).children[0].children[1]
    assert [c.label for c in select.children] == ["default", "model"]
    assert [c.marked for c in select.children] == [False, True] and select.cursor == 1
    assert select.children[1].actions == (SelectModel("/home/me/runs/kit/model.safetensors"),)


def test_reload_and_benchmark() -> None:
    inst = RecordingInstrument()
    state = drive(inst, [P, R(2), P])
    assert inst.named_calls("reload_model") == [()]
    assert state.message == "reloading default" and current_node(state, Snapshot.of(inst)).label == "Models"
    state = drive(inst, [R(1), P], state)  # Benchmark
    screen = view(state, Snapshot.of(inst))
    assert screen.kind == "info" and screen.title == "Benchmark"
    values = {r.label: r.value for r in screen.rows}
    assert values["render"] == "4.2 ms" and values["impact"] == "1.00 s" and values["speed"] == "238x RT"
    _, actions = handle(state, P, Snapshot.of(inst))  # press re-renders: a pulse on gate 2
    assert actions == (Gate(2, True), Gate(2, False))


def test_assignment_calls_assign() -> None:
    inst = RecordingInstrument()
    state = drive(inst, [R(2), P, R(1), P])  # Assignment > CV2
    screen = view(state, Snapshot.of(inst))
    assert screen.title == "Assignment > CV2"
    assert screen.rows[screen.cursor].label == "loudness" and screen.rows[screen.cursor].marked
    target = [r.label for r in screen.rows].index("brightness")
    state = drive(inst, [R(target - screen.cursor), P], state)
    assert inst.named_calls("assign") == [(2, "centroid")]
    assert inst.assignments()[2] == "centroid"
    assert state.message == "CV2 -> brightness"
    assert view(state, Snapshot.of(inst)).rows[1].value == "brightness"
    # the encoder's assignment is local to the device: no call, but the Play screen follows it
    state = drive(inst, [R(3), P, R(2), P], state)  # Encoder > CV3 (off, CV1, CV2, CV3)
    assert state.encoder_cv == 3 and len(inst.calls) == 1
    assert view(state, Snapshot.of(inst)).rows[4].value == "CV3"


def test_parameter_edit_clamps_to_range() -> None:
    inst = RecordingInstrument()
    state = drive(inst, [R(1), P, P])  # Parameters > volume
    screen = view(state, Snapshot.of(inst))
    assert screen.kind == "edit" and screen.edit is not None and screen.edit.value == "-12 dB"
    assert screen.edit_range == ("-60 dB", "12 dB")
    state = drive(inst, [R(3)], state)
    assert state.editing == -9.0 and view(state, Snapshot.of(inst)).edit.value == "-9 dB"  # type: ignore[union-attr]
    state = drive(inst, [R(500)], state)
    assert state.editing == 12.0
    assert view(state, Snapshot.of(inst)).edit.fraction == 1.0  # type: ignore[union-attr]
    state = drive(inst, [R(-1000)], state)
    assert state.editing == -60.0
    assert inst.calls == []  # nothing is sent while turning
    state, actions = handle(state, P, Snapshot.of(inst))
    assert actions == (SetParameter("volume_db", -60.0),)
    assert state.message == "volume = -60 dB" and state.editing is None
    # a long press cancels an edit without sending anything
    state = drive(inst, [R(3), P, R(7), L], state)  # duration
    assert state.editing is None and inst.calls == [] and labels(state, inst)[state.cursor] == "duration"
    # fine steps stay on the grid: 1.00 s + 3 × 0.05 s
    state = drive(inst, [P, R(3)], state)
    assert state.editing == pytest.approx(1.15)
    _, actions = handle(state, P, Snapshot.of(inst))
    execute(inst, actions[0])
    assert inst.parameters()["duration"] == pytest.approx(1.15)


def test_parameter_specs() -> None:
    cv_range = KNOWN_PARAMETERS["cv_range"]
    assert cv_range.format(5.0) == "-5..+5V" and cv_range.nudge(5.0, 1) == 10.0 and cv_range.nudge(10.0, 5) == 10.0
    assert cv_range.format(10.0) == "0..10V" and cv_range.fraction(10.0) == 1.0
    duration = KNOWN_PARAMETERS["duration"]
    assert duration.format(0.0) == "auto" and duration.format(0.5) == "0.50 s" and duration.nudge(0.0, -3) == 0.0
    voices = spec_for("max_voices", 8.0)
    assert voices.nudge(8.0, 100) == 32.0 and voices.nudge(8.0, -100) == 1.0 and voices.format(3.0) == "3"
    # an engine value outside the known range widens it instead of being changed by the editor
    odd = spec_for("max_voices", 100.0)
    assert odd.clamp(100.0) == 100.0
    # unknown parameters get a range around their value
    unknown = spec_for("reverb_mix", 0.3)
    assert unknown.minimum == 0.0 and unknown.maximum >= 1.0 and 0 < unknown.step <= 0.01
    assert unknown.nudge(0.3, -1000) == 0.0 and unknown.label == "reverb mix"
    assert spec_for("tune_cents", -20.0).minimum < -20.0


def test_play_screen_plays_and_turns_the_encoder_knob() -> None:
    inst = RecordingInstrument()
    state = drive(inst, [P, P])  # Models > Play
    screen = view(state, Snapshot.of(inst))
    assert screen.kind == "play" and screen.title == "Play default" and screen.wave is not None
    assert len(screen.wave) == 128 and max(screen.wave) == 16 and screen.wave[0] > screen.wave[-1]
    _, actions = handle(state, P, Snapshot.of(inst))
    assert actions == (Gate(1, True), Gate(1, False))
    state, actions = handle(state, R(3), Snapshot.of(inst))
    assert actions == (Knob(1, pytest.approx(0.3)),)
    state, actions = handle(state, R(10_000), Snapshot.of(inst))
    assert actions == (Knob(1, KNOB_RANGE_V[1]),)
    assert view(state, Snapshot.of(inst)).footer == "enc CV1 +10.00 V"


def test_admin_shutdown_needs_confirmation_and_calls_the_hook() -> None:
    inst = RecordingInstrument()
    requested: list[str] = []
    state = MenuState()
    for event in [R(3), P, R(1), P]:  # Admin > Shutdown
        state, actions = handle(state, event, Snapshot.of(inst))
        assert actions == ()
    assert labels(state, inst) == ["Cancel", "Shut down now"]
    assert view(state, Snapshot.of(inst)).cursor == 0  # starts on Cancel
    cancelled, actions = handle(state, P, Snapshot.of(inst))
    assert actions == () and labels(cancelled, inst) == list(ADMIN_ENTRIES)
    state, actions = handle(state, R(1), Snapshot.of(inst))
    state, actions = handle(state, P, Snapshot.of(inst))
    assert actions == (System("shutdown"),)
    assert execute(inst, actions[0], system_hook=requested.append) == ""
    assert requested == ["shutdown"] and state.message == "shutdown requested"


def test_statistics_and_about_screens() -> None:
    inst = RecordingInstrument()
    inst.status_value = inst.status_value.__class__(**{**inst.status_value.__dict__, "xruns": 3, "voices": 2})
    state = drive(inst, [R(3), P, P])
    screen = view(state, Snapshot.of(inst))
    values = {r.label: r.value for r in screen.rows}
    assert screen.title == "Statistics"
    assert values["voices"] == "2/8" and values["xruns"] == "3" and values["cb load"] == "12.0 %"
    assert values["render"] == "4.2 ms" and values["CV1"] == "+0.00 V"
    state = drive(inst, [R(100)], state)  # scrolls to show the last five lines
    assert view(state, Snapshot.of(inst)).cursor == len(screen.rows) - 5
    about = view(drive(inst, [R(4), P]), Snapshot.of(inst))
    values = {r.label: r.value for r in about.rows}
    assert values["neurorack"] and values["model"] == "default" and values["rate"] == "44100 Hz"


def test_tree_changes_under_the_cursor() -> None:
    inst = RecordingInstrument()
    state = drive(inst, [P, R(1), P, R(2)])  # Select, cursor on the third model
    inst._models = ["default"]
    state, actions = handle(state, P, Snapshot.of(inst))  # only one model left: selects what exists
    assert actions == (SelectModel("default"),)
    deep = MenuState(path=(0, 1, 7), cursor=3)  # a stale path is cut back to what exists
    state, actions = handle(deep, R(1), Snapshot.of(inst))
    assert state.path == (0, 1) and actions == ()


def test_refused_requests_become_a_message() -> None:
    inst = RecordingInstrument()
    assert execute(inst, Assign(1, "nonsense")) == "unknown target 'nonsense'"
    assert execute(inst, SetParameter("volume_db", 60.0)) == "volume_db must be within -60..12"


def test_every_value_the_editor_offers_is_accepted_by_the_engine() -> None:
    """Contract with the engine's parameter table (skipped when the engine does not have one)."""
    engine_parameters = pytest.importorskip("neurorack.engine.parameters")
    table = engine_parameters.parameter_table(64, 4.0)
    for name, parameter in table.items():
        assert name in KNOWN_PARAMETERS, f"no menu spec for engine parameter {name}"
        spec = spec_for(name, parameter.default)
        assert spec is KNOWN_PARAMETERS[name], name  # the engine's default is inside the menu's range
        for steps in (-100_000, -3, -1, 1, 3, 100_000):
            parameter.check(spec.nudge(parameter.default, steps))
