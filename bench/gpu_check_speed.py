"""gpu_check section 3, speed on the GPU at the sizes ``autoseg plan`` chooses for it.

Each dataset is planned and preprocessed with ``run_plan`` (the ``autoseg plan`` library
call, detected hardware). For both configurations, on fold 0 of the real preprocessed data:

- compute: training iterations/s on one batch held on the GPU (AMP as planned; plain and
  channels-last-3d in this process, ``torch.compile`` in a subprocess with a timeout);
- loader: batches/s of the trainer's own loader with its default worker count on a GPU
  (pinned memory requested, as in training), then end-to-end iterations/s with it; the GPU
  waits on data when the loader is slower than the compute;
- achieved TFLOP/s of the step (the planner's conv FLOP count / measured seconds) against
  the device's data-sheet FP16/BF16 peak and a measured FP16 matmul;
- sliding-window prediction seconds per case (``predict_probabilities``, the validation and
  predictor path) with and without mirroring, random weights.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

from gpu_check_common import Box, device, error_text

CONFIGS = ("unet3d", "deepmedic")


def release() -> None:
    """Free cached GPU memory between measurements."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def fold_spec(plans: Any, workspace: Any, name: str) -> Any:
    """Fold 0 of the preprocessed cases (every case on both sides when there are < 5)."""
    from autoseg.trainers.session import FoldSpec
    from autoseg.trainers.splits import make_splits

    data_dir = workspace.preprocessed_dir(plans.configuration(name).data_identifier)
    cases = sorted(p.name[: -len(".json")] for p in data_dir.glob("*.json"))
    if len(cases) >= 5:
        fold = make_splits(cases).fold(0)
        train, val = tuple(fold.train), tuple(fold.val)
    else:
        train = val = tuple(cases)
    return FoldSpec(plans, name, 0, train, val, workspace)


def open_gpu_session(spec: Any, **options: Any) -> Any:
    """A trainer session on CUDA (one epoch; other options as given)."""
    from autoseg.trainers.config import TrainConfig
    from autoseg.trainers.session_setup import open_session

    return open_session(spec, TrainConfig(epochs=1, device=device(), **options))


def timed_loop(step: Callable[[], object], seconds: float, warmup: int) -> dict[str, Any]:
    """Run ``step`` ``warmup`` times, then for ``seconds`` (at least 3 times); the rate."""
    import torch

    start = time.monotonic()
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    warm = time.monotonic() - start
    count, start = 0, time.monotonic()
    while count < 3 or (time.monotonic() - start < seconds and count < 2000):
        step()
        count += 1
    torch.cuda.synchronize()
    elapsed = time.monotonic() - start
    return {"per_second": count / elapsed, "count": count, "warmup_seconds": warm}


def compute_rate(spec: Any, seconds: float, batch: Any = None, **options: Any) -> dict[str, Any]:
    """Iterations/s of the trainer's step on one batch held on the GPU (``options``:
    TrainConfig fields such as ``channels_last`` and ``compile``); ``_batch`` holds the batch
    used, for the next variant."""
    try:
        return _compute_rate(spec, seconds, batch, **options)
    finally:
        release()  # the session is gone once _compute_rate has returned


def _compute_rate(spec: Any, seconds: float, batch: Any, **options: Any) -> dict[str, Any]:
    from autoseg.trainers.steps import train_step

    session = open_gpu_session(spec, num_workers=0, **options)
    try:
        batch = batch if batch is not None else next(session.train_batches)
        inputs, targets = session.strategy.to_device(batch, spec.config_plan, session.device)
        session.network.train()
        start = time.monotonic()
        train_step(session, inputs, targets)
        first = time.monotonic() - start
        result = timed_loop(lambda: train_step(session, inputs, targets), seconds, warmup=2)
        result["first_step_seconds"] = first
        result["channels_last"] = bool(session.resolved["channels_last"])
        result["amp"] = bool(session.amp)
        result["compile"] = bool(session.config.compile)
        result["_batch"] = batch
        return result
    finally:
        session.close()


def _pinned(batch: dict[str, Any]) -> dict[str, Any]:
    """What the loader hands over: array types, and whether the tensors are pinned."""
    import torch

    def kind(value: Any) -> str:
        if isinstance(value, torch.Tensor):
            return "pinned tensor" if value.is_pinned() else "tensor (not pinned)"
        if isinstance(value, list):
            return "list of " + (kind(value[0]) if value else "nothing")
        return type(value).__name__

    return {k: kind(v) for k, v in batch.items() if k != "keys"}


def loader_rates(spec: Any, seconds: float) -> dict[str, Any]:
    """Loader batches/s, then end-to-end iterations/s, with the default workers on a GPU."""
    try:
        return _loader_rates(spec, seconds)
    finally:
        release()


