"""Speed benchmark of the descriptors and of every generator (SPEC §6 "Speed"; ``neurorack bench``).

Each row times one job with :func:`neurorack.metrics.speed.time_audio`: one CPU thread,
batch 1, ``warm-up`` + ``repeats`` runs, the median. Rows are :class:`BenchRow`; the
descriptors row comes first, then one row per generator in the order given. Models join the
table by passing their :class:`~neurorack.generators.base.Generator` to :func:`run_bench`
(its ``kind`` is ``"baseline"`` for the names in :data:`~neurorack.generators.registry.BASELINES`,
``"model"`` otherwise).

JSON (``neurorack bench --json``; :meth:`BenchReport.to_dict`), stable, version ``schema``::

    {
      "schema": "neurorack-bench/1",
      "settings": {
        "seconds": 1.0,          # audio per run, s
        "repeats": 5,            # timed runs per row (after 1 warm-up run)
        "threads": 1,            # torch intra-op and BLAS threads during the runs
        "reference": "dsp"       # row the ratios divide by
      },
      "machine": {
        "cpu": "Intel(R) Xeon(R) ...", "logical_cpus": 2, "torch_threads_default": 2,
        "platform": "Linux-...", "python": "3.11.9", "torch": "2.13.0", "numpy": "2.4.6",
        "neurorack": "0.1.0"
      },
      "rows": [
        {
          "name": "describe",            # "describe" or the generator's name
          "kind": "descriptors",         # "descriptors" | "baseline" | "model"
          "sample_rate": 44100,          # Hz
          "audio_seconds": 1.0,          # audio produced (or analysed) per run, s
          "median_seconds": 0.004,       # median compute time per run, s
          "realtime_factor": 250.0,      # audio_seconds / median_seconds (× real time)
          "ratio": 12.5,                 # realtime_factor / the reference row's
          "peak_traced_mib": 3.2,        # tracemalloc peak of one run, MiB (NumPy + Python, not torch)
          "note": ""                     # free text (e.g. corpus size for "nearest")
        }, ...
      ]
    }

``neurorack bench --engine`` adds the real-time engine's figures under the key ``"engine"``:
see :mod:`neurorack.engine.bench`.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import neurorack
from neurorack.descriptors import DescriptorConfig
from neurorack.errors import NeurorackError
from neurorack.generators.base import Generator
from neurorack.generators.nearest import NearestSample
from neurorack.generators.registry import BASELINES, build_baseline
from neurorack.metrics.speed import (
    DESCRIBE_SAMPLE_RATE,
    STREAM_BLOCK,
    SpeedResult,
    describe_realtime_factor,
    realtime_factor,
    streaming_factor,
    time_audio,
)
from neurorack.models.base import NoteModel, TransferModel

if TYPE_CHECKING:
    from neurorack.corpus import Corpus

SCHEMA = "neurorack-bench/1"

#: Rows preferred as the reference of the ratios, first present wins (the faithful model, then the DSP synth).
REFERENCE_PREFERENCE: tuple[str, ...] = ("sinc-nsf", "dsp")

_MIB = 1024.0 * 1024.0


@dataclass(frozen=True)
class BenchRow:
    """One line of the benchmark (see the module docstring for the JSON keys and units)."""

    name: str
    kind: str
    sample_rate: int
    audio_seconds: float
    median_seconds: float
    realtime_factor: float
    peak_traced_mib: float
    ratio: float | None = None
    note: str = ""

    @classmethod
    def from_speed(cls, result: SpeedResult, kind: str, sample_rate: int, note: str = "") -> BenchRow:
        return cls(
            name=result.name,
            kind=kind,
            sample_rate=sample_rate,
            audio_seconds=result.audio_seconds,
            median_seconds=result.median_seconds,
            realtime_factor=result.realtime_factor,
            peak_traced_mib=result.peak_traced_bytes / _MIB,
            note=note,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BenchReport:
    """A whole benchmark run: settings, machine and rows (ratios filled in)."""

    seconds: float
    repeats: int
    threads: int
    reference: str
    machine: dict[str, Any]
    rows: tuple[BenchRow, ...] = field(default_factory=tuple)

    def row(self, name: str) -> BenchRow:
        """The row called ``name``.

        Raises:
            KeyError: no such row.
        """
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document described in the module docstring."""
        return {
            "schema": SCHEMA,
            "settings": {
                "seconds": self.seconds,
                "repeats": self.repeats,
                "threads": self.threads,
                "reference": self.reference,
            },
            "machine": dict(self.machine),
            "rows": [r.to_dict() for r in self.rows],
        }


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, :func:`platform.processor` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict[str, Any]:
    """CPU, thread and version facts recorded with every benchmark."""
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count() or 1,
        "torch_threads_default": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "neurorack": neurorack.__version__,
    }


