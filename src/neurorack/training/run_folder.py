"""A training run's folder: its layout, its ``run.json`` and the corpus it trains on."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neurorack.corpus import Corpus, build_corpus
from neurorack.corpus.manifest import CORPUS_JSON
from neurorack.errors import NeurorackError

RUN_JSON = "run.json"
RUN_FORMAT = "neurorack-run"
RUN_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
BEST_PREFIX = "best"
LOG_DIR = "logs"
CORPUS_DIR = "corpus"
MODEL_FILE = "model.safetensors"

Log = Callable[[str], None]


def _is_launched_child() -> bool:
    """True in the extra processes Lightning's DDP launcher starts (they re-run the command line)."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0) > 0


def read_run_json(run: Path, run_format: str = RUN_FORMAT, kind: str = "neurorack run file") -> dict[str, Any]:
    """The ``run.json`` of a run folder whose ``format`` is ``run_format`` (``kind`` names it in the error).

    Raises:
        NeurorackError: missing or unreadable.
    """
    path = run / RUN_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NeurorackError(f"{run}: not a training run (no {RUN_JSON})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NeurorackError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != run_format:
        raise NeurorackError(f"{path}: not a {kind}")
    return data


def open_source(source: Path, run: Path, *, progress: bool, jobs: int | None, log: Log) -> Corpus:
    """The corpus to train on: ``source`` itself when it is a corpus, else one built from it into ``run/corpus``.

    Raises:
        NeurorackError: ``source`` is missing, or neither a corpus nor a folder of audio.
    """
    if not source.exists():
        raise NeurorackError(f"{source}: no such corpus or sample folder")
    if (source / CORPUS_JSON).is_file():
        return Corpus.open(source)
    if not source.is_dir():
        raise NeurorackError(f"{source}: not a folder (give a corpus or a folder of audio samples)")
    target = run / CORPUS_DIR
    if _is_launched_child():
        return Corpus.open(target)
    log(f"building a corpus from {source} into {target}")
    report = build_corpus([source], target, jobs=jobs, progress=progress)
    if report.sounds == 0:
        raise NeurorackError(f"{source}: no usable audio found ({len(report.skipped)} files skipped)")
    log(f"corpus: {report.sounds} sounds ({', '.join(f'{k} {v}' for k, v in report.splits.items())})")
    return Corpus.open(target)
