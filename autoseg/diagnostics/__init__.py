"""autoseg.diagnostics: ground truth for the planner's models, for tests and ``bench/``.

``memory_measure`` runs one real training step and counts the bytes it uses (autograd's
saved tensors on any device, ``torch.cuda.max_memory_allocated`` on a GPU);
``memory_cases`` lists the configurations the memory model is validated on. Planning never
imports this package: it measures the trainer's loss and networks, so it sits on the top
floor with ``demo`` and ``tuning``.
"""

from __future__ import annotations

__all__: list[str] = []
