"""``autoseg demo``: the whole pipeline on a built-in phantom dataset.

:func:`run_demo` generates the phantom into ``<work>/demo_data``, plans it, trains every
planned configuration on the cross-validation folds, runs find-best, predicts the held-out
cases with ``--config best``, evaluates them, draws an overlay of one, and returns a
:class:`DemoResult`; :func:`format_demo_report` is the text the CLI prints. Every setting is
in :class:`DemoSettings` (see docs/demo.md).
"""

from __future__ import annotations

from autoseg.demo.data import demo_data_dir, prepare_demo_data
from autoseg.demo.report import dice_table, format_demo_report, written_paths
from autoseg.demo.run import DemoResult, run_demo, run_demo_settings
from autoseg.demo.settings import DemoSettings, demo_settings
from autoseg.demo.steps import DemoPaths

__all__ = [
    "DemoPaths",
    "DemoResult",
    "DemoSettings",
    "demo_data_dir",
    "demo_settings",
    "dice_table",
    "format_demo_report",
    "prepare_demo_data",
    "run_demo",
    "run_demo_settings",
    "written_paths",
]
