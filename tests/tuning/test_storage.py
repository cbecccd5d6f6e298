"""The Optuna storage: default URL, bad URLs as one-line errors, masked passwords."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autoseg.errors import ConfigError
from autoseg.tuning.storage import default_storage_url, open_storage, redact_url
from autoseg.tuning.study import make_pruner
from autoseg.workspace import Workspace


def test_default_storage_is_a_sqlite_file_in_the_workspace(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "work")
    url = default_storage_url(workspace)
    assert url == f"sqlite:///{(tmp_path / 'work' / 'tuning.sqlite3').resolve()}"
    storage = open_storage(url, heartbeat_seconds=7)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert storage.get_heartbeat_interval() == 7
    assert workspace.tuning_db.is_file()


@pytest.mark.parametrize(
    "url",
    ["not a url", "nosuchdriver://host/db", "sqlite:////no/such/folder/x.sqlite3"],
)
def test_unusable_urls_raise_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="cannot open the Optuna storage") as info:
        open_storage(url)
    assert "\n" not in str(info.value)


def test_passwords_are_masked() -> None:
    assert redact_url("postgresql://me:secret@db.example/tune") == (
        "postgresql://me:***@db.example/tune"
    )
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_a_missing_postgresql_driver_says_what_to_install() -> None:
    with pytest.raises(ConfigError, match=r"install the database driver of postgresql\+pg8000://"):
        open_storage("postgresql+pg8000://me:secret@127.0.0.1:1/tune")


def _halving_run(values: list[float]) -> list[bool]:
    """For trials reporting ``value`` at steps 1..100, whether each was pruned (in order)."""
    study = optuna.create_study(
        direction="maximize", pruner=make_pruner("halving", startup_trials=0, warmup_percent=25)
    )
    pruned = []
    for value in values:
        trial = study.ask()
        stopped = False
        for step in range(1, 101):
            trial.report(value, step)
            if trial.should_prune():
                stopped = step == 25  # pruned at the first rung, not before it
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, value)
        pruned.append(stopped)
    return pruned


def test_successive_halving_stops_poor_trials_at_the_first_rung() -> None:
    assert _halving_run([0.80, 0.82, 0.84, 0.50, 0.90, 0.60]) == [
        False, False, False, True, False, True,
    ]  # fmt: skip


def test_hyperband_starts_at_the_warm_up() -> None:
    pruner = make_pruner("hyperband", startup_trials=0, warmup_percent=25)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert pruner._min_resource == 25
