"""Jobs that ``bench/gpu_check.py`` runs in a subprocess (killed when its time box ends), each
printing its result as one JSON line prefixed ``GPU_CHECK_JSON``.

    python bench/gpu_check_jobs.py compile --work W --config unet3d [--seconds 3] [--channels-last]

``compile``: iterations/s of the trainer's step with ``torch.compile`` (``TrainConfig(compile=
True)``) on fold 0 of the workspace's preprocessed data; the first step's seconds include the
compilation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gpu_check_common import JSON_MARK, use_this_checkout


def compile_job(args: argparse.Namespace) -> dict[str, Any]:
    """The compiled network's iterations/s (see the module docstring)."""
    from gpu_check_speed import compute_rate, fold_spec

    from autoseg.planner.plans import load_plans
    from autoseg.workspace import Workspace

    workspace = Workspace(args.work)
    spec = fold_spec(load_plans(workspace.plans_json), workspace, args.config)
    result = compute_rate(spec, args.seconds, compile=True, channels_last=args.channels_last)
    result.pop("_batch", None)
    return result


def main() -> None:
    """Parse the job and its options, run it, print its JSON line."""
    use_this_checkout()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    jobs = parser.add_subparsers(dest="job", required=True)
    job = jobs.add_parser("compile", help="torch.compile iterations/s")
    job.add_argument("--work", type=Path, required=True, help="planned, preprocessed workspace")
    job.add_argument("--config", choices=("unet3d", "deepmedic"), required=True)
    job.add_argument("--seconds", type=float, default=3.0, help="timed seconds after warm-up")
    job.add_argument("--channels-last", action="store_true", help="channels-last-3d as well")
    args = parser.parse_args()
    result = compile_job(args)
    print(JSON_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
