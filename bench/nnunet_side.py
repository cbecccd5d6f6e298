"""The nnU-Net v2 side of ``bench/vs_nnunet.py``: calls into nnU-Net's own Python APIs.

Import this module only after ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results``
are set in ``os.environ`` (nnU-Net reads them at import time); ``vs_nnunet.py`` does that.
Nothing of nnU-Net is copied here: plan, preprocess, trainer, data loader, augmentation,
network, sliding window and export are nnU-Net's. The only addition is :class:`BudgetTrainer`,
a trainer subclass that gives nnU-Net a wall-clock budget (nnU-Net has none).
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json, save_json
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import (
    ExperimentPlanner,
)
from nnunetv2.experiment_planning.plan_and_preprocess_api import (
    extract_fingerprint_dataset,
    plan_experiment_dataset,
    preprocess_dataset,
)
from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

CONFIG = "3d_fullres"
PLANS = "nnUNetPlans"
WARMUP_ITERATIONS = 5
MIN_BUDGET_EPOCHS = 10
MIN_ITERATIONS = 10
TRAINING_SHARE = 0.8
EXPORT_SECONDS_PER_CASE = 2.0
CPU = torch.device("cpu")


@contextlib.contextmanager
def console_to(path: Path) -> Iterator[None]:
    """Send file descriptor 1 (nnU-Net's many prints, its worker processes' too) to a file."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def preprocessed_root() -> Path:
    """``$nnUNet_preprocessed`` (set by the bench before this module is imported)."""
    return Path(os.environ["nnUNet_preprocessed"])  # noqa: SIM112 (nnU-Net's name)


