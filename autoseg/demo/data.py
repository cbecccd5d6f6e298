"""The demo's dataset: a phantom generated into ``<work>/demo_data`` (``plan`` verifies it)."""

from __future__ import annotations

from pathlib import Path

from autoseg.data.synthetic import PhantomSpec, generate_phantom_dataset
from autoseg.errors import ConfigError
from autoseg.log import get_logger
from autoseg.strict import load_json
from autoseg.workspace import Workspace

__all__ = ["demo_data_dir", "prepare_demo_data"]

_log = get_logger(__name__)


def demo_data_dir(workspace: Workspace) -> Path:
    """Where the demo dataset lives: ``<work>/demo_data``."""
    return workspace.root / "demo_data"


def prepare_demo_data(workspace: Workspace, spec: PhantomSpec) -> tuple[Path, bool]:
    """Generate the demo dataset, or reuse it when it was generated from the same spec.

    Returns:
        ``(folder, reused)``.
    """
    folder = demo_data_dir(workspace)
    if _generated_from(folder) == spec:
        _log.info("reusing the demo dataset in %s", folder)
        return folder, True
    _log.info("generating the demo dataset in %s", folder)
    generate_phantom_dataset(folder, spec, overwrite=True)
    return folder, False


def _generated_from(folder: Path) -> PhantomSpec | None:
    """The spec recorded in ``folder/dataset.json`` (None if absent or unreadable)."""
    try:
        data = load_json((folder / "dataset.json").read_text(encoding="utf-8"))
        return PhantomSpec.from_dict(data["phantom_spec"])
    except (OSError, ValueError, KeyError, TypeError, ConfigError):
        return None
