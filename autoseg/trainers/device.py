"""Device choice for training, with a clear fallback, and the loader worker count.

``--device auto`` picks CUDA, else Apple MPS, else the CPU. A requested device that is not
available (``--device cuda`` on a machine without a working CUDA) falls back to the CPU with a
warning saying so (training still runs; on a CPU without ``--epochs`` it runs within the
default time budget, never for the GPU's 1000 epochs).
"""

from __future__ import annotations

import os

import torch

from autoseg.errors import ConfigError
from autoseg.log import get_logger

__all__ = ["default_num_workers", "select_device"]

_log = get_logger(__name__)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def select_device(requested: str) -> torch.device:
    """The device to train on for ``requested`` ("auto", "cuda", "cuda:N", "cpu" or "mps").

    Raises:
        ConfigError: for ``cuda:N`` when fewer than N + 1 CUDA devices are visible.
    """
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        _log.warning(
            "--device %s: no CUDA device is available; training on the CPU instead", requested
        )
        return torch.device("cpu")
    if requested.startswith("cuda:"):
        index, visible = int(requested.split(":", 1)[1]), torch.cuda.device_count()
        if index >= visible:
            raise ConfigError(
                f"--device {requested}: only {visible} CUDA device(s) are visible "
                f"(cuda:0..cuda:{visible - 1})"
            )
        torch.cuda.set_device(index)
    if requested == "mps" and not _mps_available():
        _log.warning("--device mps: Apple MPS is not available; training on the CPU instead")
        return torch.device("cpu")
    return torch.device(requested)


def default_num_workers(device: torch.device, cpu_count: int | None = None) -> int:
    """Loader worker processes when not given.

    On a GPU the CPU only feeds it: one core is kept for the training process and up to 12
    workers augment. On a CPU the network computation already uses every core, yet workers
    still pay off: they overlap loading with the parts of an iteration that do not use every
    core. Measured with bench/train_speed.py on a 2-core machine (2 torch threads, end to
    end, iterations/s with 0 / 1 / 2 workers): U-Net 1.24 / 1.19 / 1.46, DeepMedic
    0.58 / 0.61 / 0.68; hence 2 workers there, half the cores (at most 8) on larger CPUs.
    (On the same machine busy with other work, with one torch thread, in-process loading
    was fastest for the U-Net: 1.09 / 0.86 / 0.90.) In-process loading (``-np 0``) keeps a
    resumed run bit-identical to an uninterrupted one; workers are re-seeded on resume.
    """
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    if device.type == "cuda":
        return max(1, min(12, cores - 1))
    return min(8, max(2, cores // 2))
