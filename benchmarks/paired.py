"""``paired``: two sets of checkpoints compared user by user on one split, with a bootstrap over users.

    python -m benchmarks paired --baseline A0.ckpt A1.ckpt --candidate 'run0/best-epoch*.ckpt' B1.ckpt [--split test] \\
        -- --config configs/ur4rec.yaml --data.data_dir ...

Everything after ``--`` is the runs' LightningCLI configuration. The i-th baseline and candidate are
paired (e.g. one seed's ``best-pretrain_sasrec.ckpt`` and its selected UR4Rec checkpoint). Each
checkpoint is scored the way ``test`` scores it (its saved score mode); one without retriever weights
is scored as SASRec alone. A side's metric is its mean over its checkpoints. A path may be a glob
pattern that matches exactly one file (a run's ``best-epoch*.ckpt``).

The seeds all meet the same users, so averaging seeds does not remove the noise of which users the
split holds. The bootstrap resamples users (one draw shared by both sides) and gives a 95% interval
of the relative difference. The ``ensemble`` row ranks by the summed log-softmax scores of the baseline
checkpoints: the gain that plain ensembling of the baseline gives, without any side information.

``--baseline_args`` configures the baseline side apart (e.g. SASRec without the content term against
UR4Rec with it); both sides must read the same data. ``--slices`` adds, for the mean of the pairs, one row
per evaluation slice (``ur4rec.slices``: cold / warm / new items only under the new-item protocol, target
popularity, history length) with its users, the bootstrap drawn over that slice's users; ``--save_gains``
writes those per-user gains for ``pooled``, which pools several data splits (the new-item folds) into one
interval.
"""

from __future__ import annotations

import argparse
import math
import shlex
from typing import Sequence

import torch

from benchmarks.common import configured, evaluation_batches, load_for_scoring, markdown_table, resolve, split_at_dashes
from ur4rec.metrics import NDCG, HitRate, full_ranking_ranks
from ur4rec.module import UR4RecModule
from ur4rec.slices import COLD_NEW, SLICES, slice_masks

METRICS = {"ndcg@10": NDCG(10), "hit@10": HitRate(10)}


