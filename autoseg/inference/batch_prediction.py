"""``autoseg predict``: segment every case of an INPUT with a trained workspace or model archive.

Per case: check it as ``autoseg verify`` does, preprocess it as in training, predict
(ensembling folds and configurations), export a label map with the input's geometry to
``OUTPUT/<case><ending>`` (optionally ``<case>.npz`` probabilities and DeepMedic feature
maps). Cases whose output exists are skipped unless ``overwrite``. A case that fails is
reported in one line and the others still run; the report's exit code is then 2.

While the network predicts one case, background threads (``num_workers``) read and preprocess
the next one and export the previous one; 0 runs everything in turn. The default is 1 on a
GPU and 0 on the CPU: there the network keeps every core busy, and reading plus
preprocessing a 120×160×160 two-channel case took 0.45 s against 60 s of prediction, so
overlapping them gained nothing measurable (bench/predict_speed.py --parts predictor).

DeepMedic feature maps (``--save-feature-maps normal:0,7 subsampled_1:3 fc:0``): for each
listed layer, ``OUTPUT/<case>_features_<pathway>_layer<i>.nii.gz`` holds that layer's output
(after its residual connection; ``fc`` = the FC layers) as float32 with the feature maps along
the 4th axis, X×Y×Z×F, with the input's affine. They come from the first fold's model (models
are not comparable, so nothing is averaged) and its unmirrored pass; each map is taken at the
output voxels (a subsampled pathway's voxels repeated ``factor`` times per axis, as the
network upsamples them), resampled linearly from the preprocessed grid to the original one,
and 0 outside the crop box.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from autoseg.atomic import check_writable
from autoseg.data.case_io import reference_image_path
from autoseg.data.dataset import Case
from autoseg.data.imageio import read_geometry
from autoseg.data.verify import Problem, verify_cases
from autoseg.errors import AutosegError, ConfigError
from autoseg.inference.archive_reader import opened_model
from autoseg.inference.cost import (
    CPU_MIRRORING_SECONDS,
    PredictionCost,
    default_mirroring,
    estimate_prediction_cost,
)
from autoseg.inference.deepmedic_tiling import FeatureLayer
from autoseg.inference.inputs import PredictionInputs, read_inputs
from autoseg.inference.predictor import (
    Prediction,
    PredictionOptions,
    Predictor,
    PreparedCase,
)
from autoseg.inference.probabilities import resolve_device
from autoseg.leftovers import clean_temporaries
from autoseg.log import get_logger, progress
from autoseg.workspace import Workspace

__all__ = [
    "PredictCommand",
    "PredictionReport",
    "parse_feature_layers",
    "part_of",
    "run_prediction",
]

logger = get_logger(__name__)
T = TypeVar("T")
_LAYER_SPEC = re.compile(r"^(?P<pathway>normal|subsampled_\d+|fc):(?P<layers>\d+(?:,\d+)*)$")


@dataclass(frozen=True)
class PredictCommand:
    """Everything ``autoseg predict`` was asked to do (see ``autoseg predict --help``)."""

    inputs: tuple[Path, ...]
    output: Path
    workspace: Workspace | None = None
    model: Path | None = None
    model_sha256: str | None = None
    config: str | None = None
    folds: tuple[int | str, ...] | None = None
    checkpoint: str = "final"
    use_mirroring: bool | None = None
    step_fraction: float = 0.5
    save_probabilities: bool = False
    overwrite: bool = False
    part: tuple[int, int] | None = None
    device: str | None = None
    num_workers: int | None = None
    threads: int | None = None
    roi: Path | None = None
    feature_layers: tuple[FeatureLayer, ...] = ()


@dataclass(frozen=True)
class PredictionReport:
    """What a prediction run did."""

    output: Path
    predicted: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 when every case was predicted or skipped, 2 when any failed."""
        return 2 if self.failed else 0

    def summary(self) -> str:
        """One line for the CLI."""
        parts = [f"predicted {len(self.predicted)} case(s)"]
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} with existing output (--overwrite redoes)")
        if self.failed:
            parts.append(f"{len(self.failed)} FAILED ({', '.join(sorted(self.failed))})")
        return f"{', '.join(parts)} -> {self.output} in {self.seconds:.1f} s"


def parse_feature_layers(specs: Sequence[str]) -> tuple[FeatureLayer, ...]:
    """Parse ``--save-feature-maps`` values such as ``normal:0,7`` and ``subsampled_1:3``.

    Raises:
        ConfigError: for a malformed value (pathway ``normal``, ``subsampled_<n>`` or ``fc``,
            then ``:`` and comma-separated 0-based layer indices).
    """
    layers: list[FeatureLayer] = []
    for spec in specs:
        match = _LAYER_SPEC.match(spec.strip())
        if match is None:
            raise ConfigError(
                f"invalid feature-map layers {spec!r}; expected PATHWAY:I,J with PATHWAY "
                "normal, subsampled_1, subsampled_2, ... or fc, e.g. 'normal:0,7 subsampled_1:3'"
            )
        for index in match["layers"].split(","):
            layer = FeatureLayer(match["pathway"], int(index))
            if layer not in layers:
                layers.append(layer)
    return tuple(layers)


