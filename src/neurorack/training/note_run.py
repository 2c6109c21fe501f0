"""A note model's training run (SING, :mod:`.sing_module`): a note corpus -> three stages -> a note model file.

Layout of a run folder ``RUN``::

    run.json                         model, settings, corpus, instruments, and each stage's state (JSON)
    <stage>/checkpoints/last.ckpt    the stage's resume point (every ``checkpoint_every`` steps and at its end)
    <stage>/checkpoints/best-*.ckpt  the stage's state with the lowest validation loss
    sequence/embeddings.safetensors  the frozen encoder's embeddings of the training notes (the LSTM's targets)
    logs/<stage>/                    TensorBoard: loss terms, audio examples, spectrograms
    model.safetensors                the exported note model (:mod:`neurorack.note_model_file`)

Stages run in order (``autoencoder``, ``sequence``, ``end-to-end``); each starts from the best state of the one
before it. A killed run continues with ``resume``: finished stages are skipped and the stage in progress
continues from its ``last.ckpt``. Budgets: ``minutes`` is the whole run's, shared between the stages as
:data:`STAGE_SHARES`; ``max_steps`` and ``max_epochs`` apply to each stage.
"""

from __future__ import annotations

import json
import math
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from neurorack.atomic import atomic_path
from neurorack.corpus.manifest import write_json_atomic
from neurorack.errors import NeurorackError
from neurorack.models.registry import NOTE_CONFIGS, build_note_model, note_config, note_model_names
from neurorack.notes.nsynth import NoteCorpus, is_note_corpus
from neurorack.training.checkpoints import _AtomicCheckpointIO, best_checkpoint, check_checkpoint, checkpoint_callbacks
from neurorack.training.note_data import NoteDataset
from neurorack.training.run_folder import (
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    LOG_DIR,
    Log,
    _is_launched_child,
    read_run_json,
)
from neurorack.training.sing_module import STAGES, SingTrainingModule
from neurorack.training.trainer_setup import (
    _final_metrics,
    _ProgressBar,
    _quiet_lightning,
    _Summary,
    _threads_for,
    _torch_threads,
)

NOTE_RUN_FORMAT = "neurorack-note-run"
NOTE_RUN_VERSION = 1
DEFAULT_NOTE_MODEL = "sing"
#: The configuration a new run trains when none is named: the CPU one.
DEFAULT_NOTE_CONFIG = "cpu"
#: Whole-run budget when none is given, minutes.
DEFAULT_NOTE_MINUTES = 60.0
#: Share of ``minutes`` each stage gets (the paper's 50 / 50 / 20 epochs, the LSTM stage being cheap here).
STAGE_SHARES: dict[str, float] = {"autoencoder": 0.4, "sequence": 0.2, "end-to-end": 0.4}
#: Settings used when neither the caller nor the run being resumed gives them (paper: lr 3e-4, BPTT 32).
NOTE_DEFAULTS: dict[str, Any] = {
    "lr": 3e-4, "batch_size": 16, "crop_frames": 64, "truncation": 32, "val_notes": 64, "magnitude_weight": 0.1,
}  # fmt: skip
EMBEDDINGS_FILE = "embeddings.safetensors"


def _resolve_config(model: str, model_config: dict[str, Any] | str | None) -> dict[str, Any]:
    """A note model's keyword arguments from a configuration name (``cpu``, ``paper``, ``tiny``), a JSON object
    (over the ``cpu`` configuration) or a dict.

    Raises:
        NeurorackError: an unknown name or a value that is not a JSON object.
    """
    if model_config is None:
        return note_config(model, DEFAULT_NOTE_CONFIG)
    if isinstance(model_config, dict):
        return {**note_config(model, DEFAULT_NOTE_CONFIG), **model_config}
    text = model_config.strip()
    if text in NOTE_CONFIGS.get(model, {}):
        return note_config(model, text)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        known = ", ".join(sorted(NOTE_CONFIGS.get(model, {})))
        raise NeurorackError(f"--model-config must be a configuration name ({known}) or a JSON object") from None
    if not isinstance(parsed, dict):
        raise NeurorackError("--model-config must be a configuration name or a JSON object")
    return {**note_config(model, DEFAULT_NOTE_CONFIG), **parsed}


