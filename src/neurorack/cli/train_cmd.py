"""``neurorack train`` and ``neurorack export``: train an impact model on a corpus or a sample folder, export it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from neurorack.cli.console import console, err_console
from neurorack.errors import NeurorackError

if TYPE_CHECKING:
    from neurorack.training.run import TrainResult


def _log(message: str) -> None:
    err_console.print(message, highlight=False, markup=False, soft_wrap=True)


def train_command(
    source: Annotated[
        Path,
        typer.Argument(
            help="A corpus (neurorack corpus build) or a plain folder of audio samples.", show_default=False
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder (checkpoints, logs, model).", show_default=False)
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model to train: ddsp-impact, sinc-nsf, fader-ae (autoencoder) or fader-ae-cvae (its ablation); "
            "on a note corpus, sing. \\[default: ddsp-impact, or sing on a note corpus]",
            show_default=False,
        ),
    ] = None,
    minutes: Annotated[
        float | None,
        typer.Option(
            "--minutes", help="Total training time of the run (resumes included). \\[default: 27]", show_default=False
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")
    ] = False,
    lr: Annotated[
        float | None,
        typer.Option(
            "--lr",
            help="Adam learning rate. \\[default: 1e-4 for sinc-nsf (paper), 1e-3 otherwise]",
            show_default=False,
        ),
    ] = None,
    lr_patience: Annotated[
        int | None,
        typer.Option(
            help="Halve the learning rate after this many epochs without validation progress. \\[default: 20]",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", "-b", help="Crops per batch (per device). \\[default: 8]", show_default=False),
    ] = None,
    frames: Annotated[
        int | None, typer.Option(help="Crop length in descriptor frames. \\[default: 64]", show_default=False)
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Total optimiser steps of the run.", show_default=False)] = None,
    max_epochs: Annotated[int | None, typer.Option(help="Total epochs of the run.", show_default=False)] = None,
    devices: Annotated[int, typer.Option(help="Devices (GPUs, or CPU processes) per node; DDP when > 1.")] = 1,
    nodes: Annotated[int, typer.Option(help="Nodes (machines); DDP when > 1.")] = 1,
    accelerator: Annotated[str, typer.Option(help="Lightning accelerator: auto, cpu, gpu, ...")] = "auto",
    model_config: Annotated[
        str | None,
        typer.Option(
            help="Model settings as a JSON object, or 'tiny' (test size); note models also take a configuration "
            "name: cpu (default) or paper.",
            show_default=False,
        ),
    ] = None,
    stages: Annotated[
        str | None,
        typer.Option(
            help="Note models: the stages to run, comma-separated, of autoencoder, sequence, end-to-end. "
            "\\[default: all, in order; on --resume the unfinished ones]",
            show_default=False,
        ),
    ] = None,
    crop_frames: Annotated[
        int | None,
        typer.Option(
            help="Note models: embeddings decoded per note in training (a random window; 0: whole notes as in "
            "the paper). \\[default: 64]",
            show_default=False,
        ),
    ] = None,
    truncation: Annotated[
        int | None,
        typer.Option(
            help="Note models: frames per window of truncated back-propagation in the sequence stage. \\[default: 32]",
            show_default=False,
        ),
    ] = None,
    magnitude_weight: Annotated[
        float | None,
        typer.Option(
            help="Note models: weight of the linear-magnitude term beside SING's log-power spectral loss (0: the "
            "paper's loss alone, which collapses to silence on quiet notes). \\[default: 0.1]",
            show_default=False,
        ),
    ] = None,
    augment_fraction: Annotated[
        float | None,
        typer.Option(
            help="Fraction of each batch trained for control with edited descriptor curves. \\[default: 0.25]",
            show_default=False,
        ),
    ] = None,
    drawing_fraction: Annotated[
        float | None,
        typer.Option(
            help="Impact models: fraction of each batch replaced by random drawn curves, trained to be followed "
            "(descriptor loss only). \\[default: 0]",
            show_default=False,
        ),
    ] = None,
    drawing_weight: Annotated[
        float | None,
        typer.Option(help="Impact models: weight of the loss on drawn curves. \\[default: 1]", show_default=False),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            help="Start from this model file's weights (a path, or a bundled model such as 'default'): "
            "fine-tune it on SOURCE with its own settings.",
            show_default=False,
        ),
    ] = None,
    control_weight: Annotated[
        float | None,
        typer.Option(help="Weight of the control (edited curves) loss. \\[default: 1]", show_default=False),
    ] = None,
    descriptor_weight: Annotated[
        float | None,
        typer.Option(help="Weight of the descriptor loss on reconstructions. \\[default: 1]", show_default=False),
    ] = None,
    adversary_weight: Annotated[
        float | None,
        typer.Option(
            help="Autoencoders only: weight of the latent adversary's fader term (after its warm-up) against "
            "the reconstruction losses. Higher pushes more of the descriptors out of the latent and onto the "
            "knobs, at some cost in reconstruction. \\[default: 1]",
            show_default=False,
        ),
    ] = None,
    waveform_adversary: Annotated[
        bool,
        typer.Option(
            "--waveform-adversary",
            help="Autoencoders only (fader-ae, fader-ae-cvae): add the adversarial waveform stage of RAVE and "
            "EnCodec, a multi-scale STFT discriminator trained against the reconstructions, with adversarial and "
            "feature-matching losses for the autoencoder (meant to sharpen its reconstructions). Slow on a CPU: "
            "about 4 s more per step on one thread at batch 8 x 64 frames. Set for the whole run: on --resume "
            "it is restored from the run.",
        ),
    ] = False,
    checkpoint_every: Annotated[int, typer.Option(help="Write the resume checkpoint every this many steps.")] = 50,
    example_every: Annotated[int, typer.Option(help="Log audio examples every this many epochs (0: never).")] = 5,
    threads: Annotated[
        int | None,
        typer.Option(
            help="Torch threads per process on the CPU. \\[default: all cores; 1 is faster on a busy machine]",
            show_default=False,
        ),
    ] = None,
    val_every: Annotated[
        int | None,
        typer.Option(help="Validate every this many steps. \\[default: once per epoch]", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    workers: Annotated[int, typer.Option(help="Data-loader worker processes.")] = 0,
    export: Annotated[
        bool, typer.Option("--export/--no-export", help="Export RUN/model.safetensors at the end.")
    ] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar with ETA.")] = True,
) -> None:
    """Train an impact model on SOURCE into the run folder --out.

    SOURCE is a corpus, or any folder of one-shots: then a corpus is built in
    OUT/corpus first, and the trained model is exported to OUT/model.safetensors,
    ready to play. Logs go to OUT/logs (tensorboard --logdir OUT/logs); a killed run
    continues with --resume. Loss: multi-scale spectral + descriptor matching, with
    a share of each batch trained on edited descriptor curves and on random drawn
    curves so the controls work (fader-ae adds its KL and latent-adversary terms, and with --waveform-adversary a
    waveform discriminator's adversarial and feature-matching terms).
    With --devices/--nodes > 1 it trains with DDP; on several machines, run the same
    command on each with MASTER_ADDR, MASTER_PORT and NODE_RANK set. With --resume,
    settings not given again are those of the run.

    On a note corpus (an NSynth download, or examples.json + audio/ of the same layout) it trains SING in
    its three stages (autoencoder, sequence, end-to-end; --minutes is shared between them), each resumable.
    """
    from neurorack.models.registry import note_model_names
    from neurorack.notes.nsynth import is_note_corpus

    if is_note_corpus(source) or (model is not None and model in note_model_names()):
        impact_only = {
            "--lr-patience": lr_patience,
            "--frames": frames,
            "--augment-fraction": augment_fraction,
            "--drawing-fraction": drawing_fraction,
            "--drawing-weight": drawing_weight,
            "--init": init,
            "--control-weight": control_weight,
            "--descriptor-weight": descriptor_weight,
            "--adversary-weight": adversary_weight,
            "--waveform-adversary": True if waveform_adversary else None,
        }
        given = [flag for flag, value in impact_only.items() if value is not None]
        if given:
            raise NeurorackError(f"{', '.join(given)}: not a setting of note models")
        _train_notes(
            source,
            out,
            model=model,
            model_config=model_config,
            stages=tuple(s.strip() for s in stages.split(",") if s.strip()) if stages else None,
            minutes=minutes,
            max_steps=max_steps,
            max_epochs=max_epochs,
            resume=resume,
            lr=lr,
            batch_size=batch_size,
            crop_frames=crop_frames,
            truncation=truncation,
            magnitude_weight=magnitude_weight,
            devices=devices,
            nodes=nodes,
            accelerator=accelerator,
            threads=threads,
            seed=seed,
            num_workers=workers,
            checkpoint_every=checkpoint_every,
            example_every=example_every,
            val_every=val_every,
            export=export,
            progress=progress,
            json_out=json_out,
        )
        return
    note_only = (("--stages", stages), ("--crop-frames", crop_frames), ("--truncation", truncation),
                 ("--magnitude-weight", magnitude_weight))  # fmt: skip
    for flag, value in note_only:
        if value is not None:
            raise NeurorackError(f"{flag} is for note models (a note corpus), not impact models")
    from neurorack.training.run import train

    result = train(
        source,
        out=out,
        model=model,
        model_config=model_config,
        minutes=minutes,
        max_steps=max_steps,
        max_epochs=max_epochs,
        resume=resume,
        lr=lr,
        lr_patience=lr_patience,
        batch_size=batch_size,
        frames=frames,
        descriptor_weight=descriptor_weight,
        control_weight=control_weight,
        augment_fraction=augment_fraction,
        drawing_fraction=drawing_fraction,
        drawing_weight=drawing_weight,
        init=init,
        waveform_adversary=True if waveform_adversary else None,  # None: the run's own setting on --resume
        adversary_weight=adversary_weight,
        devices=devices,
        nodes=nodes,
        accelerator=accelerator,
        threads=threads,
        seed=seed,
        num_workers=workers,
        checkpoint_every=checkpoint_every,
        example_every=example_every,
        val_every=val_every,
        export=export,
        progress=progress,
        log=_log,
    )
    _report(
        result,
        json_out,
        f"for {result.global_step} steps ({result.epochs} epochs, {result.steps_per_second:.2f} steps/s this session)",
    )


def _train_notes(source: Path, out: Path, *, json_out: bool, **settings: object) -> None:
    from neurorack.training.note_run import train_notes

    result = train_notes(source, out=out, log=_log, **settings)  # type: ignore[arg-type]
    _report(result, json_out, f"to step {result.global_step} of its last stage")


def _report(result: TrainResult, json_out: bool, progress: str) -> None:
    """What a training session prints on stdout: JSON, or a line (``trained MODEL <progress>; best ...``) and
    the model file. Extra DDP processes print nothing (the first one reports)."""
    if not result.primary:
        return
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    best = f"{result.best_val_loss:.4f}" if result.best_val_loss is not None else "n/a"
    console.print(f"trained {result.model} {progress}; best validation loss {best}", highlight=False)
    if result.model_file is not None:
        console.print(f"model: {result.model_file}", highlight=False)


def _is_note_run(run: Path) -> bool:
    """True for a folder whose run.json is a note run's (SING)."""
    from neurorack.training.note_run import NOTE_RUN_FORMAT

    try:
        return bool(json.loads((run / "run.json").read_text(encoding="utf-8")).get("format") == NOTE_RUN_FORMAT)
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False


def export_command(
    run: Annotated[
        Path,
        typer.Argument(
            help="A training run folder (neurorack train --out), or a model file to copy with a new --corpus prior.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Model file to write. \\[default: RUN/model.safetensors]", show_default=False),
    ] = None,
    anchors: Annotated[int, typer.Option(help="Reference sounds stored as anchors.")] = 8,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Export this checkpoint instead of the best one.", show_default=False),
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(
            help="With a model file: fit its descriptor prior (the moved-knob guess) on this corpus's train split.",
            show_default=False,
        ),
    ] = None,
    half: Annotated[
        bool, typer.Option("--half", help="Note runs: store the weights as float16 (half the file).")
    ] = False,
) -> None:
    """Export the best checkpoint of RUN as one playable model file, with anchors and a prior from its corpus.

    Given a model file instead of a run (one exported before descriptor priors existed), write a copy to
    --out with a prior fitted on --corpus; weights and anchors are unchanged. A note run (SING) exports its
    last trained stage's best checkpoint with its instruments.
    """
    if _is_note_run(run):
        from neurorack.note_model_file import export_note_run

        path = export_note_run(run, out, checkpoint, half=half)
        console.print(f"model: {path}", highlight=False)
        return
    if half:
        raise NeurorackError("--half is for note runs")
    if run.is_file():
        _export_prior(run, out, corpus)
        return
    if corpus is not None:
        raise NeurorackError("--corpus is for a model file; a run fits its prior on its own corpus")
    from neurorack.training.export import export_run

    path = export_run(run, out, n_anchors=anchors, checkpoint=checkpoint)
    console.print(f"model: {path}", highlight=False)


def _export_prior(source: Path, out: Path | None, corpus_dir: Path | None) -> None:
    from neurorack.corpus import Corpus
    from neurorack.model_file import copy_target, export_with_prior, load_model
    from neurorack.training.export import fit_prior

    if corpus_dir is None or out is None:
        raise NeurorackError("a model file needs --corpus (the sounds to fit its prior on) and --out (the copy)")
    copy_target(source, out)  # refuse to overwrite the source before the fit, not after
    model = load_model(source)
    corpus = Corpus.open(corpus_dir)
    prior = fit_prior(model.model, corpus.sounds("train") or corpus.sounds())
    if prior is None:
        raise NeurorackError(
            f"no prior for {source}: its model ({model.name}) takes no moved-knob hint, "
            f"or {corpus_dir} has too few sounds"
        )
    path = export_with_prior(source, out, prior, loaded=model)
    console.print(f"model: {path} ({prior})", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``export`` to ``app``."""
    app.command("train")(train_command)
    app.command("export")(export_command)
