"""The LightningModule that trains any registered :class:`~neurorack.models.base.ImpactModel`.

Per training batch ``{"descriptors" [B, F, 7], "audio" [B, F*hop], "mask" [B, F]}``:

* the first ``B - n`` items are reconstructed: multi-scale spectral loss against the real audio plus
  ``descriptor_weight`` × descriptor loss against their own curves;
* the next ``n = round(augment_fraction · B)`` items get edited curves (:func:`~.losses.edit_curves`)
  and only ``control_weight`` × descriptor loss against the edited curves (there is no target audio);
* the last ``d = round(drawing_fraction · B)`` items are replaced by random drawings
  (:func:`~neurorack.curves.drawings.drawing_batch`: curves a player might draw, unlike any training sound)
  with ``drawing_weight`` × descriptor loss on rms, bandwidth, centroid and roll-off (:data:`DRAWN_DESCRIPTORS`;
  a drawn flatness is a rough sketch, not a target): the network
  learns to give the spectral lock material it can shape into any plausible drawing.

Validation is deterministic (crops from each sound's start, fixed noise) and logs the loss terms, the SPEC §6
MR-STFT distance (``val/mrstft``), a brightness-control slope (``val/control_centroid``: d log measured
centroid / d log requested centroid for ×2, ideal 1, mean over active frames), with drawings the descriptor
loss of as many fixed drawings as sounds (``val/drawing``; ``val/loss``, which picks the best checkpoint and
drives the learning-rate schedule, stays the reconstruction loss) and, every ``example_every`` epochs, audio
examples and spectrogram images to TensorBoard.
"""

from __future__ import annotations

import math
from typing import Any

import auraloss
import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from neurorack.curves.drawings import drawing_batch
from neurorack.descriptors import DESCRIPTOR_NAMES
from neurorack.errors import ModelFileError
from neurorack.models.base import ImpactModel
from neurorack.models.registry import build_model, rebuild_model
from neurorack.training.losses import (
    DEFAULT_FFT_SIZES,
    LOSS_DESCRIPTORS,
    DescriptorLoss,
    MultiScaleSpectralLoss,
    clamp_curves,
    edit_curves,
)

CENTROID = DESCRIPTOR_NAMES.index("centroid")
#: Consecutive optimiser steps with non-finite gradients tolerated (each is skipped) before giving up.
MAX_BAD_STEPS = 20
#: Descriptors a drawing is trained to be followed on: those of the follow report (``metrics.following``).
DRAWN_DESCRIPTORS = ("rms", "centroid", "bandwidth", "rolloff")
#: Seed of the validation noise (plus the batch index).
VALIDATION_SEED = 1234


