"""autoseg side by side with nnU-Net v2 on one generated dataset, in one run (not a test).

Generates a phantom dataset in nnU-Net v2 raw format (``DatasetNNN_Phantom``; both tools read
the identical files), then measures both tools back to back with the same torch threads and
the same number of worker processes, and prints one table with each figure and the ratio
autoseg / nnU-Net:

1. verify, fingerprint + planning seconds; preprocessing seconds per case;
2. data loading + full training augmentation, batches/s, at nnU-Net's planned 3d_fullres
   patch and batch (autoseg's loader with an autoseg U-Net of nnU-Net's topology, so both
   produce the same deep-supervision targets);
3. sliding-window prediction seconds per case with the same network (an autoseg UNetConfig
   equal to nnU-Net's planned network, random weights, step 0.5) with and without mirroring;
   and each tool's user-visible prediction (read, preprocess, predict, export) of the held-out
   cases with its own trained network;
4. fold-0 validation Dice after the same wall-clock budget, each tool from its own plan,
   on an identical split (autoseg's splits.json written as nnU-Net's splits_final.json),
   test-time mirroring off in both validations, Dice computed by autoseg.evaluation for both;
5. planned patch and batch, estimated and measured training memory.

nnU-Net must be importable (see bench/README.md: a separate virtual environment with
torch==2.13.0, nnunetv2 and ``pip install -e .``); its folders are set in ``os.environ`` by
this script, under ``--out``. Usage::

    python bench/vs_nnunet.py --quick              # a few minutes
    python bench/vs_nnunet.py --out /tmp/vs        # the default: about 25 minutes on 2 cores

No assertions: a benchmark prints what it measures. Results also go to OUT/results.json.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

HIGH_LOAD = 1.3


@dataclass(frozen=True)
class Settings:
    """What one run measures (``--quick`` shrinks everything)."""

    cases: int = 20
    test_cases: int = 2
    shape: tuple[int, int, int] = (64, 80, 80)
    train_minutes: float = 10.0
    repeats: int = 3
    plan_repeats: int = 3
    loader_batches: int = 30
    warmup: int = 3
    mirror_repeats: int = 1
    dataset_id: int = 987
    seed: int = 0


QUICK = Settings(
    cases=10, test_cases=1, shape=(32, 40, 40), train_minutes=1.5, repeats=2, plan_repeats=1,
    loader_batches=10, warmup=2,
)  # fmt: skip


@dataclass
class Row:
    """One table row: a figure of each tool (numbers get a ratio autoseg / nnU-Net)."""

    name: str
    autoseg: Any
    nnunet: Any
    fmt: str = "{:.2f}"
    note: str = ""
    ratio: bool = True

    def cells(self) -> tuple[str, str, str, str]:
        def show(value: Any) -> str:
            return self.fmt.format(value) if isinstance(value, (int, float)) else str(value)

        numeric = self.ratio and all(
            isinstance(v, (int, float)) for v in (self.autoseg, self.nnunet)
        )
        ratio = f"{self.autoseg / self.nnunet:.2f}" if numeric and self.nnunet else "-"
        return self.name, show(self.autoseg), show(self.nnunet), ratio


def format_table(rows: list[Row]) -> str:
    """A Markdown table of the rows."""
    lines = ["| figure | autoseg | nnU-Net | autoseg / nnU-Net |", "|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    notes = [f"- {row.name}: {row.note}" for row in rows if row.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds of ``fn()`` and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def machine() -> str:
    """CPU model and core count, e.g. 'AMD EPYC 7B13, 2 cores'."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    names = [x.split(":", 1)[1].strip() for x in info.splitlines() if x.startswith("model name")]
    return f"{names[0] if names else platform.machine()}, {os.cpu_count()} cores"


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("vs_nnunet_out"), help="work folder")
    parser.add_argument("--quick", action="store_true", help="small dataset, 1.5 min training")
    parser.add_argument("--train-minutes", type=float, help="budget per tool (default 10)")
    parser.add_argument("--cases", type=int, help="training cases (default 20)")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"))
    parser.add_argument("--repeats", type=int, help="repeats of the short measurements")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    parser.add_argument(
        "-np", "--workers", type=int, default=None,
        help="worker processes for both tools (default: autoseg's CPU default)",
    )  # fmt: skip
    parser.add_argument(
        "--predict-shape", type=int, nargs=3, metavar=("Z", "Y", "X"),
        help="case of the same-network prediction (default: nnU-Net's patch, x1.5 along X)",
    )  # fmt: skip
    parser.add_argument(
        "--skip", nargs="+", default=[], choices=("loader", "predict", "memory", "train"),
    )  # fmt: skip
    return parser.parse_args()


