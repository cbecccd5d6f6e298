"""Dice against training minutes for autoseg and nnU-Net v2: the curve of ``bench/vs_nnunet.py``.

For each budget (``--minutes``, ascending) each tool trains fold 0 from scratch within that
wall-clock budget, in a worker process of its own (this file run as a script on a job file):
autoseg with ``autoseg train --time-budget`` in a fresh workspace seeded with the bench's
plan and preprocessed cases, nnU-Net with ``BudgetTrainer`` into a fresh ``nnUNet_results``.
Each worker then predicts the held-out cases, if any, with test-time mirroring off (as both
final validations run). By default the two tools run side by side, each with half the cores
(threads and worker processes); ``--sequential`` runs them one after the other with all of
them. The parent scores every prediction with autoseg.evaluation and records each point in
``OUT/results.json`` as soon as it is done, so an interrupted run, started again with the
same options, skips the points it has (a point is done when its Dice is recorded).

Outputs: ``OUT/curve/<tool>/<M>min/`` (job.json, worker.log, result.json, the fold and
its predictions), ``OUT/curve.md`` (the table) and ``OUT/dice_vs_minutes.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vs_nnunet_table import Row, load, say

TOOLS = ("autoseg", "nnunet")
TOOL_NAMES = {"autoseg": "autoseg", "nnunet": "nnU-Net"}
TIMEOUT_FACTOR, TIMEOUT_EXTRA_S = 2.0, 900.0  # a worker past this is stopped
SEEDED_FILES = (
    "source.json", "verify.json", "fingerprint.json", "plans.json", "splits.json",
    "cpu_speed.json",
)  # fmt: skip


@dataclass(frozen=True)
class Job:
    """What one worker does: train one tool on fold 0 in ``minutes``, then predict."""

    tool: str
    minutes: float
    folder: str
    seed: int
    threads: int
    workers: int
    dataset: str  # what autoseg reads
    planned_work: str  # autoseg's planned workspace, seeded into folder/work
    dataset_id: int
    dataset_name: str  # nnU-Net's DatasetNNN_Name
    test_input: str | None  # held-out images in this tool's naming


@dataclass(frozen=True)
class Curve:
    """One curve: the budgets, how the tools share the machine, the data and the split."""

    out: Path
    minutes: tuple[float, ...]
    sequential: bool
    threads: int  # per tool
    workers: int  # per tool
    seed: int
    data: Any  # vs_nnunet_data.BenchData
    planned_work: Path
    references: Path  # labels of fold 0's validation cases

    def key(self) -> dict[str, Any]:
        """What a recorded point must share with this run to be reused."""
        heldout = self.data.heldout
        return {
            "dataset": str(Path(self.data.autoseg_path).resolve()),
            "heldout": None if heldout is None else list(heldout.cases),
            "seed": self.seed,
            "sequential": self.sequential,
            "threads_per_tool": self.threads,
            "workers_per_tool": self.workers,
        }

    def folder(self, tool: str, minutes: float) -> Path:
        return self.out / "curve" / tool / f"{minutes:g}min"

    def job(self, tool: str, minutes: float) -> Job:
        heldout = self.data.heldout
        test = None
        if heldout is not None:
            test = heldout.autoseg_input if tool == "autoseg" else heldout.nnunet_input
        return Job(
            tool, minutes, str(self.folder(tool, minutes)), self.seed, self.threads,
            self.workers, str(self.data.autoseg_path), str(self.planned_work),
            self.data.dataset_id, self.data.name, None if test is None else str(test),
        )  # fmt: skip


def run_curve(curve: Curve, state: dict[str, Any], save: Callable[[], None]) -> None:
    """Every missing point of ``curve`` into ``state`` (``results["curve"]``), ``save()``
    after each; then OUT/curve.md and OUT/dice_vs_minutes.png."""
    if state.get("key") not in (None, curve.key()) and state.get("points"):
        say(
            f"WARNING: results.json holds curve points of another setup ({state['key']}); "
            "starting the curve over"
        )
        state["points"] = {}
    state["key"] = curve.key()
    points = state.setdefault("points", {})
    mode = "one after the other" if curve.sequential else "side by side"
    for minutes in sorted(curve.minutes):
        done = points.setdefault(f"{minutes:g}", {})
        todo = [t for t in TOOLS if "dice" not in done.get(t, {})]
        if not todo:
            say(f"{minutes:g} min: done in an earlier run, skipped")
            continue
        groups = [[t] for t in todo] if curve.sequential else [todo]
        for tools in groups:
            names = " + ".join(TOOL_NAMES[t] for t in tools)
            say(
                f"{minutes:g} min: {names} ({mode}, {curve.threads} thread(s), "
                f"{curve.workers} worker(s) each), load {load():.2f}"
            )
            for tool, record in zip(tools, _run_jobs(curve, tools, minutes)):
                done[tool] = record
                save()
    write_outputs(curve, state)


def _run_jobs(curve: Curve, tools: list[str], minutes: float) -> list[dict[str, Any]]:
    """Start one worker per tool at once, wait for all, score them."""
    import autoseg

    env = dict(os.environ)
    root = str(Path(autoseg.__file__).resolve().parents[1])  # the autoseg this bench imports
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    procs, start_load, start = [], load(), time.perf_counter()
    try:
        for tool in tools:
            job = curve.job(tool, minutes)
            shutil.rmtree(job.folder, ignore_errors=True)
            Path(job.folder).mkdir(parents=True)
            (Path(job.folder) / "job.json").write_text(json.dumps(asdict(job), indent=1))
            log = open(Path(job.folder) / "worker.log", "w")  # noqa: SIM115 (closed by the child's end)
            command = [sys.executable, str(Path(__file__).resolve()), job.folder]
            procs.append(
                subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            )
            log.close()
        limit = minutes * 60 * TIMEOUT_FACTOR + TIMEOUT_EXTRA_S
        codes, seconds = _wait(procs, start, limit)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
    end_load = load()
    records = []
    for tool, code, process_seconds in zip(tools, codes, seconds):
        record = _score(curve, tool, minutes, code)
        record.update(
            load_start=start_load,
            load_end=end_load,
            mode=mode_of(curve, tools),
            process_seconds=process_seconds,
        )
        records.append(record)
        shown = f"FAILED: {record.get('error')}"
        if "dice" in record:
            shown = f"fold-0 validation Dice {record['dice']['mean']:.3f}" + (
                f", held-out {record['heldout_dice']['mean']:.3f}"
                if "heldout_dice" in record
                else ""
            )
        say(f"{minutes:g} min: {TOOL_NAMES[tool]} {shown}, load {end_load:.2f}")
    return records


def mode_of(curve: Curve, tools: list[str]) -> str:
    return "sequential" if curve.sequential or len(tools) == 1 else "parallel"


def _wait(
    procs: list[subprocess.Popen[bytes]], start: float, limit: float
) -> tuple[list[int | str], list[float]]:
    """Exit status (or why stopped) and seconds since ``start`` of each process, stopping
    those still running ``limit`` seconds after ``start``."""
    codes: list[int | str | None] = [None] * len(procs)
    seconds = [0.0] * len(procs)
    while None in codes:
        time.sleep(0.5)
        elapsed = time.perf_counter() - start
        for i, proc in enumerate(procs):
            if codes[i] is None and proc.poll() is not None:
                codes[i], seconds[i] = proc.returncode, elapsed
            elif codes[i] is None and elapsed > limit:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
                codes[i], seconds[i] = f"stopped after {elapsed:.0f} s", elapsed
    return [c for c in codes if c is not None], seconds


def _score(curve: Curve, tool: str, minutes: float, code: int | str) -> dict[str, Any]:
    """The worker's result.json with the Dice of its predictions (or the error)."""
    from autoseg_side import dice

    folder = curve.folder(tool, minutes)
    result_file = folder / "result.json"
    if code != 0 or not result_file.is_file():
        tail = (folder / "worker.log").read_text(errors="replace").strip().splitlines()[-3:]
        return {"error": f"exit status {code}: " + " | ".join(tail)}
    record: dict[str, Any] = json.loads(result_file.read_text())
    labels = curve.data.foreground
    record["dice"] = dice(Path(record["validation_dir"]), curve.references, labels)
    if record.get("test_dir"):
        record["heldout_dice"] = dice(Path(record["test_dir"]), curve.data.heldout.labels, labels)
    return record


