"""Benchmark autoseg's resampling against the scipy/nnU-Net-style baselines (not a test).

Baselines, written here from their descriptions:
- images: ``scipy.ndimage.zoom(order=3, grid_mode=True)`` on the whole volume, which is what
  ``skimage.transform.resize`` (nnU-Net's image resampling) runs underneath;
- labels: one full-volume linear resize per label value, keeping voxels >= 0.5 (nnU-Net's
  ``resize_segmentation`` rule);
- export: resample all K probability maps, then ``argmax`` (same kernels, so this measures
  the memory saved by the running argmax).

Usage: ``python bench/resample_speed.py [--scale 1.0] [--labels 20]``. ``--scale`` multiplies
each axis of the default volumes (1.0: a 96×256×256 MR-like image, 10 classes for export).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import resource
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

import numpy as np
from scipy import ndimage

from autoseg.preprocessing.resample import (
    compute_new_shape,
    resample_image,
    resample_label,
    resample_probabilities,
    resample_probabilities_to_labels,
)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, int]:
    """Run ``fn``; return (result, seconds, peak traced bytes)."""
    tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak


def _scipy_zoom(volume: np.ndarray, new_shape: tuple[int, ...], order: int) -> np.ndarray:
    factors = [n / o for n, o in zip(new_shape, volume.shape)]
    return ndimage.zoom(volume, factors, order=order, mode="nearest", grid_mode=True)


def _threshold_labels(label: np.ndarray, new_shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(new_shape, dtype=label.dtype)
    for value in np.unique(label)[1:]:
        out[_scipy_zoom((label == value).astype(np.float32), new_shape, 1) >= 0.5] = value
    return out


def _report(name: str, ours: tuple[Any, float, int], base: tuple[Any, float, int]) -> None:
    print(
        f"{name:38s} autoseg {ours[1]:7.2f} s {ours[2] / 2**20:7.0f} MiB | "
        f"baseline {base[1]:7.2f} s {base[2] / 2**20:7.0f} MiB | speed-up {base[1] / ours[1]:5.1f}x"
    )


def bench_images(shape: tuple[int, int, int], rng: np.random.Generator) -> None:
    image = ndimage.gaussian_filter(rng.standard_normal(shape), 2).astype(np.float32)[None]
    cases = [
        ("image cubic", (1.0, 0.8, 0.8), (1.0, 1.0, 1.0)),
        ("image cubic", (1.0, 1.0, 1.0), (0.8, 0.8, 0.8)),
        ("image anisotropic", (5.0, 0.7, 0.7), (5.0, 0.9, 0.9)),  # baseline: 3-D cubic
    ]
    for name, spacing, target in cases:
        new_shape = compute_new_shape(shape, spacing, target)
        ours = _timed(partial(resample_image, image, spacing, target))
        base = _timed(partial(_scipy_zoom, image[0], new_shape, 3))
        _report(f"{name} {shape}->{new_shape}", ours, base)


def bench_labels(shape: tuple[int, int, int], n_labels: int, rng: np.random.Generator) -> None:
    label = np.zeros(shape, dtype=np.uint8)
    size = np.maximum(np.array(shape) // 8, 2)
    for value in range(1, n_labels + 1):
        corner = rng.integers(0, np.array(shape) - size)
        label[tuple(slice(c, c + s) for c, s in zip(corner, size))] = value
    spacing, target = (1.0, 0.8, 0.8), (1.0, 1.0, 1.0)
    new_shape = compute_new_shape(shape, spacing, target)
    ours = _timed(lambda: resample_label(label, spacing, target))
    base = _timed(lambda: _threshold_labels(label, new_shape))
    _report(f"labels x{n_labels} {shape}->{new_shape}", ours, base)
    agree = float((ours[0] == base[0]).mean())
    print(f"{'':38s} voxels agreeing with the >=0.5 rule: {agree:.4%}")


def _export_run(shape: tuple[int, int, int], classes: int, incremental: bool) -> tuple:
    """One export in a fresh process: (seconds, extra peak RSS bytes, label digest)."""
    low = tuple(max(n * 2 // 3, 1) for n in shape)
    probs = np.random.default_rng(0).random((classes, *low), dtype=np.float32)
    probs /= probs.sum(axis=0, keepdims=True)
    spacing = tuple(n / m for n, m in zip(shape, low))
    resample_probabilities(probs[:1, :4, :4, :4], (1.0, 1.0, 1.0), new_shape=(5, 5, 5))  # torch
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    if incremental:
        labels = resample_probabilities_to_labels(probs, spacing, new_shape=shape)
    else:
        labels = resample_probabilities(probs, spacing, new_shape=shape).argmax(axis=0)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return seconds, peak - before, hashlib.sha256(labels.astype(np.int64).tobytes()).hexdigest()


def bench_export(shape: tuple[int, int, int], classes: int) -> None:
    """Export (probabilities -> labels); memory is peak RSS (torch buffers escape tracemalloc)."""
    spawn = multiprocessing.get_context("spawn")
    results = []
    for incremental in (True, False):
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            results.append(pool.submit(_export_run, shape, classes, incremental).result())
    (ours_s, ours_b, ours_h), (base_s, base_b, base_h) = results
    low = tuple(max(n * 2 // 3, 1) for n in shape)
    print(
        f"{f'export {classes} classes {low}->{shape}':38s} autoseg {ours_s:7.2f} s "
        f"{ours_b / 2**20:7.0f} MiB | baseline {base_s:7.2f} s {base_b / 2**20:7.0f} MiB | "
        f"same labels: {ours_h == base_h}"
    )
    print(f"{'':38s} one output class = {np.prod(shape) * 4 / 2**20:.0f} MiB (extra peak RSS)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    shape = tuple(max(round(n * args.scale), 4) for n in (96, 256, 256))
    rng = np.random.default_rng(0)
    bench_images(shape, rng)  # type: ignore[arg-type]
    bench_labels(shape, 1, rng)  # type: ignore[arg-type]
    bench_labels(shape, args.labels, rng)  # type: ignore[arg-type]
    bench_export(shape, args.classes)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
