"""The autoseg side of ``bench/vs_nnunet.py``: the same steps through autoseg's public APIs.

Planning is timed step by step as in ``bench/plan.py`` (verify, fingerprint, plan,
preprocess) and then finished with ``run_plan`` (which skips the work done and writes
source.json / plans.json); training and prediction go through ``autoseg.cli.main`` exactly as
a user would type them, so the printed commands can be repeated by hand.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from autoseg.artefacts import read_json
from autoseg.cli import main as autoseg_main
from autoseg.data.dataset import Dataset
from autoseg.data.formats import load_dataset
from autoseg.data.verify import verify_dataset
from autoseg.diagnostics.memory_measure import make_training_batch
from autoseg.evaluation.evaluate import evaluate_folder
from autoseg.evaluation.summary import summarize
from autoseg.inference.checkpoint import load_checkpoint
from autoseg.inference.sliding_window import sliding_window_inference
from autoseg.inference.window_memory import CPU_WINDOW_BATCH
from autoseg.networks import UNetConfig, build_network
from autoseg.planner.hardware import detect_hardware
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.memory import estimate_training_breakdown
from autoseg.planner.planner import plan_dataset
from autoseg.planner.plans import Plans, load_plans
from autoseg.planner.workflow import (
    dataset_digest,
    fingerprint_dataset,
    preprocess_planned,
    run_plan,
)
from autoseg.trainers.config import TrainConfig
from autoseg.trainers.session import FoldSpec, Session
from autoseg.trainers.session_setup import open_session
from autoseg.trainers.splits import load_or_make_splits
from autoseg.workspace import Workspace

CONFIG = "unet3d"


@dataclasses.dataclass
class Side:
    """autoseg's workspace for the bench dataset."""

    dataset_path: Path
    work: Path
    workers: int
    threads: int

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.work)

    def plans(self) -> Plans:
        return load_plans(self.workspace.plans_json)

    # ---- 1. fingerprint, planning, preprocessing ---------------------------------------
    def verify(self) -> Dataset:
        report = verify_dataset(self.dataset_path, num_workers=self.workers)
        if not report.ok or report.dataset is None:
            raise SystemExit(f"autoseg verify found problems: {report.problems[:3]}")
        return report.dataset

    def fingerprint_and_plan(self, dataset: Dataset) -> Plans:
        inputs = {"dataset": dataset_digest(dataset)}
        fingerprint, _ = fingerprint_dataset(
            dataset, self.workspace, num_workers=self.workers, inputs=inputs
        )
        heuristics = PlannerHeuristics()
        hardware = detect_hardware("cpu", None, heuristics)
        return plan_dataset(fingerprint, heuristics, hardware)

    def preprocess(self, dataset: Dataset, plans: Plans) -> None:
        preprocess_planned(dataset, plans, self.workspace, num_workers=self.workers)

    def finish_plan(self) -> Plans:
        """``autoseg plan`` proper: reuses the fingerprint and preprocessed cases (skipped
        as current) and writes plans.json and source.json for training."""
        report = run_plan(self.dataset_path, self.workspace, device="cpu", num_workers=self.workers)
        return report.plans

    def splits(self) -> list[dict[str, list[str]]]:
        """The 5-fold split ``autoseg train`` uses (writes splits.json, as training would)."""
        plans = self.plans()
        dataset = load_dataset(self.dataset_path)
        data_dir = self.workspace.preprocessed_dir(plans.configuration(CONFIG).data_identifier)
        case_ids = sorted(c.case_id for c in dataset.cases)
        classes = {}
        for case_id in case_ids:
            properties = read_json(data_dir / f"{case_id}.json") or {}
            classes[case_id] = tuple(int(v) for v in properties.get("classes_present", ()))
        groups = {c.case_id: c.group for c in dataset.cases}
        splits = load_or_make_splits(
            self.workspace.splits_json, case_ids, groups=groups, classes=classes
        )
        return [{"train": list(f.train), "val": list(f.val)} for f in splits.folds]

    # ---- 2. data loading + augmentation ------------------------------------------------
    def session(self, plans: Plans, workers: int) -> Session:
        """A fold-0 training session (network, loss, optimiser, loaders) of ``plans``."""
        folds = json.loads(self.workspace.splits_json.read_text())["folds"]
        spec = FoldSpec(
            plans,
            CONFIG,
            0,
            tuple(folds[0]["train"]),
            tuple(folds[0]["val"]),
            self.workspace,
        )
        config = TrainConfig(epochs=1, num_workers=workers, threads=self.threads, seed=0)
        return open_session(spec, config)

    def loader_rate(
        self, network: UNetConfig, patch: Sequence[int], batch: int, batches: int, warmup: int
    ) -> float:
        """Batches per second of autoseg's loader (sampling, full augmentation, targets for
        every deep-supervision output) with the given network, patch and batch."""
        plans = self.plans()
        own = plans.configuration(CONFIG)
        shape = (int(patch[0]), int(patch[1]), int(patch[2]))
        plan = dataclasses.replace(
            own, network=network, patch_size=shape, inference_patch_size=shape, batch_size=batch
        )
        configurations = {**plans.configurations, CONFIG: plan}
        session = self.session(
            dataclasses.replace(plans, configurations=configurations), self.workers
        )
        try:
            for _ in range(warmup):
                session.strategy.to_device(next(session.train_batches), plan, session.device)
            start = time.perf_counter()
            for _ in range(batches):
                session.strategy.to_device(next(session.train_batches), plan, session.device)
            return batches / (time.perf_counter() - start)
        finally:
            session.close()

    # ---- 3. prediction -----------------------------------------------------------------
    def sliding_window_seconds(
        self,
        network: torch.nn.Module,
        config: UNetConfig,
        image: torch.Tensor,
        patch: Sequence[int],
        mirroring: bool,
    ) -> Callable[[], float]:
        """A timer of ``sliding_window_inference`` as ``autoseg predict`` runs it on a CPU
        (batches of CPU_WINDOW_BATCH windows, Gaussian weights, step 0.5)."""

        def run() -> float:
            start = time.perf_counter()
            sliding_window_inference(
                network,
                image,
                tuple(patch),
                config.num_classes,
                step_fraction=0.5,
                batch_size=CPU_WINDOW_BATCH,
                mirror_axes=(0, 1, 2) if mirroring else None,
            )
            return time.perf_counter() - start

        return run

    def predict_files(self, images: Path, out: Path, mirroring: bool) -> tuple[float, str]:
        """Seconds of ``autoseg predict`` (read, preprocess, predict, export) with the trained
        fold-0 U-Net, and the command."""
        argv = ["predict", "-i", str(images), "-o", str(out), "--work", str(self.work)]
        argv += ["--config", CONFIG, "--folds", "0", "--overwrite", "-np", str(self.workers)]
        argv += ["--threads", str(self.threads)] + ([] if mirroring else ["--no-tta"])
        start = time.perf_counter()
        status = autoseg_main(argv)
        if status != 0:
            raise SystemExit(f"autoseg {shlex.join(argv)} failed with status {status}")
        return time.perf_counter() - start, "autoseg " + shlex.join(argv)

    # ---- 4. training -------------------------------------------------------------------
    def train(self, minutes: float, seed: int) -> tuple[float, str]:
        """``autoseg train`` of fold 0 within the budget (final validation included)."""
        argv = ["train", "--work", str(self.work), "--config", CONFIG, "fold=0"]
        argv += ["--time-budget", f"{minutes * 60:.0f}s", "--overwrite", "--seed", str(seed)]
        argv += ["-np", str(self.workers), "--threads", str(self.threads), "--no-val-mirroring"]
        start = time.perf_counter()
        status = autoseg_main(argv)
        if status != 0:
            raise SystemExit(f"autoseg {shlex.join(argv)} failed with status {status}")
        return time.perf_counter() - start, "autoseg " + shlex.join(argv)

    def training_stats(self) -> dict[str, Any]:
        """Epochs, iterations per epoch and training seconds of the fold-0 run."""
        fold = self.workspace.fold_dir(CONFIG, 0)
        state = load_checkpoint(fold / "checkpoint_final.pt").state
        return {
            "epochs": int(state["epoch"]),
            "iterations_per_epoch": int(state["iters_per_epoch"]),
            "training_seconds": float(state["elapsed_seconds"]),
        }

    def fold0_validation(self) -> list[str]:
        """The validation cases of fold 0 (splits.json)."""
        return list(json.loads(self.workspace.splits_json.read_text())["folds"][0]["val"])

    # ---- 5. memory ---------------------------------------------------------------------
    def memory(self) -> dict[str, Any]:
        """Planned patch/batch and the memory model's figures for autoseg's own plan."""
        plan = self.plans().configuration(CONFIG)
        assert isinstance(plan.network, UNetConfig)  # the unet3d configuration
        breakdown = estimate_training_breakdown(
            plan.network, plan.patch_size, plan.batch_size, plan.precision
        )
        return {
            "patch_size": list(plan.patch_size),
            "batch_size": plan.batch_size,
            "features_per_stage": list(plan.network.features_per_stage),
            "planned_bytes": plan.estimated_memory_bytes,
            "measurable_estimate_bytes": breakdown.measurable_bytes,
            "estimate_note": "plans.json estimated_memory_bytes (training peak incl. a fixed "
            f"{breakdown.overhead_bytes / 2**30:g} GiB framework overhead; memory target "
            f"{self.plans().hardware.memory_target_bytes / 1e9:.1f} GB of CPU RAM)",
        }

    @staticmethod
    def model_estimate(config: UNetConfig, patch: Sequence[int], batch: int) -> int:
        """autoseg's memory model (activations, parameters, gradients, SGD state), bytes."""
        shape = (int(patch[0]), int(patch[1]), int(patch[2]))
        return estimate_training_breakdown(config, shape, batch).measurable_bytes

    def memory_step(self) -> tuple[torch.nn.Module, torch.optim.Optimizer, Callable[[], Any]]:
        """autoseg's own training objects (network, optimiser, loss) and a loss closure on a
        random batch of the planned patch and batch size."""
        plan = self.plans().configuration(CONFIG)
        session = self.session(self.plans(), workers=0)
        session.close()
        inputs, targets = make_training_batch(plan.network, plan.patch_size, plan.batch_size)
        network = session.network.train()

        def forward_loss() -> Any:
            outputs = session.strategy.forward(network, inputs[0])
            return session.loss(outputs, targets)

        return session.module, session.optimizer, forward_loss


