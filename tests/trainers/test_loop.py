"""The training loop on a tiny planned workspace: exact resume, skip/validate/overwrite,
fold-folder errors, pretrained weights, time budgets."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from autoseg.errors import CheckpointError, ConfigError
from autoseg.trainers import loop
from autoseg.trainers.config import TrainConfig, TrainingRequest
from autoseg.trainers.cross_validation import run_training
from autoseg.workspace import Workspace

FAST = {"iters_per_epoch": 2, "val_iters": 1, "num_workers": 0, "device": "cpu"}


def _request(config: str = "unet3d", fold: int | str = 0, **changes: Any) -> TrainingRequest:
    options = {"epochs": 3, "final_validation": False, **FAST, **changes}
    resume, overwrite = options.pop("resume", False), options.pop("overwrite", False)
    pretrained = options.pop("pretrained", None)
    return TrainingRequest(
        (config,), (fold,), TrainConfig(**options), resume, overwrite, pretrained
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]  # type: ignore[no-any-return]


def _log_lines(fold_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (fold_dir / "log.jsonl").read_text().splitlines()]


def test_resume_after_a_crash_continues_exactly(
    planned: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Workspace(tmp_path / "other")
    shutil.copytree(planned.root, other.root)
    [whole] = run_training(planned, _request())
    assert whole.status == "trained" and whole.epochs == 3

    real_run_epoch, calls = loop.run_epoch, []

    def crash_in_third_epoch(*args: Any) -> bool:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real_run_epoch(*args)

    monkeypatch.setattr(loop, "run_epoch", crash_in_third_epoch)
    with pytest.raises(RuntimeError, match="killed"):
        run_training(other, _request())
    monkeypatch.setattr(loop, "run_epoch", real_run_epoch)
    fold_dir = other.fold_dir("unet3d", 0)
    assert not (fold_dir / "checkpoint_final.pt").exists()
    with pytest.raises(ConfigError, match="unfinished training; pass --resume"):
        run_training(other, _request())
    [resumed] = run_training(other, _request(resume=True))
    assert resumed.status == "trained" and resumed.epochs == 3
    expected, got = (
        _weights(whole.fold_dir / "checkpoint_final.pt"),
        _weights(fold_dir / "checkpoint_final.pt"),
    )
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert _log_lines(fold_dir) == [
        {**line, "seconds": got_line["seconds"]}
        for line, got_line in zip(_log_lines(whole.fold_dir), _log_lines(fold_dir))
    ]


def test_corrupted_checkpoint_gives_a_clear_error(planned: Workspace) -> None:
    run_training(planned, _request(epochs=1))
    fold_dir = planned.fold_dir("unet3d", 0)
    (fold_dir / "checkpoint_final.pt").unlink()  # as if killed before the end
    latest = fold_dir / "checkpoint_latest.pt"
    latest.write_bytes(latest.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="corrupted or unreadable") as info:
        run_training(planned, _request(epochs=1, resume=True))
    assert info.value.path == latest


def test_finished_folds_are_skipped_and_missing_validation_is_run(planned: Workspace) -> None:
    request = _request("deepmedic", epochs=1, iters_per_epoch=1, final_validation=True)
    [first] = run_training(planned, request)
    assert first.status == "trained" and first.summary is not None
    summary = first.fold_dir / "validation" / "summary.json"
    assert json.loads(summary.read_text())["inputs"]["checkpoint"]
    [again] = run_training(planned, request)
    assert again.status == "skipped"
    summary.unlink()
    [validated] = run_training(planned, request)
    assert validated.status == "validated" and summary.is_file()
    [fresh] = run_training(planned, _request("deepmedic", epochs=1, overwrite=True))
    assert fresh.status == "trained" and not (fresh.fold_dir / "validation").exists()


def test_pretrained_weights_must_fit(planned: Workspace) -> None:
    [source] = run_training(planned, _request(epochs=1))
    weights = source.fold_dir / "checkpoint_final.pt"
    [tuned] = run_training(planned, _request(fold=1, epochs=1, pretrained=weights))
    config = json.loads((tuned.fold_dir / "train_config.json").read_text())
    assert config["resolved"]["pretrained"] == str(weights)
    with pytest.raises(CheckpointError, match="do not fit"):
        run_training(planned, _request("deepmedic", fold=1, epochs=1, pretrained=weights))
    with pytest.raises(ConfigError, match="choose one with --config"):
        run_training(planned, _request("all", epochs=1, pretrained=weights))


def test_time_budget_sets_the_number_of_epochs(
    planned: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="autoseg")
    [result] = run_training(planned, _request(epochs=None, time_budget_seconds=3.0))
    config = json.loads((result.fold_dir / "train_config.json").read_text())
    assert config["epochs"]["source"] == "--time-budget" and config["epochs"]["decided"]
    assert config["epochs"]["total"] == result.epochs >= 1
    assert "time budget 0 min (--time-budget)" in caplog.text
    state = torch.load(result.fold_dir / "checkpoint_final.pt", weights_only=True)["state_json"]
    assert json.loads(state)["elapsed_seconds"] < 3.0 * 2


def test_short_budgets_shorten_the_epochs(
    planned: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="autoseg")
    request = _request(epochs=None, time_budget_seconds=2.0, iters_per_epoch=None, val_iters=None)
    [result] = run_training(planned, request)
    state = json.loads(
        torch.load(result.fold_dir / "checkpoint_final.pt", weights_only=True)["state_json"]
    )
    assert 10 <= state["iters_per_epoch"] < 250 and 2 <= state["val_iters"] < 50
    shortened = f"epochs shortened to {state['iters_per_epoch']} iterations"
    assert f"{shortened} ({state['val_iters']} validation batches)" in caplog.text


def test_worker_processes_feed_batches_and_stop(planned: Workspace) -> None:
    from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter

    from autoseg.planner.plans import load_plans
    from autoseg.trainers.session import FoldSpec
    from autoseg.trainers.session_setup import open_session

    plans = load_plans(planned.plans_json)
    cases = tuple(sorted(p.stem for p in planned.root.glob("preprocessed/*/*.json")))
    spec = FoldSpec(plans, "deepmedic", 0, cases, cases, planned)
    session = open_session(spec, TrainConfig(epochs=1, num_workers=2, device="cpu"))
    try:
        assert isinstance(session.train_batches, MultiThreadedAugmenter)
        batch = next(session.train_batches)
        assert len(batch["inputs"]) == 1 + len(plans.configuration("deepmedic").network.subsampled)
        workers = list(session.train_batches._processes)
        assert len(workers) == 2 and all(p.is_alive() for p in workers)
    finally:
        session.close()
    assert not any(p.is_alive() for p in workers)


def test_loader_workers_are_set_up_like_every_forked_worker(
    planned: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each loader worker process runs autoseg.parallel's worker set-up once (one torch
    thread: see test_parallel.py for why a forked worker needs it)."""
    from autoseg.planner.plans import load_plans
    from autoseg.trainers import sampling
    from autoseg.trainers.session import FoldSpec
    from autoseg.trainers.session_setup import open_session

    marks = tmp_path / "marks"
    marks.mkdir()

    def mark() -> None:
        (marks / str(os.getpid())).touch()

    monkeypatch.setattr(sampling, "init_worker_process", mark)  # inherited by the fork
    plans = load_plans(planned.plans_json)
    cases = tuple(sorted(p.stem for p in planned.root.glob("preprocessed/*/*.json")))
    spec = FoldSpec(plans, "deepmedic", 0, cases, cases, planned)
    session = open_session(spec, TrainConfig(epochs=1, num_workers=2, device="cpu"))
    try:
        for _ in range(4):
            next(session.train_batches)
        workers = {str(p.pid) for p in session.train_batches._processes}
    finally:
        session.close()
    assert {p.name for p in marks.iterdir()} == workers and str(os.getpid()) not in workers


