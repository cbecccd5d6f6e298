"""Fixtures of the trainer tests: a tiny planned workspace (real planner, small heuristics).

The phantom (6 cases of ~20x24x24 voxels, one channel) is planned once per session with
heuristics that shrink both networks (a few million FLOP per iteration), so a training
iteration takes milliseconds; each test gets its own copy of the workspace. Torch runs on
one thread: the tests are tiny, and on a loaded 2-core machine more threads only contend.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autoseg.workspace import Workspace

PHANTOM = {
    "num_train_cases": 6,
    "num_test_cases": 0,
    "base_shape": (20, 24, 24),
    "channels": ("T1",),
    "seed": 3,
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def small_heuristics_values(small_heuristics_values: dict[str, Any]) -> dict[str, Any]:
    """The shared small networks, with one subsampled DeepMedic pathway."""
    return {**small_heuristics_values, "deepmedic_subsample_factors": [3]}


@pytest.fixture(scope="session")
def planned_root(
    phantom_dataset: Callable[..., Path],
    small_heuristics: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A workspace planned (and preprocessed) from the tiny phantom; never modify it."""
    from autoseg.planner.workflow import run_plan

    root = tmp_path_factory.mktemp("planned") / "work"
    run_plan(
        phantom_dataset(**PHANTOM),
        Workspace(root),
        heuristics_path=small_heuristics,
        device="cpu",
        num_workers=1,
    )
    return root


@pytest.fixture
def planned(planned_root: Path, tmp_path: Path) -> Workspace:
    """A private copy of the planned workspace."""
    target = tmp_path / "work"
    shutil.copytree(planned_root, target)
    return Workspace(target)
