"""autoseg.tuning: an Optuna study over the planner heuristics (``autoseg tune``).

Modules: ``request`` (options), ``storage`` (RDB storage with heartbeats), ``study``
(create/join, sampler, pruner), ``worker`` (the ask/tell loop shared by many workers),
``objective`` (plan, train, score one trial), ``progress`` (intermediate values),
``datasets`` (shared verify/fingerprint), ``report`` (``--show``), ``run`` (entry points).
The CLI imports this package only inside the ``tune`` handler; Matplotlib loads only when
``--show`` draws its plots.
"""

from __future__ import annotations

from autoseg.tuning.request import TuneRequest
from autoseg.tuning.run import TuneReport, format_tune_report, run_show, run_tune

__all__ = ["TuneReport", "TuneRequest", "format_tune_report", "run_show", "run_tune"]