@dataclass
class Side:
    """nnU-Net's plan of the bench dataset, loaded once it is planned."""

    dataset_id: int
    dataset_name: str
    workers: int

    @property
    def folder(self) -> Path:
        return preprocessed_root() / self.dataset_name

    def plans(self) -> dict[str, Any]:
        return load_json(str(self.folder / f"{PLANS}.json"))  # type: ignore[no-any-return]

    def dataset_json(self) -> dict[str, Any]:
        return load_json(str(self.folder / "dataset.json"))  # type: ignore[no-any-return]

    def manager(self) -> tuple[PlansManager, Any]:
        manager = PlansManager(self.plans())
        return manager, manager.get_configuration(CONFIG)

    # ---- 1. fingerprint, planning, preprocessing ---------------------------------------
    def verify(self, raw_folder: Path) -> None:
        verify_dataset_integrity(str(raw_folder), self.workers)

    def fingerprint_and_plan(self) -> None:
        extract_fingerprint_dataset(
            self.dataset_id, num_processes=self.workers, verbose=False, show_progress_bar=False
        )
        plan_experiment_dataset(self.dataset_id, ExperimentPlanner)

    def preprocess(self) -> None:
        preprocess_dataset(
            self.dataset_id, PLANS, (CONFIG,), (self.workers,), show_progress_bar=False
        )

    def planned(self) -> dict[str, Any]:
        """Patch (Z, Y, X), batch, network kwargs and VRAM proxy of the 3d_fullres plan."""
        manager, config = self.manager()
        arch = config.network_arch_init_kwargs
        channels = determine_num_input_channels(manager, config, self.dataset_json())
        classes = len(self.dataset_json()["labels"])
        proxy = ExperimentPlanner.static_estimate_VRAM_usage(
            tuple(config.patch_size),
            channels,
            classes,
            config.network_arch_class_name,
            arch,
            config.network_arch_init_kwargs_req_import,
        )
        planner = ExperimentPlanner(self.dataset_id)  # for its reference values
        # the planner equates UNet_reference_val_3d (proxy units) with 8 GB at batch 2
        share = (
            proxy
            * config.batch_size
            / planner.UNet_reference_val_corresp_bs_3d
            / planner.UNet_reference_val_3d
        )
        return {
            "patch_size": [int(v) for v in config.patch_size],
            "batch_size": int(config.batch_size),
            "features_per_stage": [int(v) for v in arch["features_per_stage"]],
            "kernel_sizes": [[int(k) for k in ks] for ks in arch["kernel_sizes"]],
            "strides": [[int(s) for s in st] for st in arch["strides"]],
            "n_conv_per_stage": [int(v) for v in arch["n_conv_per_stage"]],
            "n_conv_per_stage_decoder": [int(v) for v in arch["n_conv_per_stage_decoder"]],
            "in_channels": int(channels),
            "num_classes": int(classes),
            "vram_proxy": int(proxy),
            # the proxy value nnU-Net equates with its GPU target, at its reference batch
            "reference_proxy": float(planner.UNet_reference_val_3d),
            "reference_gigabytes": float(planner.UNet_reference_val_corresp_GB),
            "reference_batch": int(planner.UNet_reference_val_corresp_bs_3d),
            "target_gigabytes": float(planner.UNet_vram_target_GB),
            "proxy_share_of_reference": float(share),
            "proxy_gigabytes": float(share * planner.UNet_reference_val_corresp_GB),
            "proxy_note": f"static_estimate_VRAM_usage = {proxy:.3g} feature-map elements per "
            f"sample (not bytes), equated by its planner to {planner.UNet_reference_val_corresp_GB}"
            f" GB at {planner.UNet_reference_val_3d:.3g} x batch "
            f"{planner.UNet_reference_val_corresp_bs_3d}; shown converted by that ratio "
            f"({share:.0%} of its {planner.UNet_vram_target_GB} GB target)",
        }

    def write_splits(self, folds: list[dict[str, list[str]]]) -> None:
        """Use the given 5 folds (autoseg's splits.json) as nnU-Net's splits_final.json."""
        save_json(folds, str(self.folder / "splits_final.json"))

    # ---- 2. data loading + augmentation ------------------------------------------------
    def trainer(self, cls: type[nnUNetTrainer] = nnUNetTrainer) -> nnUNetTrainer:
        """An initialised trainer of fold 0 (network, loss, optimiser built; no loaders)."""
        plans = {**self.plans(), "continue_training": False}  # as nnUNetv2_train sets it
        trainer = cls(plans, CONFIG, 0, self.dataset_json(), device=CPU)
        trainer.initialize()
        return trainer

    def loader_rate(self, trainer: nnUNetTrainer, batches: int, warmup: int) -> float:
        """Training batches per second of nnU-Net's own loader (workers = nnUNet_n_proc_DA)."""
        train, val = trainer.get_dataloaders()
        try:
            for _ in range(warmup):
                next(train)
            start = time.perf_counter()
            for _ in range(batches):
                next(train)
            return batches / (time.perf_counter() - start)
        finally:
            for loader in (train, val):
                if hasattr(loader, "_finish"):
                    loader._finish()

    def memory_step(
        self, trainer: nnUNetTrainer
    ) -> tuple[torch.nn.Module, torch.optim.Optimizer, Callable[[], Any]]:
        """nnU-Net's own training objects (network, SGD, deep-supervised Dice + CE loss) and a
        loss closure on a random batch of the planned patch and batch size."""
        patch = [int(v) for v in trainer.configuration_manager.patch_size]
        batch, classes = trainer.batch_size, trainer.label_manager.num_segmentation_heads
        gen = torch.Generator().manual_seed(0)
        data = torch.randn(batch, trainer.num_input_channels, *patch, generator=gen)
        targets = []
        for scale in trainer._get_deep_supervision_scales():
            shape = [round(p * s) for p, s in zip(patch, scale)]
            targets.append(torch.randint(0, classes, (batch, 1, *shape), generator=gen).float())
        network = trainer.network.train()
        return network, trainer.optimizer, lambda: trainer.loss(network(data), targets)

    # ---- 4. training -------------------------------------------------------------------
    def train(self, minutes: float, seed: int) -> dict[str, Any]:
        """Fold 0 with :class:`BudgetTrainer` in ``minutes``, then nnU-Net's own validation."""
        torch.manual_seed(seed)
        np.random.seed(seed)
        trainer = self.trainer(BudgetTrainer)
        assert isinstance(trainer, BudgetTrainer)
        trainer.budget_seconds = minutes * 60
        start = time.perf_counter()
        trainer.run_training()
        middle = time.perf_counter()
        trainer.validate_without_mirroring()
        return {
            "training_seconds": middle - start,
            "validation_seconds": time.perf_counter() - middle,
            "epochs": trainer.current_epoch,
            "iterations": trainer.iterations_done,
            "iterations_per_epoch": trainer.num_iterations_per_epoch,
            "stopped_early": trainer.stopped_early,
            "validation_dir": str(Path(trainer.output_folder) / "validation"),
            "model_dir": str(trainer.output_folder_base),
        }

    # ---- 3. prediction -----------------------------------------------------------------
    def network(self, deep_supervision: bool, seed: int = 0) -> torch.nn.Module:
        """nnU-Net's planned 3d_fullres network with random weights."""
        manager, config = self.manager()
        dataset_json = self.dataset_json()
        torch.manual_seed(seed)
        return nnUNetTrainer.build_network_architecture(
            manager,
            config,
            determine_num_input_channels(manager, config, dataset_json),
            manager.get_label_manager(dataset_json).num_segmentation_heads,
            deep_supervision,
        )

    def predictor(
        self, network: torch.nn.Module, mirroring: bool, weights: dict[str, Any] | None = None
    ) -> nnUNetPredictor:
        manager, config = self.manager()
        predictor = nnUNetPredictor(
            tile_step_size=0.5,
            use_gaussian=True,
            use_mirroring=mirroring,
            perform_everything_on_device=False,
            device=CPU,
            allow_tqdm=False,
        )
        params = [weights] if weights is not None else None
        predictor.manual_initialization(
            network.eval(),
            manager,
            config,
            params,
            self.dataset_json(),
            "nnUNetTrainer",
            (0, 1, 2),
        )
        return predictor

    def sliding_window_seconds(
        self, predictor: nnUNetPredictor, image: torch.Tensor
    ) -> Callable[[], float]:
        """A timer of ``predict_sliding_window_return_logits`` on one preprocessed image."""

        def run() -> float:
            start = time.perf_counter()
            predictor.predict_sliding_window_return_logits(image)
            return time.perf_counter() - start

        return run

    def predict_files(self, results: Path, images: Path, out: Path, mirroring: bool) -> float:
        """Seconds of ``predict_from_files`` (read, preprocess, predict, export) with the
        trained fold-0 model of :class:`BudgetTrainer`."""
        checkpoint = torch.load(
            results / "fold_0" / "checkpoint_final.pth", map_location=CPU, weights_only=False
        )  # nnU-Net's own checkpoint format (pickled; written by this run)
        network = self.network(deep_supervision=False)
        network.load_state_dict(checkpoint["network_weights"])
        predictor = self.predictor(network, mirroring, checkpoint["network_weights"])
        start = time.perf_counter()
        predictor.predict_from_files(
            str(images),
            str(out),
            save_probabilities=False,
            overwrite=True,
            num_processes_preprocessing=self.workers,
            num_processes_segmentation_export=self.workers,
        )
        return time.perf_counter() - start