def default_generators(config: DescriptorConfig, corpus: Corpus | None = None) -> list[Generator]:
    """The baselines that can be built: silence and dsp, plus nearest when a corpus is given."""
    names = [n for n in BASELINES if n != "nearest" or corpus is not None]
    return [build_baseline(n, config, corpus) for n in names]


def model_generators(
    models: list[str] | None, config: DescriptorConfig, *, reference_model: bool = True
) -> list[Generator]:
    """Model rows: the given model files / bundled names (default: the bundled models, when installed: the
    impact generator and the transfer autoencoder),
    plus ``sinc-nsf`` at its default (paper) size as the speed reference (its speed does not depend on
    its weights, so an untrained instance is timed).

    Raises:
        NeurorackError: a model file that cannot be loaded.
    """
    from neurorack.model_file import DEFAULT_MODEL, TRANSFER_MODEL, bundled_models, load_model, model_label
    from neurorack.models import ModelGenerator, build_model

    out: list[Generator] = []
    if models is None:
        models = [name for name in (DEFAULT_MODEL, TRANSFER_MODEL) if name in bundled_models()]
    for name in models:
        loaded = load_model(name)
        loaded.name = model_label(loaded, name)
        out.append(loaded)
    if reference_model:
        nsf = build_model("sinc-nsf", sample_rate=config.sample_rate, hop_length=config.hop_length)
        out.append(ModelGenerator(nsf))
    return out


def _note(generator: Generator) -> str:
    if isinstance(generator, NearestSample):
        return f"{len(generator)} stored sounds"
    return ""


def default_note_models() -> list[tuple[str, NoteModel, str]]:
    """SING at the paper's size and at the CPU configuration (untrained: speed does not depend on the weights)."""
    from neurorack.models.registry import build_note_model, note_config

    torch.manual_seed(0)
    return [
        (f"sing-{config}", build_note_model("sing", n_instruments=16, **note_config("sing", config)).eval(), config)
        for config in ("cpu", "paper")
    ]


def _note_rows(note_models: Sequence[tuple[str, NoteModel, str]], repeats: int, threads: int) -> list[BenchRow]:
    """One row per note model (one whole note per run, as played) and the sampler baseline beside them."""
    from neurorack.audio_io import change_speed

    rows = []
    for name, model, label in note_models:
        n_params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("encoder."))
        symbols = (model.instrument_vector(torch.tensor([0])), torch.tensor([60]), torch.tensor([100.0]))

        def job(model: NoteModel = model, symbols: tuple[torch.Tensor, ...] = symbols) -> object:
            with torch.inference_mode():
                return model.generate(*symbols)

        result = time_audio(name, job, model.note_seconds, repeats=repeats, threads=threads)
        note = f"one {model.note_seconds:g} s note; {label}, {n_params / 1e6:.1f} M parameters"
        rows.append(BenchRow.from_speed(result, "model", model.sample_rate, note))
    if note_models:
        model = note_models[0][1]
        source = np.sin(2 * np.pi * 440 * np.arange(model.note_samples) / model.sample_rate).astype(np.float32)
        result = time_audio(
            "sampler", lambda: change_speed(source, 2 ** (1 / 12)), model.note_seconds, repeats=repeats, threads=threads
        )
        rows.append(BenchRow.from_speed(result, "baseline", model.sample_rate, "nearest note transposed (soxr VHQ)"))
    return rows