def _loader_rates(spec: Any, seconds: float) -> dict[str, Any]:
    from autoseg.trainers.steps import train_step

    session = open_gpu_session(spec)
    try:
        workers = int(session.resolved["num_workers"])
        first = next(session.train_batches)
        drained, start = 1, time.monotonic()  # empty the batches cached while starting up
        while drained < 2 * workers + 2 and time.monotonic() - start < max(6.0, 2 * seconds):
            next(session.train_batches)
            drained += 1
        loader = timed_loop(lambda: next(session.train_batches), seconds, warmup=0)
        plan = spec.config_plan

        def step() -> None:
            batch = next(session.train_batches)
            train_step(session, *session.strategy.to_device(batch, plan, session.device))

        end_to_end = timed_loop(step, seconds, warmup=3)
        return {
            "workers": workers,
            "batch_types": _pinned(first),
            "warmup_batches": drained,
            "loader_batches_per_second": loader["per_second"],
            "end_to_end_per_second": end_to_end["per_second"],
        }
    finally:
        session.close()


def prediction_seconds(spec: Any, max_cases: int) -> dict[str, Any]:
    """Seconds per case of ``predict_probabilities`` with and without mirroring."""
    import torch

    from autoseg.inference.probabilities import predict_probabilities
    from autoseg.networks import build_network
    from autoseg.preprocessing.store import load_preprocessed_case

    plan = spec.config_plan
    torch.manual_seed(0)
    where = torch.device(device())
    network = build_network(plan.network).to(where).eval()
    images = [load_preprocessed_case(spec.data_dir, c).image for c in spec.val_ids[:max_cases]]
    try:
        for mirroring in (False, True):  # warm-up: cuDNN autotuning for both batch shapes
            predict_probabilities([network], plan, images[0], use_mirroring=mirroring, device=where)
        result: dict[str, Any] = {
            "cases": len(images),
            "case_shapes": [list(i.shape[1:]) for i in images],
            "window": list(plan.inference_patch_size),
            "mirror_axes": list(plan.augmentation.mirror_axes),
        }
        for mirroring in (False, True):
            times = []
            for image in images:
                start = time.monotonic()
                predict_probabilities([network], plan, image, use_mirroring=mirroring, device=where)
                times.append(time.monotonic() - start)
            key = "mirroring_seconds_per_case" if mirroring else "no_mirroring_seconds_per_case"
            result[key] = statistics.fmean(times)
        return result
    finally:
        del network
        release()


def matmul_tflops(size: int = 8192) -> float:
    """Measured FP16 ``size``^3 matmul TFLOP/s (a practical peak; 10 products after 3)."""
    import torch

    a = torch.randn(size, size, device=device(), dtype=torch.float16)
    b = torch.randn(size, size, device=device(), dtype=torch.float16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.monotonic()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    seconds = time.monotonic() - start
    del a, b
    release()
    return 2 * size**3 * 10 / seconds / 1e12


def host_to_device_gbps(megabytes: int = 256) -> dict[str, float]:
    """Host-to-device copy GB/s from pageable and from pinned memory."""
    import torch

    values = megabytes * 2**20 // 4
    target = torch.empty(values, device=device())
    rates = {}
    for name, pinned in (("pageable", False), ("pinned", True)):
        host = torch.ones(values, pin_memory=pinned)
        target.copy_(host, non_blocking=pinned)
        torch.cuda.synchronize()
        start = time.monotonic()
        for _ in range(5):
            target.copy_(host, non_blocking=pinned)
        torch.cuda.synchronize()
        rates[name] = 5 * values * 4 / (time.monotonic() - start) / 1e9
    del target
    release()
    return rates


def tflops(gflops_per_iteration: float, per_second: float, peaks: dict[str, Any]) -> dict:  # type: ignore[type-arg]
    """Achieved TFLOP/s of a step and its fraction of each peak."""
    achieved = gflops_per_iteration * per_second / 1000.0
    result: dict[str, Any] = {"achieved": achieved}
    for name, peak in peaks.items():
        result[f"fraction_of_{name}"] = achieved / peak if peak else None
    return result


def guarded(entry: dict[str, Any], key: str, work: Callable[[], Any]) -> bool:
    """``entry[key] = work()``, or the error text under ``entry[key]``; True on success."""
    try:
        entry[key] = work()
        return True
    except Exception as err:
        entry[key] = {"error": error_text(err)}
    release()  # after the handler: the traceback no longer holds the failed frames
    return False


def skip_or_run(
    box: Box, need: float, entry: dict[str, Any], key: str, work: Callable[[], Any]
) -> bool:
    """Run ``work`` into ``entry[key]`` if ``need`` seconds are left in ``box``."""
    if not box.has(need):
        entry[key] = {"skipped": f"time box exhausted (needs ~{need:.0f} s)"}
        return False
    return guarded(entry, key, work)
