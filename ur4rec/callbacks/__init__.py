"""Training policy as callbacks: stages, adaptive alternating, RNG state for exact resume."""

from ur4rec.callbacks.alternating import AdaptiveAlternating
from ur4rec.callbacks.rng import RNGStateCheckpoint
from ur4rec.callbacks.stages import TrainingStages

__all__ = ["AdaptiveAlternating", "RNGStateCheckpoint", "TrainingStages"]