class ImpactTrainingModule(L.LightningModule):
    """Trains ``build_model(model_name, **model_config)`` (see the module docstring for the losses).

    Args:
        model_name: a registered model (:func:`neurorack.models.model_names`).
        model_config: its keyword arguments (JSON-able), including sample_rate / hop_length / frame_length.
        lr: Adam learning rate.
        lr_factor, lr_patience: ReduceLROnPlateau on ``val/loss`` (factor, patience in epochs).
        descriptor_weight: weight of the descriptor loss on reconstructed items.
        control_weight: weight of the descriptor loss on items with edited curves.
        augment_fraction: fraction of each batch given edited curves (0 disables).
        drawing_fraction: fraction of each batch replaced by random drawings (0 disables).
        drawing_weight: weight of the descriptor loss on drawings.
        drawing_seed: seed of the drawings (combined with the optimiser step, so a resumed run draws on).
        fft_sizes: FFT sizes of the spectral loss.
        example_every: log audio examples and spectrograms every this many epochs (0: never).
        n_examples: examples per logging.
    """

    def __init__(
        self,
        model_name: str,
        model_config: dict[str, Any],
        *,
        lr: float = 1e-3,
        lr_factor: float = 0.5,
        lr_patience: int = 20,
        descriptor_weight: float = 1.0,
        control_weight: float = 1.0,
        augment_fraction: float = 0.25,
        drawing_fraction: float = 0.0,
        drawing_weight: float = 1.0,
        drawing_seed: int = 0,
        fft_sizes: tuple[int, ...] = DEFAULT_FFT_SIZES,
        example_every: int = 5,
        n_examples: int = 2,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model: ImpactModel = build_model(model_name, **model_config)
        self.spectral = MultiScaleSpectralLoss(fft_sizes)
        # a model may name the descriptors its outputs are matched on (default: LOSS_DESCRIPTORS)
        names = getattr(self.model, "trained_descriptors", None) or LOSS_DESCRIPTORS
        self.descriptor_loss = DescriptorLoss(self.model.descriptor_config, names=names)
        self.metric = auraloss.freq.MultiResolutionSTFTLoss()  # SPEC §6 distance, auraloss defaults
        self.lr = lr
        self.lr_factor = lr_factor
        self.lr_patience = lr_patience
        self.descriptor_weight = descriptor_weight
        self.control_weight = control_weight
        self.augment_fraction = augment_fraction
        self.drawing_fraction = drawing_fraction
        self.drawing_weight = drawing_weight
        self.drawing_seed = drawing_seed
        self.drawing_loss = DescriptorLoss(self.model.descriptor_config, names=DRAWN_DESCRIPTORS)
        self.example_every = example_every
        self.n_examples = n_examples
        #: set before resuming to replace the learning rate restored from the checkpoint
        self.lr_override: float | None = None
        #: optimiser steps skipped in a row because of non-finite gradients
        self.bad_steps = 0

    # -- helpers -----------------------------------------------------------------------------------------------
    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Store the descriptor normalisation statistics (``[7]`` each) in the wrapped model."""
        self.model.set_statistics(mean, std)

    def forward(self, descriptors: Tensor, noise: Tensor | None = None) -> Tensor:
        """``descriptors [B, F, 7]`` (physical units) -> audio ``[B, F * hop]``."""
        return self.model(descriptors, noise)

    def _log_terms(self, prefix: str, terms: dict[str, Tensor], batch_size: int, **kwargs: Any) -> None:
        for name, value in terms.items():
            self.log(f"{prefix}/{name}", value.detach(), batch_size=batch_size, **kwargs)

    def _reconstruction(self, audio: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Loss terms of reconstructed items (``audio``: generated ``[R, T]``, batch rows ``[:R]``)."""
        r = audio.shape[0]
        spec = self.spectral(audio, batch["audio"][:r])
        desc = self.descriptor_loss(audio, batch["descriptors"][:r], batch["mask"][:r])
        terms = {"spectral": spec["total"], "sc": spec["sc"], "log_mag": spec["log_mag"]}
        terms.update({f"desc_{k}": v for k, v in desc.items() if k != "total"})
        terms["descriptor"] = desc["total"]
        terms["loss"] = spec["total"] + self.descriptor_weight * desc["total"]
        return terms

    # -- training ----------------------------------------------------------------------------------------------
    def _split(self, batch: int) -> tuple[int, int]:
        """``(r, d)``: the first ``r`` items of a batch are reconstructed, the last ``d`` are drawings, the
        items between get edited curves; at least one item is reconstructed."""
        d = min(batch - 1, round(batch * self.drawing_fraction)) if self.drawing_fraction > 0 else 0
        n_aug = min(batch - d - 1, round(batch * self.augment_fraction)) if self.augment_fraction > 0 else 0
        return batch - d - n_aug, d

    def _edited_inputs(self, descriptors: Tensor, r: int, d: int) -> Tensor:
        """The curves a training batch ``[B, F, 7]`` is rendered with: items ``[:r]`` keep their own curves,
        items ``[r:B-d]`` get edited ones (:func:`~.losses.edit_curves`, clamped) and the last ``d`` are
        replaced by random drawings (:func:`~neurorack.curves.drawings.drawing_batch`)."""
        b, frames = descriptors.shape[:2]
        parts = [descriptors[:r]]
        if b - d > r:
            edited, _ = edit_curves(descriptors[r : b - d])
            parts.append(clamp_curves(edited, self.model.sample_rate))
        if d > 0:
            parts.append(self._drawings(d, frames, [self.drawing_seed, self.global_step]))
        return torch.cat(parts)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        descriptors = batch["descriptors"]
        b = descriptors.shape[0]
        r, d = self._split(b)
        inputs = self._edited_inputs(descriptors, r, d)
        audio = self.model(inputs)
        terms = self._reconstruction(audio[:r], batch)
        total = terms["loss"]
        if b - d > r:
            control = self.descriptor_loss(audio[r : b - d], inputs[r : b - d], batch["mask"][r : b - d])
            terms["control"] = control["total"]
            total = total + self.control_weight * control["total"]
        if d > 0:
            drawn = self.drawing_loss(audio[b - d :], inputs[b - d :])
            terms.update({f"drawing_{k}": v for k, v in drawn.items() if k != "total"})
            terms["drawing"] = drawn["total"]
            total = total + self.drawing_weight * drawn["total"]
        terms["total"] = total
        if not torch.isfinite(total):
            raise FloatingPointError(f"training loss is not finite at step {self.global_step}: {float(total)}")
        self._log_terms("train", {k: v for k, v in terms.items() if k != "total"}, b, on_step=True, on_epoch=True)
        self.log("train/total", total.detach(), batch_size=b, prog_bar=True, on_step=True, on_epoch=True)
        return total

    # -- validation --------------------------------------------------------------------------------------------
    def _noise(self, batch: int, frames: int, seed: int) -> Tensor:
        device = self.model.desc_mean.device
        if device.type == "cpu":
            return self.model.make_noise(batch, frames, torch.Generator().manual_seed(seed))
        return self.model.make_noise(batch, frames)

    def _render(self, descriptors: Tensor, batch: dict[str, Tensor], noise: Tensor) -> Tensor:
        """Validation audio ``[B, F * hop]`` for curves ``descriptors`` (the batch's own or edited ones)."""
        return self.model(descriptors, noise)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        descriptors, target = batch["descriptors"], batch["audio"]
        b, frames = descriptors.shape[:2]
        noise = self._noise(b, frames, VALIDATION_SEED + batch_idx)
        audio = self._render(descriptors, batch, noise)
        terms = self._reconstruction(audio, batch)
        terms["mrstft"] = self.metric(audio.unsqueeze(1), target.unsqueeze(1))
        if self.drawing_fraction > 0:
            drawn = self._drawings(b, frames, [VALIDATION_SEED, batch_idx])  # the same at every validation
            follow = self.drawing_loss(self._render(drawn, batch, noise), drawn)
            terms["drawing"] = follow["total"]  # logged, not in val/loss: the best checkpoint reconstructs best
        self._log_terms("val", terms, b, on_epoch=True, sync_dist=True)
        self.log("val_loss", terms["loss"], batch_size=b, on_epoch=True, sync_dist=True, prog_bar=True)
        slope = self._centroid_slope(descriptors, batch, noise, audio)
        self.log("val/control_centroid", slope, batch_size=b, on_epoch=True, sync_dist=True)
        if batch_idx == 0 and self._should_log_examples():
            self._log_examples(descriptors, target, audio)

    def _drawings(self, count: int, frames: int, seed: list[int]) -> Tensor:
        """``count`` random drawings ``[count, frames, 7]`` for ``seed``, on the model's device."""
        drawn = drawing_batch(count, frames, self.model.descriptor_config, np.random.default_rng(seed))
        return torch.from_numpy(drawn).to(self.model.desc_mean)

    def _centroid_slope(self, descriptors: Tensor, batch: dict[str, Tensor], noise: Tensor, base: Tensor) -> Tensor:
        """Mean over active frames of ``log(c(×2) / c(×1)) / log 2`` of the generated centroid (ideal 1)."""
        mask = batch["mask"]
        scaled = descriptors.clone()
        scaled[..., CENTROID] = scaled[..., CENTROID] * 2.0
        louder = self._render(clamp_curves(scaled, self.model.sample_rate), batch, noise)
        frames = descriptors.shape[1]
        c1 = self.descriptor_loss.curves(base)["centroid"][:, :frames]
        c2 = self.descriptor_loss.curves(louder)["centroid"][:, :frames]
        keep = self.descriptor_loss.active(descriptors, mask)
        ratio = torch.log((c2 + 1.0) / (c1 + 1.0)) / math.log(2.0)
        if not keep.any():
            return ratio.new_zeros(())
        return ratio[keep].mean()

    def _should_log_examples(self) -> bool:
        if self.example_every <= 0 or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return False
        return self.current_epoch % self.example_every == 0 and isinstance(self.logger, TensorBoardLogger)

    def _log_examples(self, descriptors: Tensor, target: Tensor, audio: Tensor) -> None:
        assert isinstance(self.logger, TensorBoardLogger)
        log_examples(self.logger, "examples", target, audio, self.model.sample_rate, self.global_step, self.n_examples)

    # -- optimisation ------------------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        if self.lr_override is not None:
            for optimizer in self.trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = self.lr_override

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip the update when a gradient is NaN/inf (a parameter without gradient is left alone by Adam)."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if all(bool(torch.isfinite(g).all()) for g in grads):
            self.bad_steps = 0
            return
        for p in self.model.parameters():
            p.grad = None
        self.bad_steps += 1
        self.log("train/skipped_steps", float(self.bad_steps), on_step=True, on_epoch=False)
        if self.bad_steps >= MAX_BAD_STEPS:
            raise FloatingPointError(
                f"{MAX_BAD_STEPS} optimiser steps in a row had non-finite gradients (step {self.global_step}); "
                "lower --lr or resume from the best checkpoint"
            )

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=self.lr_factor, patience=self.lr_patience
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss", "interval": "epoch", "frequency": 1},
        }


