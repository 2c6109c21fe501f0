"""The engine's figures for ``neurorack bench`` (SPEC §6 "gate-to-sound latency in the engine").

* **gate-to-sound latency**: with JACK (a private ``jackd -d dummy`` server, 128 frames at
  44.1 kHz, when ``jackd`` is installed), a capture client records the engine's output port with
  JACK's frame times; latency = frame of the first non-silent sample − JACK frame time when the
  gate was set (Python API gate, as OSC and the device deliver it) and when a JACK MIDI note-on
  was written (sample-accurate path). Without jackd, the null backend: periods between the gate
  call and the period that started the voice.
* **callback share**: wall time spent in the audio callback / wall time, over the run.
* **render-ahead**: time from a CV change to its impact being published (median), i.e. how stale
  a trigger right after a CV move can be.

JSON (key ``"engine"`` of the ``neurorack bench --json`` document)::

    {"backend": "jack (dummy server)", "sample_rate": 44100, "period": 128, "hits": 8,
     "latency_periods_median": 0.6, "latency_periods_max": 1.2, "latency_ms_median": 1.7,
     "latency_ms_max": 3.5, "midi_latency_periods_max": 0.0, "callback_share": 0.05,
     "render_ahead_ms_median": 9.8, "render_ms_median": 6.1, "note": "..."}
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from neurorack.engine.jack_server import JackDummyServer, jackd_path


@dataclass(frozen=True)
class EngineBench:
    """The engine's figures (see the module docstring for units)."""

    backend: str
    sample_rate: int
    period: int
    hits: int
    latency_periods_median: float
    latency_periods_max: float
    latency_ms_median: float
    latency_ms_max: float
    midi_latency_periods_max: float | None
    callback_share: float
    render_ahead_ms_median: float
    render_ms_median: float
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _render_ahead(engine: Any, changes: int) -> tuple[list[float], list[float]]:
    ahead: list[float] = []
    render: list[float] = []
    rng = np.random.default_rng(0)
    for _ in range(changes):
        engine.set_cv(3, float(rng.uniform(-4.0, 4.0)))
        deadline = time.monotonic() + 5.0
        while engine.status().pending and time.monotonic() < deadline:
            time.sleep(0.001)
        st = engine.status()
        ahead.append(st.extra["render_ahead_ms"])
        render.append(st.render_ms)
        time.sleep(0.05)
    engine.set_cv(3, 0.0)
    return ahead, render


def _wait_idle(engine: Any) -> None:
    deadline = time.monotonic() + 5.0
    while (engine.status().pending or engine.status().voices) and time.monotonic() < deadline:
        time.sleep(0.01)


def bench_engine(model: str | None = None, hits: int = 8, period: int = 128, sample_rate: int = 44100) -> EngineBench:
    """Run the engine briefly and measure it (JACK dummy server when ``jackd`` exists, else null).

    Raises:
        NeurorackError: the model cannot be loaded, or jackd does not start.
    """
    from neurorack.engine.instrument import Engine

    if jackd_path() is None:
        return _bench_null(model, hits, period, sample_rate)
    from neurorack.engine.probe import JackCapture, JackMidiSender

    with JackDummyServer(sample_rate=sample_rate, period=period) as server:
        name = f"nr-bench-{uuid.uuid4().hex[:6]}"
        engine = Engine(model, audio="jack", server=server.name, client_name=name, autoconnect=False)
        engine.set_parameter("duration", 0.1)
        engine.start()
        cap = JackCapture(server.name, f"{name}:out", seconds=10.0)
        midi = JackMidiSender(server.name, f"{name}:midi_in")
        try:
            time.sleep(0.3)
            _wait_idle(engine)
            lat: list[int] = []
            for _ in range(hits):
                sent = cap.send_frame()
                engine.gate(1, True)
                onset = _onset(cap, sent - 2 * period)
                engine.gate(1, False)
                if onset is not None:
                    lat.append(onset - sent)
                time.sleep(0.15)
            midi_lat: list[int] = []
            for i in range(hits):
                sent = midi.send(bytes([0x90, 40 + i, 127]))
                onset = _onset(cap, sent - 2 * period)
                midi.send(bytes([0x80, 40 + i, 0]))
                if onset is not None:
                    midi_lat.append(onset - sent)
                time.sleep(0.15)
            ahead, render = _render_ahead(engine, hits)
            share = engine.status().extra["callback_share"]
            xr = server.xrun_report(name)
        finally:
            midi.close()
            cap.close()
            engine.stop()
    rate = float(sample_rate)
    lat_p = [max(0, x) / period for x in lat] or [float("nan")]
    return EngineBench(
        backend="jack (dummy server)",
        sample_rate=sample_rate,
        period=period,
        hits=len(lat),
        latency_periods_median=statistics.median(lat_p),
        latency_periods_max=max(lat_p),
        latency_ms_median=statistics.median(lat_p) * period / rate * 1000.0,
        latency_ms_max=max(lat_p) * period / rate * 1000.0,
        midi_latency_periods_max=max(midi_lat) / period if midi_lat else None,
        callback_share=float(share),
        render_ahead_ms_median=statistics.median(ahead),
        render_ms_median=statistics.median(render),
        note=f"gate by Python API; engine xruns {xr['client_late']}, driver timer xruns {xr['driver']}",
    )


