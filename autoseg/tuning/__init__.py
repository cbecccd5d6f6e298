"""autoseg.tuning: an Optuna study over the planner heuristics (``autoseg tune``).

Modules: ``request`` (options), ``storage`` (RDB storage with heartbeats), ``study``
(create/join, sampler, pruner), ``worker`` (the ask/tell loop shared by many workers),
``objective`` (plan, train, score one trial), ``progress`` (intermediate values),
``datasets`` (shared verify/fingerprint), ``report`` (``--show``), ``run`` (entry points).
Nothing heavy is imported here; torch and optuna load inside the functions that need them.
"""

from __future__ import annotations

from autoseg.tuning.request import TuneRequest
from autoseg.tuning.run import TuneReport, format_tune_report, run_show, run_tune

__all__ = ["TuneReport", "TuneRequest", "format_tune_report", "run_show", "run_tune"]
