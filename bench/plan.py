"""Benchmark ``autoseg plan``: seconds for verify, fingerprint, planning and preprocessing.

Generates a phantom dataset (20 cases by default), then times each step of the plan
pipeline in this process, and a full re-run (which should skip everything)::

    python bench/plan.py [--cases 20] [--shape 64 96 96] [-np 2] [--spacing varied]

Prints a table; no assertions (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from autoseg.data.synthetic import PhantomSpec, generate_phantom_dataset
from autoseg.data.verify import verify_dataset
from autoseg.planner.hardware import detect_hardware
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.planner import plan_dataset
from autoseg.planner.workflow import (
    dataset_digest,
    fingerprint_dataset,
    preprocess_planned,
    run_plan,
)
from autoseg.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 96, 96))
    parser.add_argument("--spacing", default="varied", choices=("iso", "varied", "aniso"))
    parser.add_argument("-np", "--num-workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = PhantomSpec(
            num_train_cases=args.cases,
            num_test_cases=0,
            base_shape=tuple(args.shape),
            spacing=args.spacing,
        )
        start = time.perf_counter()
        generate_phantom_dataset(root / "data", spec)
        generate_seconds = time.perf_counter() - start
        workspace = Workspace(root / "work")
        timings: list[tuple[str, float]] = []

        def timed(name: str, fn):  # type: ignore[no-untyped-def]
            begin = time.perf_counter()
            result = fn()
            timings.append((name, time.perf_counter() - begin))
            return result

        report = timed(
            "verify", lambda: verify_dataset(root / "data", num_workers=args.num_workers)
        )
        dataset = report.dataset
        digest = dataset_digest(dataset)
        fingerprint, _ = timed(
            "fingerprint",
            lambda: fingerprint_dataset(
                dataset, workspace, num_workers=args.num_workers, inputs={"dataset": digest}
            ),
        )
        heuristics = PlannerHeuristics()
        hardware = timed("detect hardware", lambda: detect_hardware(None, None, heuristics))
        plans = timed("plan", lambda: plan_dataset(fingerprint, heuristics, hardware))
        timed(
            "preprocess (all cases)",
            lambda: preprocess_planned(dataset, plans, workspace, num_workers=args.num_workers),
        )
        timed(
            "full 'autoseg plan' (first run, other workspace)",
            lambda: run_plan(
                root / "data", Workspace(root / "work2"), num_workers=args.num_workers
            ),
        )
        timed(
            "full 'autoseg plan' re-run (skips)",
            lambda: run_plan(
                root / "data", Workspace(root / "work2"), num_workers=args.num_workers
            ),
        )
    print(
        f"dataset: {args.cases} cases, base shape {tuple(args.shape)}, spacing "
        f"{args.spacing}, {args.num_workers} workers (generated in {generate_seconds:.1f} s)"
    )
    print(f"{'step':<52}{'seconds':>10}")
    for name, seconds in timings:
        print(f"{name:<52}{seconds:>10.2f}")
    per_case = dict(timings)["preprocess (all cases)"] / args.cases
    print(f"{'preprocessing per case':<52}{per_case:>10.2f}")


if __name__ == "__main__":
    main()
