"""Training policy as callbacks."""

from ur4rec.callbacks.rng import RNGStateCheckpoint

__all__ = ["RNGStateCheckpoint"]
