"""gpu_check section 1, the environment: device, memory, versions, autoseg's dependencies, and
what ``autoseg plan`` detects by itself (``detect_hardware`` with neither ``--device`` nor
``--gpu-memory``, as the command calls it). Runs everywhere.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from typing import Any

from gpu_check_common import REPO

DEPENDENCIES = {  # import name -> distribution name
    "numpy": "numpy",
    "scipy": "scipy",
    "nibabel": "nibabel",
    "SimpleITK": "SimpleITK",
    "batchgenerators": "batchgenerators",
    "pandas": "pandas",
    "matplotlib": "matplotlib",
    "tqdm": "tqdm",
    "optuna": "optuna",
}
OPTIONAL = ("optuna",)
"""Needed by ``autoseg tune`` only, not by anything this check runs."""

PEAK_TFLOPS: tuple[tuple[str, float, str], ...] = (
    (r"\bB200\b", 2250.0, "B200 (HGX), dense BF16/FP16"),
    (r"\bH200\b.*\bNVL\b", 835.0, "H200 NVL, dense BF16/FP16"),
    (r"\bH200\b", 989.0, "H200 SXM, dense BF16/FP16"),
    (r"\bH100\b.*\bNVL\b", 835.0, "H100 NVL, dense BF16/FP16"),
    (r"\bH100\b.*\bPCIe\b", 756.0, "H100 PCIe, dense BF16/FP16"),
    (r"\bH100\b", 989.0, "H100 SXM, dense BF16/FP16"),
    (r"\bA100\b", 312.0, "A100, dense BF16/FP16"),
    (r"\bL40S\b", 362.0, "L40S, dense BF16/FP16"),
    (r"\bL4\b", 121.0, "L4, dense BF16/FP16"),
    (r"\bA10\b", 125.0, "A10, dense BF16/FP16"),
    (r"\bV100\b.*\bPCIE\b", 112.0, "V100 PCIe, dense FP16 (no BF16)"),
    (r"\bV100\b", 125.0, "V100 SXM2, dense FP16 (no BF16)"),
    (r"\bT4\b", 65.0, "T4, dense FP16 (no BF16)"),
)
"""Tensor-core peaks (TFLOP/s, no sparsity, FP32 accumulate) from the vendors' data sheets,
matched in order against ``torch.cuda.get_device_name()``. Other devices: 'unknown'."""


def peak_tflops(device_name: str) -> dict[str, Any]:
    """The data-sheet FP16/BF16 peak used for a device name, or 'unknown'."""
    for pattern, tflops, label in PEAK_TFLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return {"tflops": tflops, "used": label, "source": "vendor data sheet (dense)"}
    return {"tflops": None, "used": "unknown", "source": f"no entry for {device_name!r}"}


def _dependency_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for module, dist in DEPENDENCIES.items():
        if importlib.util.find_spec(module) is None:
            versions[module] = None
            continue
        try:
            versions[module] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[module] = "importable (version unknown)"
    return versions


def _nvidia_smi() -> str | None:
    """nvidia-smi's name, memory and driver per GPU, or None where it is missing."""
    if shutil.which("nvidia-smi") is None:
        return None
    query = "--query-gpu=name,memory.total,driver_version"
    try:
        done = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"nvidia-smi failed: {err}"
    return (done.stdout or done.stderr).strip()


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def _devices() -> list[dict[str, Any]]:
    import torch

    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(
            {
                "index": index,
                "name": props.name,
                "total_memory_bytes": int(props.total_memory),
                "capability": f"{props.major}.{props.minor}",
                "multiprocessors": int(props.multi_processor_count),
            }
        )
    return devices


def _torch_versions(cuda: bool) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": bool(torch.cuda.is_available()),
        "device_count": int(torch.cuda.device_count()) if cuda else 0,
    }
    if cuda:
        info["cudnn"] = torch.backends.cudnn.version()
        try:
            version = torch.cuda.nccl.version()  # a tuple in recent torch, an int before
            info["nccl"] = ".".join(map(str, version)) if isinstance(version, tuple) else version
        except (AttributeError, RuntimeError) as err:
            info["nccl"] = f"unavailable ({err})"
        info["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
        info["devices"] = _devices()
    return info


def _detection(cuda: bool, devices: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``autoseg plan`` would plan for, and whether that is this GPU with its memory."""
    from autoseg.atomic import to_jsonable
    from autoseg.planner.hardware import detect_hardware
    from autoseg.planner.heuristics import load_heuristics

    target = detect_hardware(None, None, load_heuristics(None))
    found: dict[str, Any] = {"target": to_jsonable(target)}
    if cuda and devices:
        first = devices[0]
        found["finds_gpu"] = target.device == "cuda" and target.device_name == first["name"]
        found["finds_memory"] = target.memory_target_bytes == first["total_memory_bytes"]
    else:
        found["finds_gpu"] = None
        found["finds_memory"] = None
    return found


def environment(cuda: bool) -> tuple[dict[str, Any], list[str]]:
    """The environment record and its warnings (e.g. a GPU that torch cannot use)."""
    import autoseg
    from autoseg.planner.hardware import physical_memory_bytes

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": physical_memory_bytes(),
        "autoseg": autoseg.__version__,
        "autoseg_path": str(autoseg.__file__),
        "git_commit": _git_commit(),
        "dependencies": _dependency_versions(),
        "nvidia_smi": _nvidia_smi(),
        **_torch_versions(cuda),
    }
    devices = info.get("devices", [])
    info["peak"] = peak_tflops(devices[0]["name"]) if devices else peak_tflops("")
    info["autoseg_plan_detects"] = _detection(cuda, devices)
    warnings = []
    if not cuda and info["nvidia_smi"] and "failed" not in info["nvidia_smi"]:
        warnings.append(
            f"nvidia-smi lists a GPU ({info['nvidia_smi'].splitlines()[0]}) but torch cannot "
            f"use it (torch {info['torch']}, built for CUDA {info['torch_cuda']}): the GPU "
            "parts were skipped; run with a CUDA build of torch"
        )
    missing = [
        name
        for name, version in info["dependencies"].items()
        if version is None and name not in OPTIONAL
    ]
    if missing:
        warnings.append(f"missing Python packages: {', '.join(missing)}")
    if cuda and info["autoseg_plan_detects"]["finds_gpu"] is False:
        warnings.append("autoseg plan does not plan for the GPU it runs on")
    return info, warnings