def run_prediction(command: PredictCommand) -> PredictionReport:
    """Run ``autoseg predict``.

    Raises:
        AutosegError: for problems that stop the whole run (no model, bad options, an input
            that holds no case). Problems of single cases are reported in the result.
    """
    if not 0 < command.step_fraction <= 1:  # NaN fails this too
        raise ConfigError(f"--step-size must satisfy 0 < step <= 1, got {command.step_fraction}")
    if command.num_workers is not None and command.num_workers < 0:
        raise ConfigError(f"-np must be >= 0, got {command.num_workers}")
    if command.model is not None:
        with opened_model(command.model, sha256=command.model_sha256) as workspace:
            return _run(workspace, command)
    if command.model_sha256 is not None:
        raise ConfigError("--model-sha256 pins a model archive; give it with --model")
    if command.workspace is None:
        raise ConfigError("give a trained workspace (--work) or a model archive (--model)")
    return _run(command.workspace, command)


def _set_threads(device_type: str, threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)
    elif device_type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)


def _run(workspace: Workspace, command: PredictCommand) -> PredictionReport:
    start = time.perf_counter()
    device = resolve_device(command.device)
    # mirroring unless chosen: decided from the first case's cost once the inputs are read
    mirroring = command.use_mirroring is not False
    options = PredictionOptions(mirroring, command.step_fraction, None, command.feature_layers)
    predictor = Predictor.from_workspace(
        workspace,
        command.config,
        command.folds,
        checkpoint=command.checkpoint,
        device=device,
        options=options,
    )
    _set_threads(predictor.device.type, command.threads)
    workers = command.num_workers
    if workers is None:
        workers = 1 if predictor.device.type == "cuda" else 0
    plans = predictor.plans
    inputs = read_inputs(
        command.inputs, plans.channel_names, use_roi=plans.use_roi_mask, roi=command.roi
    )
    if len(command.inputs) == 1 and command.output.resolve() == command.inputs[0].resolve():
        raise ConfigError("OUTPUT must not be the input folder", path=command.output)
    if command.output.exists() and not command.output.is_dir():
        raise ConfigError(
            "OUTPUT is a file; give a folder (it is created if needed)", path=command.output
        )
    check_writable(command.output)  # before any case is predicted, not after each
    clean_temporaries(command.output)
    todo: list[Case] = []
    skipped: list[Case] = []
    for case in part_of(inputs.cases, command.part):
        (skipped if _is_done(inputs, case.case_id, command) else todo).append(case)
    failed: dict[str, str] = {}
    for case_id, error in inputs.problems.items():
        if case_id in {c.case_id for c in todo}:
            _fail(failed, case_id, error)
    checked = [c for c in todo if c.case_id not in failed]
    for problem in verify_cases(checked, predictor.dataset_stub, max(1, workers)):
        if problem.case_id is not None and problem.case_id not in failed:
            _fail(failed, problem.case_id, problem)
    runnable = [c for c in checked if c.case_id not in failed]
    if runnable:
        _choose_mirroring_and_log_cost(predictor, runnable[0], command.use_mirroring)
    elif command.use_mirroring is None:
        _set_mirroring(predictor, default_mirroring(predictor.device.type, None))
    logger.info(
        "predicting %d case(s) on %s (%d skipped, %d failed checks)",
        len(runnable),
        predictor.device,
        len(skipped),
        len(failed),
    )
    predicted = _predict_all(predictor, inputs, runnable, command, failed, workers)
    return PredictionReport(
        command.output,
        tuple(predicted),
        tuple(c.case_id for c in skipped),
        failed,
        time.perf_counter() - start,
    )


def _set_mirroring(predictor: Predictor, mirroring: bool) -> None:
    predictor.options = dataclasses.replace(predictor.options, use_mirroring=mirroring)


def _choose_mirroring_and_log_cost(predictor: Predictor, case: Case, chosen: bool | None) -> None:
    """Say what predicting a case will cost, from the first case's header; without a choice
    (``chosen`` None: neither --tta nor --no-tta), mirror where :func:`default_mirroring`
    finds it cheap enough for a case like this one."""
    try:
        geometry, _ = read_geometry(case.channels[0])
    except AutosegError:  # its own failure is reported when the case is read
        if chosen is None:
            _set_mirroring(predictor, default_mirroring(predictor.device.type, None))
        return
    folds = {c: len(predictor.networks[c]) for c in predictor.selection.configs}
    on_cpu = predictor.device.type == "cpu"

    def cost(mirroring: bool) -> PredictionCost:
        return estimate_prediction_cost(
            predictor.plans,
            folds,
            geometry.shape,
            geometry.spacing,
            mirroring=mirroring,
            step_fraction=predictor.options.step_fraction,
            on_cpu=on_cpu,
            stages={s: len(n) for s, n in predictor.stage_networks.items()},
        )

    why = ""
    if chosen is None:
        mirrored = cost(True)
        _set_mirroring(predictor, default_mirroring(predictor.device.type, mirrored))
        if on_cpu:
            why = _cpu_mirroring_reason(mirrored.seconds, predictor.options.use_mirroring)
    logger.info(
        "%s (for a case like %s, %s)%s; --tta/--no-tta and --folds change it",
        cost(predictor.options.use_mirroring).describe(),
        case.case_id,
        "x".join(str(n) for n in geometry.shape),
        why,
    )


