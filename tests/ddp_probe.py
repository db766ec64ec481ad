"""A callback for the DDP tests: each rank writes what its callbacks decided and a digest of its weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning as L

from ur4rec.callbacks import AdaptiveAlternating, TrainingStages


class RankDecisions(L.Callback):
    """Writes ``decisions_rank<r>.json``: stage transitions, alternation statistics, weight digest."""

    def on_fit_end(self, trainer, pl_module) -> None:
        stages = next(c for c in trainer.callbacks if isinstance(c, TrainingStages))
        alternating = next(c for c in trainer.callbacks if isinstance(c, AdaptiveAlternating))
        digest = hashlib.sha256()
        for name, tensor in sorted(pl_module.state_dict().items()):
            digest.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
        Path(f"decisions_rank{trainer.global_rank}.json").write_text(json.dumps({
            "transitions": stages.transitions, "alternating": alternating.statistics(),
            "weights": digest.hexdigest()}))
