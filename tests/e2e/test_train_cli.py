"""``autoseg train`` end to end: plan a tiny phantom, train both configurations through the
CLI, check every artefact; kill a training process with SIGKILL and resume it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from autoseg.cli import main
from autoseg.data.imageio import read_image
from autoseg.inference.checkpoint import load_model
from autoseg.workspace import Workspace

pytestmark = pytest.mark.e2e
FAST = ["--epochs", "2", "--iters-per-epoch", "2", "--val-iters", "1", "-np", "0"]


@pytest.fixture
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _plan(dataset: Path, work: Path, heuristics: Path) -> None:
    args = ["plan", str(dataset), "--work", str(work), "--heuristics", str(heuristics)]
    assert main([*args, "--device", "cpu", "-np", "1"]) == 0


def test_train_both_configurations_and_check_artefacts(
    phantom_dataset: Callable[..., Path],
    small_heuristics: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    one_thread: object,
) -> None:
    dataset = phantom_dataset(
        num_train_cases=10, num_test_cases=0, base_shape=(10, 24, 24), spacing="aniso",
        with_roi=True, cases_per_patient=2, channels=("T1", "FLAIR"), seed=5,
    )  # fmt: skip
    work = tmp_path / "work"
    _plan(dataset, work, small_heuristics)
    assert main(["train", "--work", str(work), "fold=0", *FAST]) == 0
    out = capsys.readouterr().out
    assert "unet3d" in out and "deepmedic" in out and "trained" in out
    ws = Workspace(work)
    splits = json.loads(ws.splits_json.read_text())
    groups = json.loads((dataset / "dataset.json").read_text())["groups"]
    patient = dict(groups)  # case -> patient
    val = splits["folds"][0]["val"]
    assert len(val) == 2 and patient[val[0]] == patient[val[1]]  # one patient per fold
    plans = json.loads(ws.plans_json.read_text())
    num_classes = max(plans["labels"].values()) + 1
    for config in ("unet3d", "deepmedic"):
        _check_fold(ws.fold_dir(config, 0), dataset, val, num_classes)


def _check_fold(fold_dir: Path, dataset: Path, val: list[str], num_classes: int) -> None:
    for name in ("latest", "best", "final"):
        network, checkpoint = load_model(fold_dir / f"checkpoint_{name}.pt")
        assert not network.training and checkpoint.fold == "0"
    lines = [json.loads(line) for line in (fold_dir / "log.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1]
    assert len(lines[0]["pseudo_dice"]) == num_classes - 1 and lines[1]["lr"] < lines[0]["lr"]
    assert (fold_dir / "progress.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((fold_dir / "train_config.json").read_text())
    assert config["epochs"] == {
        "total": 2, "source": "--epochs", "budget_seconds": None, "decided": True
    }  # fmt: skip
    assert sorted(config["val_cases"]) == sorted(val)
    summary = json.loads((fold_dir / "validation" / "summary.json").read_text())
    assert {row["case"] for row in summary["metrics"]} == set(val)
    assert summary["summary"]["num_cases"] == 2
    for case in val:
        labels, geometry = read_image(fold_dir / "validation" / f"{case}.nii.gz")
        _, reference = read_image(dataset / "imagesTr" / f"{case}_0000.nii.gz")
        assert geometry == reference and labels.shape == reference.shape
        roi, _ = read_image(dataset / "roisTr" / f"{case}.nii.gz")
        assert not labels[roi == 0].any()  # background outside the ROI
        with np.load(fold_dir / "validation" / f"{case}.npz") as archive:
            probabilities = archive["probabilities"]
        assert probabilities.dtype == np.float16
        assert probabilities.shape == (num_classes, *reference.shape)
        np.testing.assert_allclose(probabilities.astype(np.float32).sum(0), 1.0, atol=5e-3)
        agree = (probabilities.argmax(0) == labels).mean()  # float16 rounding can flip ties
        assert agree > 0.995


def test_train_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], phantom_dataset: Callable[..., Path]
) -> None:
    assert main(["train", "--work", str(tmp_path / "empty"), "fold=0"]) == 2
    assert "run 'autoseg plan DATASET' first" in capsys.readouterr().err
    assert main(["train", "--work", str(tmp_path), "fold=x"]) == 2
    assert "invalid fold 'fold=x'" in capsys.readouterr().err
    assert main(["train", "--work", str(tmp_path), "fold=0", "--time-budget", "90"]) == 2
    assert "invalid duration" in capsys.readouterr().err
    assert main(["train", "--work", str(tmp_path), "fold=0", "--fold", "1"]) == 2
    assert "not both" in capsys.readouterr().err


def _processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
                status = (entry / "status").read_text()
            except OSError:
                continue
            if text in cmdline and "State:\tZ" not in status:
                found.append(int(entry.name))
    return found


def test_sigkill_mid_epoch_then_resume(
    phantom_dataset: Callable[..., Path], small_heuristics: Path, tmp_path: Path, one_thread: object
) -> None:
    dataset = phantom_dataset(
        num_train_cases=5, num_test_cases=0, base_shape=(16, 20, 20), channels=("T1",), seed=7
    )
    work = tmp_path / "work"
    _plan(dataset, work, small_heuristics)
    args = ["train", "--work", str(work), "--config", "unet3d", "fold=0", "--epochs", "3"]
    args += ["--iters-per-epoch", "20", "--val-iters", "1", "--no-validation"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    command = [sys.executable, "-m", "autoseg", *args, "-np", "2"]  # with loader workers
    process = subprocess.Popen(command, env=env)
    fold_dir = Workspace(work).fold_dir("unet3d", 0)
    log = fold_dir / "log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if log.is_file() and log.read_text().count("\n") >= 1:
            break
        time.sleep(0.02)
    time.sleep(0.3)  # into the second epoch
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10  # the loader workers notice and exit (watchdog)
    while _processes_mentioning(str(work)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_mentioning(str(work)), "orphaned loader workers"
    assert not (fold_dir / "checkpoint_final.pt").exists()
    done = [json.loads(line)["epoch"] for line in log.read_text().splitlines() if line.strip()]
    assert 1 <= len(done) < 3
    assert main([*args, "-np", "0", "--resume"]) == 0
    epochs = [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
    assert epochs == [0, 1, 2]
    network, checkpoint = load_model(fold_dir / "checkpoint_final.pt")
    assert json.loads(checkpoint.raw["state_json"])["epoch"] == 3
    assert sum(p.numel() for p in network.parameters()) > 0
