"""Training policy as callbacks: stages, adaptive alternating, curriculum weights, RNG state for exact resume."""

from ur4rec.callbacks.alternating import AdaptiveAlternating
from ur4rec.callbacks.curriculum import CurriculumWeights
from ur4rec.callbacks.checkpoints import ExceptionCheckpoint, LatestCheckpoint
from ur4rec.callbacks.predictions import RecommendationWriter
from ur4rec.callbacks.rng import RNGStateCheckpoint
from ur4rec.callbacks.stages import TrainingStages

__all__ = ["AdaptiveAlternating", "CurriculumWeights", "ExceptionCheckpoint", "LatestCheckpoint", "RecommendationWriter", "RNGStateCheckpoint", "TrainingStages"]