def settings_from(args: argparse.Namespace) -> Settings:
    base = QUICK if args.quick else Settings()
    shape = tuple(args.shape) if args.shape else None
    changes = dict(train_minutes=args.train_minutes, cases=args.cases, shape=shape,
                   repeats=args.repeats)  # fmt: skip
    return Settings(**{**asdict(base), **{k: v for k, v in changes.items() if v is not None}})


@dataclass
class Run:
    """One benchmark run: both tools' sides, the table rows and the raw results."""

    out: Path
    settings: Settings
    workers: int
    threads: int
    dataset: Path
    a: Any  # autoseg_side.Side
    n: Any  # nnunet_side.Side
    rows: list[Row]
    results: dict[str, Any]

    def nn(self, fn: Callable[[], Any]) -> Any:
        """Call an nnU-Net function with its console output sent to OUT/nnunet_stdout.log."""
        from nnunet_side import console_to

        with console_to(self.out / "nnunet_stdout.log"):
            return fn()

    def both(
        self, key: str, fa: Callable[[], float], fn: Callable[[], float], n: int, first: int = 0
    ) -> None:
        """``n`` interleaved repeats of two measurements, added to ``results[key]``; the tool
        that goes first alternates (nnU-Net first when ``first + repeat`` is odd)."""
        values = self.results.setdefault(key, {"autoseg": [], "nnunet": []})
        for r in range(first, first + n):
            order = [("autoseg", fa), ("nnunet", fn)]
            for tool, f in order if r % 2 == 0 else order[::-1]:
                values[tool].append(f() if tool == "autoseg" else self.nn(f))

    def add(self, name: str, key: str, fmt: str = "{:.2f}", note: str = "") -> None:
        """A row of the medians of ``results[key]``."""
        values = self.results[key]
        a, n = (statistics.median(values[tool]) for tool in ("autoseg", "nnunet"))
        self.rows.append(Row(name, a, n, fmt, note))
        print(
            f"[{time.strftime('%H:%M:%S')}] {self.rows[-1].cells()}  load {load():.2f}", flush=True
        )


def phase_plan(run: Run) -> None:
    """(1) verify, fingerprint + plan, preprocess; both from scratch each repeat."""
    import shutil

    a, n, cases = run.a, run.n, run.settings.cases
    state: dict[str, Any] = {}

    def a_verify() -> float:
        shutil.rmtree(a.work, ignore_errors=True)
        seconds, state["dataset"] = timed(a.verify)
        return seconds

    def n_verify() -> float:
        shutil.rmtree(n.folder, ignore_errors=True)
        return timed(lambda: n.verify(run.dataset))[0]

    def a_plan() -> float:
        seconds, state["plans"] = timed(lambda: a.fingerprint_and_plan(state["dataset"]))
        return seconds

    def a_pre() -> float:
        return timed(lambda: a.preprocess(state["dataset"], state["plans"]))[0] / cases

    for r in range(run.settings.plan_repeats):  # rounds from scratch, interleaved
        run.both("verify_s", a_verify, n_verify, 1, r)
        run.both("plan_s", a_plan, lambda: timed(n.fingerprint_and_plan)[0], 1, r)
        run.both("preprocess_s_per_case", a_pre, lambda: timed(n.preprocess)[0] / cases, 1, r)
    run.add("verify dataset (s)", "verify_s")
    run.add("fingerprint + planning (s)", "plan_s")
    run.add("preprocessing (s per case)", "preprocess_s_per_case", "{:.3f}")
    a.finish_plan()
    n.write_splits(a.splits())


