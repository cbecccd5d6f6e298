"""``autoseg train`` under torchrun with two CPU processes (gloo): a fold started by a single
process is resumed by two; rank 0 alone writes the artefacts and reports; the checkpoint
loads in one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from autoseg.cli import main
from autoseg.inference.checkpoint import load_model
from autoseg.workspace import Workspace

pytestmark = pytest.mark.e2e
TRAIN = ["--config", "unet3d", "fold=0", "--iters-per-epoch", "2", "--val-iters", "1"]
TRAIN += ["-np", "0", "--device", "cpu"]


def _torchrun(args: list[str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", "-m", "autoseg", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUTOSEG_DIST_TIMEOUT": "120s"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_two_processes_resume_a_fold_slow(
    phantom_dataset: Callable[..., Path], small_heuristics: Path, tmp_path: Path
) -> None:
    dataset = phantom_dataset(
        num_train_cases=6, num_test_cases=0, base_shape=(20, 24, 24), channels=("T1",), seed=3
    )
    work = tmp_path / "work"
    plan = ["plan", str(dataset), "--work", str(work), "--heuristics", str(small_heuristics)]
    assert main([*plan, "--device", "cpu", "-np", "1"]) == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # one process trains epoch 0 and "is killed" (no final checkpoint)
        assert main(["train", "--work", str(work), *TRAIN, "--epochs", "1", "--no-validation"]) == 0
    finally:
        torch.set_num_threads(threads)
    fold_dir = Workspace(work).fold_dir("unet3d", 0)
    (fold_dir / "checkpoint_final.pt").unlink()

    args = ["train", "--work", str(work), *TRAIN, "--epochs", "2", "--resume"]
    done = _torchrun(args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("unet3d         0     trained         2") == 1  # rank 0 reports
    assert "resuming after epoch 1 of 2" in done.stderr
    lines = [json.loads(line) for line in (fold_dir / "log.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1]  # epoch 1 logged once, by rank 0
    names = sorted(p.name for p in fold_dir.iterdir())
    assert names == [
        "checkpoint_best.pt", "checkpoint_final.pt", "checkpoint_latest.pt", "log.jsonl",
        "progress.png", "train_config.json", "validation",
    ]  # fmt: skip
    config = json.loads((fold_dir / "train_config.json").read_text())
    assert config["resolved"]["distributed"]["effective_batch_size"] == 4
    summary = json.loads((fold_dir / "validation" / "summary.json").read_text())
    assert {row["case"] for row in summary["metrics"]} == set(config["val_cases"])
    network, checkpoint = load_model(fold_dir / "checkpoint_final.pt")  # one process
    assert not any(key.startswith("module.") for key in checkpoint.raw["model"])
    assert json.loads(checkpoint.raw["state_json"])["epoch"] == 2 and not network.training