def log_examples(
    logger: TensorBoardLogger,
    tag: str,
    target: Tensor,
    audio: Tensor,
    sample_rate: int,
    step: int,
    count: int,
    target_label: str = "target",
    generated_label: str = "generated",
) -> None:
    """TensorBoard audio of the first ``count`` pairs of ``target`` and ``audio`` (``[B, T]``) and their spectrograms,
    under ``tag/<i>/``."""
    import matplotlib.pyplot as plt

    from neurorack.plots import spectrogram_axes

    writer = logger.experiment
    for i in range(min(count, audio.shape[0])):
        gen = audio[i].detach().float().cpu().clamp(-1, 1)
        ref = target[i].detach().float().cpu()
        writer.add_audio(f"{tag}/{i}/generated", gen.unsqueeze(0), step, sample_rate=sample_rate)
        writer.add_audio(f"{tag}/{i}/target", ref.unsqueeze(0), step, sample_rate=sample_rate)
        fig, axes = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
        spectrogram_axes(axes[0], ref.numpy().astype(np.float64), sample_rate, target_label)
        spectrogram_axes(axes[1], gen.numpy().astype(np.float64), sample_rate, f"{generated_label} (step {step})")
        fig.tight_layout()
        writer.add_figure(f"{tag}/{i}/spectrogram", fig, step, close=True)


def load_checkpoint(path: str | Any, map_location: str = "cpu") -> tuple[ImpactModel, dict[str, Any]]:
    """The trained model of a training checkpoint (eval mode) and the checkpoint's hyper-parameters.

    Loads with ``torch.load(weights_only=True)``: no code from the file is run.

    Raises:
        ModelFileError: unreadable checkpoint or not one of :class:`ImpactTrainingModule`.
    """
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types here
        raise ModelFileError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or "model_name" not in hparams or "state_dict" not in ckpt:
        raise ModelFileError(f"{path}: not a neurorack training checkpoint")
    model = rebuild_model(hparams["model_name"], dict(hparams["model_config"]))
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    model.load_state_dict(state)
    model.eval()
    return model, dict(hparams)
