"""The bad-input corpus: each case is a bad input built in its own folder and the ``cli.py`` command that meets it.

A case expects a ``clear error`` (exit code ``exit_code``, 2 unless said otherwise, and a last stderr line that
holds ``names``: the file, line or setting) or ``graceful`` (exit 0 and an output line holding ``names``: a
counted warning naming the file or setting, or, for inputs that are unusual but fine, the counts that show
the data was read as the clean copy is). ``{ml100k}``, ``{ckpt}``, ... in an argument are the prepared
fixtures' absolute paths (:mod:`benchmarks.bad_input_fixtures`); other paths are relative to the case's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmarks.bad_input_fixtures import NUM_ITEMS, Setup, halved, random_bytes, steps, written

CLEAR_ERROR, GRACEFUL, TRACEBACK, SILENT = "clear error", "graceful", "traceback", "silent"
OUTCOMES = (CLEAR_ERROR, GRACEFUL, TRACEBACK, SILENT)
PREPARED = ("ckpt", "cache")  # fixtures that cost a run of their own: made only when a selected case needs them


@dataclass(frozen=True)
class Case:
    name: str
    expected: str  # CLEAR_ERROR or GRACEFUL
    names: str  # what the error's last line, or a line of a graceful run's output, must hold
    argv: tuple[str, ...]  # after ``python cli.py``; placeholders are formatted with the fixtures
    setup: Setup | None = None
    exit_code: int = 2  # of a clear error
    env: dict = field(default_factory=dict)
    terminate_when: str | None = None  # send SIGTERM once this path (relative to the case folder) exists
    needs: tuple[str, ...] = ()  # prepared fixtures the setup reads

    def required_fixtures(self) -> set[str]:
        text = " ".join(self.argv)
        return {name for name in PREPARED if "{" + name + "}" in text} | set(self.needs)


FAST = ("--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.log_every_n_steps=1", "--model.sasrec.hidden_size=16", "--data.batch_size=8",
        "--data.num_sampled_negatives=5", "--run_name=case")
SASREC = ("--config", "{repo}/configs/sasrec.yaml", *FAST)
UR4REC = ("--config", "{repo}/configs/ur4rec.yaml", *FAST, "--model.retriever.hidden_size=16",
          "--data.feature_cache_dir={cache}", "--stages.pretrain_sasrec=1", "--stages.pretrain_retriever=1",
          "--stages.joint_finetune=1", "--stages.end_to_end=1")


def sasrec_fit(data: str = "{ml100k}", *extra: str) -> tuple[str, ...]:
    return ("fit", *SASREC, f"--data.data_dir={data}", "--stages.pretrain_sasrec=1", *extra)


def ur4rec_fit(data: str = "{mml}", *extra: str) -> tuple[str, ...]:
    return ("fit", *UR4REC, f"--data.data_dir={data}", "--data.llm_dir={llm}", *extra)


def sasrec_run(command: str, ckpt: str, data: str = "{ml100k}", *extra: str) -> tuple[str, ...]:
    return (command, *SASREC, f"--data.data_dir={data}", f"--ckpt_path={ckpt}", *extra)


def counts_of(data: str = "data", *extra: str) -> tuple[str, ...]:
    """The features command without embedding: reads the data and prints its user and item counts."""
    return ("features", "--data_dir", data, "--texts_only", *extra)


# ---------------------------------------------------------------------------------------------- config values


def config_cases() -> list[Case]:
    """Every numeric and enum setting with a value that cannot work: one line naming the key."""
    sasrec = [  # (key, bad value), SASRec alone on MovieLens-100K
        ("model.sasrec.hidden_size", "0"), ("model.sasrec.hidden_size", "abc"), ("model.sasrec.num_blocks", "0"),
        ("model.sasrec.num_heads", "0"), ("model.sasrec.num_heads", "3"), ("model.sasrec.dropout", "1.0"),
        ("model.sasrec.dropout", "nan"), ("model.sasrec.loss", "mse"), ("model.sasrec.id_dropout", "0.5"),
        ("model.sasrec.feedforward_size", "0"), ("model.sasrec.norm", "middle"),
        ("model.loss_weights.fused", "-1"), ("model.loss_weights.sasrec", "-0.5"),
        ("model.loss_weights.retriever", "-1"), ("model.loss_weights.balance", "-1"),
        ("model.loss_weights.contrastive", "-1"), ("model.loss_weights.distill", "-1"),
        ("model.loss_weights.contrastive_temperature", "0"), ("model.loss_weights.distill_temperature", "-1"),
        ("model.gradient_clip_val", "0"), ("model.eval_ks", "[0, 10]"), ("model.top_k", "0"),
        ("model.max_nonfinite_steps", "0"), ("model.score_mode", "best"),
        ("data.batch_size", "0"), ("data.eval_batch_size", "0"), ("data.max_seq_len", "0"),
        ("data.min_user_interactions", "2"), ("data.min_item_interactions", "-1"), ("data.tie_order", "random"),
        ("data.cold_item_fraction", "1.0"), ("data.cold_item_seed", "-1"), ("data.num_sampled_negatives", "0"),
        ("data.num_sampled_negatives", "1000"), ("data.train_windows", "all"), ("data.window_stride", "0"),
        ("data.num_workers", "-1"), ("data.min_rating", "6"),
        ("stages.pretrain_sasrec", "-1"), ("stages.plateau_patience", "0"), ("stages.finetune_sasrec_lr", "0"),
        ("trainer.max_epochs", "0"), ("trainer.max_epochs", "-5"),
    ]
    ur4rec = [  # settings that only a UR4Rec run reads
        ("model.retriever.hidden_size", "0"), ("model.retriever.dropout", "1.5"), ("model.retriever.positions", "0"),
        ("model.retriever.recent_content", "-1"), ("model.retriever.fusion_weight", "1.5"),
        ("model.retriever.experts", "[audio]"), ("model.retriever.experts", "[]"),
        ("model.loss_weights.contrastive_queue_size", "0"), ("model.sasrec.new_item_ridge", "0"),
        ("stages.pretrain_retriever", "-1"), ("stages.joint_finetune", "-1"), ("stages.end_to_end", "-1"),
        ("alternating.mode", "sometimes"), ("alternating.start_with", "router"), ("alternating.window", "1"),
        ("alternating.min_steps", "0"), ("alternating.switch_threshold", "-1"), ("alternating.switch_threshold", "nan"),
        ("data.image_encoder", "bogus"), ("data.text_model", "./no-such-model"),
        ("model.sasrec_optimizer.init_args.lr", "-0.001"),  # the UR4Rec config names the optimizer's class
    ]
    extra = {"model.sasrec.id_dropout": ("--model.sasrec.content=false",),
             "model.sasrec.new_item_ridge": ("--model.sasrec.content=false",),
             "model.loss_weights.contrastive_queue_size": ("--model.loss_weights.contrastive=0.1",)}
    cases = [Case(f"config {key}={value}", CLEAR_ERROR, key, sasrec_fit("{ml100k}", f"--{key}={value}"))
             for key, value in sasrec]
    cases += [Case(f"config {key}={value} (ur4rec)", CLEAR_ERROR, key,
                   ur4rec_fit("{mml}", f"--{key}={value}", *extra.get(key, ()))) for key, value in ur4rec]
    cases += [
        Case("config every stage 0 epochs", CLEAR_ERROR, "stages",
             sasrec_fit("{ml100k}", "--stages.pretrain_sasrec=0")),
        Case("config data.data_dir missing folder", CLEAR_ERROR, "no-such-folder",
             sasrec_fit("no-such-folder")),
        Case("config data.data_dir is a file", CLEAR_ERROR, "a-file", sasrec_fit("a-file"), written("a-file", "x\n")),
        Case("config data.llm_dir missing folder", CLEAR_ERROR, "no-llm-here",
             ("fit", *UR4REC, "--data.data_dir={mml}", "--data.llm_dir=no-llm-here")),
        Case("config data.feature_cache_dir is a file", CLEAR_ERROR, "cache-file",
             ("fit", *UR4REC, "--data.data_dir={mml}", "--data.feature_cache_dir=cache-file"),
             written("cache-file", "not a folder\n")),
        Case("config trainer.max_epochs=1 cuts ur4rec stages", GRACEFUL, "trainer.max_epochs=1 ends training before",
             ur4rec_fit("{mml}", "--trainer.max_epochs=1")),
        Case("config seed_everything=-1", CLEAR_ERROR, "seed_everything",
             sasrec_fit("{ml100k}", "--seed_everything=-1")),
    ]
    return cases


# ---------------------------------------------------------------------------------------------- checkpoints


def checkpoint_from(make) -> Setup:
    """``bad.ckpt`` in the case folder, made by ``make(good checkpoint path) -> bytes``."""

    def setup(case_dir: Path, fixtures: dict) -> None:
        (case_dir / "bad.ckpt").write_bytes(make(Path(fixtures["ckpt"])))

    return setup


def flipped_weight_byte(path: Path) -> bytes:
    """The checkpoint with one byte flipped in the middle of its largest weight tensor."""
    data = bytearray(path.read_bytes())
    state = torch.load(path, weights_only=True)["state_dict"]
    weight = max(state.values(), key=lambda t: t.numel()).contiguous().numpy().tobytes()
    at = data.find(weight)
    if at < 0:
        raise RuntimeError(f"{path}: cannot locate the weight bytes to flip")
    data[at + len(weight) // 2] ^= 0xFF
    return bytes(data)


def saved(obj) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def without_checksum(path: Path) -> bytes:
    checkpoint = torch.load(path, weights_only=True)
    checkpoint.pop("content_sha256")
    return saved(checkpoint)


def checkpoint_cases() -> list[Case]:
    def bad(what: str, make, names: str = "bad.ckpt", command: str = "test", expected: str = CLEAR_ERROR) -> Case:
        return Case(f"checkpoint {what} ({command})", expected, names, sasrec_run(command, "bad.ckpt"),
                    checkpoint_from(make), needs=("ckpt",))

    return [
        bad("truncated", lambda path: halved(path.read_bytes())),
        bad("empty", lambda path: b""),
        bad("random bytes", lambda path: random_bytes()(b"")),
        bad("flipped weight byte", flipped_weight_byte),
        bad("zip that is not torch", lambda path: b"PK\x03\x04 not really a checkpoint"),
        bad("a pickled list", lambda path: saved([1, 2, 3])),
        bad("unsafe pickle", lambda path: saved({"state_dict": Path("x")})),
        bad("without a checksum", without_checksum, "before checkpoints carried a checksum", expected=GRACEFUL),
        bad("truncated", lambda path: halved(path.read_bytes()), command="fit"),
        bad("random bytes", lambda path: random_bytes()(b""), command="predict"),
        bad("flipped weight byte", flipped_weight_byte, command="validate"),
        Case("checkpoint of another catalog (test)", CLEAR_ERROR, f"trained on a catalog of {NUM_ITEMS} items",
             sasrec_run("test", "{ckpt}", "{other}")),
        Case("checkpoint path is a folder (test)", CLEAR_ERROR, "ckpt-folder", sasrec_run("test", "ckpt-folder"),
             written("ckpt-folder/keep", "")),
        Case("checkpoint missing path (test)", CLEAR_ERROR, "missing.ckpt", sasrec_run("test", "missing.ckpt")),
        Case("checkpoint best of a run never fit (test)", CLEAR_ERROR, "no best-epoch", sasrec_run("test", "best")),
        Case("checkpoint model.sasrec_checkpoint missing", CLEAR_ERROR, "missing-sasrec.ckpt",
             ur4rec_fit("{mml}", "--model.sasrec_checkpoint=missing-sasrec.ckpt")),
        Case("checkpoint report --checkpoint corrupt", CLEAR_ERROR, "bad.ckpt",
             ("report", "--run_dir", "logs/run", "--checkpoint", "bad.ckpt"),
             steps(written("logs/run/version_0/metrics.csv", "epoch,step,val/ndcg@10\n0,1,0.1\n"),
                   written("bad.ckpt", b"PK\x03\x04 junk"))),
        Case("predict_users unknown id", CLEAR_ERROR, "data.predict_users",
             sasrec_run("predict", "{ckpt}", "{ml100k}", "--data.predict_users=[999]")),
        Case("predict_users negative id", CLEAR_ERROR, "data.predict_users",
             sasrec_run("predict", "{ckpt}", "{ml100k}", "--data.predict_users=[-1]")),
        Case("predict_users not a list of ids", CLEAR_ERROR, "data.predict_users",
             sasrec_run("predict", "{ckpt}", "{ml100k}", "--data.predict_users=[one]")),
    ]


# ---------------------------------------------------------------------------------------------- CLI misuse


def cli_cases() -> list[Case]:
    def with_config(what: str, text: str, names: str) -> Case:
        return Case(f"cli config file {what}", CLEAR_ERROR, names,
                    ("fit", "--config", "bad.yaml", *FAST, "--data.data_dir={ml100k}"), written("bad.yaml", text))

    return [
        Case("cli misspelled flag", CLEAR_ERROR, "did you mean --model.sasrec.hidden_size",
             sasrec_fit("{ml100k}", "--model.sasrec.hiden_size=3")),
        Case("cli unknown subcommand", CLEAR_ERROR, "fitt", ("fitt", "--config", "{repo}/configs/sasrec.yaml")),
        Case("cli no subcommand", CLEAR_ERROR, "subcommand", ()),
        Case("cli missing config file", CLEAR_ERROR, "nope.yaml", ("fit", "--config", "nope.yaml")),
        with_config("YAML syntax error", "model:\n  sasrec: [unclosed\n", "bad.yaml"),
        with_config("unknown key", "model:\n  sasrec:\n    hiden_size: 3\n", "hiden_size"),
        with_config("wrong type", "data:\n  batch_size: many\n", "data.batch_size"),
        with_config("a list", "- fit\n- data\n", "bad.yaml"),
        Case("cli config file is a folder", CLEAR_ERROR, "conf.d", ("fit", "--config", "conf.d"),
             written("conf.d/keep", "")),
        Case("cli features without --data_dir", CLEAR_ERROR, "--data_dir", ("features",)),
        Case("cli generate without arguments", CLEAR_ERROR, "--data_dir", ("generate",)),
        Case("cli report of a missing run", CLEAR_ERROR, "logs/never", ("report", "--run_dir", "logs/never")),
        Case("cli report of a garbage metrics.csv", CLEAR_ERROR, "metrics.csv", ("report", "--run_dir", "logs/run"),
             written("logs/run/version_0/metrics.csv", b"\x00\x01garbage\n\xff\xfe")),
        Case("cli second live fit on the same run", CLEAR_ERROR, "run_name", sasrec_fit("{ml100k}"), lock_held_by_us),
        Case("cli SIGTERM during fit", CLEAR_ERROR, "on_exception.ckpt",
             sasrec_fit("{ml100k}", "--stages.pretrain_sasrec=500", "--stages.plateau_patience=null"),
             exit_code=143, terminate_when="checkpoints/case/last.ckpt"),
    ]


def lock_held_by_us(case_dir: Path, _: dict) -> None:
    """The run's fit lock names a live process: the corpus runner itself."""
    written("checkpoints/case.fit.lock", f"{os.getpid()}\n")(case_dir, _)