def curve_rows(curve: Curve, points: dict[str, Any], validation_cases: int) -> list[Row]:
    """Rows of the main table: Dice at each budget; iterations and seconds at the longest."""
    rows, how = [], "one after the other" if curve.sequential else "side by side"
    heldout = curve.data.heldout
    for minutes in sorted(curve.minutes):
        a, n = (points.get(f"{minutes:g}", {}).get(tool, {}) for tool in TOOLS)
        note = (
            f"{validation_cases} validation cases (identical split), full sliding window, no "
            f"mirroring, scored by autoseg.evaluation; the tools {how}, {curve.threads} "
            f"thread(s) and {curve.workers} worker(s) each; per label in curve.md"
        )
        name = f"fold-0 validation Dice after {minutes:g} min"
        note = note if minutes == min(curve.minutes) else ""
        rows.append(Row(name, _mean(a, "dice"), _mean(n, "dice"), "{:.3f}", note))
        if heldout is not None:
            name = f"held-out Dice after {minutes:g} min ({len(heldout.cases)} cases)"
            rows.append(Row(name, _mean(a, "heldout_dice"), _mean(n, "heldout_dice"), "{:.3f}"))
    longest = f"after {max(curve.minutes):g} min"
    a, n = (points.get(f"{max(curve.minutes):g}", {}).get(tool, {}) for tool in TOOLS)
    if "dice" not in a or "dice" not in n:
        return rows
    return [
        *rows,
        Row(f"epochs trained {longest}", a["epochs"], n["epochs"], "{:d}"),
        Row(
            f"training iterations {longest}",
            a["iterations"],
            n["iterations"],
            "{:d}",
            note=f"autoseg: {a['iterations_per_epoch']} per epoch; nnU-Net: "
            f"{n['iterations_per_epoch']} per epoch (both shortened for the budget)",
        ),
        Row(
            f"seconds per training iteration {longest}",
            a["training_seconds"] / max(1, a["iterations"]),
            n["training_seconds"] / max(1, n["iterations"]),
            note="training wall time (start-up, per-epoch validation, checkpoints included; "
            "final validation excluded) / iterations, each tool's own network, patch and batch",
        ),
        Row(
            f"training + final validation {longest}, wall (s)",
            a["wall_seconds"],
            n["wall_seconds"],
            "{:.0f}",
        ),
    ]


