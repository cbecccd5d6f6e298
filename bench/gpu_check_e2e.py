"""gpu_check section 4, end to end on the GPU, each run as a subprocess killed at the end of
its time box:

- ``autoseg demo --quick``: wall time, the held-out Dice, and what it planned and trained on;
- ``torchrun`` DDP: ``autoseg train`` of one U-Net fold of a small phantom with 2 processes
  when the machine has 2+ GPUs (then also one process, for comparison), else 1 process, NCCL.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpu_check_common import Box, Context, SectionSkipped, child_env, run_process

TRAIN_OPTIONS = ["--config", "unet3d", "fold=0", "--epochs", "2", "--iters-per-epoch", "25"]
TRAIN_OPTIONS += ["--val-iters", "2", "-np", "4"]


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _dice(summary: Any) -> float | None:
    """The mean foreground Dice of an evaluation ``summary.json`` (either layout)."""
    if not isinstance(summary, dict):
        return None
    inner = summary.get("summary", summary)
    value = inner.get("foreground_mean", {}).get("dice") if isinstance(inner, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def _fold_record(work: Path) -> dict[str, Any]:
    """What a trained fold left: device, AMP, DDP settings, checkpoint, validation Dice."""
    from autoseg.workspace import Workspace

    fold_dir = Workspace(work).fold_dir("unet3d", 0)
    config = _json(fold_dir / "train_config.json") or {}
    resolved = config.get("resolved", {})
    return {
        "device": resolved.get("device"),
        "amp": resolved.get("amp"),
        "distributed": resolved.get("distributed"),
        "checkpoint_final": (fold_dir / "checkpoint_final.pt").is_file(),
        "validation_dice": _dice(_json(fold_dir / "validation" / "summary.json")),
    }


def demo(ctx: Context, box: Box, data: dict[str, Any], save: Callable[[], None]) -> str:
    """``autoseg demo --quick`` on the GPU; returns the status."""
    if not ctx.cuda:
        raise SectionSkipped("no CUDA device: autoseg demo --quick on the GPU not run")
    work = ctx.scratch / "demo_work"
    command = [sys.executable, "-m", "autoseg", "demo", "--quick", "--work", str(work)]
    done = run_process(command, timeout=box.left() - 2.0)
    data["command"] = "autoseg demo --quick --work SCRATCH/demo_work"
    data["process"] = done.to_dict()
    data["wall_seconds"] = done.seconds
    summary = _json(work / "demo_evaluation" / "summary.json")
    data["held_out_dice"] = _dice(summary)
    if isinstance(summary, dict):
        data["held_out_dice_per_class"] = {
            k: v.get("mean", {}).get("dice") for k, v in summary.get("targets", {}).items()
        }
    plans = _json(work / "plans.json") or {}
    data["planned_for"] = plans.get("hardware")
    trained = {}
    for config_json in sorted((work / "results").glob("*/fold_*/train_config.json")):
        resolved = (_json(config_json) or {}).get("resolved", {})
        trained[f"{config_json.parent.parent.name}/{config_json.parent.name}"] = {
            "device": resolved.get("device"),
            "amp": resolved.get("amp"),
        }
    data["trained_on"] = trained
    on_gpu = (data["planned_for"] or {}).get("device") == "cuda"
    if done.returncode == 0 and data["held_out_dice"] is not None and on_gpu:
        return "ok"
    if done.returncode == 0:
        data["error"] = "finished, but did not plan for the GPU or left no held-out Dice"
        return "partial"
    data["error"] = "timed out" if done.timed_out else f"exit status {done.returncode}"
    return "error"


def _prepare_ddp_workspace(ctx: Context) -> Path:
    """A small phantom (8 cases, ~32x40x40), planned and preprocessed for this GPU."""
    from autoseg.data.synthetic import PhantomSpec, generate_phantom_dataset
    from autoseg.planner.workflow import run_plan
    from autoseg.workspace import Workspace

    dataset, work = ctx.scratch / "ddp_data", ctx.scratch / "ddp_work"
    spec = PhantomSpec(num_train_cases=8, num_test_cases=0, base_shape=(32, 40, 40), seed=1)
    generate_phantom_dataset(dataset, spec, overwrite=True)
    run_plan(dataset, Workspace(work), num_workers=ctx.options.workers)
    return work


def _train(work: Path, nproc: int | None, timeout: float) -> dict[str, Any]:
    """``autoseg train`` of fold 0: under torchrun with ``nproc`` processes, or plain."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher += [f"--nproc_per_node={nproc}"] if nproc else []
    command = [*(launcher if nproc else [sys.executable]), "-m", "autoseg", "train"]
    command += ["--work", str(work), *TRAIN_OPTIONS]
    done = run_process(command, timeout, env=child_env(AUTOSEG_DIST_TIMEOUT="120s"))
    return {"process": done.to_dict(), "wall_seconds": done.seconds, **_fold_record(work)}


def ddp(ctx: Context, box: Box, data: dict[str, Any], save: Callable[[], None]) -> str:
    """One fold under torchrun with NCCL (2 processes on 2+ GPUs); returns the status."""
    if not ctx.cuda:
        raise SectionSkipped("no CUDA device: torchrun/NCCL not run")
    import torch

    gpus = torch.cuda.device_count()
    nproc = 2 if gpus >= 2 else 1
    data.update(gpus=gpus, nproc_per_node=nproc, train_options=" ".join(TRAIN_OPTIONS))
    work = _prepare_ddp_workspace(ctx)
    if nproc == 2:
        single = ctx.scratch / "ddp_work_single"
        shutil.copytree(work, single, dirs_exist_ok=True)
    data["torchrun"] = run = _train(work, nproc, box.left() - (70.0 if nproc == 2 else 2.0))
    save()
    if nproc == 2 and box.has(40.0):
        data["single_process"] = _train(single, None, box.left() - 2.0)
    distributed = run.get("distributed") or {}
    data["backend"] = distributed.get("backend")
    data["world_size"] = distributed.get("world_size")
    ok = run["process"]["returncode"] == 0 and run["checkpoint_final"]
    if ok and data["backend"] == "nccl" and data["world_size"] == nproc:
        return "ok"
    data["error"] = "torchrun run failed or did not use NCCL with the expected world size"
    return "error"
