"""README.md's commands, run on tiny written data, so the README cannot silently rot.

Convention: every non-blank, non-comment line of a ```bash fenced block in README.md is one command
(a line ending in ``\\`` continues on the next). Other fences (```text, plain ```) are not commands.
Each command is either run here or listed in SKIPPED with the reason it cannot run in CI; a README
command that is neither fails ``test_every_readme_command_is_run_or_skipped``.

The run (``test_readme_commands_run_on_tiny_data``) copies ``cli.py`` and ``configs/`` into a temp
folder ``main/`` and writes tiny datasets where the README's paths point: ``../shared/data/{ml-100k,
M_ML-100K,llm_generated}`` beside it, and ``data/ml-100k``, ``data/ml-1m``, ``path/to/your_data``
inside it. The commands then run verbatim from ``main/``, in README order (later ones use the
checkpoints of earlier ones), with only these changes: training is cut short (one epoch, or one per
UR4Rec stage; ``--seeds 0 1 2`` becomes ``--seeds 0``, so ``stage_table`` gets seed 0's log only
and ``paired`` its checkpoints only;
the scaling study runs its 1x scale for one epoch), Lightning runs on the CPU without a progress
bar, in batches of 8, and ``generate`` calls a loopback fake OpenAI server (tests/llm_server.py) as its ``--base_url``.
No API key, W&B key or network is used.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llm_server import FakeLLMServer
from writers import write_dat_layout, write_ml100k, write_mml100k, write_movielens_csv

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# Commands that cannot run in CI, with the reason. Keys are the README command as `command_text` gives it.
SKIPPED = {
    "pip install -r requirements.txt":
        "installs packages from the network; .ci/run runs it in a fresh venv before the test suite",
    "python -m pytest -q --durations=15":
        "the test suite this test belongs to (it would recurse); .ci/run runs exactly this command",
    "python cli.py fit --config configs/ur4rec.yaml --config configs/trainer/gpu.yaml "
    "--data.data_dir ../shared/data/M_ML-100K --data.llm_dir ../shared/data/llm_generated":
        "needs a CUDA GPU (python -m scripts.gpu_check runs it on one)",
    "python cli.py fit --config configs/ur4rec.yaml --config configs/trainer/ddp.yaml "
    "--data.data_dir ../shared/data/M_ML-100K --data.llm_dir ../shared/data/llm_generated":
        "needs two GPUs; the same ddp.yaml runs below as two CPU processes over gloo",
    "wandb sync 'logs/wandb/offline-run-*'":
        "uploads to wandb.ai: needs a W&B key and the network",
}

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
EXTRA_SUBCOMMANDS = ("generate", "features", "report")
TOOLS = ("bench", "seeds", "stage_table", "bench_features", "bench_scaling", "paired", "side_signal", "fusion_sweep",
         "slice_table", "convergence")
# Lightning on the CPU, quiet; small batches and logging every step so the tiny runs take several logged
# steps per epoch (the run report then has every plot).
FAST = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--data.batch_size", "8", "--trainer.log_every_n_steps", "1"]
STAGES = """\
stages: {pretrain_sasrec: 1, pretrain_retriever: 1, joint_finetune: 1, end_to_end: 1}
alternating: {mode: adaptive, min_steps: 2, window: 2, switch_threshold: 0.05}
"""


# ------------------------------------------------------------------------------------------ extraction


def readme_commands(text: str | None = None) -> list[list[str]]:
    """The commands of README.md's ```bash blocks as shell tokens, in order (comments dropped)."""
    text = README.read_text() if text is None else text
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        logical = re.sub(r"\\\n", " ", block)  # join continuation lines
        for line in logical.splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens:
                commands.append(tokens)
    return commands


def command_text(tokens: list[str]) -> str:
    return shlex.join(tokens)


def runnable(tokens: list[str]) -> bool:
    """Whether the test knows how to run this kind of command (see ``adapt``)."""
    if tokens[0] == "export":
        return len(tokens) == 2 and "=" in tokens[1]
    if tokens[:2] == ["python", "cli.py"] and len(tokens) > 2:
        return tokens[2] in LIGHTNING_SUBCOMMANDS + EXTRA_SUBCOMMANDS
    return tokens[:3] == ["python", "-m", "benchmarks"] and len(tokens) > 3 and tokens[3] in TOOLS


def _fit_overrides(tokens: list[str], stages_yaml: Path) -> list[str]:
    """Cut training short: one epoch per UR4Rec stage, else one epoch (two when resuming one)."""
    if "configs/ur4rec.yaml" in tokens:
        return ["--config", str(stages_yaml)]
    resuming = "--ckpt_path" in tokens
    return ["--trainer.max_epochs", "2" if resuming else "1"]