def test_tensorboard_needs_its_package(planned: Workspace) -> None:
    import importlib.util

    request = _request(epochs=1, tensorboard=True)
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(ConfigError, match="pip install tensorboard"):
            run_training(planned, request)
    else:
        [result] = run_training(planned, request)
        assert any((result.fold_dir / "tensorboard").iterdir())


def test_cpu_threads_are_tuned_unless_given(planned: Workspace) -> None:
    torch.set_num_threads(2)  # the fixture's one thread would leave nothing to tune
    [tuned] = run_training(planned, _request(epochs=1))
    resolved = json.loads((tuned.fold_dir / "train_config.json").read_text())["resolved"]
    assert resolved["threads"] == 2 and resolved["adaptive_threads"] is True
    [fixed] = run_training(planned, _request(fold=1, epochs=1, threads=2))
    resolved = json.loads((fixed.fold_dir / "train_config.json").read_text())["resolved"]
    assert resolved["threads"] == 2 and resolved["adaptive_threads"] is False


def test_the_plan_names_the_loss_unless_the_command_line_does(planned: Workspace) -> None:
    plans = json.loads(planned.plans_json.read_text())
    plans["configurations"]["unet3d"]["loss"] = "ce"
    planned.plans_json.write_text(json.dumps(plans))
    [from_plan] = run_training(planned, _request(epochs=1))
    resolved = json.loads((from_plan.fold_dir / "train_config.json").read_text())["resolved"]
    assert resolved["loss"] == "ce"
    [given] = run_training(planned, _request(fold=1, epochs=1, loss="generalized_dice_ce"))
    resolved = json.loads((given.fold_dir / "train_config.json").read_text())["resolved"]
    assert resolved["loss"] == "generalized_dice_ce"
