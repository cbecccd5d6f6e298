"""Patch and segment samplers over memory-mapped preprocessed cases (batchgenerators loaders).

Each sample reads only what it needs from the memory-mapped ``<case>.npy`` and
``<case>_seg.npy``; voxels beyond the image are padded (image 0, labels 0). Training samples
are spatially augmented while they are read (:mod:`autoseg.trainers.spatial`), so rotation
and zoom never pull in padding that a fixed pre-cropped region would have needed.

- :class:`PatchSampler` (U-Net): cases drawn uniformly; the last ``round(batch *
  foreground_oversample)`` samples of each batch are forced to contain foreground, centred on a
  voxel of a class drawn with the plan's class-sampling weights among the classes present in
  the case; the other patches lie at a uniformly random position inside the image.
- :class:`SegmentSampler` (DeepMedic): a class is drawn with equal probability among those
  present in the case (background locations lie inside the ROI / body), then a voxel of it;
  the output segment is centred there, inside a box that holds every pathway's input. Only
  the output segment's labels are read.

Batches are ``{"data": B×C×patch float32, "seg": B×1×(patch or output) int16, "keys"}``.
With a ``stage_dir`` (the cascade), ``seg`` has a second channel: the first stage's label
map of the same patch (``<stage_dir>/<case>.npy``), transformed with the labels, so the
batch transforms mirror it with them and the strategy turns it into input channels.
Randomness comes from NumPy's global generator, which batchgenerators seeds per worker
process (and the trainer seeds and checkpoints for in-process loading). Arrays are opened
lazily in each process, so loaders pickle without their data.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from batchgenerators.dataloading.data_loader import DataLoader

from autoseg.errors import ConfigError
from autoseg.parallel import init_worker_process
from autoseg.preprocessing.store import PreprocessedCase, load_preprocessed_case
from autoseg.trainers.spatial import SpatialParams, draw_coordinates, read_labels, read_patch

__all__ = ["CaseSampler", "PatchSampler", "SegmentSampler"]


class CaseSampler(DataLoader):  # type: ignore[misc]
    """Infinite batchgenerators loader over preprocessed cases (subclasses place the patches).

    Args:
        folder: The preprocessed-data folder.
        case_ids: Cases to sample from.
        batch_size: Samples per batch.
        patch: Patch shape (Z, Y, X) of each sample.
        spatial: Random spatial transform of each sample, or None (plain crops).
        seg_box: ``(offset, shape)`` of the part of the patch whose labels are returned
            (default: the whole patch).
        stage_dir: Folder of the cascade's first-stage label maps (``<case>.npy`` on the
            same grid), returned as ``seg`` channel 1; None: no first stage.
    """

    def __init__(
        self,
        folder: Path,
        case_ids: Sequence[str],
        batch_size: int,
        patch: Sequence[int],
        spatial: SpatialParams | None = None,
        seg_box: tuple[Sequence[int], Sequence[int]] | None = None,
        stage_dir: Path | None = None,
    ) -> None:
        if not case_ids:
            raise ConfigError("no cases to sample patches from (empty case list)", path=folder)
        super().__init__(list(case_ids), batch_size, infinite=True)
        self.folder = Path(folder)
        self.case_ids = tuple(case_ids)
        self.indices = list(range(len(self.case_ids)))
        self.patch = tuple(int(v) for v in patch)
        self.spatial = spatial
        self.seg_box = seg_box
        self._owner_pid = os.getpid()
        self._watched_pid = self._owner_pid
        self._cache: dict[int, PreprocessedCase] = {}
        self.stage_dir = None if stage_dir is None else Path(stage_dir)
        self._stages: dict[int, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}
        state["_stages"] = {}
        return state

    def stage(self, index: int) -> np.ndarray:
        """The first-stage label map of the case at ``index`` (memory-mapped, once)."""
        assert self.stage_dir is not None
        if index not in self._stages:
            path = self.stage_dir / f"{self.case_ids[index]}.npy"
            self._stages[index] = np.load(path, mmap_mode="r", allow_pickle=False)
        return self._stages[index]

    def case(self, index: int) -> PreprocessedCase:
        """The memory-mapped case at ``index`` (opened once per process)."""
        if index not in self._cache:
            self._cache[index] = load_preprocessed_case(self.folder, self.case_ids[index])
        return self._cache[index]

    def generate_train_batch(self) -> dict[str, Any]:
        if os.getpid() != self._watched_pid:  # first batch in a worker process
            self._watched_pid = os.getpid()
            init_worker_process()
            _watch_parent(self._owner_pid)
        indices = self.get_indices()
        seg_shape = self.patch if self.seg_box is None else tuple(self.seg_box[1])
        data = np.zeros((len(indices), self._channels(), *self.patch), dtype=np.float32)
        seg_channels = 1 if self.stage_dir is None else 2
        seg = np.zeros((len(indices), seg_channels, *seg_shape), dtype=np.int16)
        keys = []
        for b, index in enumerate(indices):
            case = self.case(int(index))
            start = self.patch_start(case, b)
            coords = None if self.spatial is None else draw_coordinates(self.patch, self.spatial)
            image, labels = read_patch(
                case.image,
                case.seg,
                start,
                self.patch,
                coords,
                order=1 if self.spatial is None else self.spatial.order,  # unused by plain crops
                seg_box=self.seg_box,
            )
            data[b] = image
            if labels is not None:
                seg[b, 0] = labels
            if self.stage_dir is not None:
                stage = self.stage(int(index))
                seg[b, 1] = read_labels(stage, start, self.patch, coords, seg_box=self.seg_box)
            keys.append(case.properties.case_id)
        return {"data": data, "seg": seg, "keys": keys}

    def _channels(self) -> int:
        return int(self.case(0).image.shape[0])

    def patch_start(self, case: PreprocessedCase, sample: int) -> tuple[int, ...]:
        """First voxel (Z, Y, X) of the untransformed patch of sample ``sample``."""
        raise NotImplementedError


def _random_voxel(locations: np.ndarray) -> np.ndarray:
    return np.asarray(locations[np.random.randint(len(locations))], dtype=np.int64)


def _present(case: PreprocessedCase, foreground_only: bool) -> list[int]:
    return sorted(
        v for v, locs in case.locations.items() if len(locs) and (v != 0 or not foreground_only)
    )


class PatchSampler(CaseSampler):
    """U-Net patches with foreground oversampling (see the module docstring).

    Args:
        foreground_oversample: Fraction of each batch forced to contain foreground.
        class_weights: Foreground label -> sampling weight (renormalised per case).
        stage_dir: The cascade's first-stage label maps (see :class:`CaseSampler`).
    """

    def __init__(
        self,
        folder: Path,
        case_ids: Sequence[str],
        batch_size: int,
        patch: Sequence[int],
        foreground_oversample: float,
        class_weights: Mapping[int, float],
        spatial: SpatialParams | None = None,
        stage_dir: Path | None = None,
    ) -> None:
        super().__init__(folder, case_ids, batch_size, patch, spatial, stage_dir=stage_dir)
        self.forced_from = round(batch_size * (1.0 - foreground_oversample))
        self.class_weights = {int(k): float(v) for k, v in class_weights.items()}

    def patch_start(self, case: PreprocessedCase, sample: int) -> tuple[int, ...]:
        shape = case.image.shape[1:]
        present = _present(case, foreground_only=True)
        if sample >= self.forced_from and present:
            raw = np.array([self.class_weights.get(v, 0.0) for v in present])
            weights = raw / raw.sum() if raw.sum() > 0 else None
            label = present[np.random.choice(len(present), p=weights)]
            centre = _random_voxel(case.locations[label])
            starts = [
                int(np.clip(c - p // 2, min(0, n - p), max(0, n - p)))
                for c, p, n in zip(centre, self.patch, shape)
            ]
        else:
            starts = [
                np.random.randint(0, n - p + 1) if n >= p else (n - p) // 2
                for p, n in zip(self.patch, shape)
            ]
        return tuple(int(v) for v in starts)


class SegmentSampler(CaseSampler):
    """DeepMedic segments with class-balanced centres (see the module docstring).

    Args:
        box: Patch shape (Z, Y, X): the box holding every pathway's input.
        output_offset: Where the output segment starts inside the box.
        output_shape: Training output segment (Z, Y, X); only its labels are returned.
    """

    def __init__(
        self,
        folder: Path,
        case_ids: Sequence[str],
        batch_size: int,
        box: Sequence[int],
        output_offset: Sequence[int],
        output_shape: Sequence[int],
        spatial: SpatialParams | None = None,
    ) -> None:
        seg_box = (tuple(int(v) for v in output_offset), tuple(int(v) for v in output_shape))
        super().__init__(folder, case_ids, batch_size, box, spatial, seg_box)
        self.output_shape = seg_box[1]
        self.output_offset = seg_box[0]

    def patch_start(self, case: PreprocessedCase, sample: int) -> tuple[int, ...]:
        present = _present(case, foreground_only=False)
        if present:
            centre = _random_voxel(case.locations[present[np.random.randint(len(present))]])
        else:  # no locations at all: anywhere in the image
            centre = np.array([np.random.randint(n) for n in case.image.shape[1:]])
        return tuple(
            int(c) - n // 2 - o for c, n, o in zip(centre, self.output_shape, self.output_offset)
        )


def _watch_parent(owner_pid: int) -> None:
    """In a loader worker process, exit when the training process is gone (killed).

    batchgenerators' workers otherwise outlive a SIGKILLed trainer, retrying a full queue
    forever. The watchdog is a daemon thread polling the parent pid once a second.
    """

    def watch() -> None:
        while os.getppid() == owner_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="autoseg-parent-watchdog", daemon=True).start()
