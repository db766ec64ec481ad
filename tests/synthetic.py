"""Small models for the tests: a UR4RecModule of hidden size 16 (datasets: ``writers.py``)."""

from __future__ import annotations


def small_module(num_items: int, text_dim: int = 0, image_dim: int = 0, retriever: dict | None = None,
                 sasrec: dict | None = None, loss_weights: dict | None = None, **kwargs):
    """A UR4RecModule with hidden size 16; ``retriever`` (a dict of RetrieverConfig fields, hidden size 16 unless
    given) adds the three-expert retriever, None keeps SASRec alone."""
    from ur4rec.models.configs import LossWeights, RetrieverConfig, SASRecConfig
    from ur4rec.module import UR4RecModule

    return UR4RecModule(num_items=num_items, text_dim=text_dim, image_dim=image_dim,
                        sasrec=SASRecConfig(**{"hidden_size": 16, **(sasrec or {})}),
                        retriever=None if retriever is None else RetrieverConfig(**{"hidden_size": 16, **retriever}),
                        loss_weights=LossWeights(**(loss_weights or {})), **kwargs)