def adapt(tokens: list[str], stages_yaml: Path, llm_url: str, log: Path) -> dict:
    """The driver job for one README command (see the module docstring for what changes)."""
    text = command_text(tokens)
    if tokens[0] == "export":
        name, value = tokens[1].split("=", 1)
        return {"text": text, "env": {name: value}}
    if tokens[1] == "-m":
        argv = ["-m", *tokens[2:]]
        tool = tokens[3]
        if tool == "seeds":
            for flag in ("--seeds", "--cold_folds"):  # one seed, one fold
                if flag in argv:
                    at = argv.index(flag)
                    end = next((i for i in range(at + 1, len(argv)) if argv[i].startswith("--")), len(argv))
                    argv[at + 1:end] = ["0"]
            argv += _fit_overrides(argv, stages_yaml) + FAST
        if tool in ("stage_table", "paired", "slice_table", "convergence"):  # the seeds command above ran seed 0 only
            argv = [a for a in argv if not re.search(r"-seed[1-9]\d*(/|$)", a)]
        if tool == "bench_scaling":  # the smallest scale only, one epoch
            argv[argv.index("--scales") + 1:] = ["1", "--epochs", "1"]
        return {"text": text, "argv": argv, "log": str(log)}
    argv = tokens[1:]  # cli.py SUBCOMMAND ...
    subcommand = argv[1]
    if subcommand in LIGHTNING_SUBCOMMANDS and "--print_config" not in argv:
        if subcommand == "fit":
            argv += _fit_overrides(argv, stages_yaml)
        argv += FAST
    if subcommand == "generate" and "--dry_run" not in argv:
        if "--base_url" in argv:
            argv[argv.index("--base_url") + 1] = llm_url
        else:
            argv += ["--base_url", llm_url]
        argv += ["--timeout", "20", "--max_retries", "1"]
    return {"text": text, "argv": argv, "log": str(log)}


# ------------------------------------------------------------------------------------------ tiny data


def write_workspace(tmp: Path) -> Path:
    """``tmp/main`` (cli.py, configs/, data the README names) beside ``tmp/shared/data``; returns ``tmp/main``."""
    work = tmp / "main"
    work.mkdir()
    shutil.copy(REPO / "cli.py", work / "cli.py")
    shutil.copytree(REPO / "configs", work / "configs")
    shared = tmp / "shared" / "data"
    ml100k = write_ml100k(shared / "ml-100k", num_users=45, num_items=150)
    write_mml100k(ml100k, shared / "M_ML-100K")
    (shared / "llm_generated").mkdir(parents=True)
    descriptions = {str(i): f"An LLM description of Movie {i}." for i in range(2, 151, 2)}
    (shared / "llm_generated" / "item_descriptions.json").write_text(json.dumps(descriptions))
    # denser, so that 5-core filtering keeps more than 99 + 15 items (the sampled negatives need them)
    write_movielens_csv(write_ml100k(tmp / "dense", num_users=200, num_items=150, seed=2), shared / "ml-latest-small")
    shutil.copytree(ml100k, work / "data" / "ml-100k")  # the main job's default folder (so nothing downloads)
    write_dat_layout(ml100k, work / "data" / "ml-1m", "users.dat")
    write_dat_layout(write_ml100k(tmp / "other", num_users=30, num_items=160, seed=1), work / "path/to/your_data",
                     "user.dat")
    return work


# ------------------------------------------------------------------------------------------ tests


def test_every_readme_command_is_run_or_skipped():
    commands = [command_text(t) for t in readme_commands()]
    assert len(commands) >= 20, "README lost its ```bash blocks?"
    neither = [c for t, c in zip(readme_commands(), commands) if c not in SKIPPED and not runnable(t)]
    assert not neither, ("README commands that this test neither runs nor lists in SKIPPED (teach `adapt` to "
                         f"run them, or add them to SKIPPED with the reason): {neither}")
    stale = [c for c in SKIPPED if c not in commands]
    assert not stale, f"SKIPPED lists commands that are no longer in the README: {stale}"
    setup = [c for c in commands if c in ("pip install -r requirements.txt",
                                          "python cli.py fit --config configs/sasrec.yaml", "python -m pytest -q --durations=15")]
    assert setup == ["pip install -r requirements.txt", "python cli.py fit --config configs/sasrec.yaml",
                     "python -m pytest -q --durations=15"], "the install, main-job and test commands must stay first, once each"
    ci = (REPO / ".ci/run").read_text()
    assert "\npython -m pytest -q --durations=15\n" in ci  # CI runs the README's test command as written


