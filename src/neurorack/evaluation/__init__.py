"""Evaluation of generators on a corpus's held-out sounds (SPEC §6; ``neurorack eval``).

Every generator — the model files given, plus the baselines ``silence``, ``dsp`` and ``nearest``
(built from the corpus's **train** split) — is measured on the corpus's **test** split (``split="all"``:
on every sound of a library held out from training). Sounds a model file lists as trained on
(``training.trained_on``) are left out for every generator: two libraries can ship the same sample
(Hydrogen's ``GMRockKit`` is ``The Black Pearl 1.0`` of ``hydrogen-drumkits``, renamed):

* **MR-STFT** (:func:`~neurorack.metrics.mrstft.mrstft_distance`): each test sound is
  reconstructed from its own descriptor curves (``generate(curves, seed=seed + i)``) and
  compared with the real sound; median, mean and count over the sounds (lower is better;
  real one-shots: silence ≈ 3.7, another real sound ≈ 4.5).
* **Control response** per descriptor (:func:`~neurorack.metrics.control.control_response_many`,
  scales :data:`~neurorack.metrics.control.DEFAULT_SCALES`): median slope of log(measured) vs
  log(scale) and median Spearman ρ (both ideally 1) over the first ``control_limit`` test sounds.
  For ``f0`` only **tonal** sounds count (:func:`is_tonal`): pitch means nothing on a noise burst.
  Generators that take the moved-knob hint (``Generator.takes_focus``, e.g. ``ddsp-impact``) are
  measured a second time on :data:`FOCUS_DESCRIPTORS` with the scaled descriptor named
  (``control_focused``; the table's "…, knob named" row), as when a player turns that knob. Models
  whose file carries a descriptor prior read the moved knob from the bare curves in the plain
  measurement; they are measured once more with that guess off (``control_bare``; "…, prior off").
* **Speed** (:func:`~neurorack.metrics.speed.realtime_factor`): × real time for a 1 s synthetic
  impact on one CPU thread, batch 1, median of runs, as a :class:`~neurorack.bench.BenchRow`;
  plus parameter count and file size of model files.
* **Autoencoders** (``fader-ae``, SPEC §5) are measured by **transfer**: each test sound is encoded
  and decoded with its own curves (MR-STFT: reconstruction) or with one curve scaled (control
  response: attribute transfer), through :class:`~neurorack.models.transfer.SourceTransfer`; their speed is
  live streaming in blocks (:func:`~neurorack.metrics.speed.streaming_factor`), and their **latent
  leakage** is measured (:func:`~neurorack.metrics.leakage.latent_leakage`: R² of a fresh regressor
  from the latent to each controlled descriptor, fitted on :data:`LEAKAGE_TRAIN_SOUNDS` train sounds,
  scored on the MR-STFT sounds; lower is better). Compare ``fader-ae`` with its ablation
  ``fader-ae-cvae`` (no latent adversary) in one run.

**Sound choice** (deterministic): the test split sorted by hash; ``limit`` keeps its first N
(MR-STFT); the control sounds are the first ``control_limit`` of those, the f0 sounds the first
``control_limit`` tonal ones among them.

**Tonal** (:func:`is_tonal`), on the stored curves, over the frames whose rms lies within
:data:`TONAL_ACTIVE_DB` (30 dB) of the sound's peak (at least 3 frames): median flatness below
:data:`TONAL_MAX_FLATNESS` (0.05), a stable f0 — interquartile range of ``log2(f0)`` below
:data:`TONAL_MAX_F0_SPREAD` (0.25 octave, 3 semitones) — and a median f0 away from the edges of
the YIN range at every control scale (median f0 × 0.5 above 1.1 × fmin and median f0 × 2 below
0.9 × fmax: 110 Hz … 2.25 kHz with YIN's 50 Hz … 5 kHz): a pitch YIN cannot report cannot show
whether the generator followed it (a 60 Hz kick asked for 30 Hz measures 50 Hz, the floor, whatever
it plays). When the audio is at hand (``eval`` has it), the sound must also be periodic at its f0
(:func:`periodicity` ≥ :data:`TONAL_MIN_PERIODICITY`, 0.8): YIN always reports some f0, and a
hi-hat's can be steady. On the open drum corpus (44.1 kHz) flatness is below 0.01 for almost every
hit, so stability, range and periodicity decide: they keep toms, cowbells, bells, agogos, clicks
and tuned snares, and drop hats, cymbals, shakers, kicks and pitch-gliding hits.

JSON (``neurorack eval --json``, ``DIR/eval.json``; :meth:`EvalReport.to_dict`), stable, version
``schema``; NaN (no valid measurement, e.g. control of ``silence``) is written as ``null``::

    {
      "schema": "neurorack-eval/1",
      "settings": {
        "corpus": "/abs/path/to/corpus", "split": "test",
        "test_sounds_available": 96,          # sounds in the test split (less those left out below)
        "left_out_trained": 0,                # sounds left out: a model file lists them as trained on
        "limit": 20,                          # --limit (null: all)
        "control_limit": 8,                   # --control-limit
        "seed": 0,
        "scales": [0.5, 0.71, 1.0, 1.41, 2.0],
        "descriptors": ["rms", "centroid", "bandwidth", "rolloff", "flatness", "zcr", "f0"],
        "tonal": {"active_db": 30.0, "max_flatness": 0.05, "max_f0_spread_octaves": 0.25, "min_periodicity": 0.8},
        "speed": {"seconds": 1.0, "repeats": 5, "threads": 1},   # null with --no-speed
        "baselines": true
      },
      "machine": {...},                       # neurorack.bench.machine_info()
      "sounds": {"mrstft": [hash, ...], "control": [hash, ...], "f0": [hash, ...]},
      "generators": [
        {
          "name": "dsp",                      # table label (model files: the file's stem)
          "kind": "baseline",                 # "baseline" | "model"
          "class": "dsp",                     # baseline name or model class (e.g. "ddsp-impact")
          "source": "",                       # model file path ("" for baselines)
          "sample_rate": 44100, "hop_length": 512,
          "parameters": null,                 # trainable + fixed parameters (models), else null
          "file_bytes": null,                 # model file size, bytes (models), else null
          "note": "",
          "mrstft": {"median": 1.9, "mean": 2.0, "n": 20, "values": [...]},  # values: per sounds.mrstft
          "control": {
            "rms": {"slope": 0.98, "rho": 1.0, "n_sounds": 8, "n_valid": 8,
                    "response": [0.5, ...]},  # median over valid sounds of measured / measured at scale 1
            ...                               # all seven; f0 over sounds.f0
          },
          "speed": {...} | null,              # a neurorack-bench/1 row (ratio null)
          "control_focused": {"centroid": {...}, "bandwidth": {...}, "rolloff": {...}},
                                              # scaled descriptor named (Generator.focus), else {}
          "control_bare": {...},              # the same with the descriptor prior's guess off, else {}
          "transfer": false,                  # true: an autoencoder measured by transfer (fader-ae)
          "leakage": {"rms": 0.12, ...},      # autoencoders: latent leakage R² per control, else {}
          "accuracy": {"reconstruction": {"rms": 0.01, ...}, "presets": {...}},
                                              # median |log2(measured / requested)|, octaves, per descriptor
          "presets_followed": [3, 5]          # drawn presets within tolerance, presets drawn
        }, ...
      ]
    }
"""

