"""Does `autoseg tune` pay on real data? A resumable study, its evaluation and a transfer test.

Stages (each resumable: re-running one skips what is finished; run them in this order):

    python bench/tuning_study.py tune --out OUT [--minutes 3] [--trials 30]
        Successive-halving study of the planner and trainer heuristics (unet3d, fold 0 of the
        Hippocampus dev set, ``--minutes`` of training per trial on one thread). Start it
        once per free core, with the same options: the workers share the study's SQLite
        storage (each draws other parameters, as the sampler's seed includes the trial).
    python bench/tuning_study.py evaluate --out OUT --arm defaults   (and --arm tuned)
        The fixed evaluation protocol: 5-fold cross-validation of unet3d with the default
        and with the tuned heuristics, at the same per-fold budget as the trials. Run both
        arms side by side (one thread each), so both see the same machine.
    python bench/tuning_study.py transfer --out OUT --arm defaults   (and --arm tuned)
        The same on a phantom family unlike Hippocampus (anisotropic 3-5 mm slices, two
        channels, three classes): do the tuned heuristics help, hurt or do nothing there?
    python bench/tuning_study.py report --out OUT
        Paired bootstrap CIs over cases (all cases, and the cases of folds 1-4 that no trial
        validated on), written to bench/results/tuning_hippocampus/.

No assertions: a benchmark prints and records what it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autoseg.ensembling.bootstrap import paired_bootstrap  # noqa: E402
from autoseg.tuning.objective import case_dice  # noqa: E402

HIPPOCAMPUS = REPO.parent / "shared" / "data" / "Task04_Hippocampus_dev"
RESULTS = REPO / "bench" / "results" / "tuning_hippocampus"
STUDY = "hippocampus_cpu"
FOLDS = 5
TRANSFER_FOLDS = 3
# epoch length of every training in the study and the evaluation (each also runs on one
# thread with in-process loading: --threads 1 and -np 0 / --loader-workers 0)
TRAINING = ["--iters-per-epoch", "50", "--val-iters", "10"]


def _autoseg(*args: str) -> list[str]:
    return [sys.executable, "-m", "autoseg", *args]


def _run(command: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    print("$", " ".join(command), f"> {log}", flush=True)
    with log.open("a") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True)


def tune(out: Path, minutes: float, trials: int, seed: int) -> None:
    work = out / "tune"
    command = _autoseg(
        "-q", "tune", str(HIPPOCAMPUS), "--work", str(work), "--study", STUDY,
        "--configs", "unet3d", "--folds", "0", "--budget-minutes", str(minutes),
        "--pruner", "halving", "--pruner-warmup", "25", "--trials", str(trials),
        "--seed", str(seed), "--threads", "1", "--loader-workers", "0", "-np", "1",
        *TRAINING,
    )  # fmt: skip
    started = time.time()
    _run(command, out / "logs" / f"tune_seed{seed}.log")
    print(f"worker done in {(time.time() - started) / 60:.1f} min")


def show(out: Path) -> Path:
    """``autoseg tune --show``; copies the summary files into bench/results."""
    work = out / "tune"
    _run(_autoseg("tune", "--show", "--work", str(work), "--study", STUDY), out / "logs/show.log")
    study_dir = work / "tuning" / "studies" / STUDY
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in ("summary.md", "summary.png", "trials.csv", "best_heuristics.json"):
        if (study_dir / name).exists():
            shutil.copy2(study_dir / name, RESULTS / name)
    return study_dir / "best_heuristics.json"


def _heuristics_file(out: Path, arm: str) -> Path | None:
    if arm == "defaults":
        return None
    best = out / "best_heuristics.json"
    if not best.exists():
        shutil.copy2(show(out), best)  # frozen once: both stages use the same tuned set
    return best


def _train_arm(
    work: Path, dataset: Path, heuristics: Path | None, minutes: float, folds: int, log: Path
) -> None:
    plan = _autoseg("-q", "plan", str(dataset), "--work", str(work), "--device", "cpu", "-np", "1")
    if heuristics is not None:
        plan += ["--heuristics", str(heuristics)]
    _run(plan, log)
    for fold in range(folds):
        summary = work / "results" / "unet3d" / f"fold_{fold}" / "validation" / "summary.json"
        if summary.exists():
            print(f"fold {fold}: done")
            continue
        started, load = time.time(), os.getloadavg()[0]
        _run(_autoseg(
            "-q", "train", "--work", str(work), "--config", "unet3d", "--fold", str(fold),
            "--time-budget", f"{minutes}m", "--threads", "1", "-np", "0", "--resume",
            *TRAINING,
        ), log)  # fmt: skip
        print(f"fold {fold}: {time.time() - started:.0f} s, load {load:.2f} -> "
              f"{os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip


def evaluate(out: Path, arm: str, minutes: float) -> None:
    _train_arm(out / f"eval_{arm}", HIPPOCAMPUS, _heuristics_file(out, arm), minutes, FOLDS,
               out / "logs" / f"eval_{arm}.log")  # fmt: skip


def transfer(out: Path, arm: str, minutes: float) -> None:
    dataset = out / "transfer_data" / "Dataset900_AnisoTwoChannel"
    if not (dataset / "dataset.json").exists():
        _run(_autoseg(
            "-q", "demo-data", str(dataset), "--cases", "24", "--spacing", "aniso",
            "--channels", "T1", "FLAIR", "--nested-classes", "2", "--seed", "19",
        ), out / "logs" / "transfer_data.log")  # fmt: skip
    _train_arm(out / f"transfer_{arm}", dataset, _heuristics_file(out, arm), minutes,
               TRANSFER_FOLDS, out / "logs" / f"transfer_{arm}.log")  # fmt: skip


def _per_case(work: Path, folds: int) -> dict[str, tuple[int, float | None]]:
    """Case -> (fold, foreground Dice) from the folds' validation summaries."""
    cases: dict[str, tuple[int, float | None]] = {}
    for fold in range(folds):
        path = work / "results" / "unet3d" / f"fold_{fold}" / "validation" / "summary.json"
        if path.exists():
            for case, dice in case_dice(json.loads(path.read_text())).items():
                cases[case] = (fold, dice)
    return cases


