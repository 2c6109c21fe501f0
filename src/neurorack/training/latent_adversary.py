"""The latent adversary of ``fader-ae`` (Fader Networks, Lample et al. 2017; Devis et al. 2023).

A small discriminator reads the latent frames and predicts the controlled descriptors, each
quantised into :data:`N_BINS` bins of its normalised value (a classifier, as in Fader Networks: a
bounded cross-entropy instead of an unbounded regression error). It is trained to predict them;
the encoder is trained so that its prediction carries no information, i.e. equals the batch's
marginal distribution of bins — what a discriminator that sees nothing useful would predict. At
that equilibrium the latent holds no descriptor information and the decoder must take the
descriptors from its control inputs: they become knobs.

Both losses are ``nn.Module``-free functions of the discriminator's logits, returned as named terms.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

#: Bins per descriptor.
N_BINS = 16
#: Normalised (z-score) range the bins cover; values outside fall in the end bins.
SPAN = 2.5


def descriptor_bins(controls: Tensor, n_bins: int = N_BINS, span: float = SPAN) -> Tensor:
    """Bin index ``[B, C, F]`` (int64) of normalised controls ``[B, C, F]``: equal bins over ``[-span, span]``."""
    scaled = (controls.clamp(-span, span) + span) / (2 * span) * n_bins
    return scaled.floor().clamp(0, n_bins - 1).long()


class LatentDiscriminator(nn.Module):
    """Latent ``[B, latent_dim, F]`` -> bin logits ``[B, n_controls, n_bins, F]``.

    Non-causal (kernel 3 convolutions): it only exists while training.
    """

    def __init__(self, latent_dim: int, n_controls: int, hidden: int = 128, n_bins: int = N_BINS) -> None:
        super().__init__()
        self.n_controls = n_controls
        self.n_bins = n_bins
        self.net = nn.Sequential(
            nn.Conv1d(latent_dim, hidden, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, n_controls * n_bins, 1),
        )

    def forward(self, latent: Tensor) -> Tensor:
        batch, _, frames = latent.shape
        return self.net(latent).view(batch, self.n_controls, self.n_bins, frames)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values [B, C, F]`` over frames where ``mask [B, F]`` is True (0 when none)."""
    weights = mask.unsqueeze(1).expand_as(values).to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def discriminator_terms(logits: Tensor, bins: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """The discriminator's objective: predict the bins.

    Args:
        logits: ``[B, C, n_bins, F]``; bins: ``[B, C, F]`` int64; mask: ``[B, F]`` frames that count.

    Returns:
        ``{"disc": cross-entropy, "accuracy": share of frames whose bin is predicted}``.
    """
    ce = F.cross_entropy(logits.transpose(1, 2), bins, reduction="none")  # [B, C, F]
    correct = (logits.argmax(2) == bins).to(logits.dtype)
    return {"disc": _masked_mean(ce, mask), "accuracy": _masked_mean(correct, mask).detach()}


def encoder_terms(logits: Tensor, bins: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """The encoder's adversarial objective: make the prediction the batch marginal of the bins.

    Cross-entropy of the discriminator's distribution against the marginal (per descriptor, over the
    frames in ``mask``), minus the marginal's entropy: 0 exactly when the prediction is the marginal.

    Returns:
        ``{"adversarial": the term}``.
    """
    n_bins = logits.shape[2]
    weights = mask.unsqueeze(1).expand_as(bins).to(logits.dtype)  # [B, C, F]
    counts = (F.one_hot(bins, n_bins).to(logits.dtype) * weights.unsqueeze(-1)).sum(dim=(0, 2))  # [C, n_bins]
    marginal = (counts / counts.sum(-1, keepdim=True).clamp_min(1.0)).detach()
    log_p = torch.log_softmax(logits, dim=2)  # [B, C, n_bins, F]
    ce = -(marginal.view(1, -1, n_bins, 1) * log_p).sum(2)  # [B, C, F]
    entropy = -(marginal * torch.log(marginal.clamp_min(1e-12))).sum(-1)  # [C]
    return {"adversarial": _masked_mean(ce - entropy.view(1, -1, 1), mask)}