from __future__ import annotations

from neurorack.evaluation.candidates import Candidate, check_compatible, load_candidates
from neurorack.evaluation.plots import plot_control, plot_example
from neurorack.evaluation.protocol import (
    DEFAULT_CONTROL_LIMIT,
    EXAMPLE_SOUNDS,
    LEAKAGE_TRAIN_SOUNDS,
    ProgressCallback,
    evaluate,
    mrstft_scores,
    select_test_sounds,
)
from neurorack.evaluation.rendering import accuracy_rows, leakage_rows, render_markdown, render_table, table_rows
from neurorack.evaluation.report_folder import write_report
from neurorack.evaluation.results import (
    FOCUS_DESCRIPTORS,
    SCHEMA,
    TABLE_DESCRIPTORS,
    ControlEntry,
    EvalReport,
    EvalSettings,
    Example,
    GeneratorResult,
    MrstftSummary,
)
from neurorack.evaluation.tonal import (
    TONAL_ACTIVE_DB,
    TONAL_MAX_F0_SPREAD,
    TONAL_MAX_FLATNESS,
    TONAL_MIN_FRAMES,
    TONAL_MIN_PERIODICITY,
    is_tonal,
    periodicity,
)

__all__ = [
    "DEFAULT_CONTROL_LIMIT",
    "EXAMPLE_SOUNDS",
    "FOCUS_DESCRIPTORS",
    "LEAKAGE_TRAIN_SOUNDS",
    "SCHEMA",
    "TABLE_DESCRIPTORS",
    "TONAL_ACTIVE_DB",
    "TONAL_MAX_F0_SPREAD",
    "TONAL_MAX_FLATNESS",
    "TONAL_MIN_FRAMES",
    "TONAL_MIN_PERIODICITY",
    "Candidate",
    "ControlEntry",
    "EvalReport",
    "EvalSettings",
    "Example",
    "GeneratorResult",
    "MrstftSummary",
    "ProgressCallback",
    "accuracy_rows",
    "check_compatible",
    "evaluate",
    "is_tonal",
    "leakage_rows",
    "load_candidates",
    "mrstft_scores",
    "periodicity",
    "plot_control",
    "plot_example",
    "render_markdown",
    "render_table",
    "select_test_sounds",
    "table_rows",
    "write_report",
]