def phase_memory(run: Run, planned: dict[str, Any], trainer: Any) -> None:
    """(5) planned patch and batch; estimated vs measured training memory."""
    from autoseg_side import equivalent_unet, measure_step

    mem = run.a.memory()
    measured_a = measure_step(*run.a.memory_step())
    measured_n = run.nn(lambda: measure_step(*run.n.memory_step(trainer)))
    patch, batch = planned["patch_size"], planned["batch_size"]
    model_on_nn = run.a.model_estimate(equivalent_unet(planned), patch, batch)
    run.results["memory"] = {
        "autoseg": {**mem, "measured": measured_a},
        "nnunet": {**planned, "measured": measured_n},
        "autoseg_model_on_nnunet_network_bytes": model_on_nn,
    }
    mib, shape = 2**20, "×".join
    run.rows += [
        Row("planned patch (Z×Y×X)", shape(map(str, mem["patch_size"])), shape(map(str, patch))),
        Row("planned batch", mem["batch_size"], batch, "{:d}"),
        Row(
            "planned features per stage",
            "-".join(map(str, mem["features_per_stage"])),
            "-".join(map(str, planned["features_per_stage"])),
        ),
        Row(
            "planner's memory estimate (GB)",
            mem["planned_bytes"] / 1e9,
            planned["proxy_gigabytes"],
            note=f"autoseg: {mem['estimate_note']}; nnU-Net: {planned['proxy_note']}",
            ratio=False,
        ),
        Row(
            "measured training step (MiB)",
            measured_a["total"] / mib,
            measured_n["total"] / mib,
            "{:.0f}",
            note="CPU, fp32, one step of each tool's own network, loss and SGD at its planned "
            "patch and batch: saved activations (saved_tensors_hooks) + parameters + "
            "gradients + optimiser state",
        ),
        Row(
            "memory model estimate / measured",
            mem["measurable_estimate_bytes"] / measured_a["total"],
            model_on_nn / measured_n["total"],
            note="autoseg's memory model (same four terms) on each tool's planned network; "
            "nnU-Net has no byte estimate of its own",
        ),
    ]


def phase_loader(run: Run, planned: dict[str, Any], trainer: Any) -> None:
    """(2) batches/s of each loader with its full training augmentation."""
    from autoseg_side import equivalent_unet

    config = equivalent_unet(planned)
    s = run.settings
    patch, batch = planned["patch_size"], planned["batch_size"]
    run.both(
        "loader_batches_per_s",
        lambda: run.a.loader_rate(config, patch, batch, s.loader_batches, s.warmup),
        lambda: run.n.loader_rate(trainer, s.loader_batches, s.warmup),
        s.repeats,
    )
    run.add(
        "data loading + augmentation (batches/s)",
        "loader_batches_per_s",
        note=f"nnU-Net's planned patch {patch} and batch {batch} for both, {run.workers} "
        f"worker processes each, {s.loader_batches} batches after {s.warmup} warm-up; "
        "deep-supervision targets included (autoseg makes them after the loader)",
    )