class BudgetTrainer(nnUNetTrainer):
    """nnU-Net's trainer with a wall-clock budget (``budget_seconds``, set after creation).

    Everything is nnU-Net's (loader, augmentation, loss, SGD + poly, per-epoch pseudo Dice,
    checkpoints) except the loop length, decided by the same rules as ``autoseg train
    --time-budget``:

    - after :data:`WARMUP_ITERATIONS` iterations of epoch 0, if fewer than
      :data:`MIN_BUDGET_EPOCHS` default epochs (250 iterations) fit into 80 % of the budget,
      the epochs are shortened (to at least :data:`MIN_ITERATIONS` iterations; validation
      batches in proportion, at least 2);
    - after epoch 0, the epoch count (and so the poly schedule's length) becomes
      ``1 + floor((budget - elapsed - final validation) / epoch seconds)``, where the final
      validation is estimated from one timed forward pass per sliding window plus 2 s export
      per case;
    - training stops as soon as the next epoch (or iteration) would overrun that.
    """

    num_epochs: int
    num_iterations_per_epoch: int
    num_val_iterations_per_epoch: int
    budget_seconds: float = 600.0
    validation_reserve: float = 0.0
    stopped_early: bool = False
    iterations_done: int = 0

    def run_training(self) -> None:
        start = time.perf_counter()
        self.on_train_start()
        decided, epoch_seconds, per_iteration = False, math.inf, math.inf
        while self.current_epoch < self.num_epochs:
            epoch_start = time.perf_counter()
            self.on_epoch_start()
            self.on_train_epoch_start()
            outputs, durations = [], []
            for _ in range(self.num_iterations_per_epoch):
                tick = time.perf_counter()
                outputs.append(self.train_step(next(self.dataloader_train)))
                durations.append(time.perf_counter() - tick)
                self.iterations_done += 1
                per_iteration = statistics.median(durations[1:] or durations)
                if not decided and len(durations) == WARMUP_ITERATIONS:
                    self._shorten_epochs(per_iteration, time.perf_counter() - start)
                elapsed = time.perf_counter() - start
                if elapsed + per_iteration + self.validation_reserve > self.budget_seconds:
                    self.stopped_early = True
                    break
                if len(durations) >= self.num_iterations_per_epoch:
                    break
            self.on_train_epoch_end(outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                val_outputs = [
                    self.validation_step(next(self.dataloader_val))
                    for _ in range(self.num_val_iterations_per_epoch)
                ]
                self.on_validation_epoch_end(val_outputs)
            self.on_epoch_end()
            if self.stopped_early:
                break
            elapsed = time.perf_counter() - start
            if not decided:
                decided = True
                self.validation_reserve = self._estimate_validation_seconds()
                steady = per_iteration * self.num_iterations_per_epoch
                epoch_seconds = min(time.perf_counter() - epoch_start, steady + 1.0)
                left = self.budget_seconds - elapsed - self.validation_reserve
                self.num_epochs = max(1, 1 + math.floor(left / epoch_seconds))
                self.lr_scheduler.max_steps = self.num_epochs
                self.print_to_log_file(f"budget: {self.num_epochs} epochs")
            else:
                epoch_seconds = time.perf_counter() - epoch_start
            if elapsed + epoch_seconds + self.validation_reserve > self.budget_seconds:
                self.stopped_early = self.current_epoch < self.num_epochs
                break
        self.on_train_end()

    def _shorten_epochs(self, per_iteration: float, elapsed: float) -> None:
        remaining = self.budget_seconds - elapsed
        fit = math.floor(TRAINING_SHARE * remaining / (MIN_BUDGET_EPOCHS * per_iteration))
        if fit >= self.num_iterations_per_epoch:
            return
        iterations = max(MIN_ITERATIONS, fit)
        ratio = iterations / self.num_iterations_per_epoch
        self.num_val_iterations_per_epoch = max(2, round(self.num_val_iterations_per_epoch * ratio))
        self.num_iterations_per_epoch = iterations

    def _estimate_validation_seconds(self) -> float:
        """Windows of the validation cases x one timed eval forward + export allowance."""
        _, val_keys = self.do_split()
        patch = tuple(int(v) for v in self.configuration_manager.patch_size)
        dataset = self.dataset_class(self.preprocessed_dataset_folder, list(val_keys))
        windows = 0
        for key in dataset.identifiers:
            data, *_ = dataset.load_case(key)
            shape = [max(s, p) for s, p in zip(data.shape[1:], patch)]
            steps = compute_steps_for_sliding_window(shape, patch, 0.5)
            windows += int(np.prod([len(s) for s in steps]))
        self.network.eval()
        self.set_deep_supervision_enabled(False)
        window = torch.zeros((1, self.num_input_channels, *patch))
        with torch.inference_mode():
            tick = time.perf_counter()
            self.network(window)
            seconds = time.perf_counter() - tick
        self.set_deep_supervision_enabled(True)
        self.network.train()
        return windows * seconds + EXPORT_SECONDS_PER_CASE * len(dataset.identifiers)

    def validate_without_mirroring(self) -> None:
        """nnU-Net's own final validation (sliding window, export, its summary.json),
        with test-time mirroring off as in autoseg's CPU default."""
        self.inference_allowed_mirroring_axes = None
        self.perform_actual_validation(save_probabilities=False)
