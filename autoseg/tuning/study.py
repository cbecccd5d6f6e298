"""Create or join the Optuna study of ``autoseg tune``; sampler and pruner factories.

The worker that creates a study (the storage's unique study name decides which one, even
when several start at once) records the study settings and enqueues the default heuristics
as trial 0, then marks the study ready. Every other worker waits for that mark, then checks
that its settings match (so all trials of a study are comparable).
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna

from autoseg.errors import ConfigError
from autoseg.log import get_logger
from autoseg.tuning.request import PRUNERS

__all__ = [
    "DEFAULTS_ATTR",
    "READY_ATTR",
    "SETTINGS_ATTR",
    "default_study_name",
    "make_pruner",
    "make_sampler",
    "open_study",
    "study_folder_name",
]

SETTINGS_ATTR = "autoseg_settings"
READY_ATTR = "autoseg_ready"
DEFAULTS_ATTR = "autoseg_defaults"
"""User attribute of the enqueued default-heuristics trial."""
_log = get_logger(__name__)


def default_study_name(dataset_names: Sequence[str]) -> str:
    """``autoseg-<name>[+<name>...]`` from the dataset names, in the order given."""
    return "autoseg-" + "+".join(dataset_names)


def study_folder_name(study_name: str) -> str:
    """A file-system-safe folder name for a study name."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", study_name).strip("._") or "study"


def open_study(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    settings: dict[str, Any],
    default_params: dict[str, Any],
    *,
    wait_seconds: float = 30.0,
) -> optuna.Study:
    """Create the study (recording ``settings``, enqueueing ``default_params``) or join it.

    Args:
        storage: The RDB storage.
        study_name: Name of the study.
        settings: JSON-able settings every worker of the study must share.
        default_params: The default heuristics as trial parameters (enqueued once, first).
        wait_seconds: How long a joining worker waits for the creator to finish setting up
            the study before doing it itself (the creator may have been killed).

    Raises:
        ConfigError: if the existing study was created with other settings, or maximises
            something else.
    """
    settings = json.loads(json.dumps(settings))
    try:
        study = optuna.create_study(
            storage=storage, study_name=study_name, direction="maximize", load_if_exists=False
        )
        _log.info("created study %r", study_name)
        _initialise(study, settings, default_params)
        return study
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage)
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ConfigError(f"study {study_name!r} exists but does not maximise; use another --study")
    deadline = time.monotonic() + wait_seconds
    while not study.user_attrs.get(READY_ATTR) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not study.user_attrs.get(READY_ATTR):
        _log.warning("study %r was never finished setting up; setting it up now", study_name)
        _initialise(study, settings, default_params)
    _check_settings(study_name, study.user_attrs.get(SETTINGS_ATTR), settings)
    _log.info("joined study %r (%d trials so far)", study_name, len(study.trials))
    return study


def _initialise(study: optuna.Study, settings: dict[str, Any], params: dict[str, Any]) -> None:
    if SETTINGS_ATTR not in study.user_attrs:
        study.set_user_attr(SETTINGS_ATTR, settings)
    study.enqueue_trial(params, user_attrs={DEFAULTS_ATTR: True}, skip_if_exists=True)
    study.set_user_attr(READY_ATTR, True)


def _check_settings(name: str, stored: Any, wanted: dict[str, Any]) -> None:
    if stored == wanted:
        return
    if not isinstance(stored, dict):
        raise ConfigError(f"study {name!r} was not created by 'autoseg tune'; use another --study")
    keys = sorted(set(stored) | set(wanted))
    differences = [
        f"{key}: study {stored.get(key)!r}, here {wanted.get(key)!r}"
        for key in keys
        if stored.get(key) != wanted.get(key)
    ]
    raise ConfigError(
        f"study {name!r} was created with other settings ({'; '.join(differences)}); "
        "repeat its options or choose another --study"
    )


def make_sampler(seed: int, trial_number: int) -> optuna.samplers.TPESampler:
    """The TPE sampler of one trial, seeded from ``(seed, trial_number)``.

    A per-trial seed keeps one worker's study reproducible while parallel workers (same
    ``--seed``) still draw different parameters.
    """
    derived = int(np.random.SeedSequence([int(seed), int(trial_number)]).generate_state(1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=derived)


def make_pruner(
    name: str, *, startup_trials: int, warmup_percent: int
) -> optuna.pruners.BasePruner:
    """The pruner for ``--pruner``: "median", "halving", "hyperband" or "none".

    Intermediate values are reported at steps 1..100, the percent of a trial's training
    done, so trials of any length compare at the same steps. "halving" is asynchronous
    successive halving over training time: a trial reaching a rung (``warmup_percent``, then
    x3, x9, ... percent) goes on only if its value is in the best third of the values seen
    there, so most of the compute goes to the promising heuristics. "hyperband" runs brackets
    of halving whose first rung starts at ``warmup_percent``.
    """
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup_percent
        )
    first_rung = max(1, warmup_percent)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=first_rung, reduction_factor=3, min_early_stopping_rate=0
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=first_rung, max_resource=100, reduction_factor=3
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")
