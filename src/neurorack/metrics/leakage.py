"""Latent leakage of a descriptor-controlled autoencoder (Devis et al. 2023; Fader Networks).

How much of each controlled descriptor can still be read from the latent: a *fresh* regressor
(gradient-boosted trees, :class:`sklearn.ensemble.HistGradientBoostingRegressor`, trained here and
never seen by the model) learns to predict each normalised descriptor from the latent frames of the
corpus's training sounds, and its R² on the latent frames of held-out sounds is the leakage (0: the
latent says nothing about the descriptor, 1: it holds it entirely; lower is better). The adversary
of ``fader-ae`` exists to push it down; its ablation ``fader-ae-cvae`` shows how much leaks without.

Frames count when their rms lies within :data:`LEAKAGE_ACTIVE_DB` of the sound's peak (silence has
degenerate descriptors that any latent predicts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from neurorack.metrics.control import active_frames
from neurorack.models.base import TransferModel

#: Frames within this many dB of the sound's peak rms count.
LEAKAGE_ACTIVE_DB = 40.0
#: Most training frames the regressor sees (a random subset beyond).
MAX_TRAIN_FRAMES = 20_000


@dataclass(frozen=True)
class LeakageResult:
    """R² per controlled descriptor of a fresh regressor from latent frames (lower is better).

    Attributes:
        r2: descriptor name -> R² on held-out frames (may be negative: worse than the mean).
        train_frames, test_frames: frames the regressor was fitted and scored on.
    """

    r2: dict[str, float] = field(default_factory=dict)
    train_frames: int = 0
    test_frames: int = 0

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.r2.values()))) if self.r2 else float("nan")


def latent_frames(ae: TransferModel, sounds: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Active latent frames ``[N, latent_dim]`` and their normalised controls ``[N, n_controls]``.

    Args:
        ae: the autoencoder (eval mode is set here).
        sounds: ``(audio float[T], curves float[F, 7])`` per sound, at the model's rate.
    """
    ae.eval()
    latents, targets = [], []
    with torch.inference_mode():
        for audio, curves in sounds:
            frames = curves.shape[0]
            keep = active_frames(curves, LEAKAGE_ACTIVE_DB)
            if not keep.any():
                continue
            z = ae.latent_of(torch.as_tensor(audio, dtype=torch.float32), frames).T.numpy()
            c = ae.control_features(torch.as_tensor(curves, dtype=torch.float32)[None])[0].T.numpy()
            latents.append(z[keep])
            targets.append(c[keep])
    if not latents:
        return np.zeros((0, ae.latent_dim)), np.zeros((0, ae.n_controls))
    return np.concatenate(latents), np.concatenate(targets)


def latent_leakage(
    ae: TransferModel,
    train: Sequence[tuple[np.ndarray, np.ndarray]],
    test: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    seed: int = 0,
) -> LeakageResult:
    """Fit a fresh regressor latent -> each controlled descriptor on ``train``, score R² on ``test``.

    Returns an empty result (no R²) when either set has fewer than 10 active frames.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.metrics import r2_score

    x_train, y_train = latent_frames(ae, train)
    x_test, y_test = latent_frames(ae, test)
    if len(x_train) < 10 or len(x_test) < 10:
        return LeakageResult(train_frames=len(x_train), test_frames=len(x_test))
    if len(x_train) > MAX_TRAIN_FRAMES:
        pick = np.random.default_rng(seed).choice(len(x_train), MAX_TRAIN_FRAMES, replace=False)
        x_train, y_train = x_train[pick], y_train[pick]
    r2: dict[str, float] = {}
    for j, name in enumerate(ae.controls):
        regressor = HistGradientBoostingRegressor(max_iter=200, random_state=seed)
        regressor.fit(x_train, y_train[:, j])
        r2[name] = float(r2_score(y_test[:, j], regressor.predict(x_test)))
    return LeakageResult(r2=r2, train_frames=len(x_train), test_frames=len(x_test))
