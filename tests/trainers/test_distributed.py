"""DistributedDataParallel training (autoseg.trainers.distributed): the torchrun environment,
rank seeds, the one-process no-op context, and two real ranks in a gloo group (spawned):
gradients averaged, parameters identical across ranks, every rank its own patches, the
all-reduced pseudo-Dice, one set of artefacts, rank 0's time-budget plan, barrier timeouts."""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from autoseg.errors import ConfigError
from autoseg.trainers.distributed import (
    DEFAULT_TIMEOUT_SECONDS,
    DistContext,
    DistributedError,
    Launch,
    detect_launch,
    distributed,
    rank_seed,
)
from autoseg.workspace import Workspace

TORCHRUN_ENV = {
    "WORLD_SIZE": "4",
    "RANK": "3",
    "LOCAL_RANK": "1",
    "LOCAL_WORLD_SIZE": "2",
    "MASTER_ADDR": "node0",
    "MASTER_PORT": "29500",
}


def test_no_torchrun_environment_means_one_process() -> None:
    assert detect_launch({"PATH": "/bin"}) is None
    with distributed("cpu", environ={}) as dist:
        assert dist == DistContext() and dist.is_main and not dist.is_distributed


def test_torchrun_environment_is_read() -> None:
    assert detect_launch(TORCHRUN_ENV) == Launch(3, 1, 4, 2, "node0:29500", DEFAULT_TIMEOUT_SECONDS)
    launch = detect_launch({**TORCHRUN_ENV, "AUTOSEG_DIST_TIMEOUT": "90s"})
    assert launch is not None and launch.timeout_seconds == 90.0
    with pytest.raises(ConfigError, match="AUTOSEG_DIST_TIMEOUT: invalid duration"):
        detect_launch({**TORCHRUN_ENV, "AUTOSEG_DIST_TIMEOUT": "soon"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"RANK": "4"}, "inconsistent torchrun environment .*RANK=4"),
        ({"LOCAL_RANK": "2"}, "0 <= LOCAL_RANK < LOCAL_WORLD_SIZE"),
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE must be an integer, got 'two'"),
        ({"RANK": "-1"}, "RANK must be >= 0, got -1"),
        ({"RANK": None}, "RANK is not set; start distributed training with torchrun"),
        ({"MASTER_PORT": None}, "MASTER_PORT not; start with torchrun"),
    ],
)
def test_bad_torchrun_environment_is_named(changes: dict[str, str | None], message: str) -> None:
    env = {k: v for k, v in {**TORCHRUN_ENV, **changes}.items() if v is not None}
    with pytest.raises(DistributedError, match=message):
        detect_launch(env)


def test_rank_seeds_differ_per_rank_and_resumed_epoch() -> None:
    assert rank_seed(7, 0) == rank_seed(7, 0, epoch=5) == 7  # rank 0: a one-process run
    seeds = {rank_seed(7, rank, epoch) for rank in (1, 2, 3) for epoch in (0, 5)}
    assert len(seeds) == 6 and 7 not in seeds
    assert rank_seed(7, 2, 5) == rank_seed(7, 2, 5)  # deterministic


def test_one_process_context_is_a_no_op() -> None:
    dist = DistContext()
    module = torch.nn.Linear(2, 2)
    counts = torch.tensor([[1, 2, 3]])
    assert dist.wrap(module) is module and dist.all_reduce_sum(counts) is counts
    assert dist.mean(0.25) == 0.25 and dist.broadcast({"a": 1}) == {"a": 1}
    dist.barrier("nothing to wait for")
    with dist.main_first("nothing to order"):
        pass


def test_more_processes_than_gpus_fail_before_joining(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.distributed as tdist

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    env = {**TORCHRUN_ENV, "LOCAL_RANK": "0"}
    with (
        pytest.raises(DistributedError, match=r"2 processes on this machine .* only 1 CUDA"),
        distributed("cuda", environ=env),
    ):
        pass
    assert not tdist.is_initialized()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


def _gradient_check(dist: DistContext) -> dict[str, torch.Tensor]:
    """DDP gradients of a tiny model vs. each rank's own gradient (different data per rank)."""
    import copy

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    alone = copy.deepcopy(model)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(10 + dist.rank))
    wrapped = dist.wrap(model)  # keep it alive: its reducer averages during backward
    wrapped(x).square().mean().backward()
    alone(x).square().mean().backward()
    local = torch.cat([p.grad.flatten() for p in alone.parameters()])  # type: ignore[union-attr]
    ddp = torch.cat([p.grad.flatten() for p in model.parameters()])  # type: ignore[union-attr]
    return {"local": local, "ddp": ddp, "mean": dist.all_reduce_sum(local) / dist.world_size}