def _compare(
    a: dict[str, tuple[int, float | None]], b: dict[str, tuple[int, float | None]], folds: set[int]
) -> dict[str, Any]:
    """Tuned (a) minus defaults (b), paired over the cases both scored in ``folds``."""
    cases = sorted(c for c in a.keys() & b.keys() if a[c][0] in folds)
    tuned = np.array([np.nan if a[c][1] is None else a[c][1] for c in cases])
    default = np.array([np.nan if b[c][1] is None else b[c][1] for c in cases])
    diff = paired_bootstrap(tuned, default, num_bootstrap=10_000, seed=0)
    return {
        "folds": sorted(folds), "cases": diff.n_cases,
        "defaults": float(np.nanmean(default)) if cases else None,
        "tuned": float(np.nanmean(tuned)) if cases else None,
        "difference": diff.mean_difference, "ci95": [diff.ci_low, diff.ci_high],
    }  # fmt: skip


def _study_figures(out: Path) -> dict[str, Any]:
    import optuna

    storage = f"sqlite:///{out / 'tune' / 'tuning.sqlite3'}"
    study = optuna.load_study(study_name=STUDY, storage=storage)
    states: dict[str, int] = {}
    seconds = 0.0
    for trial in study.trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
        if trial.datetime_start and trial.datetime_complete:
            seconds += (trial.datetime_complete - trial.datetime_start).total_seconds()
    return {"trials": states, "trial_hours_one_core": seconds / 3600}


def report(out: Path) -> None:
    results: dict[str, Any] = {"study": _study_figures(out)}
    best = out / "best_heuristics.json"
    if best.exists():
        data = json.loads(best.read_text())
        results["best_trial"] = {"trial": data["trial"], "value": data["value"],
                                 "params": data["params"]}  # fmt: skip
    defaults, tuned = _per_case(out / "eval_defaults", FOLDS), _per_case(out / "eval_tuned", FOLDS)
    if defaults and tuned:
        results["cv_all_folds"] = _compare(tuned, defaults, set(range(FOLDS)))
        results["cv_unseen_folds"] = _compare(tuned, defaults, set(range(1, FOLDS)))
    t_defaults = _per_case(out / "transfer_defaults", TRANSFER_FOLDS)
    t_tuned = _per_case(out / "transfer_tuned", TRANSFER_FOLDS)
    if t_defaults and t_tuned:
        results["transfer"] = _compare(t_tuned, t_defaults, set(range(TRANSFER_FOLDS)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("tune", "show", "evaluate", "transfer", "report"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=3.0, help="training minutes per fold")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="sampler and training seed")
    parser.add_argument("--arm", choices=("defaults", "tuned"), default="defaults")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "tune":
        tune(args.out, args.minutes, args.trials, args.seed)
    elif args.stage == "show":
        show(args.out)
    elif args.stage == "evaluate":
        evaluate(args.out, args.arm, args.minutes)
    elif args.stage == "transfer":
        transfer(args.out, args.arm, args.minutes)
    else:
        report(args.out)


if __name__ == "__main__":
    main()