def _onset(cap: Any, frame: int, timeout: float = 1.0) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        onset = cap.onset_after(frame)
        if onset is not None:
            return int(onset)
        time.sleep(0.005)
    return None


def _bench_null(model: str | None, hits: int, period: int, sample_rate: int) -> EngineBench:
    from neurorack.engine.instrument import Engine

    engine = Engine(model, audio="null", period=period, sample_rate=sample_rate)
    engine.set_parameter("duration", 0.1)
    lat: list[int] = []
    with engine:
        _wait_idle(engine)
        for _ in range(hits):
            started = engine.voices.started
            at = engine.periods_done
            engine.gate(1, True)
            deadline = time.monotonic() + 1.0
            while engine.voices.started == started and time.monotonic() < deadline:
                time.sleep(0.0002)
            lat.append(engine.periods_done - at)
            engine.gate(1, False)
            time.sleep(0.15)
        ahead, render = _render_ahead(engine, hits)
        share = engine.status().extra["callback_share"]
    lat_p = [float(x) for x in lat]
    ms = period / sample_rate * 1000.0
    return EngineBench(
        backend="null (no jackd)",
        sample_rate=sample_rate,
        period=period,
        hits=len(lat),
        latency_periods_median=statistics.median(lat_p),
        latency_periods_max=max(lat_p),
        latency_ms_median=statistics.median(lat_p) * ms,
        latency_ms_max=max(lat_p) * ms,
        midi_latency_periods_max=None,
        callback_share=float(share),
        render_ahead_ms_median=statistics.median(ahead),
        render_ms_median=statistics.median(render),
        note="periods from the gate call to the period that started the voice",
    )


def render_engine_table(result: EngineBench) -> Any:
    """A :class:`rich.table.Table` of the engine's figures."""
    from rich.table import Table

    table = Table(
        title=f"engine — {result.backend}, {result.period} frames at {result.sample_rate / 1000:g} kHz",
        title_justify="left",
        caption=result.note,
        caption_justify="left",
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row(
        "gate-to-sound latency, median / max (periods)",
        f"{result.latency_periods_median:.2f} / {result.latency_periods_max:.2f}",
    )
    table.add_row(
        "gate-to-sound latency, median / max (ms)", f"{result.latency_ms_median:.2f} / {result.latency_ms_max:.2f}"
    )
    if result.midi_latency_periods_max is not None:
        table.add_row("JACK MIDI gate-to-sound latency, max (periods)", f"{result.midi_latency_periods_max:.2f}")
    table.add_row("audio callback share of the CPU", f"{result.callback_share * 100:.1f} %")
    table.add_row("render-ahead after a CV change, median (ms)", f"{result.render_ahead_ms_median:.1f}")
    table.add_row("impact render time, median (ms)", f"{result.render_ms_median:.1f}")
    return table
