"""Evaluation metrics (SPEC §6): MR-STFT distance, control response, speed."""

from neurorack.metrics.control import (
    ACTIVE_DB,
    DEFAULT_SCALES,
    LOG_FLOORS,
    ControlResult,
    ControlSummary,
    active_frames,
    control_response,
    control_response_many,
)
from neurorack.metrics.mrstft import mrstft_distance
from neurorack.metrics.speed import (
    SpeedResult,
    describe_realtime_factor,
    impact_curves,
    limit_threads,
    realtime_factor,
    synthetic_impact,
    time_audio,
)

__all__ = [
    "ACTIVE_DB",
    "DEFAULT_SCALES",
    "LOG_FLOORS",
    "ControlResult",
    "ControlSummary",
    "SpeedResult",
    "active_frames",
    "control_response",
    "control_response_many",
    "describe_realtime_factor",
    "impact_curves",
    "limit_threads",
    "mrstft_distance",
    "realtime_factor",
    "synthetic_impact",
    "time_audio",
]
