"""The LightningModule that trains ``fader-ae`` (and its conditional-VAE ablation ``fader-ae-cvae``).

Per training batch ``{"descriptors" [B, F, 7], "audio" [B, F*hop], "mask" [B, F]}``, every item is
encoded from its real audio; the first ``B - n`` are decoded with their own curves
(reconstruction), the last ``n = round(augment_fraction · B)`` with edited curves (attribute
transfer, :func:`~.losses.edit_curves`: no target audio, only the descriptor loss against the
edited curves). Terms:

* ``spectral`` + ``descriptor_weight`` × ``descriptor`` on reconstructed items (as for the impact
  models), ``control_weight`` × ``control`` on edited ones;
* ``kl``: KL divergence of the latent posterior to N(0, I), per frame summed over the latent
  channels, weighted by ``beta`` (ramped up from 0 over ``kl_warmup`` steps, as in RAVE), each
  channel's first ``free_bits`` nats free (:func:`kl_divergence`; logged without the allowance);
* ``adversarial`` (``fader-ae`` only): the encoder's fader term
  (:func:`~.latent_adversary.encoder_terms`), weighted by ``adversary_weight`` ramped up from
  ``adversary_start`` over ``adversary_warmup`` steps, while the latent discriminator is trained
  on the detached latent at every step (its own Adam optimiser);
* ``adversarial_wave`` and ``feature_matching`` (optional, ``waveform_adversary=True``; off by default
  because it is slow on a CPU): the adversarial waveform stage of RAVE and EnCodec. From step
  ``waveform_start`` on, a multi-scale STFT discriminator
  (:class:`~.waveform_discriminator.MultiScaleSTFTDiscriminator`, its own Adam optimiser) is trained
  at every step with the hinge loss (``disc_real``, ``disc_fake``) on the real crops of the
  reconstructed items against their detached reconstructions, and the autoencoder gets
  ``waveform_weight`` × ``adversarial_wave`` + ``feature_matching_weight`` × ``feature_matching``.

Manual optimisation: ``trainer.global_step`` counts the autoencoder's optimiser steps only (the
discriminators' steps are not counted), so ``--max-steps`` means the same as for the impact
models. The learning rates halve on validation plateaus as for the impact models.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from neurorack.errors import NeurorackError
from neurorack.models.autoencoder.fader_ae import FaderAE
from neurorack.training.latent_adversary import LatentDiscriminator, descriptor_bins, discriminator_terms, encoder_terms
from neurorack.training.module import ImpactTrainingModule
from neurorack.training.waveform_discriminator import (
    MultiScaleSTFTDiscriminator,
    discriminator_hinge,
    feature_matching,
    generator_hinge,
)

#: Largest gradient norm of an autoencoder step.
CLIP_NORM = 10.0
#: Arguments of the waveform stage, left out of the saved hyper-parameters when it is off (checkpoints as before).
WAVEFORM_HPARAMS = ("waveform_adversary", "waveform_weight", "feature_matching_weight", "waveform_start", "waveform_lr")


#: KL per latent channel and frame that costs nothing ("free bits", Kingma et al. 2016), nats.
FREE_BITS = 1.0


def kl_divergence(mean: Tensor, logvar: Tensor, free_bits: float = 0.0) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per frame, summed over channels: ``[B, D, F]`` -> scalar (nats).

    With ``free_bits``, each channel's KL averaged over the batch and frames counts only above that many
    nats: an encoder is not pushed to give up the little information a channel carries, which is how a
    VAE whose decoder also gets the descriptors otherwise collapses its posterior.
    """
    per_channel = 0.5 * (mean.square() + logvar.exp() - logvar - 1.0).mean(dim=(0, 2))  # [D]
    return per_channel.clamp_min(free_bits).sum() if free_bits > 0 else per_channel.sum()


def ramp(step: int, start: int, length: int) -> float:
    """0 before ``start``, rising linearly to 1 over ``length`` steps."""
    if step < start:
        return 0.0
    return 1.0 if length <= 0 else min(1.0, (step - start) / length)