@torch.no_grad()
def log_scores(model: UR4RecModule, batches: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """(U, N + 1) log-softmax over the real items of each user's ranking scores; column 0 = -inf."""
    model.eval()
    rows = []
    for batch in batches:
        scores, _ = model.net.scores(batch, model.score_mode)  # (B, N + 1)
        rows.append(torch.cat([scores[:, :1], scores[:, 1:].log_softmax(-1)], dim=1))
    return torch.cat(rows)


def user_ranks(scores: torch.Tensor, batches: list[dict[str, torch.Tensor]],
               among: torch.Tensor | None = None) -> torch.Tensor:
    """(U,) 0-based rank of each user's target under ``scores`` (U, N + 1), the batches' histories masked,
    among all items or the items ``among`` (N + 1,) bool marks."""
    ranks, start = [], 0
    for batch in batches:
        end = start + batch["target"].shape[0]
        ranks.append(full_ranking_ranks(scores[start:end], batch["target"], batch["history"], among))
        start = end
    return torch.cat(ranks)


def user_gains(scores: torch.Tensor, batches: list[dict[str, torch.Tensor]],
               among: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """metric -> (U,) per-user gain of :func:`user_ranks`."""
    ranks = user_ranks(scores, batches, among)
    return {name: metric.gain(ranks) for name, metric in METRICS.items()}


def bootstrap_relative(baseline: torch.Tensor, candidate: torch.Tensor, draws: int = 2000,
                       seed: int = 0) -> tuple[float, float, float]:
    """Relative difference of the means (candidate / baseline - 1) and its 95% bootstrap interval.

    baseline, candidate: (U,) per-user values of the same users; each draw resamples users with
    replacement, the same users for both sides.
    """
    users = torch.randint(0, baseline.shape[0], (draws, baseline.shape[0]),
                          generator=torch.Generator().manual_seed(seed))  # (draws, U)
    relative = candidate[users].double().mean(1) / baseline[users].double().mean(1).clamp(min=1e-12) - 1
    low, high = torch.quantile(relative, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return float(candidate.double().mean() / baseline.double().mean() - 1), low, high


def average(gains: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """metric -> (U,) mean of several checkpoints' per-user gains."""
    return {m: torch.stack([g[m] for g in gains]).mean(0) for m in METRICS}


def mean_gains(scores: list[torch.Tensor], batches: list[dict[str, torch.Tensor]],
               among: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """metric -> (U,) :func:`user_gains` averaged over one side's checkpoints' scores, each (U, N + 1)."""
    return average([user_gains(s, batches, among) for s in scores])


def slice_gains(sides: dict[str, list[torch.Tensor]], batches: list[dict[str, torch.Tensor]],
                new_items: torch.Tensor | None) -> dict[str, dict[str, object]]:
    """slice -> {"users": (U,) bool, "baseline" / "candidate": :func:`mean_gains`} for ``all`` users and each
    evaluation slice; the ``cold_new`` slice ranks the cold users among the new items only."""
    masks = {name: torch.cat([m[name] for m in (slice_masks(b, SLICES) for b in batches)])
             for name in SLICES if name in slice_masks(batches[0], SLICES)}
    everyone = {side: mean_gains(scores, batches) for side, scores in sides.items()}
    per_slice = {"all": {"users": torch.ones(sum(len(b["target"]) for b in batches), dtype=torch.bool), **everyone}}
    for name, users in masks.items():
        gains = ({side: mean_gains(scores, batches, new_items) for side, scores in sides.items()}
                 if name == COLD_NEW else everyone)
        per_slice[name] = {"users": users, **gains}
    return per_slice


def relative_row(compared: str, metric: str, base: torch.Tensor, cand: torch.Tensor, draws: int) -> dict[str, object]:
    """One table row over the users of ``base`` and ``cand`` (U,); no interval when there are no users or the
    baseline gains nothing to be relative to."""
    nothing = not len(base) or base.sum() == 0
    relative, low, high = (math.nan,) * 3 if nothing else bootstrap_relative(base, cand, draws)
    return {"compared": compared, "metric": metric, "baseline": float(base.mean()) if len(base) else 0.0,
            "candidate": float(cand.mean()) if len(cand) else 0.0, "relative": relative, "low": low, "high": high}


def slice_rows(per_slice: dict[str, dict[str, object]], draws: int) -> list[dict[str, object]]:
    """Rows of the mean of pairs per evaluation slice of :func:`slice_gains` (the bootstrap draws over that
    slice's users alone)."""
    return [relative_row(f"slice {name} ({int(s['users'].sum())} users)", metric, s["baseline"][metric][s["users"]],
                         s["candidate"][metric][s["users"]], draws)
            for name, s in per_slice.items() if name != "all" for metric in METRICS]


def compare(model: UR4RecModule, batches: list[dict[str, torch.Tensor]], baseline: Sequence[str],
            candidate: Sequence[str], draws: int = 2000, slices: bool = False,
            new_items: torch.Tensor | None = None, baseline_model: UR4RecModule | None = None
            ) -> list[dict[str, object]]:
    """Rows of the comparison: each pair, both sides averaged over their checkpoints, and the baseline ensemble
    (and with ``slices`` the mean of pairs per evaluation slice; ``new_items`` (N + 1,) bool under the
    new-item protocol). ``baseline_model``: the baseline's own model when its configuration differs."""
    sides = score_sides(model, batches, baseline, candidate, baseline_model)
    return comparison_rows(sides, batches, draws, slice_gains(sides, batches, new_items) if slices else None)


def score_sides(model: UR4RecModule, batches: list[dict[str, torch.Tensor]], baseline: Sequence[str],
                candidate: Sequence[str], baseline_model: UR4RecModule | None = None) -> dict[str, list[torch.Tensor]]:
    """side -> one (U, N + 1) :func:`log_scores` per checkpoint of that side."""
    sides = {"baseline": [], "candidate": []}
    for side, paths in (("baseline", baseline), ("candidate", candidate)):
        for path in paths:
            model_of_side = baseline_model if side == "baseline" and baseline_model is not None else model
            load_for_scoring(model_of_side, path)
            sides[side].append(log_scores(model_of_side, batches))
    return sides


def comparison_rows(sides: dict[str, list[torch.Tensor]], batches: list[dict[str, torch.Tensor]], draws: int = 2000,
                    per_slice: dict[str, dict[str, object]] | None = None) -> list[dict[str, object]]:
    """The rows of :func:`compare` from the sides' scores (and per evaluation slice of ``per_slice``, the
    output of :func:`slice_gains`)."""
    gains = {side: [user_gains(s, batches) for s in scores] for side, scores in sides.items()}
    mean_of = {side: average(gs) for side, gs in gains.items()}
    ensemble = user_gains(torch.stack(sides["baseline"]).sum(0), batches)
    pairs = [(f"pair {i}", base, cand) for i, (base, cand) in enumerate(zip(gains["baseline"], gains["candidate"]))]
    pairs += [("mean of pairs", mean_of["baseline"], mean_of["candidate"]),
              ("baseline ensemble", mean_of["baseline"], ensemble)]
    rows = [relative_row(name, metric, base[metric], cand[metric], draws) for name, base, cand in pairs
            for metric in METRICS]
    return rows + (slice_rows(per_slice, draws) if per_slice else [])


def save_gains(path: str, per_slice: dict[str, dict[str, object]], batches: list[dict[str, torch.Tensor]],
               raw_user_ids) -> None:
    """Write {"raw_user_ids": (U,), "slices": :func:`slice_gains`} (tensors only: loads with ``weights_only``);
    the raw ids let a pooled bootstrap resample each user with all its rows."""
    users = torch.cat([b["user"] for b in batches])  # (U,) row -> user index of the split
    torch.save({"raw_user_ids": torch.as_tensor(raw_user_ids)[users], "slices": per_slice}, path)


def format_table(rows: list[dict[str, object]]) -> str:
    rows = [{**r, "95% interval (users)": "n/a" if math.isnan(r["low"]) else
             f"{100 * r['low']:+.1f}% .. {100 * r['high']:+.1f}%"} for r in rows]
    return markdown_table(("compared", "metric", "baseline", "candidate", "relative", "95% interval (users)"), rows,
                          {"relative": lambda v: "n/a" if math.isnan(v) else f"{100 * v:+.1f}%"})


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv or [])
    ours, cli_args = split_at_dashes(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks paired", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", nargs="+", required=True, help="checkpoints, one per seed")
    parser.add_argument("--candidate", nargs="+", required=True, help="checkpoints paired with --baseline in order")
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--draws", type=int, default=2000, help="bootstrap resamples of the users")
    parser.add_argument("--slices", action="store_true", help="also the mean of pairs per evaluation slice")
    parser.add_argument("--save_gains", default=None, help="also write the per-user gains of each slice here "
                        "(for `python -m benchmarks pooled` over several data splits, e.g. folds)")
    parser.add_argument("--baseline_args", default="", help="extra configuration of the baseline side, one quoted "
                        "string after '=' (e.g. --baseline_args='--model.retriever null'); same data required")
    args = parser.parse_args(ours)
    if len(args.baseline) != len(args.candidate):
        parser.error(f"--baseline has {len(args.baseline)} checkpoints and --candidate {len(args.candidate)}; "
                     "they are compared in pairs")
    try:
        baseline, candidate = [resolve(p) for p in args.baseline], [resolve(p) for p in args.candidate]
    except FileNotFoundError as error:
        parser.error(str(error))
    cli = configured(cli_args)
    baseline_cli = configured([*cli_args, *shlex.split(args.baseline_args)]) if args.baseline_args else None
    batches = evaluation_batches(cli, args.split)
    sides = score_sides(cli.model, batches, baseline, candidate, baseline_cli.model if baseline_cli else None)
    per_slice = slice_gains(sides, batches, cli.datamodule.new_item_mask()) if args.slices or args.save_gains else None
    rows = comparison_rows(sides, batches, args.draws, per_slice if args.slices else None)
    if args.save_gains:
        save_gains(args.save_gains, per_slice, batches, cli.datamodule.splits.raw_user_ids)
    print(f"{args.split} split, {len(baseline)} pair(s), {args.draws} bootstrap draws over users")
    for i, (b, c) in enumerate(zip(baseline, candidate)):
        print(f"pair {i}: {b} vs {c}")
    print(format_table(rows))
    return 0
