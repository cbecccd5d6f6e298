"""Training speed on this machine: iterations per second and loader batches per second.

Generates the demo phantom (10 cases of ~48x56x56 voxels, two channels), plans it for this
machine (CPU unless a GPU is found), and for both configurations measures

- the data loader alone (sampling from memory maps + augmentation), in batches per second,
  in-process and with 1 and 2 batchgenerators worker processes;
- training iterations (forward, loss, backward, optimiser step) on a batch already in memory,
  in iterations per second, plain and with channels-last-3d and torch.compile (the U-Net);
- training end to end (loading included) with 0, 1 and 2 workers.

    python bench/train_speed.py --out /tmp/autoseg_speed [--iterations 20] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from autoseg.cli import main
from autoseg.planner.plans import load_plans
from autoseg.trainers.config import TrainConfig
from autoseg.trainers.session import FoldSpec, Session
from autoseg.trainers.session_setup import open_session
from autoseg.trainers.splits import make_splits
from autoseg.trainers.steps import train_step
from autoseg.workspace import Workspace


def _session(spec: FoldSpec, **options: object) -> Session:
    config = TrainConfig(epochs=1, **options)  # type: ignore[arg-type]
    return open_session(spec, config)


def loader_rate(session: Session, iterations: int) -> float:
    """Training batches per second of the session's loader (after two warm-up batches)."""
    for _ in range(2):
        next(session.train_batches)
    start = time.perf_counter()
    for _ in range(iterations):
        next(session.train_batches)
    return iterations / (time.perf_counter() - start)


def compute_rate(session: Session, iterations: int) -> float:
    """Iterations per second on one batch held in memory (two warm-up steps)."""
    plan = session.spec.config_plan
    inputs, targets = session.strategy.to_device(next(session.train_batches), plan, session.device)
    session.network.train()
    for _ in range(2):
        train_step(session, inputs, targets)
    start = time.perf_counter()
    for _ in range(iterations):
        train_step(session, inputs, targets)
    if session.device.type == "cuda":
        torch.cuda.synchronize()
    return iterations / (time.perf_counter() - start)


def end_to_end_rate(session: Session, iterations: int) -> float:
    """Iterations per second with batches from the loader (two warm-up iterations)."""
    plan = session.spec.config_plan
    session.network.train()

    def step() -> None:
        batch = next(session.train_batches)
        train_step(session, *session.strategy.to_device(batch, plan, session.device))

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    return iterations / (time.perf_counter() - start)


def _prepare(out: Path) -> tuple[Workspace, FoldSpec, FoldSpec]:
    dataset, work = out / "dataset", out / "work"
    if not (work / "plans.json").is_file():
        main(["demo-data", str(dataset), "--cases", "10", "--test-cases", "0", "--overwrite"])
        main(["plan", str(dataset), "--work", str(work)])
    workspace = Workspace(work)
    plans = load_plans(workspace.plans_json)
    data_dir = workspace.preprocessed_dir(plans.configuration("unet3d").data_identifier)
    cases = sorted(p.name[: -len(".json")] for p in data_dir.glob("*.json"))
    fold = make_splits(cases).fold(0)
    specs = [
        FoldSpec(plans, name, 0, fold.train, fold.val, workspace)
        for name in ("unet3d", "deepmedic")
    ]
    return workspace, specs[0], specs[1]


def run(out: Path, iterations: int) -> None:
    _, unet, deepmedic = _prepare(out)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for spec in (unet, deepmedic):
        plan = spec.config_plan
        print(
            f"\n{spec.config_name}: patch/segment {plan.patch_size}, batch {plan.batch_size}, "
            f"{plan.estimated_gflops_per_iteration:.1f} GFLOP/iteration (estimate)"
        )
        for workers in (0, 1, 2):
            session = _session(spec, num_workers=workers)
            try:
                rate = loader_rate(session, iterations)
                print(f"  loader, {workers} worker(s): {rate:6.2f} batches/s")
            finally:
                session.close()
        variants: list[dict[str, object]] = [{"channels_last": False}, {"channels_last": True}]
        if spec.config_name == "unet3d":
            variants.append({"compile": True, "channels_last": False})
        for options in variants:
            session = _session(spec, num_workers=0, **options)
            try:
                rate = compute_rate(session, iterations)
                label = ", ".join(f"{k}={v}" for k, v in options.items())
                print(f"  compute only ({label}): {rate:6.2f} it/s")
            finally:
                session.close()
        for workers in (0, 1, 2):
            session = _session(spec, num_workers=workers)
            try:
                rate = end_to_end_rate(session, iterations)
                print(f"  end to end, {workers} worker(s): {rate:6.2f} it/s")
            finally:
                session.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("autoseg_speed"))
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args.out, args.iterations)
