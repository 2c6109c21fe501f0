"""The LightningModule of SING's three training stages (Défossez et al. 2018, §3.3).

* ``autoencoder``: the encoder and decoder reconstruct notes; spectral loss
  (:class:`~.losses.LogPowerSpectralLoss`) between the decoded note and the real one.
* ``sequence``: the LSTM is fitted to the frozen encoder's embeddings of the notes (mean squared error),
  with truncated back-propagation through time: windows of ``truncation`` frames, the state carried
  (detached) from one window to the next and one optimiser step per window, as in the reference code.
* ``end-to-end``: the LSTM and the decoder together, spectral loss of the generated note.

CPU adaptation (``crop_frames > 0``): the decoder, which holds most of the cost, decodes only a random window
of ``crop_frames`` embeddings per note in the ``autoencoder`` and ``end-to-end`` stages (the LSTM still runs
over the whole note in ``end-to-end``); ``crop_frames = 0`` decodes whole notes as the paper does.
Validation always scores whole notes: ``val/loss`` is the spectral loss of the stage's output (the
reconstruction in ``autoencoder``, the note generated from its symbols afterwards).

Batches: ``{"audio" [B, N], "instrument" LongTensor[B], "pitch" LongTensor[B], "velocity" [B]}``, plus
``"embeddings" [B, dimension, frames]`` in the ``sequence`` stage.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torch.nn import functional as F

from neurorack.models.registry import build_note_model
from neurorack.models.sing.sing import Sing
from neurorack.training.losses import LogPowerSpectralLoss
from neurorack.training.module import log_examples

#: The training stages, in order.
STAGES: tuple[str, ...] = ("autoencoder", "sequence", "end-to-end")


class SingTrainingModule(L.LightningModule):
    """Trains one stage of ``build_note_model(model_name, **model_config)`` (see the module docstring).

    Args:
        model_name: a registered note model whose objective is ``sing``.
        model_config: its keyword arguments.
        stage: one of :data:`STAGES`.
        lr: Adam learning rate (paper: 3e-4).
        crop_frames: embeddings decoded per note in training (0: whole notes).
        truncation: frames per window of truncated back-propagation in the ``sequence`` stage (paper: 32).
        magnitude_weight: weight of the linear-magnitude term of the spectral loss (paper: 0; see
            :class:`~.losses.LogPowerSpectralLoss`).
        example_every: log audio examples and spectrograms every this many epochs (0: never).
        n_examples: examples per logging.
    """

    def __init__(
        self,
        model_name: str,
        model_config: dict[str, Any],
        stage: str,
        lr: float = 3e-4,
        crop_frames: int = 0,
        truncation: int = 32,
        magnitude_weight: float = 0.0,
        example_every: int = 5,
        n_examples: int = 2,
    ) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
        self.save_hyperparameters()
        model = build_note_model(model_name, **model_config)
        if not isinstance(model, Sing):
            raise ValueError(f"{model_name!r} is not a SING model")
        self.model: Sing = model
        if crop_frames and crop_frames < model.decoder.context:
            raise ValueError(f"crop_frames must be 0 or >= the decoder context ({model.decoder.context})")
        if truncation < 1:
            raise ValueError(f"truncation must be >= 1, got {truncation}")
        self.stage = stage
        self.lr = lr
        self.crop_frames = min(crop_frames, model.frames)
        self.truncation = truncation
        self.example_every = example_every
        self.n_examples = n_examples
        self.spectral = LogPowerSpectralLoss(magnitude_weight=magnitude_weight)
        self.automatic_optimization = stage != "sequence"
        self.lr_override: float | None = None

    # -- the parts each stage trains ---------------------------------------------------------------------------
    def trained_parameters(self) -> list[torch.nn.Parameter]:
        m = self.model
        if self.stage == "autoencoder":
            return [*m.encoder.parameters(), *m.decoder.parameters()]
        if self.stage == "sequence":
            return list(m.sequence.parameters())
        return [*m.sequence.parameters(), *m.decoder.parameters()]

    def _window(self, frames: int, generator: torch.Generator | None = None) -> int:
        """First embedding frame of a random decoding window (0 when decoding whole notes)."""
        if not self.crop_frames or self.crop_frames >= frames:
            return 0
        return int(torch.randint(0, frames - self.crop_frames + 1, (1,), generator=generator))

    def _decode_window(self, embeddings: Tensor, audio: Tensor, start: int) -> tuple[Tensor, Tensor]:
        """Decode ``crop_frames`` embeddings from ``start`` (all when not cropping) -> (decoded, its target)."""
        m = self.model
        length = self.crop_frames or m.frames
        decoded = m.decode(embeddings[..., start : start + length])
        first = start * m.stride
        target = m.target(audio)[..., first : first + decoded.shape[-1]]
        return decoded, target

    def _encode_window(self, audio: Tensor, start: int) -> Tensor:
        """The encoder's embeddings of frames ``start .. start + crop_frames`` (all frames when not cropping)."""
        m = self.model
        if not self.crop_frames:
            return m.encode(audio)
        padded = F.pad(audio, (m.pad, m.pad))
        first = start * m.stride
        return m.encoder(padded[..., first : first + (self.crop_frames - 1) * m.stride + m.kernel_size])

    def _symbols(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        return self.model.instrument_vector(batch["instrument"]), batch["pitch"], batch["velocity"]

    # -- training ------------------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor | None:
        audio = batch["audio"]
        if self.stage == "sequence":
            self._sequence_step(batch)
            return None
        start = self._window(self.model.frames)
        if self.stage == "autoencoder":
            embeddings = self._encode_window(audio, start)
            decoded = self.model.decode(embeddings)
            first = start * self.model.stride
            target = self.model.target(audio)[..., first : first + decoded.shape[-1]]
        else:
            embeddings, _ = self.model.embeddings(*self._symbols(batch))
            decoded, target = self._decode_window(embeddings, audio, start)
        terms = self.spectral(decoded, target)
        self.log("train/spectral", terms["spectral"], on_step=True, on_epoch=True, batch_size=audio.shape[0])
        if "magnitude" in terms:
            self.log("train/magnitude", terms["magnitude"], on_step=False, on_epoch=True, batch_size=audio.shape[0])
        self.log("train/total", terms["total"], on_step=False, on_epoch=True, batch_size=audio.shape[0])
        return terms["total"]

    def _sequence_step(self, batch: dict[str, Tensor]) -> None:
        optimizer = self.optimizers()
        assert isinstance(optimizer, L.pytorch.core.optimizer.LightningOptimizer)
        target = batch["embeddings"].float()
        symbols = self._symbols(batch)
        state = None
        total = 0.0
        windows = range(0, self.model.frames, self.truncation)
        for start in windows:
            length = min(self.truncation, self.model.frames - start)
            instrument = self.model.instrument_vector(batch["instrument"])
            predicted, (h, c) = self.model.embeddings(instrument, symbols[1], symbols[2], start, length, state)
            state = (h.detach(), c.detach())
            loss = F.mse_loss(predicted, target[..., start : start + length])
            optimizer.zero_grad()
            self.manual_backward(loss)
            if self._finite_gradients():
                optimizer.step()
            total += float(loss.detach()) / len(windows)
        self.log("train/mse", total, on_step=True, on_epoch=True, batch_size=target.shape[0])
        self.log("train/total", total, on_step=False, on_epoch=True, batch_size=target.shape[0])

    def _finite_gradients(self) -> bool:
        grads = [p.grad for p in self.trained_parameters() if p.grad is not None]
        return all(bool(torch.isfinite(g).all()) for g in grads)

    # -- validation ------------------------------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        audio = batch["audio"]
        if self.stage == "autoencoder":
            decoded = self.model.decode(self.model.encode(audio))
        else:
            embeddings, _ = self.model.embeddings(*self._symbols(batch))
            decoded = self.model.decode(embeddings)
            if "embeddings" in batch:
                mse = F.mse_loss(embeddings, batch["embeddings"].float())
                self.log("val/mse", mse, on_epoch=True, batch_size=audio.shape[0])
        loss = self.spectral(decoded, self.model.target(audio))["spectral"]
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=audio.shape[0])
        self.log("val_loss", loss, on_epoch=True, logger=False, batch_size=audio.shape[0])
        if batch_idx == 0 and self._should_log_examples():
            self._log_examples(audio, self.model.crop(decoded))

    def _should_log_examples(self) -> bool:
        if self.example_every <= 0 or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return False
        return self.current_epoch % self.example_every == 0 and isinstance(self.logger, TensorBoardLogger)

    def _log_examples(self, target: Tensor, audio: Tensor) -> None:
        assert isinstance(self.logger, TensorBoardLogger)
        sr, step = self.model.sample_rate, self.global_step
        log_examples(self.logger, self.stage, target, audio, sr, step, self.n_examples, "real note", self.stage)

    # -- optimisation --------------------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        if self.lr_override is not None:
            for optimizer in self.trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = self.lr_override

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Automatic stages: skip an update whose gradients are not finite."""
        if not self._finite_gradients():
            for p in self.trained_parameters():
                p.grad = None

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.trained_parameters(), lr=self.lr)