def run_bench(
    generators: Sequence[Generator],
    *,
    note_models: Sequence[tuple[str, NoteModel, str]] = (),
    seconds: float = 1.0,
    repeats: int = 5,
    threads: int = 1,
    reference: str | None = None,
    include_descriptors: bool = True,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Time the descriptors and each generator; ratios are relative to the ``reference`` row.

    Args:
        generators: generators to time, in table order (names must be unique).
        note_models: ``(row name, model, label)`` of note models (:func:`default_note_models`), timed generating
            one whole note each, followed by the ``sampler`` baseline row.
        seconds: audio per run, s (synthetic impact curves, :func:`~neurorack.metrics.speed.impact_curves`).
        repeats: timed runs per row, after one warm-up.
        threads: CPU threads (SPEC §6: 1).
        reference: name of the row the ratios divide by; ``None`` takes the first of
            :data:`REFERENCE_PREFERENCE` present, else the first row.
        include_descriptors: add the ``describe`` row (44.1 kHz).
        progress: called with a short message before each row (e.g. to print on stderr).

    Raises:
        NeurorackError: bad settings, duplicate names, or an unknown reference.
    """
    if not seconds > 0 or repeats < 1:
        raise NeurorackError(f"need seconds > 0 and repeats >= 1, got {seconds} and {repeats}")
    row_names = (["describe"] if include_descriptors else []) + [g.name for g in generators]
    row_names += [name for name, _, _ in note_models] + (["sampler"] if note_models else [])
    if len(set(row_names)) != len(row_names):
        raise NeurorackError(f"row names must be unique, got {row_names}")
    if not row_names:
        raise NeurorackError("nothing to benchmark")
    if reference is None:
        reference = next((n for n in REFERENCE_PREFERENCE if n in row_names), row_names[0])
    elif reference not in row_names:
        raise NeurorackError(f"unknown reference row {reference!r}; rows: {', '.join(row_names)}")
    machine = machine_info()
    say = progress or (lambda _msg: None)
    rows: list[BenchRow] = []
    if include_descriptors:
        say("describe")
        result = describe_realtime_factor(seconds, repeats, threads)
        rows.append(BenchRow.from_speed(result, "descriptors", DESCRIBE_SAMPLE_RATE, "7 descriptors, 2048 / 512"))
    for gen in generators:
        say(gen.name)
        kind = "baseline" if gen.name in BASELINES else "model"
        ae = getattr(gen, "model", None)
        if isinstance(ae, TransferModel):  # the transfer kind is timed as it runs live: streaming transfer
            result = dataclasses.replace(streaming_factor(ae, seconds, repeats, threads), name=gen.name)
            note = f"streaming transfer, {STREAM_BLOCK}-sample blocks"
            rows.append(BenchRow.from_speed(result, kind, gen.sample_rate, note))
        else:
            result = realtime_factor(gen, seconds, repeats, threads)
            rows.append(BenchRow.from_speed(result, kind, gen.sample_rate, _note(gen)))
    if note_models:
        say("note models")
        rows += _note_rows(note_models, repeats, threads)
    ref_rtf = rows[row_names.index(reference)].realtime_factor
    rows = [BenchRow(**{**r.to_dict(), "ratio": r.realtime_factor / ref_rtf if ref_rtf > 0 else None}) for r in rows]
    return BenchReport(seconds, repeats, threads, reference, machine, tuple(rows))


def _fmt_factor(x: float | None) -> str:
    if x is None or not np.isfinite(x):
        return "—"
    if x >= 100:
        return f"{x:,.0f}×"
    if x >= 10:
        return f"{x:.1f}×"
    return f"{x:.2f}×"


def render_table(report: BenchReport) -> Any:
    """A :class:`rich.table.Table` of the report (machine facts in the caption)."""
    from rich.table import Table

    m = report.machine
    table = Table(
        title=(
            f"speed — {report.seconds:g} s of audio, {report.threads} thread{'s' if report.threads > 1 else ''}, "
            f"median of {report.repeats}"
        ),
        title_justify="left",
        caption=(
            f"{m['cpu']} · {m['logical_cpus']} CPUs · torch {m['torch']} (default {m['torch_threads_default']} "
            f"threads) · numpy {m['numpy']} · python {m['python']} · neurorack {m['neurorack']}"
        ),
        caption_justify="left",
    )
    table.add_column("name")
    table.add_column("kind")
    table.add_column("rate", justify="right")
    table.add_column("× real time", justify="right")
    table.add_column(f"vs {report.reference}", justify="right")
    table.add_column("median ms", justify="right")
    table.add_column("peak MiB", justify="right")
    table.add_column("note")
    for r in report.rows:
        table.add_row(
            r.name,
            r.kind,
            f"{r.sample_rate / 1000:g} kHz",
            _fmt_factor(r.realtime_factor),
            _fmt_factor(r.ratio),
            f"{r.median_seconds * 1000:.2f}",
            f"{r.peak_traced_mib:.1f}",
            r.note,
        )
    return table