def phase_predict(run: Run, planned: dict[str, Any], shape: list[int] | None) -> None:
    """(3a) sliding window with the same (nnU-Net's planned) network, random weights."""
    from autoseg_side import equivalent_unet, random_network

    patch = planned["patch_size"]
    shape = shape or [patch[0], patch[1], patch[2] + patch[2] // 2]
    image = torch.randn(planned["in_channels"], *shape, generator=torch.Generator().manual_seed(0))
    config = equivalent_unet(planned, deep_supervision=False)
    a_net, n_net = random_network(config), run.n.network(deep_supervision=False)
    count = [sum(p.numel() for p in net.parameters()) for net in (a_net, n_net)]
    for mirroring in (False, True):
        key = f"same_network_{'mirror' if mirroring else 'plain'}_s"
        predictor = run.nn(functools.partial(run.n.predictor, n_net, mirroring))
        run.both(
            key,
            run.a.sliding_window_seconds(a_net, config, image, patch, mirroring),
            run.n.sliding_window_seconds(predictor, image),
            run.settings.mirror_repeats if mirroring else run.settings.repeats,
        )
        run.add(
            f"same network, sliding window, {'8 mirrors' if mirroring else 'no mirroring'} "
            "(s/case)",
            key,
            note=""
            if mirroring
            else f"nnU-Net's planned network ({count[1]:,} parameters; "
            f"autoseg's equal topology {count[0]:,}: no conv bias before InstanceNorm), patch "
            f"{patch}, step 0.5, random case {planned['in_channels']}×{'×'.join(map(str, shape))}",
        )


def phase_train(run: Run) -> Path:
    """(4) fold 0, same wall-clock budget, each from its own plan; returns nnU-Net's
    trained model folder."""
    import autoseg_side

    minutes = run.settings.train_minutes
    gt, val = run.a.fold0_references(run.out / "gt_fold0")
    seconds_a, command = run.a.train(minutes, run.settings.seed)
    stats = run.a.training_stats()
    dice_a = autoseg_side.dice(run.a.workspace.fold_dir("unet3d", 0) / "validation", gt)
    nn = run.nn(lambda: run.n.train(minutes, run.settings.seed))
    dice_n = autoseg_side.dice(Path(nn["validation_dir"]), gt)
    run.results["train"] = {
        "autoseg": {"seconds": seconds_a, "command": command, "dice": dice_a, **stats},
        "nnunet": {**nn, "dice": dice_n},
    }
    run.rows += [
        Row(
            f"fold-0 validation Dice after {minutes:g} min (mean foreground)",
            dice_a["mean"],
            dice_n["mean"],
            "{:.3f}",
            note=f"{len(val)} validation cases (identical split), full sliding window, no "
            "mirroring, scored by autoseg.evaluation against labelsTr; per label: autoseg "
            + ", ".join(f"{k} {v:.3f}" for k, v in dice_a["per_label"].items())
            + "; nnU-Net "
            + ", ".join(f"{k} {v:.3f}" for k, v in dice_n["per_label"].items()),
        ),
        Row("epochs trained", stats["epochs"], nn["epochs"], "{:d}"),
        Row(
            "training iterations",
            stats["epochs"] * stats["iterations_per_epoch"],
            nn["iterations"],
            "{:d}",
            note=f"autoseg: {stats['iterations_per_epoch']} per epoch; nnU-Net: "
            f"{nn['iterations_per_epoch']} per epoch (both shortened for the budget)",
        ),
        Row(
            "seconds per training iteration",
            stats["training_seconds"] / max(1, stats["epochs"] * stats["iterations_per_epoch"]),
            nn["training_seconds"] / max(1, nn["iterations"]),
            note="training wall time (start-up, per-epoch validation, checkpoints included; final "
            "validation excluded) / iterations, each tool's own network, patch and batch",
        ),
        Row(
            "training + final validation, wall (s)",
            seconds_a,
            nn["training_seconds"] + nn["validation_seconds"],
            "{:.0f}",
        ),
    ]
    print(f"[{time.strftime('%H:%M:%S')}] training done, load {load():.2f}", flush=True)
    return Path(nn["model_dir"])


def phase_predict_files(run: Run, nn_model: Path) -> None:
    """(3b) user-visible prediction of the held-out cases with each tool's own trained model."""
    import autoseg_side

    images, cases = run.dataset / "imagesTs", run.settings.test_cases

    def n_predict(out: Path, m: bool) -> float:
        return float(run.n.predict_files(nn_model, images, out, m)) / cases

    def a_predict(out: Path, m: bool) -> float:
        seconds, run.results[f"own_network_{out.name}_command"] = run.a.predict_files(
            images, out, m
        )
        return seconds / cases

    for mirroring in (False, True):
        tag = "mirror" if mirroring else "plain"
        out_a, out_n = run.out / "predict" / f"autoseg_{tag}", run.out / "predict" / f"nnunet_{tag}"
        fa, fn = (
            functools.partial(a_predict, out_a, mirroring),
            functools.partial(n_predict, out_n, mirroring),
        )
        run.both(f"own_network_{tag}_s_per_case", fa, fn, 1)
        run.add(
            f"own trained network, files in/out, {'8 mirrors' if mirroring else 'no mirroring'}"
            " (s/case)",
            f"own_network_{tag}_s_per_case",
            note="" if mirroring else f"{cases} held-out case(s): read, preprocess, sliding "
            "window, resample back, write; autoseg predict vs nnUNetPredictor.predict_from_files",
        )  # fmt: skip
        scores = [autoseg_side.dice(o, run.dataset / "labelsTs")["mean"] for o in (out_a, out_n)]
        run.rows.append(Row(f"held-out Dice ({tag})", scores[0], scores[1], "{:.3f}"))


def run_all(args: argparse.Namespace, settings: Settings, workers: int) -> int:
    """Generate the dataset, run every phase, print and save the table."""
    import autoseg_side
    import nnunet_side

    from autoseg.data.synthetic import PhantomSpec, generate_phantom_dataset

    out, threads = args.out.resolve(), args.threads
    start_load, start = load(), time.perf_counter()
    print(f"{machine()}; torch {torch.__version__}, {threads} threads, {workers} workers; "
          f"load {start_load:.2f}", flush=True)  # fmt: skip
    if start_load > HIGH_LOAD:
        print(f"WARNING: load average {start_load:.2f} > {HIGH_LOAD}: timings will be noisy")
    name = f"Dataset{settings.dataset_id:03d}_Phantom"
    spec = PhantomSpec(num_train_cases=settings.cases, num_test_cases=settings.test_cases,
                       base_shape=settings.shape, seed=settings.seed)  # fmt: skip
    generate_phantom_dataset(out / "raw" / name, spec, overwrite=True)
    run = Run(
        out, settings, workers, threads, out / "raw" / name,
        autoseg_side.Side(out / "raw" / name, out / "autoseg", workers, threads),
        nnunet_side.Side(settings.dataset_id, name, workers),
        [], {"settings": asdict(settings), "argv": sys.argv, "machine": machine()},
    )  # fmt: skip
    phase_plan(run)
    planned = run.n.planned()
    trainer = run.nn(run.n.trainer)
    if "memory" not in args.skip:
        phase_memory(run, planned, trainer)
    if "loader" not in args.skip:
        phase_loader(run, planned, trainer)
    if "predict" not in args.skip:
        phase_predict(run, planned, args.predict_shape)
    if "train" not in args.skip:
        phase_predict_files(run, phase_train(run))
    end_load, minutes = load(), (time.perf_counter() - start) / 60
    high = start_load > HIGH_LOAD or end_load > threads + HIGH_LOAD  # others busied the cores
    table = format_table(run.rows)
    footer = (
        f"\nload average: {start_load:.2f} at start, {end_load:.2f} at end"
        f" (this run's own {threads} threads included){' HIGH' if high else ''}; "
        f"{minutes:.1f} min in all; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    print("\n" + table + footer)
    run.results.update(table=table, load_start=start_load, load_end=end_load, minutes=minutes)
    (out / "results.json").write_text(json.dumps(run.results, indent=1, default=str))
    (out / "table.md").write_text(table + footer + "\n")
    return 0


def main() -> int:
    args = _parse()
    settings = settings_from(args)
    if importlib.util.find_spec("nnunetv2") is None:
        sys.exit("nnunetv2 is not importable here; build the environment in bench/README.md")
    from autoseg.trainers.device import default_num_workers

    workers = args.workers if args.workers is not None else default_num_workers(torch.device("cpu"))
    nn_root = args.out.resolve() / "nnunet"
    for folder in (args.out.resolve() / "raw", nn_root / "preprocessed", nn_root / "results"):
        folder.mkdir(parents=True, exist_ok=True)
    os.environ.update(  # read by nnU-Net at import time, inherited by its worker processes
        nnUNet_raw=str(args.out.resolve() / "raw"),
        nnUNet_preprocessed=str(nn_root / "preprocessed"),
        nnUNet_results=str(nn_root / "results"),
        nnUNet_n_proc_DA=str(workers),
        nnUNet_def_n_proc=str(max(1, workers)),
        nnUNet_compile="false",
    )
    torch.set_num_threads(args.threads)
    return run_all(args, settings, workers)


if __name__ == "__main__":
    sys.exit(main())
