from __future__ import annotations

import optuna
import pytest

from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.search_space import SEARCH_SPACE, default_params, suggest_heuristics


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
