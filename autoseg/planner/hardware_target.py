"""What a plan was fitted to: the GPU's memory, or the CPU's RAM and its measured speed.

Part of plans.json (``hardware``), parsed as strictly as the rest of the plans
(:mod:`autoseg.planner.plans`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autoseg.errors import PlansError
from autoseg.frozendict import FrozenDict
from autoseg.strict import check_keys

__all__ = ["CpuSpeed", "HardwareTarget", "network_family"]


def _strict_keys(cls: type, data: Any, what: str) -> None:
    check_keys(what, data, [f.name for f in dataclasses.fields(cls)], PlansError)


@dataclass(frozen=True)
class CpuSpeed:
    """Measured training throughput of a CPU (see :mod:`autoseg.planner.cpu_speed`).

    Attributes:
        gflops_per_thread: Network family ("unet", "deepmedic") -> precision ("fp32", and
            "bf16" where the CPU computes bfloat16 natively) -> analytic training GFLOP per
            second of one thread's CPU time.
        threads: Torch threads training will use (torch's default when planning).
        parallel_efficiency: What each thread beyond the first adds, as a fraction of one
            thread's rate (``cpu_parallel_efficiency``).
        source: "measured".
    """

    gflops_per_thread: Mapping[str, Mapping[str, float]]
    threads: int
    parallel_efficiency: float
    source: str = "measured"

    def __post_init__(self) -> None:
        rates = {
            str(family): FrozenDict({str(p): float(v) for p, v in per.items()})
            for family, per in dict(self.gflops_per_thread).items()
        }
        object.__setattr__(self, "gflops_per_thread", FrozenDict(rates))

    @property
    def effective_threads(self) -> float:
        """``1 + (threads - 1) x parallel_efficiency``."""
        return 1.0 + (max(self.threads, 1) - 1) * self.parallel_efficiency

    def rate(self, family: str, precision: str) -> float:
        """GFLOP/s of ``family`` at ``precision`` with every thread (float32's where
        ``precision`` was not measured)."""
        per = self.gflops_per_thread[family]
        return float(per.get(precision, per["fp32"])) * self.effective_threads

    def fastest_precision(self, family: str, min_speedup: float) -> str:
        """ "bf16" when it was measured at least ``min_speedup`` times float32's rate."""
        per = self.gflops_per_thread[family]
        return "bf16" if per.get("bf16", 0.0) >= min_speedup * per["fp32"] else "fp32"

    def describe(self) -> str:
        """e.g. ``unet 75 GFLOP/s fp32, 150 bf16; deepmedic 50, 70 per thread; 2 threads``."""
        parts = [
            f"{family} " + ", ".join(f"{v:.0f} {p}" for p, v in per.items())
            for family, per in self.gflops_per_thread.items()
        ]
        return (
            f"GFLOP/s per thread: {'; '.join(parts)}; {self.threads} threads "
            f"(x{self.effective_threads:.2f})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "gflops_per_thread": {k: dict(v) for k, v in self.gflops_per_thread.items()},
            "threads": self.threads,
            "parallel_efficiency": self.parallel_efficiency,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Any) -> CpuSpeed:
        _strict_keys(cls, data, "cpu_speed")
        rates = data["gflops_per_thread"]
        if not isinstance(rates, dict) or not all(
            isinstance(per, dict) and "fp32" in per for per in rates.values()
        ):
            raise PlansError("cpu_speed.gflops_per_thread must map families to {'fp32': ...}")
        return cls(
            rates, int(data["threads"]), float(data["parallel_efficiency"]), str(data["source"])
        )


def network_family(kind: str) -> str:
    """The family whose measured CPU speed applies to a network kind ("unet" or "deepmedic")."""
    return "deepmedic" if kind == "deepmedic" else "unet"


@dataclass(frozen=True)
class HardwareTarget:
    """What the plan was fitted to.

    Attributes:
        device: "cuda" or "cpu".
        device_name: e.g. the GPU's name, or the CPU's.
        memory_target_bytes: Memory the training estimate must stay under.
        memory_source: "detected" (GPU properties), "--gpu-memory", or "cpu-ram".
        cpu_count: Logical CPUs seen when planning.
        cpu_speed: On CPU, the measured training throughput the compute budget of an
            iteration is made from; None on a GPU, where memory is the binding limit.
    """

    device: str
    device_name: str
    memory_target_bytes: int
    memory_source: str
    cpu_count: int
    cpu_speed: CpuSpeed | None = None

    def iteration_seconds(self, kind: str, precision: str, gflops: float) -> float | None:
        """Expected seconds of a training iteration of ``gflops`` on this CPU (None on GPU)."""
        if self.cpu_speed is None:
            return None
        return gflops / self.cpu_speed.rate(network_family(kind), precision)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["cpu_speed"] = self.cpu_speed.to_dict() if self.cpu_speed is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Any) -> HardwareTarget:
        _strict_keys(cls, data, "hardware")
        speed = data["cpu_speed"]
        return cls(
            **{**data, "cpu_speed": CpuSpeed.from_dict(speed) if speed is not None else None}
        )
