"""autoseg side by side with nnU-Net v2 on one dataset, in one run (not a test).

The dataset is ``--dataset DIR`` (an nnU-Net v2 raw folder, an MSD task folder or a CSV
manifest; autoseg reads it as it is, nnU-Net a raw copy of links written under ``--out``, see
``vs_nnunet_data.py``), or by default a generated phantom in nnU-Net v2 raw format (both
tools read the identical files). ``--test DIR`` gives held-out labelled cases (the phantom
has its own). Both tools get the same torch threads and worker processes, and one table
gives each figure and the ratio autoseg / nnU-Net:

1. verify, fingerprint + planning seconds; preprocessing seconds per case;
2. data loading + full training augmentation, batches/s, at nnU-Net's planned 3d_fullres
   patch and batch (autoseg's loader with an autoseg U-Net of nnU-Net's topology, so both
   produce the same deep-supervision targets);
3. sliding-window prediction seconds per case with the same network (an autoseg UNetConfig
   equal to nnU-Net's planned network, random weights, step 0.5) with and without mirroring;
   and each tool's user-visible prediction (read, preprocess, predict, export) of the held-out
   cases (else fold 0's validation cases) with its network of the longest budget;
4. the curve: fold-0 validation Dice (and held-out Dice) after each wall-clock budget of
   ``--minutes``, each tool from its own plan, from scratch, on an identical split (autoseg's
   splits.json written as nnU-Net's splits_final.json), test-time mirroring off in both,
   Dice computed by autoseg.evaluation for both; the tools run side by side with half the
   cores each (``--sequential``: one after the other with all of them); see
   ``vs_nnunet_curve.py``;
5. planned patch and batch, estimated and measured training memory.

nnU-Net must be importable (see bench/README.md: a separate virtual environment with
nnunetv2 and autoseg's dependencies); its folders are set in ``os.environ`` by this script,
under ``--out``. Usage::

    python bench/vs_nnunet.py --quick --out /tmp/vs_quick   # a few minutes
    python bench/vs_nnunet.py --dataset ../shared/data/Task04_Hippocampus_dev --out /tmp/vs

No assertions: a benchmark prints what it measures. Results go to OUT/results.json (the
curve's points are kept there and skipped when the run is started again), OUT/table.md,
OUT/curve.md and OUT/dice_vs_minutes.png.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from vs_nnunet_table import Row, format_table, load, machine, timed

HIGH_LOAD = 1.3


@dataclass(frozen=True)
class Settings:
    """What one run measures (``--quick`` shrinks everything)."""

    cases: int = 20
    test_cases: int = 2
    shape: tuple[int, int, int] = (64, 80, 80)
    minutes: tuple[float, ...] = (5.0, 10.0, 20.0, 30.0)
    repeats: int = 3
    plan_repeats: int = 3
    loader_batches: int = 30
    warmup: int = 3
    mirror_repeats: int = 1
    dataset_id: int = 987
    seed: int = 0


QUICK = Settings(
    cases=10, test_cases=1, shape=(32, 40, 40), minutes=(0.5, 1.0), repeats=2, plan_repeats=1,
    loader_batches=10, warmup=2,
)  # fmt: skip


SECTIONS = ("memory", "loader", "predict", "curve")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("vs_nnunet_out"), help="work folder")
    parser.add_argument(
        "--dataset", type=Path,
        help="nnU-Net v2 raw folder, MSD task folder or CSV manifest (default: a phantom)",
    )  # fmt: skip
    parser.add_argument(
        "--test", type=Path,
        help="held-out labelled cases: a dataset (its training cases, or imagesTs + labelsTs)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="small phantom, 0.5 and 1 min")
    parser.add_argument(
        "--minutes", type=float, nargs="+", help="training budgets of the curve (5 10 20 30)"
    )
    parser.add_argument("--train-minutes", type=float, help="one budget (same as --minutes M)")
    parser.add_argument(
        "--sequential", action="store_true",
        help="train the two tools one after the other with every core (default: side by side, "
        "half the threads and workers each)",
    )  # fmt: skip
    parser.add_argument("--cases", type=int, help="phantom training cases (default 20)")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), help="phantom")
    parser.add_argument("--repeats", type=int, help="repeats of the short measurements")
    parser.add_argument("--plan-repeats", type=int, help="rounds of planning (default 3)")
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
        "--skip", nargs="+", default=[], choices=(*SECTIONS, "train"),
        help="sections to leave out (train: the old name of curve)",
    )  # fmt: skip
    args = parser.parse_args()
    args.skip = {"curve" if s == "train" else s for s in args.skip}
    if args.dataset is not None and (args.cases or args.shape):
        parser.error("--cases and --shape shape the phantom; they do not go with --dataset")
    if args.minutes and args.train_minutes:
        parser.error("give --minutes or --train-minutes, not both")
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    base = QUICK if args.quick else Settings()
    shape = tuple(args.shape) if args.shape else None
    minutes = args.minutes or ([args.train_minutes] if args.train_minutes else None)
    changes = dict(minutes=tuple(sorted(set(minutes))) if minutes else None, cases=args.cases,
                   shape=shape, repeats=args.repeats, plan_repeats=args.plan_repeats)  # fmt: skip
    return Settings(**{**asdict(base), **{k: v for k, v in changes.items() if v is not None}})


@dataclass
class Run:
    """One benchmark run: both tools' sides, the table rows and the raw results."""

    out: Path
    settings: Settings
    workers: int
    threads: int
    data: Any  # vs_nnunet_data.BenchData
    a: Any  # autoseg_side.Side
    n: Any  # nnunet_side.Side
    rows: list[Row]
    results: dict[str, Any]

    def save(self) -> None:
        """OUT/results.json, atomically (the curve's points survive an interruption)."""
        tmp = self.out / "results.json.tmp"
        tmp.write_text(json.dumps(self.results, indent=1, default=str))
        os.replace(tmp, self.out / "results.json")

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

    a, n, cases = run.a, run.n, len(run.data.label_files)
    state: dict[str, Any] = {}

    def a_verify() -> float:
        shutil.rmtree(a.work, ignore_errors=True)
        seconds, state["dataset"] = timed(a.verify)
        return seconds

    def n_verify() -> float:
        shutil.rmtree(n.folder, ignore_errors=True)
        return timed(lambda: n.verify(run.data.raw))[0]

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