def _mean(point: dict[str, Any], key: str) -> Any:
    return point[key]["mean"] if key in point else "failed" if "error" in point else "-"


def _cell(point: dict[str, Any], key: str) -> str:
    return f"{point[key]['mean']:.3f}" if key in point else "-"


def write_outputs(curve: Curve, state: dict[str, Any]) -> None:
    """OUT/curve.md (printed too) and OUT/dice_vs_minutes.png of the recorded points."""
    table = curve_table(state["points"], curve.data.heldout is not None)
    state["table"] = table
    (curve.out / "curve.md").write_text(table + "\n")
    print("\n" + table + "\n", flush=True)
    how = "one after the other" if curve.sequential else "side by side"
    title = f"{curve.data.name}: {how}, {curve.threads} thread(s) each"
    plot(state["points"], curve.out / "dice_vs_minutes.png", title)


def curve_table(points: dict[str, dict[str, Any]], heldout: bool) -> str:
    """One Markdown row per budget and tool."""
    head = ["budget (min)", "tool", "fold-0 val Dice", "per label"]
    head += ["held-out Dice"] if heldout else []
    head += ["epochs", "iterations", "s/iteration", "train + val (s)", "worker process (s)"]
    head += ["mode", "load start → end"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for minutes in sorted(points, key=float):
        for tool in TOOLS:
            p = points[minutes].get(tool)
            if p is None:
                continue
            if "dice" not in p:
                lines.append(f"| {minutes} | {TOOL_NAMES[tool]} | failed: {p['error'][:80]} |")
                continue
            labels = ", ".join(f"{k} {v:.3f}" for k, v in p["dice"]["per_label"].items())
            cells = [minutes, TOOL_NAMES[tool], f"{p['dice']['mean']:.3f}", labels]
            if heldout:
                cells.append(_cell(p, "heldout_dice"))
            cells += [
                str(p["epochs"]),
                str(p["iterations"]),
                f"{p['training_seconds'] / max(1, p['iterations']):.2f}",
                f"{p['wall_seconds']:.0f}",
                f"{p['process_seconds']:.0f}",
                p["mode"],
                f"{p['load_start']:.2f} → {p['load_end']:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(points: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Dice (validation solid, held-out dashed) against the budget, both tools."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    budgets = sorted(points, key=float)
    for tool, color in zip(TOOLS, ("tab:blue", "tab:orange")):
        for key, style, what in (
            ("dice", "-o", "fold-0 validation"),
            ("heldout_dice", "--s", "held-out"),
        ):
            have = [m for m in budgets if key in points[m].get(tool, {})]
            xs, ys = [float(m) for m in have], [points[m][tool][key]["mean"] for m in have]
            if xs:
                axes.plot(xs, ys, style, color=color, label=f"{TOOL_NAMES[tool]}, {what}")
    axes.set_xticks([float(m) for m in budgets], budgets)
    axes.set_xlabel("training budget, fold 0 (minutes of wall clock)")
    axes.set_ylabel("mean foreground Dice")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend(loc="best")
    figure.savefig(path)


# ---- the worker: ``python vs_nnunet_curve.py FOLDER`` (FOLDER/job.json) -----------------
def seed_workspace(planned: Path, work: Path) -> None:
    """A fresh autoseg workspace with the planned one's JSON files and preprocessed cases."""
    work.mkdir(parents=True, exist_ok=True)
    for name in SEEDED_FILES:
        if (planned / name).is_file():
            shutil.copy2(planned / name, work / name)
    (work / "preprocessed").symlink_to((planned / "preprocessed").resolve())


def work_autoseg(job: Job, folder: Path) -> dict[str, Any]:
    from autoseg_side import Side

    seed_workspace(Path(job.planned_work), folder / "work")
    side = Side(Path(job.dataset), folder / "work", job.workers, job.threads)
    seconds, command = side.train(job.minutes, job.seed)
    stats = side.training_stats()
    result = {
        "wall_seconds": seconds,
        "command": command,
        "work": str(side.work),
        **stats,
        "iterations": stats["epochs"] * stats["iterations_per_epoch"],
        "validation_dir": str(side.workspace.fold_dir("unet3d", 0) / "validation"),
    }
    if job.test_input:
        test = folder / "test"
        seconds, command = side.predict_files(Path(job.test_input), test, False)
        result.update(test_dir=str(test), predict_seconds=seconds, predict_command=command)
    return result


def work_nnunet(job: Job, folder: Path) -> dict[str, Any]:
    os.environ.update(  # read by nnU-Net at import time
        nnUNet_results=str(folder / "results"),
        nnUNet_n_proc_DA=str(job.workers),
        nnUNet_def_n_proc=str(max(1, job.workers)),
    )
    import torch

    torch.set_num_threads(job.threads)
    from nnunet_side import Side, console_to

    side = Side(job.dataset_id, job.dataset_name, job.workers)
    with console_to(folder / "nnunet_stdout.log"):
        result = side.train(job.minutes, job.seed)
        result["wall_seconds"] = result["training_seconds"] + result["validation_seconds"]
        if job.test_input:
            test = folder / "test"
            model = Path(result["model_dir"])
            seconds = side.predict_files(model, Path(job.test_input), test, False)
            result.update(test_dir=str(test), predict_seconds=seconds)
    return result


def worker(folder: Path) -> int:
    job = Job(**json.loads((folder / "job.json").read_text()))
    result = (work_autoseg if job.tool == "autoseg" else work_nnunet)(job, folder)
    result.update(threads=job.threads, workers=job.workers, minutes=job.minutes)
    tmp = folder / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, default=str))
    os.replace(tmp, folder / "result.json")
    return 0


if __name__ == "__main__":
    sys.exit(worker(Path(sys.argv[1])))
