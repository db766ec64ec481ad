"""Write ``predict`` output: one row per (user, rank) with raw ids, titles, score parts and expert weights."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from lightning.pytorch.callbacks import BasePredictionWriter

from ur4rec.atomic_files import atomic_write


class RecommendationWriter(BasePredictionWriter):
    """Collects ``UR4RecModule.predict_step`` batches and writes them to ``output_path`` at the end.

    ``.csv`` or ``.jsonl`` (JSON Lines) by suffix; the file is written atomically. Columns: ``user``,
    ``rank``, ``item``, ``title`` (raw MovieLens ids), ``score`` with its ``sasrec_score`` and
    ``retriever_score`` parts, and ``router_<expert>`` weights when the retriever takes part.
    """

    def __init__(self, output_path: str = "predictions/recommendations.jsonl"):
        super().__init__(write_interval="epoch")
        if Path(output_path).suffix not in (".csv", ".jsonl"):
            raise ValueError(f"output_path must end in .csv or .jsonl, got {output_path!r}")
        self.output_path = output_path

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        if not trainer.is_global_zero:  # every rank predicts every requested user; rank 0 writes
            return
        datamodule = trainer.datamodule
        splits, titles = datamodule.load(), datamodule.item_titles()
        experts = pl_module.net.retriever.experts if pl_module.net.retriever is not None else ()
        rows = []
        for batch in predictions:
            batch = {k: v.cpu() for k, v in batch.items()}
            for row, user in enumerate(batch["user"].tolist()):
                router = {f"router_{e}": round(float(w), 6) for e, w in zip(experts, batch["router"][row])} \
                    if "router" in batch else {}
                for rank, item in enumerate(batch["items"][row].tolist(), start=1):
                    rows.append({
                        "user": int(splits.raw_user_ids[user]), "rank": rank, "item": int(splits.raw_item_ids[item]),
                        "title": titles[item], "score": float(batch["score"][row, rank - 1]),
                        "sasrec_score": float(batch["sasrec"][row, rank - 1]),
                        "retriever_score": float(batch["retriever"][row, rank - 1]), **router,
                    })
        self._write(rows)

    def _write(self, rows: list[dict]) -> None:
        path = Path(self.output_path)

        def write(file) -> None:
            text = io.TextIOWrapper(file, encoding="utf-8", newline="")
            if path.suffix == ".csv":
                writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["user"])
                writer.writeheader()
                writer.writerows(rows)
            else:
                text.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            text.flush()
            text.detach()  # leave the file open for atomic_write's fsync

        atomic_write(path, write)
