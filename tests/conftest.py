"""Shared fixtures: phantom datasets from autoseg.data.synthetic (session-cached), a
workspace and a seeded random generator.

Phantom datasets are shared across the session: never modify one in place; copy it
first (``shutil.copytree(path, tmp_path / "ds")``).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autoseg.data.synthetic import PhantomSpec, generate_phantom_dataset
from autoseg.planner import cpu_speed
from autoseg.planner.plans import CpuSpeed
from autoseg.workspace import Workspace

FIXED_CPU_SPEED = {"unet": {"fp32": 12.5}, "deepmedic": {"fp32": 12.5}}
"""What CPU plans made in tests see instead of a measurement: float32 only, 12.5 GFLOP/s per
thread (on 2 threads at the default efficiency, a 20 GFLOP budget per 1-second iteration)."""

TINY_SPEC = {
    "num_train_cases": 6,
    "num_test_cases": 2,
    "base_shape": (32, 32, 32),
    "channels": ("T1", "FLAIR"),
}


@pytest.fixture(scope="session", autouse=True)
def fixed_cpu_speed() -> Iterator[None]:
    """Plans made in a test process use :data:`FIXED_CPU_SPEED` (deterministic and quick);
    tests of the measurement itself import the real function at module level, before this.
    Session-scoped (and autouse, so it comes first) to cover session-scoped plans too."""

    def fixed(parallel_efficiency: float) -> CpuSpeed:
        return CpuSpeed(FIXED_CPU_SPEED, 2, parallel_efficiency, "measured")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cpu_speed, "measure_cpu_speed", fixed)
        yield


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``phantom_dataset(**spec_overrides) -> Path`` of a generated nnU-Net folder.

    Overrides are :class:`PhantomSpec` fields; one dataset per distinct spec is generated
    per session and then reused. Treat the folder as read-only.
    """
    cache: dict[PhantomSpec, Path] = {}

    def make(**overrides: object) -> Path:
        spec = PhantomSpec(**overrides)  # type: ignore[arg-type]
        if spec not in cache:
            out = tmp_path_factory.mktemp("phantom") / "dataset"
            generate_phantom_dataset(out, spec)
            cache[spec] = out
        return cache[spec]

    return make


@pytest.fixture(scope="session")
def tiny_dataset(phantom_dataset: Callable[..., Path]) -> Path:
    """A small phantom: 6 training + 2 test cases, ~32 voxels per axis, T1 + FLAIR, 3 classes."""
    return phantom_dataset(**TINY_SPEC)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """An empty workspace under the test's temporary folder."""
    return Workspace(tmp_path / "work")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded NumPy generator."""
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def small_heuristics_values() -> dict[str, Any]:
    """Planner overrides that make tiny, fast networks for training tests on a CPU."""
    return {
        "cpu_unet_base_features": 4,
        "cpu_unet_max_features": 16,
        "cpu_deepmedic_feature_scale": 0.15,
        "deepmedic_min_batch_size": 2,
        "deepmedic_max_batch_size": 2,
        "deepmedic_max_train_output": 5,
        "deepmedic_inference_output": 15,
        "unet_max_batch_size": 2,
        "unet2d_min_batch_size": 2,
        "unet2d_max_batch_size": 4,
    }


@pytest.fixture(scope="session")
def small_heuristics(
    small_heuristics_values: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """``small_heuristics_values`` as a JSON file for ``autoseg plan --heuristics``."""
    path = tmp_path_factory.mktemp("heuristics") / "small.json"
    path.write_text(json.dumps(small_heuristics_values))
    return path


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], Path]]:
    """``read_only(folder) -> folder``: make an existing folder unwritable until the test ends.

    A user's folder is made read-only with ``chmod``; root ignores modes, so for root the
    folder is made immutable (``chattr +i``). Where neither works the test is skipped.
    """
    undo: list[Callable[[], None]] = []

    def make(folder: Path) -> Path:
        if os.geteuid() != 0:
            folder.chmod(0o555)
            undo.append(lambda: folder.chmod(0o755))
        elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
            undo.append(lambda: subprocess.run(["chattr", "-i", str(folder)], check=False))
        else:
            pytest.skip("cannot make a folder read-only here (root, and no chattr +i)")
        try:
            (folder / ".probe").write_bytes(b"")
        except OSError:
            return folder
        (folder / ".probe").unlink()
        pytest.skip("the folder stayed writable (file system without permissions)")

    yield make
    for step in reversed(undo):
        step()


TUNE_PHANTOM = {
    "num_train_cases": 5,
    "num_test_cases": 0,
    "base_shape": (16, 20, 20),
    "channels": ("T1",),
    "nested_classes": 1,
    "rare_class": False,
    "seed": 3,
}
"""The phantom of the ``autoseg tune`` tests that run real trials (seconds each on a CPU)."""
TUNE_BASE = {"cpu_unet_max_features": 16, "unet_max_batch_size": 2}
TUNE_FAST = (
    "--configs", "unet3d", "--iters-per-epoch", "2", "--val-iters", "1", "--loader-workers",
    "0", "--threads", "1", "-np", "1", "--device", "cpu", "--heartbeat", "1",
)  # fmt: skip


@pytest.fixture
def fast_tune(phantom_dataset: Callable[..., Path], tmp_path: Path) -> tuple[Path, list[str]]:
    """``(dataset, arguments)`` for ``autoseg tune`` trials that take seconds: the tiny
    phantom, base heuristics of small networks (``--base-heuristics``, a file of this test
    that it may rewrite) and short trainings on one CPU thread with a 1-second heartbeat (add
    ``--trials``, ``--epochs``, ``--work``)."""
    base = tmp_path / "tune_base.json"
    base.write_text(json.dumps(TUNE_BASE))
    dataset = phantom_dataset(**TUNE_PHANTOM)
    return dataset, [str(dataset), "--base-heuristics", str(base), *TUNE_FAST]