def _cpu_mirroring_reason(mirrored_seconds: float | None, mirroring: bool) -> str:
    """Why a CPU run mirrors or not by default (appended to the cost line)."""
    if mirrored_seconds is None:
        return "; no test-time mirroring by default: the plan has no measured CPU speed"
    if mirroring:
        return f"; test-time mirroring on: within {CPU_MIRRORING_SECONDS:g} s per case here"
    return (
        f"; no test-time mirroring by default: ~{mirrored_seconds:.1f} s per case with it, "
        f"over {CPU_MIRRORING_SECONDS:g} s"
    )


def part_of(cases: Sequence[Case], part: tuple[int, int] | None) -> list[Case]:
    """The cases of ``--part K/N``: sorted by case id, every N-th from the K-th (1-based), as
    nnU-Net's ``-part_id K-1 -num_parts N``; every case without a part."""
    ordered = sorted(cases, key=lambda c: c.case_id)
    if part is None:
        return list(cases)
    k, n = part
    chosen = ordered[k - 1 :: n]
    logger.info("part %d/%d: %d of %d case(s)", k, n, len(chosen), len(ordered))
    return chosen


def _is_done(inputs: PredictionInputs, case_id: str, command: PredictCommand) -> bool:
    if command.overwrite:
        return False
    done = inputs.output_path(command.output, case_id).is_file()
    if command.save_probabilities:
        done = done and inputs.output_path(command.output, case_id, ".npz").is_file()
    return done


def _fail(failed: dict[str, str], case_id: str, error: object) -> None:
    """Record and log (one line) why a case failed; tracebacks of bugs at debug level."""
    if isinstance(error, (AutosegError, Problem)):
        message = str(error)
    else:
        message = f"{case_id}: {type(error).__name__}: {error}"
        if isinstance(error, BaseException):
            logger.debug("traceback of the failure of %s", case_id, exc_info=error)
    failed[case_id] = message
    logger.error("error: %s", message)


def _submit(pool: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any) -> Future[T]:
    """Run ``fn`` in the pool, or now (as a finished future) without one."""
    if pool is not None:
        return pool.submit(fn, *args)
    future: Future[T] = Future()
    try:
        future.set_result(fn(*args))
    except Exception as err:
        future.set_exception(err)
    return future


def _export(
    predictor: Predictor,
    prediction: Prediction,
    case: Case,
    inputs: PredictionInputs,
    out: Path,
    save_probabilities: bool,
) -> None:
    predictor.export(
        prediction,
        inputs.output_path(out, case.case_id),
        reference=reference_image_path(case),
        probabilities_path=(
            inputs.output_path(out, case.case_id, ".npz") if save_probabilities else None
        ),
    )


def _predict_all(
    predictor: Predictor,
    inputs: PredictionInputs,
    cases: Sequence[Case],
    command: PredictCommand,
    failed: dict[str, str],
    workers: int,
) -> list[str]:
    """Predict ``cases`` in order, preparing the next and exporting the last in the background."""
    predicted: list[str] = []
    pool = ThreadPoolExecutor(workers) if workers else None
    exports: list[tuple[str, Future[None]]] = []

    def collect(keep: int) -> None:
        while len(exports) > keep:
            case_id, future = exports.pop(0)
            try:
                future.result()
                predicted.append(case_id)
            except Exception as err:
                _fail(failed, case_id, err)

    try:
        upcoming: Future[PreparedCase] | None = None
        for i, case in enumerate(progress(cases, desc="predict", total=len(cases))):
            current = upcoming if upcoming is not None else _submit(pool, predictor.prepare, case)
            upcoming = None
            if pool is not None and i + 1 < len(cases):  # prepared while this one predicts
                upcoming = _submit(pool, predictor.prepare, cases[i + 1])
            try:
                prediction = predictor.predict(current.result())
            except Exception as err:
                _fail(failed, case.case_id, err)
                continue
            del current
            args = (predictor, prediction, case, inputs, command.output, command.save_probabilities)
            exports.append((case.case_id, _submit(pool, _export, *args)))
            collect(keep=workers)
        collect(keep=0)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return predicted
