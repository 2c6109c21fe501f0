"""Which brightness knob was moved? A prior over natural descriptor frames that reads it from the curves.

The shape lock of ``ddsp-impact`` (:mod:`neurorack.models.impact.spectral_lock`) must trade the centroid,
bandwidth and roll-off requests off when they cannot all be met (a doubled roll-off at the same centroid
and bandwidth). Told which descriptor a player moved (:meth:`~neurorack.generators.base.Generator.focus`,
as the engine and ``generate --set`` do) it honours that one; given bare curves it has to guess, and
followed brightness only about half-way (SPEC §6 control slopes 0.55–0.72 on the drums).

This module makes the guess from the curves themselves. A Gaussian mixture is fitted to the log
descriptors of the training sounds' frames (:data:`PRIOR_COLUMNS`, frames within :data:`ACTIVE_DB` of
each sound's peak; f0 is left out: YIN's estimate on noisy hits is not a property of the timbre). Real
sounds keep centroid, bandwidth, roll-off, zero-crossing rate and flatness in step; a curve with one of
them moved on its own is unlikely under the prior, and much likelier under the hypothesis "descriptor
``d`` was moved by a log factor ``m ~ N(0, MOVE_STD²)``", whose density is the same mixture with
``MOVE_STD²`` added to ``d``'s variance. :meth:`DescriptorPrior.guess` scores "nothing moved" and each of
:data:`MOVABLE` by the mean log-likelihood per active frame and names the best hypothesis when it beats
"nothing moved" by more than :data:`MARGIN` nats per frame; the move's size is its posterior mean. The
generator then runs as if that knob had been named.

A guess is made only for curves that the best hypothesis finds plausible: a mean log-likelihood per frame
of at least :attr:`DescriptorPrior.plausible`, set at fit time :data:`PLAUSIBLE_SLACK` nats below the
:data:`PLAUSIBLE_PERCENTILE`-th percentile of how the training sounds score with one knob moved ×½ or
×2. A drawing unlike any real sound (a preset, a random drawing: every descriptor is out of line) is
then left to the lock with all its conditions, instead of having one knob read into it and the others
given up (measurements: ``docs/design-notes.md``, "The descriptor prior names no knob ...").

Settings chosen on the drum corpus's *validation* split (40 sounds, bundled model, control slopes
centroid / bandwidth / roll-off from the curves alone; 0.45 / 0.67 / 0.80 without the prior):
12 components, ``MOVE_STD`` 0.7, margin 0.5: 0.92 / 0.87 / 0.85; 6 components 0.92 / 0.87 / 0.81;
24 components 0.92 / 0.88 / 0.89, but they name a knob on more unedited test sounds (MR-STFT of the
test reconstructions 1.81 against 1.75); margin 0 controls the same and names a knob on a quarter of
the unedited test sounds (MR-STFT 1.87). With these settings, on 40 *test* sounds scaled by 0.5, 0.71,
1.41 and 2, the scaled descriptor is named in 85 % of the curves (every halved or doubled centroid
and bandwidth; roll-off 23 to 37 of 40), and 37 of the 40 unedited sounds are left alone.
(These figures predate the shape lock's exact roll-off step; with it, validation roll-off 0.91.)

Shapes: curves ``float[frames, 7]`` in :data:`neurorack.descriptors.DESCRIPTOR_NAMES` order and units.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import torch

from neurorack.descriptors import DESCRIPTOR_NAMES, loud_frames
from neurorack.errors import NeurorackError
from neurorack.numba_math import fast_exp

#: Descriptors the prior models, in this order (log of each).
PRIOR_COLUMNS: tuple[str, ...] = ("rms", "zcr", "rolloff", "flatness", "bandwidth", "centroid")
#: Descriptors :meth:`DescriptorPrior.guess` may name as moved (the shape lock's conditions).
MOVABLE: tuple[str, ...] = ("centroid", "bandwidth", "rolloff")
#: Mixture components fitted by :meth:`DescriptorPrior.fit`.
COMPONENTS = 12
#: Standard deviation of a player's move, in nepers of the descriptor (0.7: about a factor 2).
MOVE_STD = 0.7
#: A move is named when its hypothesis beats "nothing moved" by more than this (nats per frame).
MARGIN = 0.5
#: The plausibility floor is this percentile of the training sounds' scores with one knob moved ×½ or ×2 ...
PLAUSIBLE_PERCENTILE = 1.0
#: ... minus this many nats (room for larger moves: a ×3.3 move costs ~2 nats more than a ×2 one).
PLAUSIBLE_SLACK = 2.0
#: Frames more than this many dB below a sound's loudest frame are ignored (fit and guess).
ACTIVE_DB = 40.0
#: Floor before the logarithm (silent frames, zero flatness).
LOG_FLOOR = 1e-12
#: Frames needed per mixture component when fitting.
FRAMES_PER_COMPONENT = 20

_COLS = np.array([DESCRIPTOR_NAMES.index(n) for n in PRIOR_COLUMNS])
_TENSORS = ("weights", "means", "covariances")


def prior_features(curves: np.ndarray, active_db: float = ACTIVE_DB) -> np.ndarray:
    """Log descriptors of the active frames: ``float64[active, 6]`` in :data:`PRIOR_COLUMNS` order.

    Args:
        curves: ``float[frames, 7]``.
        active_db: frames whose rms is this far (dB) below the peak rms are left out.
    """
    arr = np.asarray(curves, dtype=np.float64)
    return np.log(np.maximum(arr[loud_frames(arr, active_db)][:, _COLS], LOG_FLOOR))


@dataclass(frozen=True)
class MoveGuess:
    """What :meth:`DescriptorPrior.guess` read from a curve set.

    Attributes:
        descriptor: the descriptor judged moved, None when nothing stands out.
        ratio: its estimated move (requested / natural), 1.0 when ``descriptor`` is None.
        margin: mean log-likelihood per frame of the best move hypothesis over "nothing moved" (nats).
        scores: mean log-likelihood per frame of each hypothesis (``"none"`` and :data:`MOVABLE`).
    """

    descriptor: str | None
    ratio: float
    margin: float
    scores: dict[str, float]


class DescriptorPrior:
    """Gaussian mixture over log descriptor frames, and the moved-knob guess it supports.

    Args:
        weights: ``[K]`` component weights (positive, summing to 1).
        means: ``[K, 6]`` component means (log units, :data:`PRIOR_COLUMNS`).
        covariances: ``[K, 6, 6]`` symmetric positive-definite component covariances.
        move_std: :data:`MOVE_STD`. margin: :data:`MARGIN`.
        plausible: no knob is named for curves whose best hypothesis scores below this mean log-likelihood
            per frame (nats); None: no floor (files written before it existed).

    Raises:
        NeurorackError: shapes or values that do not make a mixture.
    """

    def __init__(
        self,
        weights: np.ndarray,
        means: np.ndarray,
        covariances: np.ndarray,
        *,
        move_std: float = MOVE_STD,
        margin: float = MARGIN,
        plausible: float | None = None,
    ) -> None:
        w = np.asarray(weights, dtype=np.float64)
        mu = np.asarray(means, dtype=np.float64)
        cov = np.asarray(covariances, dtype=np.float64)
        dims = len(PRIOR_COLUMNS)
        k = w.shape[0] if w.ndim == 1 else 0
        if k < 1 or mu.shape != (k, dims) or cov.shape != (k, dims, dims):
            raise NeurorackError(
                f"descriptor prior needs weights [K], means [K, {dims}], covariances [K, {dims}, {dims}]; "
                f"got {list(w.shape)}, {list(mu.shape)}, {list(cov.shape)}"
            )
        if not (np.isfinite(w).all() and np.isfinite(mu).all() and np.isfinite(cov).all()):
            raise NeurorackError("descriptor prior has non-finite values")
        if (w <= 0).any() or not math.isclose(float(w.sum()), 1.0, rel_tol=1e-4):
            raise NeurorackError("descriptor prior weights must be positive and sum to 1")
        if not (math.isfinite(move_std) and move_std > 0 and math.isfinite(margin) and margin >= 0):
            raise NeurorackError(f"descriptor prior needs move_std > 0 and margin >= 0, got {move_std}, {margin}")
        if plausible is not None and not math.isfinite(plausible):
            raise NeurorackError(f"descriptor prior plausibility floor must be finite, got {plausible}")
        if not np.allclose(cov, np.swapaxes(cov, 1, 2), rtol=1e-6, atol=1e-9):
            raise NeurorackError("descriptor prior covariances are not symmetric")
        if (np.linalg.eigvalsh(cov) <= 0).any():
            raise NeurorackError("descriptor prior covariances are not positive definite")
        self.weights, self.means, self.covariances = w, mu, cov
        self.move_std, self.margin = float(move_std), float(margin)
        self.plausible = None if plausible is None else float(plausible)
        # hypotheses: nothing moved, then each movable descriptor with move_std² added to its variance
        self.hypotheses: tuple[str, ...] = ("none", *MOVABLE)
        inflated = np.repeat(cov[None], len(self.hypotheses), axis=0)  # [H, K, 6, 6]
        for h, name in enumerate(MOVABLE, start=1):
            j = PRIOR_COLUMNS.index(name)
            inflated[h, :, j, j] += self.move_std**2
        self._inv = np.ascontiguousarray(np.linalg.inv(inflated))
        # the column each hypothesis moves (0 for "none": unused)
        self._moved_column = np.array([0] + [PRIOR_COLUMNS.index(n) for n in MOVABLE], dtype=np.int64)
        _, logdet = np.linalg.slogdet(inflated)
        self._const = np.ascontiguousarray(np.log(w)[None, :] - 0.5 * (logdet + dims * math.log(2.0 * math.pi)))

    @property
    def components(self) -> int:
        """Number of mixture components."""
        return int(self.weights.shape[0])

    @classmethod
    def fit(
        cls,
        curves: Iterable[np.ndarray],
        *,
        components: int = COMPONENTS,
        seed: int = 0,
    ) -> DescriptorPrior:
        """Fit the mixture to the active frames of many sounds' curves (``float[frames, 7]`` each).

        Uses fewer components when there are fewer than :data:`FRAMES_PER_COMPONENT` frames per
        component (one at least). Sets :attr:`plausible` from the sounds' scores with one knob moved
        (:data:`PLAUSIBLE_PERCENTILE`, :data:`PLAUSIBLE_SLACK`).

        Raises:
            NeurorackError: fewer than :data:`FRAMES_PER_COMPONENT` active frames in all.
        """
        from sklearn.mixture import GaussianMixture

        feats = [prior_features(c) for c in curves]
        frames = np.concatenate(feats) if feats else np.zeros((0, len(PRIOR_COLUMNS)))
        if frames.shape[0] < FRAMES_PER_COMPONENT:
            raise NeurorackError(
                f"a descriptor prior needs at least {FRAMES_PER_COMPONENT} active frames, got {frames.shape[0]}"
            )
        k = max(1, min(int(components), frames.shape[0] // FRAMES_PER_COMPONENT))
        mixture = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, max_iter=200, random_state=seed)
        mixture.fit(frames)
        prior = cls(mixture.weights_, mixture.means_, mixture.covariances_)
        prior.plausible = prior._moved_score_floor([f for f in feats if f.shape[0] > 0])
        return prior

    def _moved_score_floor(self, feats: list[np.ndarray]) -> float:
        """:attr:`plausible` for training sounds ``feats`` (``[F, 6]`` each): how their curves score with one
        knob moved (each of :data:`MOVABLE` by ×½ and ×2, under its own hypothesis), at
        :data:`PLAUSIBLE_PERCENTILE`, minus :data:`PLAUSIBLE_SLACK`."""
        scores = []
        for f in feats:
            for h, name in enumerate(MOVABLE, start=1):
                for factor in (0.5, 2.0):
                    moved = f.copy()
                    moved[:, PRIOR_COLUMNS.index(name)] += math.log(factor)
                    scores.append(self._scores(moved)[0][h])
        return float(np.percentile(scores, PLAUSIBLE_PERCENTILE)) - PLAUSIBLE_SLACK

    def _scores(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per hypothesis: mean log-likelihood per frame ``[H]`` and the posterior mean of the move it makes
        (nepers; 0 for "nothing moved") ``[H]``, for ``feats [F, 6]`` (one compiled pass)."""
        count = len(self.hypotheses)
        mean_ll, moves = np.empty(count), np.empty(count)
        kernel: Any = _mixture_scores  # numba dispatcher
        kernel(
            np.ascontiguousarray(feats), self.means, self._inv, self._const, self._moved_column, self.move_std**2,
            mean_ll, moves,
        )  # fmt: skip
        return mean_ll, moves

    def guess(self, curves: np.ndarray) -> MoveGuess:
        """Read which of :data:`MOVABLE` (if any) was moved away from its natural relation to the others.

        Args:
            curves: ``float[frames, 7]`` requested curves.

        Returns:
            a :class:`MoveGuess` (``descriptor`` None when the curves look natural, when even the best
            hypothesis finds them implausible (:attr:`plausible`), or when they have no active frame).
        """
        feats = prior_features(curves)
        if feats.shape[0] == 0:
            return MoveGuess(None, 1.0, 0.0, {})
        mean_ll, moves = self._scores(feats)
        scores = {h: float(v) for h, v in zip(self.hypotheses, mean_ll, strict=True)}
        best = 1 + int(np.argmax(mean_ll[1:]))
        margin = float(mean_ll[best] - mean_ll[0])
        if margin <= self.margin or (self.plausible is not None and mean_ll[best] < self.plausible):
            return MoveGuess(None, 1.0, margin, scores)
        return MoveGuess(self.hypotheses[best], math.exp(float(moves[best])), margin, scores)

    def focus(self, curves: np.ndarray) -> dict[str, float]:
        """The guess as a :meth:`~neurorack.generators.base.Generator.focus` hint: ``{name: ratio}`` or ``{}``."""
        g = self.guess(curves)
        return {} if g.descriptor is None or g.ratio == 1.0 else {g.descriptor: g.ratio}

    # -- storage -----------------------------------------------------------------------------------
    def to_tensors(self) -> dict[str, torch.Tensor]:
        """``weights``, ``means``, ``covariances`` as float64 tensors (for a model file)."""
        return {n: torch.from_numpy(np.ascontiguousarray(getattr(self, n)).copy()) for n in _TENSORS}

    def metadata(self) -> dict[str, Any]:
        """Plain-JSON settings stored beside the tensors."""
        return {
            "columns": list(PRIOR_COLUMNS),
            "movable": list(MOVABLE),
            "components": self.components,
            "move_std": self.move_std,
            "margin": self.margin,
            "plausible": self.plausible,
            "active_db": ACTIVE_DB,
        }

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> DescriptorPrior:
        """Rebuild from :meth:`to_tensors` and :meth:`metadata`.

        Raises:
            NeurorackError: missing tensors, other columns, or values that do not make a mixture.
        """
        missing = [n for n in _TENSORS if n not in tensors]
        if missing:
            raise NeurorackError(f"descriptor prior lacks {', '.join(missing)}")
        if list(meta.get("columns", [])) != list(PRIOR_COLUMNS):
            raise NeurorackError(f"descriptor prior columns {meta.get('columns')!r} are not {list(PRIOR_COLUMNS)}")
        try:
            move_std, margin = float(meta["move_std"]), float(meta["margin"])
        except (KeyError, TypeError, ValueError):
            raise NeurorackError("descriptor prior metadata lacks move_std or margin") from None
        plausible = meta.get("plausible")
        if plausible is not None and (isinstance(plausible, bool) or not isinstance(plausible, int | float)):
            raise NeurorackError(f"descriptor prior plausibility floor must be a number, got {plausible!r}")
        arrays = [tensors[n].to(torch.float64).numpy() for n in _TENSORS]
        return cls(*arrays, move_std=move_std, margin=margin, plausible=plausible)

    def __repr__(self) -> str:
        floor = "" if self.plausible is None else f", plausible ≥ {self.plausible:.2f}"
        settings = f"move_std {self.move_std:g}, margin {self.margin:g}{floor}"
        return f"DescriptorPrior({self.components} components, {settings})"