def test_extraction_convention():
    text = "x\n```bash\n# comment\npython cli.py fit \\\n  --a 1  # note\n\nexport K=v\n```\n```text\npython no\n```\n"
    assert readme_commands(text) == [["python", "cli.py", "fit", "--a", "1"], ["export", "K=v"]]


def test_headline_numbers_are_copied_from_benchmarks():
    section = README.read_text().split("## Headline numbers", 1)[1].split("\n## ", 1)[0]
    benchmarks = (REPO / "BENCHMARKS.md").read_text()
    assert "(BENCHMARKS.md)" in section
    numbers = re.findall(r"\d+\.\d+(?: ± \d+\.\d+)?|\d+-\d+ s", section)
    assert len(numbers) >= 8
    missing = [n for n in numbers if n not in benchmarks]
    assert not missing, f"README headline figures not found verbatim in BENCHMARKS.md: {missing}"


@pytest.mark.slow
def test_readme_commands_run_on_tiny_data(tmp_path):
    work = write_workspace(tmp_path)
    stages = tmp_path / "stages.yaml"
    stages.write_text(STAGES)
    logs = tmp_path / "command_logs"
    logs.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DASHSCOPE_API_KEY", "OPENAI_API_KEY", "OLLAMA_KEY", "WANDB_API_KEY", "WANDB_MODE")}
    (tmp_path / "home").mkdir()
    env.update(HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", WANDB_SILENT="true", MPLBACKEND="Agg", PYTHONWARNINGS="ignore")

    with FakeLLMServer() as server:
        jobs = [adapt(tokens, stages, server.base_url, logs / f"{n:02d}.log")
                for n, tokens in enumerate(readme_commands()) if command_text(tokens) not in SKIPPED]
        (tmp_path / "jobs.json").write_text(json.dumps(jobs, indent=1))
        proc = subprocess.run([sys.executable, str(REPO / "tests/readme_driver.py"), str(tmp_path / "jobs.json"),
                               str(tmp_path / "results.json")], cwd=work, env=env, capture_output=True, text=True,
                              timeout=900)
        requests = server.count

    results = json.loads((tmp_path / "results.json").read_text()) if (tmp_path / "results.json").exists() else []
    timings = "\n".join(f"{r['seconds']:7.1f} s  rc={r['rc']}  {r['text']}" for r in results)
    failed = [r for r in results if r["rc"] != 0]
    if proc.returncode != 0 or failed or len(results) != len(jobs):
        detail = Path(failed[0]["log"]).read_text()[-6000:] if failed and failed[0]["log"] else ""
        pytest.fail(f"README command failed:\n{timings}\n--- log of the failing command ---\n{detail}\n"
                    f"--- driver ---\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    print(timings)

    # what the README says the commands leave behind
    assert (work / "checkpoints/sasrec/last.ckpt").exists()
    assert (work / "checkpoints/sasrec-ml1m/last.ckpt").exists() and (work / "checkpoints/my-data/last.ckpt").exists()
    assert any((work / "checkpoints/ur4rec").glob("best-end_to_end.ckpt"))
    assert (work / "llm_out/item_descriptions.json").exists() and (work / "llm_out/user_preferences.json").exists()
    assert requests > 0
    recs = (work / "recs.csv").read_text().splitlines()
    assert recs[0].startswith("user,rank,item,") and "router_image" in recs[0]
    assert {line.split(",")[0] for line in recs[1:]} == {"1", "42"}  # --data.predict_users "[1, 42]"
    for name in ("report.md", "loss.png", "validation.png", "alternating.png", "router.png"):
        assert (work / "reports/ur4rec" / name).exists(), name
    assert list((work / "logs/wandb").glob("offline-run-*")), "W&B did not run offline without a key"
    # the main job explains itself: its stage's start and end, then the summary with the command to test it
    main_job = Path(next(j["log"] for j in jobs if j["text"] == "python cli.py fit --config configs/sasrec.yaml"))
    printed = main_job.read_text()
    assert "stage pretrain_sasrec starts at epoch 0" in printed and "stage pretrain_sasrec ends: best" in printed
    assert "fit finished" in printed and "next: python cli.py test --config configs/sasrec.yaml" in printed
    assert (work / "checkpoints/quickstart/best-end_to_end.ckpt").exists()  # the quick path ran every stage
    assert (work / "checkpoints/sasrec-mls/last.ckpt").exists()  # the MovieLens CSV layout under LlamaRec's protocol