def phase_curve(run: Run, sequential: bool) -> None:
    """(4) Dice after each budget, both tools from scratch (``vs_nnunet_curve.py``)."""
    from vs_nnunet_curve import Curve, curve_rows, run_curve
    from vs_nnunet_data import link_labels

    s, val = run.settings, run.a.fold0_validation()
    threads = run.threads if sequential else max(1, run.threads // 2)
    workers = run.workers if sequential or run.workers <= 1 else run.workers // 2
    references = link_labels(run.data.label_files, val, run.out / "gt_fold0")
    curve = Curve(run.out, s.minutes, sequential, threads, workers, s.seed, run.data, run.a.work,
                  references)  # fmt: skip
    run_curve(curve, run.results.setdefault("curve", {}), run.save)
    run.rows += curve_rows(curve, run.results["curve"]["points"], len(val))


def phase_predict_files(run: Run) -> None:
    """(3b) user-visible prediction with each tool's trained network of the longest budget,
    of the held-out cases (else of fold 0's validation cases)."""
    import autoseg_side
    from vs_nnunet_data import held_out

    from autoseg.data.formats import load_dataset

    longest = f"{max(run.settings.minutes):g}"
    point = run.results.get("curve", {}).get("points", {}).get(longest, {})
    if not all("dice" in point.get(tool, {}) for tool in ("autoseg", "nnunet")):
        print(f"own trained network: skipped (no trained pair of {longest} min)", flush=True)
        return
    heldout, what = run.data.heldout, "held-out"
    if heldout is None:
        dataset, what = load_dataset(run.data.autoseg_path), "fold-0 validation"
        cases = [dataset.case(c) for c in run.a.fold0_validation()]
        heldout = held_out(cases, run.out / "validation_inputs", dataset.num_channels)
    side_a = autoseg_side.Side(
        run.data.autoseg_path, Path(point["autoseg"]["work"]), run.workers, run.threads
    )
    nn_model, cases = Path(point["nnunet"]["model_dir"]), len(heldout.cases)

    def n_predict(out: Path, m: bool) -> float:
        return float(run.n.predict_files(nn_model, heldout.nnunet_input, out, m)) / cases

    def a_predict(out: Path, m: bool) -> float:
        seconds, run.results[f"own_network_{out.name}_command"] = side_a.predict_files(
            heldout.autoseg_input, out, m
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
            f"own trained network ({longest} min), files in/out, "
            f"{'8 mirrors' if mirroring else 'no mirroring'} (s/case)",
            f"own_network_{tag}_s_per_case",
            note="" if mirroring else f"{cases} {what} case(s): read, preprocess, sliding "
            "window, resample back, write; autoseg predict vs nnUNetPredictor.predict_from_files",
        )  # fmt: skip
        scores = [
            autoseg_side.dice(o, heldout.labels, run.data.foreground)["mean"]
            for o in (out_a, out_n)
        ]
        run.rows.append(Row(f"{what} Dice ({tag}, {longest} min)", *scores, "{:.3f}"))


def prepare(args: argparse.Namespace, settings: Settings, out: Path) -> Any:
    """The bench's data: the given dataset (nnU-Net's copy written) or the phantom."""
    from vs_nnunet_data import prepare_dataset, prepare_phantom

    from autoseg.data.synthetic import PhantomSpec

    if args.dataset is not None:
        return prepare_dataset(args.dataset, out, settings.dataset_id, args.test)
    if args.test is not None:
        raise SystemExit("--test goes with --dataset (the phantom has its own held-out cases)")
    spec = PhantomSpec(num_train_cases=settings.cases, num_test_cases=settings.test_cases,
                       base_shape=settings.shape, seed=settings.seed)  # fmt: skip
    return prepare_phantom(out, spec, settings.dataset_id)


def run_all(args: argparse.Namespace, settings: Settings, workers: int) -> int:
    """Prepare the dataset, run every section, print and save the tables."""
    import autoseg_side
    import nnunet_side

    out, threads = args.out.resolve(), args.threads
    start_load, start = load(), time.perf_counter()
    print(f"{machine()}; torch {torch.__version__}, {threads} threads, {workers} workers; "
          f"load {start_load:.2f}", flush=True)  # fmt: skip
    if start_load > HIGH_LOAD:
        print(f"WARNING: load average {start_load:.2f} > {HIGH_LOAD}: timings will be noisy")
    data = prepare(args, settings, out)
    print(f"dataset: autoseg reads {data.autoseg_path}, nnU-Net {data.raw}; "
          f"{len(data.label_files)} training cases, "
          f"{len(data.heldout.cases) if data.heldout else 0} held out", flush=True)  # fmt: skip
    previous = _read_json(out / "results.json")
    run = Run(
        out, settings, workers, threads, data,
        autoseg_side.Side(data.autoseg_path, out / "autoseg", workers, threads),
        nnunet_side.Side(data.dataset_id, data.name, workers),
        [], {"settings": asdict(settings), "argv": sys.argv, "machine": machine(),
             "dataset": str(data.autoseg_path), "nnunet_raw": str(data.raw),
             "load_start": start_load, "curve": previous.get("curve", {})},
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
    if "curve" not in args.skip:
        phase_curve(run, args.sequential)
        phase_predict_files(run)
    end_load, minutes = load(), (time.perf_counter() - start) / 60
    high = start_load > HIGH_LOAD or end_load > threads + HIGH_LOAD  # others busied the cores
    table = format_table(run.rows)
    footer = (
        f"\nload average: {start_load:.2f} at start, {end_load:.2f} at end"
        f" (this run's own {threads} threads included){' HIGH' if high else ''}; "
        f"{minutes:.1f} min in all; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    print("\n" + table + footer)
    run.results.update(table=table, load_end=end_load, minutes=minutes)
    run.save()
    (out / "table.md").write_text(table + footer + "\n")
    return 0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


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
