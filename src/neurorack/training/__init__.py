"""Training impact models with Lightning: data, losses, the LightningModule and whole runs.

Entry points: :func:`train` (``neurorack train``) and :func:`export_run` (``neurorack export``).
"""

from neurorack.training.checkpoints import best_checkpoint
from neurorack.training.data import SegmentDataset, descriptor_statistics
from neurorack.training.export import export_run
from neurorack.training.losses import DescriptorLoss, MultiScaleSpectralLoss, clamp_curves, edit_curves
from neurorack.training.module import ImpactTrainingModule, load_checkpoint
from neurorack.training.run import TrainResult, train

__all__ = [
    "DescriptorLoss",
    "ImpactTrainingModule",
    "MultiScaleSpectralLoss",
    "SegmentDataset",
    "TrainResult",
    "best_checkpoint",
    "clamp_curves",
    "descriptor_statistics",
    "edit_curves",
    "export_run",
    "load_checkpoint",
    "train",
]
