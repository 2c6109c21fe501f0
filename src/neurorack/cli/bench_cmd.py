"""``neurorack bench``: speed of the descriptors and the generators, one CPU thread (SPEC §6).

The logic and the JSON format live in :mod:`neurorack.bench`; this module parses the options
and prints (table on stdout, progress on stderr; with ``--json`` only the JSON on stdout).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from neurorack.cli.console import console, err_console
from neurorack.descriptors import DescriptorConfig
from neurorack.errors import NeurorackError


def bench_command(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON on stdout (nothing else).")
    ] = False,
    seconds: Annotated[float, typer.Option("--seconds", help="Seconds of audio per run.")] = 1.0,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed runs per row (after one warm-up).")] = 5,
    corpus: Annotated[
        Path | None,
        typer.Option("--corpus", help="Corpus folder: adds the nearest-sample baseline (train split)."),
    ] = None,
    reference: Annotated[
        str | None, typer.Option("--reference", help="Row the ratios are relative to (default: sinc-nsf, else dsp).")
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model", "-m", help="Model file or bundled name to time (repeatable; default: the bundled model)."
        ),
    ] = None,
    no_sinc_nsf: Annotated[
        bool, typer.Option("--no-sinc-nsf", help="Leave out the faithful sinc-nsf reference row (slow: ~1× real time).")
    ] = False,
    notes: Annotated[
        bool,
        typer.Option(
            "--notes/--no-notes",
            help="Also time SING (cpu and paper configurations) generating one 4 s note, beside the sampler baseline.",
        ),
    ] = True,
    engine: Annotated[
        bool,
        typer.Option(
            "--engine/--no-engine",
            help="Also measure the real-time engine: gate-to-sound latency, callback CPU share, render-ahead "
            "(JACK dummy server when jackd is installed, else the null backend; ~10 s). JSON key: engine.",
        ),
    ] = True,
) -> None:
    """Time the descriptors and every generator on one CPU thread (× real time, median of runs).

    Rows: describe (44.1 kHz), the bundled model (or each --model), the faithful sinc-nsf at the
    paper's size (the reference of the ratios), the silence and dsp baselines, nearest with
    --corpus; then SING at its cpu and paper sizes generating one 4 s note at 16 kHz, and the sampler
    baseline (the nearest note transposed). The impact rows play a synthetic impact's descriptor
    curves; speed depends on the machine and on its load, so compare rows of one run.
    """
    from neurorack.bench import default_generators, default_note_models, model_generators, render_table, run_bench

    if not seconds > 0:
        raise NeurorackError(f"--seconds must be positive, got {seconds}")
    if repeats < 1:
        raise NeurorackError(f"--repeats must be at least 1, got {repeats}")
    config = DescriptorConfig()
    opened = None
    if corpus is not None:
        from neurorack.corpus import Corpus

        opened = Corpus.open(corpus)
        config = opened.config
    generators = model_generators(models, config, reference_model=not no_sinc_nsf)
    generators += default_generators(config, opened)

    def progress(name: str) -> None:
        if not json_out:
            err_console.print(f"[dim]timing {name} …[/]", highlight=False)

    report = run_bench(
        generators,
        note_models=default_note_models() if notes else (),
        seconds=seconds,
        repeats=repeats,
        reference=reference,
        progress=progress,
    )
    engine_result = None
    if engine:
        from neurorack.engine.bench import bench_engine

        progress("the real-time engine")
        engine_result = bench_engine(models[0] if models else None)
    if json_out:
        doc = report.to_dict()
        if engine_result is not None:
            doc["engine"] = engine_result.to_dict()
        typer.echo(json.dumps(doc, indent=2))
    else:
        console.print(render_table(report))
        if engine_result is not None:
            from neurorack.engine.bench import render_engine_table

            console.print(render_engine_table(engine_result))


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)
