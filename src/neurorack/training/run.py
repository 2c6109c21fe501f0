"""A training run: from a corpus (or a plain folder of samples) to checkpoints, logs and a model file.

Layout of a run folder ``RUN``::

    run.json                  what was trained on what, with which settings (JSON, rewritten per session)
    corpus/                   the corpus built from a sample folder (only when trained from one)
    checkpoints/last.ckpt     the latest state (every ``checkpoint_every`` steps and at the end): resume point
    checkpoints/best-*.ckpt   the state with the lowest validation loss
    logs/                     TensorBoard: loss terms, learning rate, audio examples, spectrograms
    model.safetensors         the exported, playable model (:mod:`neurorack.model_file`)

Budgets (``minutes``, ``max_steps``, ``max_epochs``) are totals over the whole run, resumes
included (Lightning's semantics): to train longer, resume with a larger budget.

Multi-device training (``devices * nodes > 1``) uses DDP; Lightning starts the other processes by
re-running the command line, so call it from a script or the ``neurorack`` command, not from an
interactive session or a test runner.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader

from neurorack.corpus import Corpus
from neurorack.corpus.manifest import write_json_atomic
from neurorack.errors import NeurorackError
from neurorack.model_file import LoadedModel, load_model
from neurorack.models.registry import TINY_CONFIGS, build_model, legacy_kwargs, model_names
from neurorack.training.checkpoints import _AtomicCheckpointIO, check_checkpoint, checkpoint_callbacks
from neurorack.training.data import SegmentDataset, descriptor_statistics
from neurorack.training.export import DEFAULT_ANCHORS, export_run
from neurorack.training.module import ImpactTrainingModule
from neurorack.training.objectives import objective_module
from neurorack.training.run_folder import (
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    LOG_DIR,
    MODEL_FILE,
    RUN_FORMAT,
    RUN_JSON,
    RUN_VERSION,
    Log,
    _is_launched_child,
    open_source,
    read_run_json,
)
from neurorack.training.trainer_setup import (
    _final_metrics,
    _ProgressBar,
    _quiet_lightning,
    _Summary,
    _threads_for,
    _torch_threads,
)

DEFAULT_MODEL = "ddsp-impact"
#: Training budget when none is given: with the corpus build and the export, `neurorack train FOLDER` stays
#: within 30 minutes on a 2-core CPU for ~600 one-shots.
DEFAULT_MINUTES = 27.0
#: Adam learning rate per model (the paper's 1e-4 for the faithful model; the DDSP model trains well faster).
DEFAULT_LR: dict[str, float] = {"sinc-nsf": 1e-4}
FALLBACK_LR = 1e-3
#: Training settings used when neither the caller nor the run being resumed gives them.
TRAIN_DEFAULTS: dict[str, Any] = {
    "lr_factor": 0.5,
    "lr_patience": 20,
    "batch_size": 8,
    "frames": 64,
    "descriptor_weight": 1.0,
    "control_weight": 1.0,
    "augment_fraction": 0.25,
    "drawing_fraction": 0.0,
    "drawing_weight": 1.0,
    "waveform_adversary": False,
    "adversary_weight": 1.0,
}


def training_module_class(model: str) -> type[ImpactTrainingModule]:
    """The LightningModule that trains a registered model: the one of its declared objective."""
    from neurorack.models.registry import MODELS

    model_names()  # imports the model modules
    cls = MODELS.get(model)
    return objective_module(cls.objective) if cls is not None else ImpactTrainingModule


def _init_model(
    init: str | os.PathLike[str] | None, model: str | None, model_config: Any, resume: bool
) -> LoadedModel | None:
    """The model file a new run starts from (``None`` without ``init``), checked against the other settings."""
    if init is None:
        return None
    if resume:
        raise NeurorackError("--init starts a new run; a resumed run continues from its checkpoint (drop --init)")
    if model_config is not None:
        raise NeurorackError("--init takes the settings of its model file; drop --model-config")
    start = load_model(init)
    if model is not None and model != start.metadata["class"]:
        raise NeurorackError(f"{start.path} holds a {start.metadata['class']!r} model, not {model!r}")
    return start


def default_lr(model: str) -> float:
    """Default Adam learning rate of a registered model."""
    return DEFAULT_LR.get(model, FALLBACK_LR)


@dataclass
class TrainResult:
    """What a call to :func:`train` did.

    Attributes:
        run: the run folder.
        corpus: the corpus trained on.
        model: registered model name.
        global_step: optimiser steps done in total (resumes included).
        epochs: epochs started in total.
        seconds: wall time of this session's fit, s.
        steps_per_second: optimiser steps of this session per second of fit wall time.
        best_checkpoint, last_checkpoint: checkpoint files (``None`` when absent).
        best_val_loss: lowest validation loss seen (``None`` before any validation).
        metrics: last logged values (train and validation terms, learning rate), floats.
        model_file: the exported model, ``None`` when not exported.
        resumed: this session continued an earlier one.
        primary: this process is the one that writes files (``False`` in extra DDP processes).
    """

    run: Path
    corpus: Path
    model: str
    global_step: int
    epochs: int
    seconds: float
    steps_per_second: float
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_val_loss: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    model_file: Path | None = None
    resumed: bool = False
    primary: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def resolve_model_config(model: str, model_config: dict[str, Any] | str | None) -> dict[str, Any]:
    """Keyword arguments of a model: a dict, a JSON object string, ``"tiny"`` (the test configuration) or None.

    The analysis settings (``sample_rate``, ``hop_length``, ``frame_length``) are left out: they come
    from the corpus.

    Raises:
        NeurorackError: unknown model, or a config that is not a JSON object.
    """
    names = model_names()
    if model not in names:
        raise NeurorackError(f"unknown model {model!r}; known: {', '.join(names)}")
    if model_config is None:
        config: dict[str, Any] = {}
    elif isinstance(model_config, dict):
        config = dict(model_config)
    elif model_config.strip() == "tiny":
        config = dict(TINY_CONFIGS[model])
    else:
        try:
            parsed = json.loads(model_config)
        except json.JSONDecodeError as exc:
            raise NeurorackError(f"--model-config must be 'tiny' or a JSON object: {exc}") from None
        if not isinstance(parsed, dict):
            raise NeurorackError("--model-config must be 'tiny' or a JSON object")
        config = parsed
    for key in ("sample_rate", "hop_length", "frame_length"):
        config.pop(key, None)
    return config


def _datasets(corpus: Corpus, frames: int, seed: int, max_sounds: int | None, log: Log) -> tuple[SegmentDataset, ...]:
    train_set = SegmentDataset(corpus, "train", frames, seed=seed, max_sounds=max_sounds)
    if corpus.sounds("validation"):
        val_set = SegmentDataset(corpus, "validation", frames, random_crops=False, max_sounds=max_sounds)
    else:  # tiny folders: the hash split may leave validation empty
        log("the corpus has no validation sound: validating on the training sounds")
        val_set = SegmentDataset(corpus, "train", frames, random_crops=False, max_sounds=max_sounds)
    return train_set, val_set


def train(
    source: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    model: str | None = None,
    model_config: dict[str, Any] | str | None = None,
    minutes: float | None = None,
    max_steps: int | None = None,
    max_epochs: int | None = None,
    resume: bool = False,
    lr: float | None = None,
    lr_factor: float | None = None,
    lr_patience: int | None = None,
    batch_size: int | None = None,
    frames: int | None = None,
    descriptor_weight: float | None = None,
    control_weight: float | None = None,
    augment_fraction: float | None = None,
    drawing_fraction: float | None = None,
    drawing_weight: float | None = None,
    init: str | os.PathLike[str] | None = None,
    waveform_adversary: bool | None = None,
    adversary_weight: float | None = None,
    devices: int = 1,
    nodes: int = 1,
    accelerator: str = "auto",
    threads: int | None = None,
    seed: int = 0,
    num_workers: int = 0,
    checkpoint_every: int = 50,
    example_every: int = 5,
    val_every: int | None = None,
    max_sounds: int | None = None,
    export: bool = True,
    n_anchors: int = DEFAULT_ANCHORS,
    progress: bool = True,
    jobs: int | None = None,
    log: Log | None = None,
) -> TrainResult:
    """Train an impact model on a corpus or a folder of samples; checkpoint, log and export it.

    Args:
        source: a corpus folder, or a folder of audio samples (a corpus is then built in ``out/corpus``).
        out: the run folder (see the module docstring for its layout).
        model: registered model name (default ``ddsp-impact``; on resume, taken from the run).
        model_config: model keyword arguments: dict, JSON object string, or ``"tiny"``.
        minutes: total training time budget (default :data:`DEFAULT_MINUTES` when no budget is given).
        max_steps, max_epochs: total optimiser-step / epoch budgets.
        resume: continue from ``out/checkpoints/last.ckpt``.
        lr: Adam learning rate (default per model: 1e-4 for ``sinc-nsf`` as in the paper, else 1e-3); on
            resume, the current (possibly halved) rate of the run unless given.
        lr_factor, lr_patience: ReduceLROnPlateau on the validation loss (factor 0.5, patience 20 epochs).
        batch_size: crops per batch (per device; default 8).
        frames: crop length in descriptor frames (default 64: 64 frames of 512 samples = 0.74 s at 44.1 kHz).
        descriptor_weight, control_weight, augment_fraction: see :class:`ImpactTrainingModule` (1, 1, 0.25).
        drawing_fraction, drawing_weight: impact models only: share of each batch trained on random
            drawings and the weight of their descriptor loss (:class:`ImpactTrainingModule`; 0, 1: off by default,
            see ``docs/design-notes.md``).
        init: a model file (or bundled model name) whose weights and descriptor statistics start the run
            (fine-tuning); its class and settings are used, so ``model_config`` cannot be given with it.
        waveform_adversary: train autoencoders with the adversarial waveform stage (a multi-scale STFT
            discriminator, :class:`~neurorack.training.fader_module.FaderTrainingModule`; default off: it is
            slow on a CPU). Set for the whole run: it cannot change on resume.
        adversary_weight: autoencoders only: weight of the latent adversary's fader term after its warm-up
            (:class:`~neurorack.training.fader_module.FaderTrainingModule`, default 1; ignored by
            ``fader-ae-cvae``, which has no adversary).

        Settings left at ``None`` take the run's own values on resume, else the defaults
        (:data:`TRAIN_DEFAULTS`).
        devices, nodes, accelerator: Lightning device settings; DDP when ``devices * nodes > 1``.
        threads: torch threads per process on the CPU (default: the cores divided among local processes;
            on a machine busy with other work, 1 is often much faster).
        seed: global seed.
        num_workers: data-loader worker processes (the data are in memory; 0 is right on small CPUs).
        checkpoint_every: write ``last.ckpt`` every this many optimiser steps.
        example_every: TensorBoard audio examples every this many epochs.
        val_every: validate every this many optimiser steps (default: once per epoch); the learning-rate
            schedule still counts epochs.
        max_sounds: use only this many sounds per split (quick experiments).
        export: write ``out/model.safetensors`` from the best checkpoint at the end.
        n_anchors: anchors stored in the exported model.
        progress: rich progress bar (with ETA).
        jobs: worker processes for building a corpus from a sample folder.
        log: where one-line messages go (default: nowhere).

    Returns:
        a :class:`TrainResult` (in every process; only the first writes files).

    Raises:
        NeurorackError: missing source, unknown model, a run with checkpoints without ``resume``, ``init``
            with ``resume`` or ``model_config``, an ``init`` file of another model or analysis settings,
            ``resume`` without a checkpoint, a model that does not match the run, or ``waveform_adversary``
            for a model that is not an autoencoder or other than the resumed run's.
    """
    _quiet_lightning()
    run = Path(out)
    child = _is_launched_child()
    say: Log = log if log is not None and not child else (lambda _msg: None)
    ckpt_dir = run / CHECKPOINT_DIR
    last = ckpt_dir / LAST_CHECKPOINT
    previous: dict[str, Any] | None = None
    start = _init_model(init, model, model_config, resume)
    if start is not None:
        model = str(start.metadata["class"])
        model_config = dict(start.metadata["kwargs"])
    if resume:
        if not last.is_file():
            raise NeurorackError(f"{run}: nothing to resume ({last} does not exist); start without --resume")
        previous = read_run_json(run)
        check_checkpoint(last)
        if model is not None and model != previous["model"]:
            raise NeurorackError(
                f"{run} trains {previous['model']!r}, not {model!r}; drop --model or choose another --out"
            )
        model = str(previous["model"])
        config = dict(previous["model_config"])
    else:
        if not child and ckpt_dir.is_dir() and any(ckpt_dir.glob("*.ckpt")):
            raise NeurorackError(
                f"{run} already holds a training run; pass --resume to continue it or choose another --out"
            )
        model = model or DEFAULT_MODEL
        config = resolve_model_config(model, model_config)

    def setting(name: str, value: Any) -> Any:
        if value is not None:
            return value
        return previous.get(name, TRAIN_DEFAULTS[name]) if previous else TRAIN_DEFAULTS[name]

    lr_factor = float(setting("lr_factor", lr_factor))
    lr_patience = int(setting("lr_patience", lr_patience))
    batch_size = int(setting("batch_size", batch_size))
    frames = int(setting("frames", frames))
    descriptor_weight = float(setting("descriptor_weight", descriptor_weight))
    control_weight = float(setting("control_weight", control_weight))
    augment_fraction = float(setting("augment_fraction", augment_fraction))
    drawing_given = drawing_fraction is not None or drawing_weight is not None
    drawing_fraction = float(setting("drawing_fraction", drawing_fraction))
    drawing_weight = float(setting("drawing_weight", drawing_weight))
    if not 0 <= drawing_fraction < 1:
        raise NeurorackError(f"--drawing-fraction must lie in [0, 1), got {drawing_fraction}")
    if drawing_weight < 0:
        raise NeurorackError(f"--drawing-weight must be >= 0, got {drawing_weight}")
    if resume and waveform_adversary is not None and previous is not None:
        before = bool(previous.get("waveform_adversary", TRAIN_DEFAULTS["waveform_adversary"]))
        if waveform_adversary != before:
            state = "with" if before else "without"
            raise NeurorackError(
                f"{run} was trained {state} the waveform adversary, which cannot change on resume; start a new run"
            )
    waveform_adversary = bool(setting("waveform_adversary", waveform_adversary))
    module_class = training_module_class(model)
    autoencoder = module_class is not ImpactTrainingModule
    given = {"--waveform-adversary": bool(waveform_adversary), "--adversary-weight": adversary_weight is not None}
    for flag, named in given.items():
        if named and not autoencoder:
            autoencoders = [n for n in model_names() if training_module_class(n) is not ImpactTrainingModule]
            raise NeurorackError(f"{flag} is for autoencoders ({', '.join(autoencoders)}), not {model!r}")
    if drawing_given and autoencoder:
        raise NeurorackError(f"--drawing-fraction and --drawing-weight are for impact models, not {model!r}")
    adversary_weight = float(setting("adversary_weight", adversary_weight))
    if adversary_weight < 0:
        raise NeurorackError(f"--adversary-weight must be >= 0, got {adversary_weight}")
    for name, value in (("batch_size", batch_size), ("frames", frames), ("devices", devices), ("nodes", nodes)):
        if value < 1:
            raise NeurorackError(f"{name} must be >= 1, got {value}")
    if minutes is not None and minutes <= 0:
        raise NeurorackError(f"--minutes must be positive, got {minutes}")
    corpus = open_source(Path(source), run, progress=progress and not child, jobs=jobs, log=say)
    cfg = corpus.config
    analysis = {"sample_rate": cfg.sample_rate, "hop_length": cfg.hop_length, "frame_length": cfg.frame_length}
    if start is not None and any(start.metadata["kwargs"].get(k) != v for k, v in analysis.items()):
        raise NeurorackError(f"{start.path} was trained with other analysis settings than the corpus {corpus.path} has")
    config.update(analysis)
    if previous is not None and previous["model_config"] != config:
        raise NeurorackError(f"{run} was trained with other analysis settings than the corpus {corpus.path} has")
    # every setting named (new runs), or the values of the time (runs older than a setting)
    config = dict(build_model(model, **config).config) if previous is None else {**legacy_kwargs(model), **config}
    learning_rate = lr if lr is not None else (float(previous["lr"]) if previous else default_lr(model))
    if minutes is None and max_steps is None and max_epochs is None:
        minutes = float(previous["minutes"]) if previous and previous.get("minutes") else DEFAULT_MINUTES

    L.seed_everything(seed, workers=True, verbose=False)
    torch_threads = _threads_for(accelerator, devices, threads)
    stage: dict[str, Any] = {"waveform_adversary": True} if waveform_adversary else {}
    if autoencoder:
        stage["adversary_weight"] = adversary_weight
    else:
        stage.update(drawing_fraction=drawing_fraction, drawing_weight=drawing_weight, drawing_seed=seed)
    try:
        module = module_class(
            model,
            config,
            lr=learning_rate,
            lr_factor=lr_factor,
            lr_patience=lr_patience,
            descriptor_weight=descriptor_weight,
            control_weight=control_weight,
            augment_fraction=augment_fraction,
            example_every=example_every,
            **stage,
        )
    except (TypeError, ValueError) as exc:
        raise NeurorackError(f"cannot build {model!r} with {config}: {exc}") from None
    if start is not None:
        module.model.load_state_dict(start.model.state_dict())  # weights and descriptor statistics
        say(f"starting from {start.path}")
    elif not resume:
        mean, std = descriptor_statistics(corpus, max_sounds=max_sounds)
        module.set_statistics(mean, std)
    elif lr is not None:
        module.lr_override = lr  # the checkpoint's optimiser state would restore the old one
    train_set, val_set = _datasets(corpus, frames, seed, max_sounds, say)
    params = sum(p.numel() for p in module.model.parameters())
    say(
        f"{model}: {params / 1e6:.3f} M parameters; {len(train_set)} training / {len(val_set)} validation sounds; "
        f"lr {learning_rate:g}, batch {batch_size} x {frames} frames"
        + ("; adversarial waveform stage on" if waveform_adversary else "")
    )

    if not child:
        run.mkdir(parents=True, exist_ok=True)
        sessions = list(previous.get("sessions", [])) if previous else []
        sessions.append(
            {
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "resume": resume,
                "minutes": minutes,
                "max_steps": max_steps,
                "max_epochs": max_epochs,
                "devices": devices,
                "nodes": nodes,
            }
        )
        write_json_atomic(
            run / RUN_JSON,
            {
                "format": RUN_FORMAT,
                "version": RUN_VERSION,
                "model": model,
                "model_config": config,
                "corpus": str(corpus.path.resolve()),
                "source": str(Path(source).resolve()),
                "lr": learning_rate,
                "lr_factor": lr_factor,
                "lr_patience": lr_patience,
                "batch_size": batch_size,
                "frames": frames,
                "descriptor_weight": descriptor_weight,
                "control_weight": control_weight,
                "augment_fraction": augment_fraction,
                "drawing_fraction": drawing_fraction,
                "drawing_weight": drawing_weight,
                "init": str(start.path) if start is not None else (previous or {}).get("init"),
                "waveform_adversary": waveform_adversary,
                "adversary_weight": adversary_weight,
                "seed": seed,
                "minutes": minutes,
                "max_steps": max_steps,
                "max_epochs": max_epochs,
                "sessions": sessions,
            },
        )

    loader_args: dict[str, Any] = {"batch_size": batch_size, "num_workers": num_workers}
    if num_workers > 0:
        loader_args["persistent_workers"] = True
    train_loader = DataLoader(train_set, shuffle=True, drop_last=len(train_set) >= 2 * batch_size, **loader_args)
    val_loader = DataLoader(val_set, shuffle=False, **loader_args)

    best_cb, last_cb = checkpoint_callbacks(ckpt_dir, checkpoint_every)
    summary = _Summary(say)
    callbacks: list[Callback] = [best_cb, last_cb, LearningRateMonitor(logging_interval="epoch"), summary]
    if progress:
        callbacks.append(_ProgressBar())
    world = devices * nodes
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=nodes,
        # the autoencoder's manual steps leave parameters without gradient in some backward passes
        # (the discriminators' in the autoencoder step): DDP must look for them
        strategy=("ddp_find_unused_parameters_true" if autoencoder else "ddp") if world > 1 else "auto",
        max_time=timedelta(minutes=minutes) if minutes is not None else None,
        max_steps=max_steps if max_steps is not None else -1,
        max_epochs=max_epochs if max_epochs is not None else -1,
        logger=TensorBoardLogger(save_dir=str(run), name=LOG_DIR, version="", default_hp_metric=False),
        callbacks=callbacks,
        plugins=[_AtomicCheckpointIO()],
        default_root_dir=str(run),
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(10, len(train_loader))),
        val_check_interval=min(val_every, len(train_loader)) if val_every else None,
    )
    with _torch_threads(torch_threads):
        started = time.monotonic()
        if resume:
            say(f"resuming from {last}")
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(last) if resume else None, weights_only=True)
        seconds = time.monotonic() - started
        if last_cb._last_global_step_saved != trainer.global_step:
            # the final state, whatever stopped the run (time budget, epochs) between two periodic saves
            trainer.save_checkpoint(last, weights_only=False)
        steps = trainer.global_step - summary.start_step
        best_path = Path(best_cb.best_model_path) if best_cb.best_model_path else None
        best_score = float(best_cb.best_model_score) if best_cb.best_model_score is not None else None
        result = TrainResult(
            run=run,
            corpus=corpus.path,
            model=model,
            global_step=trainer.global_step,
            epochs=trainer.current_epoch,
            seconds=seconds,
            steps_per_second=steps / seconds if seconds > 0 else math.nan,
            best_checkpoint=best_path if best_path and best_path.is_file() else None,
            last_checkpoint=last if last.is_file() else None,
            best_val_loss=best_score,
            metrics=_final_metrics(trainer),
            resumed=resume,
            primary=trainer.is_global_zero and not child,
        )
        if result.primary:
            data = read_run_json(run)
            data["last_step"] = trainer.global_step
            data["best_checkpoint"] = str(result.best_checkpoint) if result.best_checkpoint else None
            data["best_val_loss"] = best_score
            write_json_atomic(run / RUN_JSON, data)
            if export:
                result.model_file = export_run(run, run / MODEL_FILE, n_anchors=n_anchors)
                say(f"exported {result.model_file}")
    return result
