from __future__ import annotations

import optuna
import pytest

from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.search_space import (
    SEARCH_SPACE,
    active_space,
    default_params,
    suggest_heuristics,
)


def test_every_spec_names_a_heuristic() -> None:
    fields = set(PlannerHeuristics().to_dict())
    assert {p.name for p in SEARCH_SPACE} <= fields


@pytest.mark.parametrize("on_cpu", [True, False])
def test_enqueued_defaults_reproduce_the_default_heuristics(on_cpu: bool) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(default_params(on_cpu=on_cpu))
    trial = study.ask()
    assert suggest_heuristics(trial, on_cpu=on_cpu) == PlannerHeuristics()


def test_sampled_heuristics_are_valid_and_vary() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    sampled = [suggest_heuristics(study.ask(), on_cpu=True) for _ in range(10)]
    assert len({h.spacing_percentile for h in sampled}) == 10
    assert all(isinstance(h.deepmedic_subsample_factors, tuple) for h in sampled)
    assert all(h.unet_base_features == PlannerHeuristics().unet_base_features for h in sampled)


def test_a_study_tunes_only_what_its_configurations_use() -> None:
    unet_only = {p.name for p in active_space(True, ["unet3d"])}
    assert {"cpu_unet_optimizer", "cpu_unet_lr", "unet_loss", "augmentation_strength"} <= unet_only
    assert {"unet_foreground_oversample", "cpu_seconds_per_iteration"} <= unet_only
    assert not any(name.startswith("deepmedic") or "lowres" in name for name in unet_only)
    assert "unet2d_min_batch_size" not in unet_only
    deepmedic = {p.name for p in active_space(True, ["deepmedic"])}
    assert {"cpu_deepmedic_optimizer", "cpu_deepmedic_lr", "deepmedic_loss"} <= deepmedic
    assert not any("unet" in name for name in deepmedic)
    gpu = {p.name for p in active_space(False, ["unet3d"])}
    assert {"unet_optimizer", "unet_lr"} <= gpu and "cpu_unet_lr" not in gpu
    assert {p.name for p in active_space(True)} >= unet_only | deepmedic


def test_defaults_of_a_narrow_study_reproduce_the_default_heuristics() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(default_params(on_cpu=True, configs=["unet3d"]))
    trial = study.ask()
    heuristics = suggest_heuristics(trial, on_cpu=True, configs=["unet3d"])
    assert heuristics == PlannerHeuristics()
    assert set(trial.params) == {p.name for p in active_space(True, ["unet3d"])}


def test_sampled_trainer_settings_are_valid() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    sampled = [suggest_heuristics(study.ask(), on_cpu=True, configs=["unet3d"]) for _ in range(20)]
    assert {h.cpu_unet_optimizer for h in sampled} == {"sgd", "adam", "adamw"}
    assert all(1e-4 <= h.cpu_unet_lr <= 3e-2 for h in sampled)
    assert len({h.unet_loss for h in sampled}) > 1
    assert all(h.deepmedic_loss == PlannerHeuristics().deepmedic_loss for h in sampled)
