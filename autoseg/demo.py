"""``autoseg demo``: run autoseg on a built-in phantom dataset, step by step.

Each step is one small function taking what the previous steps produced; the pipeline
steps (plan, train, predict, evaluate) are appended to :func:`run_demo` as they land.
Everything is written under the workspace: the dataset goes to ``<work>/demo_data/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from autoseg.data.synthetic import PhantomSpec, generate_phantom_dataset
from autoseg.data.verify import VerifyReport, verify_dataset
from autoseg.errors import ConfigError
from autoseg.log import get_logger
from autoseg.workspace import Workspace

__all__ = ["demo_data_dir", "demo_spec", "prepare_demo_data", "run_demo", "verify_demo_data"]

_log = get_logger(__name__)


def demo_spec(*, quick: bool, seed: int) -> PhantomSpec:
    """The demo's phantom: 10 training + 3 test cases of about 48x56x56 voxels (quick: 6 + 2
    cases of about 32x40x40), two MRI channels, three foreground classes, varied spacing."""
    if quick:
        return PhantomSpec(num_train_cases=6, num_test_cases=2, base_shape=(32, 40, 40), seed=seed)
    return PhantomSpec(num_train_cases=10, num_test_cases=3, base_shape=(48, 56, 56), seed=seed)


def demo_data_dir(workspace: Workspace) -> Path:
    """Where the demo dataset lives: ``<work>/demo_data``."""
    return workspace.root / "demo_data"


def prepare_demo_data(workspace: Workspace, spec: PhantomSpec) -> Path:
    """Generate the demo dataset, or reuse it when it was generated from the same spec.

    Returns:
        The dataset folder.
    """
    folder = demo_data_dir(workspace)
    if _generated_from(folder) == spec:
        _log.info("reusing the demo dataset in %s", folder)
        return folder
    generate_phantom_dataset(folder, spec, overwrite=True)
    return folder


def _generated_from(folder: Path) -> PhantomSpec | None:
    """The spec recorded in ``folder/dataset.json`` (None if absent or unreadable)."""
    try:
        data = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
        return PhantomSpec.from_dict(data["phantom_spec"])
    except (OSError, ValueError, KeyError, TypeError, ConfigError):
        return None


def verify_demo_data(folder: Path) -> VerifyReport:
    """Verify the demo dataset.

    Raises:
        DatasetError: with the first problem, if any (a bug in the generator).
    """
    report = verify_dataset(folder)
    if not report.ok:
        raise report.problems[0].to_error(extra=len(report.problems) - 1)
    return report


def run_demo(workspace: Workspace, *, quick: bool, seed: int) -> int:
    """``autoseg demo``: generate and verify the demo dataset, print what was done.

    Args:
        workspace: Where every artefact goes (the dataset to ``<work>/demo_data``).
        quick: The smaller, faster version (used by the tests).
        seed: Seed of the phantom generator (and of later steps).

    Returns:
        The exit status (0).
    """
    spec = demo_spec(quick=quick, seed=seed)
    folder = prepare_demo_data(workspace, spec)
    report = verify_demo_data(folder)
    print(f"demo dataset written to {folder} and verified:")
    if report.summary is not None:
        print("\n".join("  " + line for line in report.summary.lines()))
    return 0