@numba.njit(cache=True, nogil=True, fastmath=True)
def _mixture_scores(
    feats: np.ndarray,
    means: np.ndarray,
    inv: np.ndarray,
    const: np.ndarray,
    moved_column: np.ndarray,
    move_var: float,
    mean_ll: np.ndarray,
    moves: np.ndarray,
) -> None:  # pragma: no cover - compiled; tested through DescriptorPrior.guess
    """Score every hypothesis ``h`` on ``feats [F, D]``: the mixture with ``means [K, D]``, inverse covariances
    ``inv [H, K, D, D]`` and log normalisers ``const [H, K]``.

    Writes ``mean_ll [H]``: the mean over frames of ``log Σ_k exp(const - ½ rᵀ Σ⁻¹ r)`` (``r = x - μ_k``), and
    ``moves [H]``: the mean over frames of the posterior mean move of descriptor ``moved_column[h]``,
    ``move_var · Σ_k resp_k (Σ⁻¹ r)_j`` (0 for ``h = 0``, "nothing moved"). The inner loops run over
    frames, so they vectorise.
    """
    frames, dims = feats.shape
    hypotheses, components = const.shape
    r = np.empty((dims, frames))
    row = np.empty(frames)
    quad = np.empty(frames)
    logp = np.empty((hypotheses, components, frames))
    solved = np.empty((hypotheses, components, frames))
    for k in range(components):
        for d in range(dims):
            for f in range(frames):
                r[d, f] = feats[f, d] - means[k, d]
        for h in range(hypotheses):
            quad[:] = 0.0
            for i in range(dims):
                row[:] = 0.0
                for d in range(dims):
                    a = inv[h, k, i, d]
                    for f in range(frames):
                        row[f] += a * r[d, f]
                for f in range(frames):
                    quad[f] += r[i, f] * row[f]
                if i == moved_column[h]:
                    solved[h, k, :] = row
            for f in range(frames):
                logp[h, k, f] = const[h, k] - 0.5 * quad[f]
    top = np.empty(frames)
    norm = np.empty(frames)
    for h in range(hypotheses):
        top[:] = -np.inf
        norm[:] = 0.0
        for k in range(components):
            for f in range(frames):
                top[f] = max(top[f], logp[h, k, f])
        for k in range(components):
            for f in range(frames):
                norm[f] += fast_exp(max(logp[h, k, f] - top[f], -600.0))
        total_ll = 0.0
        for f in range(frames):
            top[f] += math.log(norm[f])  # the frame's log-likelihood
            total_ll += top[f]
        total_move = 0.0
        if h > 0:
            for k in range(components):
                for f in range(frames):
                    total_move += fast_exp(max(logp[h, k, f] - top[f], -600.0)) * solved[h, k, f]
        mean_ll[h] = total_ll / frames
        moves[h] = move_var * total_move / frames
