"""On CUDA every parameter, buffer, metric state, optimizer state and batch tensor is on the GPU, and training
steps never wait for the host: ``torch.cuda.set_sync_debug_mode("error")`` around them turns any synchronizing
call (``.item()``, ``bool(tensor)``, boolean-mask indexing, ``nonzero``, a blocking copy) into an error.

The one sync a step makes by design is left out and counted: whether the loss is finite on every rank (skip
the step or not, ``UR4RecModule._all_ranks_finite``). Through Lightning, the first batch of every epoch runs with
``"warn"`` instead: that is where Lightning creates the accumulator of a key logged for the first time (a
host-to-device copy of its initial value), and each stage logs new keys in its first batch.
(tests/models/test_host_sync.py checks the model's side without a GPU, on the meta device.)
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torchmetrics import Metric

from cuda_runs import GPU_TESTS, inside, sync_debug, ur4rec_args

pytestmark = GPU_TESTS

CUDA = torch.device("cuda")
CHECKED_BATCHES = 3  # per epoch, after the first


def off_device(module: torch.nn.Module) -> list[str]:
    """Names of the parameters, buffers and torchmetrics states of ``module`` that are not on the GPU."""
    names = [name for name, tensor in [*module.named_parameters(), *module.named_buffers()] if tensor.device.type != "cuda"]
    for prefix, child in module.named_modules():
        if isinstance(child, Metric):
            for state, value in child.metric_state.items():
                tensors = value if isinstance(value, list) else [value]
                names += [f"{prefix}.{state}" for t in tensors if t.device.type != "cuda"]
    return names


def batch_off_device(batch: dict[str, torch.Tensor]) -> list[str]:
    return [name for name, value in batch.items() if isinstance(value, torch.Tensor) and value.device.type != "cuda"]


def optimizer_states_off_device(optimizers) -> list[str]:
    """Optimizer state tensors not on the GPU (``step`` counters stay on the host by design, capturable=False)."""
    return [f"{type(o).__name__}.{key}" for o in optimizers for state in o.state.values()
            for key, value in state.items() if isinstance(value, torch.Tensor) and key != "step" and value.device.type != "cuda"]


@pytest.fixture(scope="module")
def configured_run(tmp_path_factory):
    """Builds a UR4Rec run as the device check configures it (short stages, at most 4 batches per epoch)."""
    from benchmarks.common import configured

    folder = tmp_path_factory.mktemp("sync")

    def build(precision: str):
        with inside(folder):
            return configured(ur4rec_args(1, "--run_name", f"sync-{precision}", "--trainer.precision", precision,
                                          "--trainer.limit_train_batches", str(CHECKED_BATCHES + 1),
                                          "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0"))

    return folder, build


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_lightning_training_steps_stay_on_the_gpu_without_host_syncs(configured_run, precision):
    folder, build = configured_run
    cli = build(precision)
    module = cli.model
    step, finite, validation_step = module.training_step, module._all_ranks_finite, module.validation_step
    seen = {"checked": 0, "finite_checks": 0, "first_batch_syncs": [], "off_device": set()}

    def checked_training_step(batch, batch_idx):
        seen["off_device"].update(batch_off_device(batch))
        if batch_idx == 0:
            with warnings.catch_warnings(record=True) as caught, sync_debug("warn"):
                warnings.simplefilter("always")
                output = step(batch, batch_idx)
            seen["first_batch_syncs"].append(sum("synchroniz" in str(w.message) for w in caught))
            return output
        seen["off_device"].update(off_device(module))
        seen["off_device"].update(optimizer_states_off_device(module.trainer.optimizers))
        with sync_debug("error"):
            output = step(batch, batch_idx)
        seen["checked"] += 1
        return output

    def counted_finite_check(loss):
        seen["finite_checks"] += 1
        with sync_debug(0):
            return finite(loss)

    def placed_validation_step(batch, batch_idx):
        seen["off_device"].update(batch_off_device(batch))
        seen["off_device"].update(off_device(module))
        return validation_step(batch, batch_idx)

    module.training_step, module._all_ranks_finite = checked_training_step, counted_finite_check
    module.validation_step = placed_validation_step
    with inside(folder):
        cli.trainer.fit(module, datamodule=cli.datamodule)

    epochs = len(seen["first_batch_syncs"])
    assert epochs == 4  # one per stage
    assert seen["checked"] == epochs * CHECKED_BATCHES
    assert seen["finite_checks"] == epochs * (CHECKED_BATCHES + 1)  # the designed sync, once per step
    assert not seen["off_device"], sorted(seen["off_device"])
    print(f"syncs in the first batch of each epoch ({precision}): {seen['first_batch_syncs']}")


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_the_models_losses_backward_clipping_and_optimizer_steps_never_sync(configured_run, precision):
    """The product's own step without Lightning: every stage's losses, backward, gradient clipping and the
    stepping optimizers, then validation scoring and the metric updates, all under ``"error"``."""
    from ur4rec.vocabulary import STAGE_POLICY

    _, build = configured_run
    cli = build(precision)
    module = cli.model.to(CUDA).train()
    optimizers = dict(zip(module.net.module_names, module.configure_optimizers()[0]))
    batch = {k: v.to(CUDA) for k, v in next(iter(cli.datamodule.train_dataloader())).items()}
    bf16 = precision == "bf16-mixed"

    def train_step(policy) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            losses = module.net.losses(batch, policy.objective)
        losses["total"].backward()
        for name in policy.stepping:
            torch.nn.utils.clip_grad_norm_(module.net.module_parameters(name), 1.0)
            optimizers[name].step()
        for optimizer in optimizers.values():
            optimizer.zero_grad(set_to_none=True)

    for stage, policy in STAGE_POLICY.items():
        train_step(policy)  # creates the optimizer states: once per run
        with sync_debug("error"):
            train_step(policy)
            train_step(policy)
    assert not optimizer_states_off_device(optimizers.values())

    module.eval()
    evaluation = {k: v.to(CUDA) for k, v in next(iter(cli.datamodule.val_dataloader())).items()}
    with torch.no_grad(), sync_debug("error"), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        scores, _ = module.net.scores(evaluation, module.score_mode)
        module.evaluation["val"].update(scores.float(), evaluation, module.new_items)
    assert not off_device(module)