def _train_two_folds(dist: DistContext, work: Path) -> dict[str, Any]:
    """Fold 0 (2 epochs, recording inputs, counts and parameters), then fold 1 under a time
    budget (rank 0's timings decide the epochs); returns what each rank saw."""
    from autoseg.planner.plans import load_plans
    from autoseg.trainers import loop, steps
    from autoseg.trainers.config import TrainConfig
    from autoseg.trainers.cross_validation import load_source_dataset
    from autoseg.trainers.session import FoldSpec, Session

    seen: dict[str, Any] = {"inputs": [], "counts": [], "before": None, "epochs": []}
    real_step, real_counts = steps.train_step, steps.confusion_counts

    def step(session: Session, inputs: Any, targets: list[torch.Tensor]) -> float:
        if seen["before"] is None:
            seen["before"] = _flat(session.module)
        seen["inputs"].append(float(inputs.sum()))
        return real_step(session, inputs, targets)

    def counts(*args: Any) -> torch.Tensor:
        result = real_counts(*args)
        seen["counts"][-1].append(result.clone())
        return result

    def on_epoch(session: Session) -> None:
        seen["epochs"].append(
            {
                "record": session.state.history[-1].to_dict(),
                "params": _flat(session.module),
                "total": session.state.total_epochs,
                "iters": session.state.iters_per_epoch,
            }
        )
        seen["counts"].append([])

    steps.train_step, steps.confusion_counts = step, counts  # type: ignore[assignment]
    workspace = Workspace(work)
    plans, dataset = load_plans(workspace.plans_json), load_source_dataset(workspace)
    ids = sorted(c.case_id for c in dataset.cases)
    fast: dict[str, Any] = {
        "num_workers": 0,
        "device": "cpu",
        "final_validation": False,
        "val_iters": 2,
    }
    seen["counts"].append([])
    for fold, config in (
        (0, TrainConfig(epochs=2, iters_per_epoch=2, **fast)),
        (1, TrainConfig(time_budget_seconds=2.5, **fast)),
    ):
        spec = FoldSpec(plans, "unet3d", fold, tuple(ids[2:]), tuple(ids[:2]), workspace)
        result = loop.train_fold(spec, config, dataset, on_epoch=on_epoch, dist=dist)
        seen[f"fold{fold}"] = result.status
    seen["counts"].pop()  # opened by the last epoch
    with dist.main_first("unfinishing fold 1"):
        if dist.is_main:
            (spec.fold_dir / "checkpoint_final.pt").unlink()
    try:  # every rank refuses (rank 0 first, then it lets the others check)
        loop.train_fold(spec, config, dataset, dist=dist)
    except ConfigError as err:
        seen["refused"] = err.message
    return seen


def _worker(rank: int, port: int, work: str, out: str) -> None:
    os.environ.update(
        {
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "LOCAL_WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "AUTOSEG_DIST_TIMEOUT": "120s",  # a desynchronised bug fails instead of hanging
        }
    )
    torch.set_num_threads(1)
    results: dict[str, Any] = {}
    with distributed("cpu") as dist:
        results["rank"] = (dist.rank, dist.world_size, dist.backend)
        results["gradients"] = _gradient_check(dist)
        results["training"] = _train_two_folds(dist, Path(work))
        results["broadcast"] = dist.broadcast(f"rank {dist.rank}")
        torch.save(results, Path(out) / f"rank{rank}.pt")
        if rank == 0:  # rank 1 does not come to this barrier in time
            start = time.perf_counter()
            try:
                dist.barrier("a barrier rank 1 skips", timeout_seconds=1.5)
            except DistributedError as err:
                timeout = {"message": str(err), "seconds": time.perf_counter() - start}
                (Path(out) / "timeout.json").write_text(json.dumps(timeout))
        else:
            time.sleep(3.0)


@pytest.fixture(scope="module")
def two_ranks(
    planned_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Workspace, list[dict[str, Any]], Path]:
    """Both ranks' results of :func:`_worker`, the workspace they trained in, the output."""
    import shutil

    import torch.multiprocessing as mp

    work = tmp_path_factory.mktemp("ddp") / "work"
    shutil.copytree(planned_root, work)
    out = work.parent
    # The spawned processes import this module by the name pytest gave it: make its root
    # importable (they inherit sys.path).
    root = Path(__file__).resolve().parents[_worker.__module__.count(".")]
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root))
        mp.spawn(_worker, args=(_free_port(), str(work), str(out)), nprocs=2, join=True)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    return Workspace(work), ranks, out