class FaderTrainingModule(ImpactTrainingModule):
    """Trains a :class:`~neurorack.models.autoencoder.fader_ae.FaderAE` (see the module docstring).

    Args:
        model_name, model_config, lr, ...: as :class:`~neurorack.training.module.ImpactTrainingModule`.
        beta: weight of the KL term after warm-up.
        free_bits: nats of KL per latent channel and frame that cost nothing (:data:`FREE_BITS`).
        kl_warmup: steps over which ``beta`` rises from 0.
        adversary_weight: weight of the fader term after warm-up (ignored when the model has
            ``latent_adversary=False``).
        adversary_start, adversary_warmup: steps before the fader term starts, and of its ramp.
        discriminator_lr: Adam learning rate of the latent discriminator.
        waveform_adversary: train with the adversarial waveform stage (a multi-scale STFT discriminator;
            slow on a CPU). Off: no waveform discriminator at all (nothing in the checkpoint).
        waveform_weight: weight of the generator's hinge term ``adversarial_wave``.
        feature_matching_weight: weight of the ``feature_matching`` term.
        waveform_start: steps before the stage starts (e.g. to let the spectral loss converge first).
        waveform_lr: Adam learning rate of the waveform discriminator.
    """

    def __init__(
        self,
        model_name: str,
        model_config: dict[str, Any],
        *,
        beta: float = 0.02,
        free_bits: float = FREE_BITS,
        kl_warmup: int = 2000,
        adversary_weight: float = 1.0,
        adversary_start: int = 500,
        adversary_warmup: int = 2000,
        discriminator_lr: float = 1e-3,
        waveform_adversary: bool = False,
        waveform_weight: float = 1.0,
        feature_matching_weight: float = 10.0,
        waveform_start: int = 0,
        waveform_lr: float = 1e-4,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_name, model_config, **kwargs)
        if not isinstance(self.model, FaderAE):
            raise NeurorackError(f"{model_name!r} is not an autoencoder; train it with ImpactTrainingModule")
        if not waveform_adversary:  # the checkpoints of runs without the stage stay as they were
            self.save_hyperparameters(ignore=list(WAVEFORM_HPARAMS))
        self.automatic_optimization = False
        self.discriminator = LatentDiscriminator(self.ae.latent_dim, self.ae.n_controls)
        self.beta = beta
        self.free_bits = free_bits
        self.kl_warmup = kl_warmup
        self.adversary_weight = adversary_weight if self.ae.latent_adversary else 0.0
        self.adversary_start = adversary_start
        self.adversary_warmup = adversary_warmup
        self.discriminator_lr = discriminator_lr
        #: the waveform discriminator (outside ``model.``: never exported); None when the stage is off
        self.waveform_discriminator = MultiScaleSTFTDiscriminator() if waveform_adversary else None
        self.waveform_weight = waveform_weight
        self.feature_matching_weight = feature_matching_weight
        self.waveform_start = waveform_start
        self.waveform_lr = waveform_lr

    @property
    def ae(self) -> FaderAE:
        """The model, typed as the autoencoder it is (not a second registered submodule)."""
        assert isinstance(self.model, FaderAE)
        return self.model

    # -- training ----------------------------------------------------------------------------------------------
    def _adversary_targets(self, descriptors: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Bins of the *input* audio's controls ``[B, C, F]`` and the frames that count ``[B, F]``."""
        bins = descriptor_bins(self.ae.control_features(descriptors))
        return bins, self.descriptor_loss.active(descriptors, mask)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        optimizers = self.optimizers()
        assert isinstance(optimizers, list)
        opt_ae, opt_disc = optimizers[:2]
        descriptors, target, mask = batch["descriptors"], batch["audio"], batch["mask"]
        b = descriptors.shape[0]
        r, _ = self._split(b)  # an autoencoder trains without drawings (drawing_fraction 0)
        inputs = self._edited_inputs(descriptors, r, 0)
        n_aug = b - r
        out = self.ae.autoencode(target, inputs)
        bins, active = self._adversary_targets(descriptors, mask)

        # the discriminator learns to read the descriptors from the (detached) latent
        disc = discriminator_terms(self.discriminator(out["latent"].detach()), bins, active)
        opt_disc.zero_grad()
        self.manual_backward(disc["disc"])
        opt_disc.optimizer.step()  # the raw optimiser: global_step counts autoencoder steps only

        step = self.global_step
        opt_wave = optimizers[2] if self.waveform_discriminator is not None else None
        wave = self._waveform_discriminator_step(opt_wave, target[:r], out["audio"][:r], step)
        terms = self._reconstruction(out["audio"][:r], batch)
        total = terms["loss"]
        if n_aug > 0:
            control = self.descriptor_loss(out["audio"][r:], inputs[r:], mask[r:])
            terms["control"] = control["total"]
            total = total + self.control_weight * control["total"]
        terms["kl"] = kl_divergence(out["mean"], out["logvar"])
        kl_cost = kl_divergence(out["mean"], out["logvar"], self.free_bits)
        total = total + self.beta * ramp(step, 0, self.kl_warmup) * kl_cost
        weight = self.adversary_weight * ramp(step, self.adversary_start, self.adversary_warmup)
        if weight > 0:
            terms["adversarial"] = encoder_terms(self.discriminator(out["latent"]), bins, active)["adversarial"]
            total = total + weight * terms["adversarial"]
        if wave:
            gen = self._waveform_generator_terms(target[:r], out["audio"][:r])
            terms.update(gen)
            terms.update(wave)
            total = (
                total
                + self.waveform_weight * gen["adversarial_wave"]
                + self.feature_matching_weight * gen["feature_matching"]
            )
        terms["disc"] = disc["disc"].detach()
        terms["disc_accuracy"] = disc["accuracy"]
        terms["total"] = total
        if not torch.isfinite(total):
            raise FloatingPointError(f"training loss is not finite at step {step}: {float(total)}")
        opt_ae.zero_grad()
        self.manual_backward(total)
        torch.nn.utils.clip_grad_norm_(self.ae.parameters(), CLIP_NORM)
        opt_ae.step()
        self._log_terms("train", {k: v for k, v in terms.items() if k != "total"}, b, on_step=True, on_epoch=True)
        self.log("train/total", total.detach(), batch_size=b, prog_bar=True, on_step=True, on_epoch=True)
        return total.detach()

    def _waveform_discriminator_step(self, optimizer: Any, real: Tensor, fake: Tensor, step: int) -> dict[str, Tensor]:
        """One hinge step of the waveform discriminator on ``real [R, T]`` vs detached ``fake [R, T]``.

        Returns the detached ``disc_real``/``disc_fake`` terms, or nothing before ``waveform_start`` or when
        the stage is off (``optimizer`` is then unused).
        """
        if self.waveform_discriminator is None or step < self.waveform_start:
            return {}
        both = self.waveform_discriminator(torch.cat([real, fake.detach()]))
        n = real.shape[0]
        hinge = discriminator_hinge(
            [(logits[:n], maps[:n]) for logits, maps in both], [(logits[n:], maps[n:]) for logits, maps in both]
        )
        optimizer.zero_grad()
        self.manual_backward(hinge["disc_real"] + hinge["disc_fake"])
        optimizer.optimizer.step()  # the raw optimiser: global_step counts autoencoder steps only
        return {name: value.detach() for name, value in hinge.items()}

    def _waveform_generator_terms(self, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        """``adversarial_wave`` and ``feature_matching`` of reconstructions ``fake [R, T]`` against ``real [R, T]``.

        The discriminator is frozen meanwhile: the autoencoder's backward computes no gradient for it.
        """
        assert self.waveform_discriminator is not None
        with torch.no_grad():
            real_out = self.waveform_discriminator(real)
        self.waveform_discriminator.requires_grad_(False)
        try:
            fake_out = self.waveform_discriminator(fake)
        finally:
            self.waveform_discriminator.requires_grad_(True)
        return {**generator_hinge(fake_out), **feature_matching(real_out, fake_out)}

    # -- validation --------------------------------------------------------------------------------------------
    def _render(self, descriptors: Tensor, batch: dict[str, Tensor], noise: Tensor) -> Tensor:
        """Transfer of the batch's real audio with ``descriptors`` (reconstruction when unedited)."""
        return self.ae.transfer(batch["audio"], descriptors)

    def _noise(self, batch: int, frames: int, seed: int) -> Tensor:
        return torch.zeros(())  # the transfer reads the model's fixed noise table: nothing to draw

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        descriptors, mask = batch["descriptors"], batch["mask"]
        b, frames = descriptors.shape[:2]
        x = torch.nn.functional.pad(batch["audio"], (0, self.ae.pad_frames * self.ae.hop_length)).unsqueeze(1)
        mean, logvar, _ = self.ae.encode(x)
        mean, logvar = mean[..., :frames], logvar[..., :frames]
        bins, active = self._adversary_targets(descriptors, mask)
        disc = discriminator_terms(self.discriminator(mean), bins, active)
        extra = {"kl": kl_divergence(mean, logvar), "disc": disc["disc"], "disc_accuracy": disc["accuracy"]}
        self._log_terms("val", extra, b, on_epoch=True, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        metric = self.trainer.callback_metrics.get("val_loss")
        if metric is None:
            return
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            if scheduler is not None:
                scheduler.step(metric)  # type: ignore[arg-type]  # ReduceLROnPlateau takes the metric

    # -- optimisation ------------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        opt_ae = torch.optim.Adam(self.ae.parameters(), lr=self.lr)
        opt_disc = torch.optim.Adam(self.discriminator.parameters(), lr=self.discriminator_lr)
        optimizers = [opt_ae, opt_disc]
        if self.waveform_discriminator is not None:
            # betas of RAVE's and EnCodec's discriminators
            optimizers.append(
                torch.optim.Adam(self.waveform_discriminator.parameters(), lr=self.waveform_lr, betas=(0.5, 0.9))
            )
        schedulers = [
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="min", factor=self.lr_factor, patience=self.lr_patience
            )
            for opt in optimizers
        ]
        return optimizers, schedulers
