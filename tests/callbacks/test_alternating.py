"""Adaptive alternating on its own: where it switches, what holds it, and its state (and the stages'),
which must survive a resume as plain types."""

from __future__ import annotations

import io

import pytest
import torch

from ur4rec.callbacks import AdaptiveAlternating, TrainingStages
from ur4rec.callbacks.alternating import relative_change
from ur4rec.errors import ConfigError


def test_adaptive_switch_triggers_exactly_where_the_loss_flattens():
    alternating = AdaptiveAlternating(min_steps=5, switch_threshold=0.01, window=5)
    curve = [10, 9, 8.1, 7.29, 6.561, 6.5, 6.5, 6.5, 6.5, 6.5]
    active = []
    for step, loss in enumerate(curve, start=1):
        active.append(alternating.active)
        alternating.record(loss, step)
    # window relative changes at steps 5..9: 0.34, 0.28, 0.20, 0.11, 0.0093 -> switch after step 9
    assert relative_change([6.561, 6.5, 6.5, 6.5, 6.5]) < 0.01 < relative_change([7.29, 6.561, 6.5, 6.5, 6.5])
    assert active == ["sasrec"] * 9 + ["retriever"]
    assert alternating.switch_log == [{"step": 9, "from": "sasrec", "to": "retriever"}]
    assert alternating.steps == {"sasrec": 9, "retriever": 1}
    # the new module starts with an empty window: a flat loss needs min_steps before switching back
    for step in range(11, 14):  # retriever steps 2..4 (its first was step 10)
        alternating.record(6.5, step)
    assert alternating.active == "retriever"
    alternating.record(6.5, 14)
    assert alternating.active == "sasrec" and alternating.switches == 2


def test_min_steps_holds_even_when_the_loss_is_flat():
    alternating = AdaptiveAlternating(min_steps=8, window=3)
    for step in range(7):
        alternating.record(1.0, step)
    assert alternating.switches == 0
    alternating.record(1.0, 7)
    assert alternating.switches == 1


@pytest.mark.parametrize("threshold", [-0.01, float("nan")])
def test_a_negative_or_nan_switch_threshold_is_refused(threshold):
    with pytest.raises(ConfigError, match=r"alternating\.switch_threshold: must be >= 0"):
        AdaptiveAlternating(switch_threshold=threshold)


def test_both_mode_never_switches_and_counts_both():
    alternating = AdaptiveAlternating(mode="both")
    for step in range(6):
        alternating.record(1.0, step)
    assert alternating.stepping() == ("sasrec", "retriever") and alternating.switches == 0
    assert alternating.steps == {"sasrec": 6, "retriever": 6}


def test_callback_state_round_trips_through_plain_types():
    alternating = AdaptiveAlternating(min_steps=2, window=2)
    for step, loss in enumerate([5.0, 4.0, 4.0, 3.9]):
        alternating.record(loss, step)
    restored = AdaptiveAlternating(min_steps=2, window=2)
    restored.load_state_dict(alternating.state_dict())
    assert restored.statistics() == alternating.statistics()
    for step, loss in enumerate([3.9, 3.9, 3.9], start=4):
        alternating.record(loss, step)
        restored.record(loss, step)
    assert restored.statistics() == alternating.statistics()
    stages = TrainingStages(1, 2, 3, 4)
    stages.stage_index, stages.best = 2, {"pretrain_sasrec": 0.1}
    other = TrainingStages(1, 2, 3, 4)
    other.load_state_dict(stages.state_dict())
    assert other.stage == "joint_finetune" and other.best == {"pretrain_sasrec": 0.1}

    def plain(value) -> bool:  # what torch.load(weights_only=True) reads back
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or type(value) in (int, float, str, bool)

    for state in (alternating.state_dict(), stages.state_dict()):
        assert plain(state), state
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        assert torch.load(buffer, weights_only=True) == state