def test_two_ranks_spawned_gloo_slow(
    two_ranks: tuple[Workspace, list[dict[str, Any]], Path],
) -> None:
    """Gradients are averaged over the ranks and the control helpers agree."""
    _, ranks, _ = two_ranks
    assert [r["rank"] for r in ranks] == [(0, 2, "gloo"), (1, 2, "gloo")]
    first, second = (r["gradients"] for r in ranks)
    assert not torch.allclose(first["local"], second["local"])  # different data per rank
    for grads in (first, second):
        torch.testing.assert_close(grads["ddp"], (first["local"] + second["local"]) / 2)
        torch.testing.assert_close(grads["ddp"], grads["mean"])
    assert [r["broadcast"] for r in ranks] == ["rank 0", "rank 0"]


def test_ranks_sample_their_own_patches_and_stay_identical(
    two_ranks: tuple[Workspace, list[dict[str, Any]], Path],
) -> None:
    _, ranks, _ = two_ranks
    zero, one = (r["training"] for r in ranks)
    assert zero["inputs"] != one["inputs"]  # rank-specific seeds: different patches
    assert torch.equal(zero["before"], one["before"])  # same initial weights
    for a, b in zip(zero["epochs"], one["epochs"], strict=True):
        assert torch.equal(a["params"], b["params"])  # averaged gradients: identical updates
    assert not torch.equal(zero["before"], zero["epochs"][0]["params"])


def test_pseudo_dice_is_all_reduced_and_logged_once(
    two_ranks: tuple[Workspace, list[dict[str, Any]], Path],
) -> None:
    from autoseg.inference.checkpoint import load_model
    from autoseg.trainers.steps import pseudo_dice

    workspace, ranks, _ = two_ranks
    zero, one = (r["training"] for r in ranks)
    fold_dir = workspace.fold_dir("unet3d", 0)
    lines = [json.loads(x) for x in (fold_dir / "log.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1]  # rank 0 alone appends
    for epoch, line in enumerate(lines):
        local = [torch.stack(r["counts"][epoch]).sum(0) for r in (zero, one)]
        assert not torch.equal(local[0], local[1])  # each rank validated other patches
        expected = [None if math.isnan(d) else d for d in pseudo_dice(local[0] + local[1])]
        assert line["pseudo_dice"] == expected
        assert zero["epochs"][epoch]["record"] == one["epochs"][epoch]["record"] | {
            "seconds": zero["epochs"][epoch]["record"]["seconds"]
        }
    names = sorted(p.name for p in fold_dir.iterdir())
    assert names == [
        "checkpoint_best.pt", "checkpoint_final.pt", "checkpoint_latest.pt", "log.jsonl",
        "progress.png", "train_config.json",
    ]  # fmt: skip
    network, checkpoint = load_model(fold_dir / "checkpoint_final.pt")
    assert not any(k.startswith("module.") for k in checkpoint.raw["model"])
    assert torch.equal(_flat(network), zero["epochs"][1]["params"])
    config = json.loads((fold_dir / "train_config.json").read_text())
    assert config["resolved"]["distributed"] == {
        "world_size": 2, "backend": "gloo", "batch_size_per_process": 2,
        "effective_batch_size": 4,
    }  # fmt: skip


def test_time_budget_epochs_are_rank_zeros_on_every_rank(
    two_ranks: tuple[Workspace, list[dict[str, Any]], Path],
) -> None:
    workspace, ranks, _ = two_ranks
    zero, one = (r["training"] for r in ranks)
    assert zero["fold1"] == one["fold1"] == "trained"
    budget = [(e["total"], e["iters"]) for e in zero["epochs"][2:]]
    assert budget == [(e["total"], e["iters"]) for e in one["epochs"][2:]] and budget
    assert budget[0][1] < 250  # shortened mid-epoch from rank 0's timings
    config = json.loads((workspace.fold_dir("unet3d", 1) / "train_config.json").read_text())
    assert config["epochs"]["total"] == budget[-1][0] == len(budget)


def test_an_error_on_every_rank_does_not_hang(
    two_ranks: tuple[Workspace, list[dict[str, Any]], Path],
) -> None:
    _, ranks, _ = two_ranks
    for rank in ranks:
        assert "unfinished training; pass --resume" in rank["training"]["refused"]


def test_a_rank_that_does_not_arrive_times_out_with_a_clear_message(
    two_ranks: tuple[Workspace, list[dict[str, Any]], Path],
) -> None:
    _, _, out = two_ranks
    timeout = json.loads((out / "timeout.json").read_text())
    assert timeout["message"].startswith("rank 0 of 2: a barrier rank 1 skips: another process")
    assert "within 1.5 s" in timeout["message"] and timeout["seconds"] < 2.9