def _read_run(run: Path) -> dict[str, Any]:
    return read_run_json(run, NOTE_RUN_FORMAT, "note model's training run")


def _best_or_last(stage_dir: Path) -> Path | None:
    """A stage's best checkpoint (its ``last.ckpt`` before any validation), ``None`` before any checkpoint."""
    try:
        return best_checkpoint(stage_dir)
    except NeurorackError:
        return None


def _load_weights(module: SingTrainingModule, checkpoint: Path) -> None:
    state = check_checkpoint(checkpoint)["state_dict"]
    model_state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    module.model.load_state_dict(model_state)


def precompute_embeddings(
    module: SingTrainingModule, dataset: NoteDataset, path: Path, batch_size: int, progress: bool
) -> torch.Tensor:
    """The encoder's embeddings of every note of ``dataset``, ``Tensor[n, D, frames]`` (float16), cached in ``path``.

    A cache written for the same notes (their ``note_str`` list) is read instead of recomputed.
    """
    names = [n.note_str for n in dataset.notes]
    if path.is_file():
        try:
            cached = load_file(str(path))
            if json.loads(bytes(cached["names"].tolist()).decode()) == names:
                return cached["embeddings"]
        except Exception:  # a damaged or foreign cache is recomputed
            pass
    model = module.model.eval()
    parts: list[torch.Tensor] = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    columns = [
        TextColumn("embeddings"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task("encode", total=len(dataset))
        with torch.inference_mode():
            for batch in loader:
                parts.append(model.encode(batch["audio"]).to(torch.float16))
                bar.advance(task, batch["audio"].shape[0])
    model.train()
    embeddings = torch.cat(parts) if parts else torch.zeros(0)
    encoded = torch.frombuffer(bytearray(json.dumps(names).encode()), dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({"embeddings": embeddings.contiguous(), "names": encoded.clone()}, str(tmp))
    return embeddings


def train_notes(
    source: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    model: str | None = None,
    model_config: dict[str, Any] | str | None = None,
    stages: tuple[str, ...] | None = None,
    minutes: float | None = None,
    max_steps: int | None = None,
    max_epochs: int | None = None,
    resume: bool = False,
    lr: float | None = None,
    batch_size: int | None = None,
    crop_frames: int | None = None,
    truncation: int | None = None,
    magnitude_weight: float | None = None,
    val_notes: int | None = None,
    devices: int = 1,
    nodes: int = 1,
    accelerator: str = "auto",
    threads: int | None = None,
    seed: int = 0,
    num_workers: int = 0,
    checkpoint_every: int = 50,
    example_every: int = 5,
    val_every: int | None = None,
    max_notes: int | None = None,
    export: bool = True,
    progress: bool = True,
    log: Log | None = None,
) -> Any:
    """Train a note model on a note corpus, stage by stage; checkpoint, log and export it.

    Args:
        source: a note corpus (``neurorack notes render`` or an NSynth download: ``examples.json`` + ``audio/``).
        out: the run folder (see the module docstring).
        model: a registered note model (default ``sing``; on resume, the run's).
        model_config: a configuration name (``cpu`` default, ``paper``, ``tiny``), a JSON object over ``cpu``, or a
            dict; the number of instruments comes from the corpus.
        stages: which stages to run (default: all, in order; a finished one is skipped on resume unless named).
        minutes, max_steps, max_epochs: budgets (see the module docstring; default 60 minutes).
        lr, batch_size, crop_frames, truncation, magnitude_weight: :class:`~.sing_module.SingTrainingModule`
            (3e-4, 16, 64, 32, 0.1; the paper's loss is ``magnitude_weight=0``).
        val_notes: validation notes scored per validation (whole notes, default 64).
        devices, nodes, accelerator, threads, seed, num_workers, checkpoint_every, example_every, val_every,
        export, progress, log: as for :func:`neurorack.training.run.train`.
        max_notes: use only this many notes per split (quick experiments).

    Returns:
        a :class:`~neurorack.training.run.TrainResult` of the last stage run.

    Raises:
        NeurorackError: not a note corpus, an unknown model / configuration / stage, an existing run without
            ``resume``, ``resume`` of a run that is not one, a corpus with instruments the resumed run lacks.
    """
    from neurorack.training.run import TrainResult

    _quiet_lightning()
    run = Path(out)
    child = _is_launched_child()
    say: Log = log if log is not None and not child else (lambda _msg: None)
    src = Path(source)
    if not is_note_corpus(src):
        raise NeurorackError(f"{src}: not a note corpus (no examples.json and audio/; see neurorack notes render)")
    corpus = NoteCorpus.open(src)
    previous: dict[str, Any] | None = None
    if resume:
        previous = _read_run(run)
        if model is not None and model != previous["model"]:
            raise NeurorackError(f"{run} trains {previous['model']!r}, not {model!r}")
        if model_config is not None:
            raise NeurorackError("--model-config is set when a run starts; drop it with --resume")
        model = str(previous["model"])
        config = dict(previous["model_config"])
        instruments = list(previous["instruments"])
        unknown = sorted(set(corpus.instruments) - set(instruments))
        if unknown:
            raise NeurorackError(f"{src} has instruments the run did not start with: {', '.join(unknown[:5])}")
    else:
        if (run / "run.json").is_file() and not child:
            raise NeurorackError(
                f"{run} already holds a training run; pass --resume to continue it or choose another --out"
            )
        model = model or DEFAULT_NOTE_MODEL
        if model not in note_model_names():
            raise NeurorackError(f"unknown note model {model!r}; known: {', '.join(note_model_names())}")
        instruments = list(corpus.instruments)
        config = _resolve_config(model, model_config)
        config.update(n_instruments=len(instruments), sample_rate=corpus.sample_rate)
        try:
            config = dict(build_note_model(model, **config).config)
        except (TypeError, ValueError) as exc:
            raise NeurorackError(f"cannot build {model!r} with {config}: {exc}") from None

    def setting(name: str, value: Any) -> Any:
        if value is not None:
            return value
        return (previous or {}).get("settings", {}).get(name, NOTE_DEFAULTS[name])

    settings: dict[str, Any] = {
        "lr": float(setting("lr", lr)),
        "batch_size": int(setting("batch_size", batch_size)),
        "crop_frames": int(setting("crop_frames", crop_frames)),
        "truncation": int(setting("truncation", truncation)),
        "magnitude_weight": float(setting("magnitude_weight", magnitude_weight)),
        "val_notes": int(setting("val_notes", val_notes)),
    }
    for name in ("batch_size", "truncation", "val_notes"):
        if settings[name] < 1:
            raise NeurorackError(f"--{name.replace('_', '-')} must be >= 1, got {settings[name]}")
    chosen = tuple(stages) if stages else STAGES
    bad = [s for s in chosen if s not in STAGES]
    if bad:
        raise NeurorackError(f"unknown stage {bad[0]!r}; the stages are {', '.join(STAGES)}")
    if minutes is not None and minutes <= 0:
        raise NeurorackError(f"--minutes must be positive, got {minutes}")
    if minutes is None and max_steps is None and max_epochs is None:
        minutes = float((previous or {}).get("minutes") or DEFAULT_NOTE_MINUTES)

    train_notes_list = corpus.split("train")
    val_list = corpus.split("validation") or train_notes_list
    if max_notes is not None:
        train_notes_list, val_list = train_notes_list[:max_notes], val_list[:max_notes]
    if not train_notes_list:
        raise NeurorackError(f"{src}: no training notes")
    val_list = val_list[: settings["val_notes"]]
    samples = round(config["sample_rate"] * config["note_seconds"])
    train_set = NoteDataset(corpus, train_notes_list, instruments, samples)
    val_set = NoteDataset(corpus, val_list, instruments, samples)
    say(
        f"{model}: {len(instruments)} instruments; {len(train_set)} training / {len(val_set)} validation notes "
        f"(pitch-completion split); batch {settings['batch_size']}, lr {settings['lr']:g}"
    )

    state: dict[str, Any] = dict((previous or {}).get("stages", {}))
    run.mkdir(parents=True, exist_ok=True)
    sessions = list((previous or {}).get("sessions", []))
    sessions.append({"started": datetime.now(UTC).isoformat(timespec="seconds"), "resume": resume, "stages": chosen})
    record: dict[str, Any] = {
        "format": NOTE_RUN_FORMAT,
        "version": NOTE_RUN_VERSION,
        "model": model,
        "model_config": config,
        "corpus": str(corpus.path.resolve()),
        "instruments": instruments,
        "settings": settings,
        "seed": seed,
        "minutes": minutes,
        "max_steps": max_steps,
        "max_epochs": max_epochs,
        "stages": state,
        "sessions": sessions,
    }
    if not child:
        write_json_atomic(run / "run.json", record)

    L.seed_everything(seed, workers=True, verbose=False)
    torch_threads = _threads_for(accelerator, devices, threads)
    result: TrainResult | None = None
    previous_stage: str | None = None
    for stage in STAGES:
        if stage not in chosen:
            previous_stage = stage if _best_or_last(run / stage) else previous_stage
            continue
        info = dict(state.get(stage, {}))
        if info.get("done") and resume and not stages:
            say(f"{stage}: done earlier, skipped")
            previous_stage = stage
            continue
        module = SingTrainingModule(
            model,
            config,
            stage,
            lr=settings["lr"],
            crop_frames=settings["crop_frames"],
            truncation=settings["truncation"],
            magnitude_weight=settings["magnitude_weight"],
            example_every=example_every,
        )
        stage_dir = run / stage
        last = stage_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
        ckpt_path = str(last) if last.is_file() else None
        if ckpt_path is None and previous_stage is not None:
            start = _best_or_last(run / previous_stage)
            if start is not None:
                _load_weights(module, start)
                say(f"{stage}: starting from {start}")
        elif ckpt_path is not None and not resume:
            raise NeurorackError(f"{stage_dir} holds checkpoints; pass --resume or choose another --out")
        stage_train = train_set
        if stage == "sequence":
            if ckpt_path is not None:  # the encoder is frozen in this stage: the checkpoint holds the one to use
                _load_weights(module, Path(ckpt_path))
            embeddings = precompute_embeddings(
                module, train_set, stage_dir / EMBEDDINGS_FILE, settings["batch_size"], progress
            )
            stage_train = NoteDataset(corpus, train_notes_list, instruments, samples, embeddings=embeddings)
        seconds = minutes * 60 * STAGE_SHARES[stage] if minutes is not None else None
        result = _fit_stage(
            module,
            stage,
            stage_dir,
            run,
            stage_train,
            val_set,
            ckpt_path=ckpt_path,
            seconds=seconds,
            settings=settings,
            max_steps=max_steps,
            max_epochs=max_epochs,
            devices=devices,
            nodes=nodes,
            accelerator=accelerator,
            num_workers=num_workers,
            checkpoint_every=checkpoint_every,
            val_every=val_every,
            torch_threads=torch_threads,
            progress=progress,
            say=say,
            corpus=corpus.path,
            model=model,
            resumed=ckpt_path is not None,
        )
        state[stage] = {
            "done": True,
            "steps": result.global_step,
            "epochs": result.epochs,
            "best_val_loss": result.best_val_loss,
            "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
        }
        record["stages"] = state
        if result.primary and not child:
            write_json_atomic(run / "run.json", record)
        previous_stage = stage
    if result is None:
        raise NeurorackError(f"{run}: every stage asked for is done already (name one with --stages to train it on)")
    if export and result.primary and not child:
        from neurorack.note_model_file import export_note_run

        result.model_file = export_note_run(run)
        say(f"exported {result.model_file}")
    return result


def _fit_stage(
    module: SingTrainingModule,
    stage: str,
    stage_dir: Path,
    run: Path,
    train_set: NoteDataset,
    val_set: NoteDataset,
    *,
    ckpt_path: str | None,
    seconds: float | None,
    settings: dict[str, Any],
    max_steps: int | None,
    max_epochs: int | None,
    devices: int,
    nodes: int,
    accelerator: str,
    num_workers: int,
    checkpoint_every: int,
    val_every: int | None,
    torch_threads: int | None,
    progress: bool,
    say: Log,
    corpus: Path,
    model: str,
    resumed: bool,
) -> Any:
    from neurorack.training.run import TrainResult

    batch = settings["batch_size"]
    loader_args: dict[str, Any] = {"batch_size": batch, "num_workers": num_workers}
    if num_workers > 0:
        loader_args["persistent_workers"] = True
    train_loader = DataLoader(train_set, shuffle=True, drop_last=len(train_set) >= 2 * batch, **loader_args)
    val_loader = DataLoader(val_set, shuffle=False, **loader_args)
    ckpt_dir = stage_dir / CHECKPOINT_DIR
    best_cb, last_cb = checkpoint_callbacks(ckpt_dir, checkpoint_every)
    summary = _Summary(lambda line: say(f"{stage}: {line}"))
    callbacks: list[Callback] = [best_cb, last_cb, summary]
    if progress:
        callbacks.append(_ProgressBar())
    world = devices * nodes
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=nodes,
        strategy="ddp_find_unused_parameters_true" if world > 1 else "auto",
        max_steps=max_steps if max_steps is not None else -1,
        max_epochs=max_epochs if max_epochs is not None else -1,
        logger=TensorBoardLogger(save_dir=str(run), name=LOG_DIR, version=stage, default_hp_metric=False),
        callbacks=callbacks,
        plugins=[_AtomicCheckpointIO()],
        default_root_dir=str(stage_dir),
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(10, len(train_loader))),
        val_check_interval=min(val_every, len(train_loader)) if val_every else None,
        # the stage's share of the minutes, counted over resumes (Lightning keeps its timer in the checkpoint)
        max_time=timedelta(seconds=seconds) if seconds is not None else None,
    )
    last = ckpt_dir / LAST_CHECKPOINT
    with _torch_threads(torch_threads):
        started = time.monotonic()
        if ckpt_path is not None:
            say(f"{stage}: resuming from {ckpt_path}")
        trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path, weights_only=True)
        wall = time.monotonic() - started
        if last_cb._last_global_step_saved != trainer.global_step:
            trainer.save_checkpoint(last, weights_only=False)
    best_path = Path(best_cb.best_model_path) if best_cb.best_model_path else _best_or_last(stage_dir)
    best_score = float(best_cb.best_model_score) if best_cb.best_model_score is not None else None
    steps = trainer.global_step - summary.start_step
    return TrainResult(
        run=run,
        corpus=corpus,
        model=model,
        global_step=trainer.global_step,
        epochs=trainer.current_epoch,
        seconds=wall,
        steps_per_second=steps / wall if wall > 0 else math.nan,
        best_checkpoint=best_path if best_path and best_path.is_file() else None,
        last_checkpoint=last if last.is_file() else None,
        best_val_loss=best_score,
        metrics=_final_metrics(trainer),
        resumed=resumed,
        primary=trainer.is_global_zero,
    )