def measure_step(
    network: torch.nn.Module, optimizer: torch.optim.Optimizer, forward_loss: Callable[[], Any]
) -> dict[str, int]:
    """Bytes of one training step measured the same way for both tools: storages autograd
    saves for backward (each once, parameters excluded), parameters, gradients, optimiser
    state after the step (as ``autoseg.diagnostics.memory_measure`` does)."""
    params = {p.untyped_storage().data_ptr() for p in network.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() and storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    optimizer.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = forward_loss()
    loss.backward()
    optimizer.step()
    sizes = {
        "activations": sum(saved.values()),
        "parameters": sum(p.numel() * p.element_size() for p in network.parameters()),
        "gradients": sum(
            p.grad.numel() * p.grad.element_size()
            for p in network.parameters()
            if p.grad is not None
        ),
        "optimizer": sum(
            v.numel() * v.element_size()
            for state in optimizer.state.values()
            for v in state.values()
            if torch.is_tensor(v)
        ),
    }
    sizes["total"] = sum(sizes.values())
    return sizes


def dice(pred: Path, gt: Path, labels: Sequence[int] | None = None) -> dict[str, Any]:
    """Mean foreground Dice and per-label Dice by autoseg.evaluation (used for both tools);
    ``labels``: the values scored (default: those found in the references)."""
    summary = summarize(evaluate_folder(pred, gt, labels, num_workers=1))
    per_label = {k: v["mean"]["dice"] for k, v in summary["targets"].items()}
    return {"mean": summary["foreground_mean"]["dice"], "per_label": per_label}


def equivalent_unet(planned: dict[str, Any], deep_supervision: bool = True) -> UNetConfig:
    """An autoseg UNetConfig with nnU-Net's planned 3d_fullres topology (features, kernels,
    strides, two convolutions per stage in encoder and decoder)."""
    convs = set(planned["n_conv_per_stage"]) | set(planned["n_conv_per_stage_decoder"])
    if len(convs) != 1:
        raise SystemExit(f"nnU-Net plan with varying convolutions per stage: {planned}")
    return UNetConfig(
        in_channels=planned["in_channels"],
        num_classes=planned["num_classes"],
        features_per_stage=tuple(planned["features_per_stage"]),
        kernel_sizes=tuple(tuple(k) for k in planned["kernel_sizes"]),  # type: ignore[misc]
        strides=tuple(tuple(s) for s in planned["strides"]),  # type: ignore[misc]
        convs_per_stage=convs.pop(),
        deep_supervision=deep_supervision,
    )


def random_network(config: UNetConfig, seed: int = 0) -> torch.nn.Module:
    """An autoseg network of ``config`` with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    return build_network(config).eval()
