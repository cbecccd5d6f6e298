"""The tables ``bench/gpu_check.py`` prints at the end (and writes to ``OUT/gpu_check.md``),
made from the JSON record alone, so a partial record still prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpu_check_report import SECTIONS


def _num(value: Any, spec: str = ".2f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def _gb(value: Any) -> str:
    return _num(value / 1e9) if isinstance(value, (int, float)) else "-"


def _short(value: Any, width: int = 48) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _cell(entry: Any, key: str, spec: str = ".2f", why: bool = True) -> str:
    """A measured number, or why it is missing (skipped / error; only the word unless
    ``why``)."""
    if not isinstance(entry, dict):
        return "-"
    value = entry.get(key)
    if isinstance(value, (int, float)):
        return format(value, spec)
    for reason in ("error", "skipped"):
        if reason in entry:
            return f"{reason}: {_short(entry[reason], 28)}" if why else reason
    return "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _environment(data: dict[str, Any]) -> list[str]:
    section = data["sections"]["environment"]
    env = section.get("data", {})
    if not env:
        return ["## 1. Environment", "", f"Not recorded ({section.get('status')})."]
    devices = env.get("devices") or []
    device = (
        ", ".join(
            f"{d['name']} {_gb(d['total_memory_bytes'])} GB (sm {d['capability']}, "
            f"{d['multiprocessors']} SMs)"
            for d in devices
        )
        or "no CUDA device"
    )
    detects = env.get("autoseg_plan_detects", {})
    target = detects.get("target", {})
    peak = env.get("peak", {})
    rows = [
        ("device", device),
        ("nvidia-smi", _short(env.get("nvidia_smi") or "-", 90)),
        (
            "versions",
            f"python {env.get('python')}, torch {env.get('torch')} (CUDA {env.get('torch_cuda')}, "
            f"cuDNN {env.get('cudnn', '-')}, NCCL {env.get('nccl', '-')}), autoseg "
            f"{env.get('autoseg')} at {env.get('git_commit')}",
        ),
        (
            "autoseg plan detects",
            f"{target.get('device')} '{target.get('device_name')}' "
            f"{_gb(target.get('memory_target_bytes'))} GB ({target.get('memory_source')}); "
            f"finds the GPU: {detects.get('finds_gpu')}, its memory: {detects.get('finds_memory')}",
        ),
        ("peak used", f"{peak.get('used')} {_num(peak.get('tflops'), '.0f')} TFLOP/s"),
    ]
    rows += [("warning", w) for w in data["sections"]["environment"].get("warnings", [])]
    return ["## 1. Environment", "", *_table(("", ""), rows)]


def _memory_row(row: dict[str, Any], cuda: bool) -> list[str]:
    measured = row.get("measured") or {"skipped": row.get("measured_skipped", "not measured")}
    limited = row.get("limited_by", {})
    bound = "memory" if limited.get("memory_bound") else "capped"
    bound = "compute" if limited.get("cpu_plan") else bound
    alloc = measured.get("max_allocated_bytes")
    return [
        row["dataset"],
        row["target"],
        row["config"],
        "x".join(str(v) for v in row["patch_size"]),
        str(row["batch_size"]),
        _gb(row["estimate_bytes"]),
        _num(row["planned_fill"], ".0%"),
        bound,
        _gb(alloc) if alloc is not None else _cell(measured, "max_allocated_bytes", why=cuda),
        _cell(measured, "ratio_model", ".3f", why=False),
        _gb(measured.get("process_peak_bytes")),
        _cell(measured, "ratio_plan", ".3f", why=False),
        f"{_num(measured.get('seconds_per_step'), '.3f')} "
        f"({_num(measured.get('tflops_per_step'), '.0f')})",
        _short(row.get("fill_goal", "-"), 40),
    ]


def _memory(data: dict[str, Any]) -> list[str]:
    section = data["sections"]["memory"]
    rows = section.get("data", {}).get("rows") or data["sections"]["planning"].get("data", {}).get(
        "rows", []
    )
    header = (
        "dataset", "target", "config", "patch", "batch", "estimate GB", "est/target",
        "bound", "max alloc GB", "(est-1GiB)/alloc", "process peak GB", "est/peak",
        "s/step (TFLOP/s)", "fill goal",
    )  # fmt: skip
    lines = [
        "## 2. Memory model (AMP; estimate vs torch.cuda.max_memory_allocated over steps 2-5)",
        "",
        *_table(header, [_memory_row(r, bool(data.get("gpu"))) for r in rows]),
    ]
    summary = data["sections"]["planning"].get("data", {}).get("fill_summary")
    if summary:
        lines += ["", f"Planned fill: {summary}."]
    for note in data["sections"]["planning"].get("data", {}).get("notes", []):
        lines.append(f"Note: {note}.")
    return lines


def _speed_row(dataset: str, name: str, family: dict[str, Any]) -> list[str]:
    compute = family.get("compute", {}) if isinstance(family.get("compute"), dict) else {}
    loader = family.get("loader", {})
    predict = family.get("prediction", {})
    flops = family.get("tflops", {})
    waits = family.get("gpu_waits_on_data")
    return [
        dataset,
        name,
        "x".join(str(v) for v in family.get("patch_size", [])) + f" b{family.get('batch_size')}",
        _cell(compute.get("plain", compute), "per_second"),
        _cell(compute.get("channels_last", {}), "per_second"),
        _cell(compute.get("compile", {}), "per_second"),
        _cell(loader, "loader_batches_per_second") + f" ({loader.get('workers', '-')})",
        _cell(loader, "end_to_end_per_second"),
        "-" if waits is None else ("yes" if waits else "no"),
        f"{_num(flops.get('achieved'), '.1f')} ({_num(flops.get('fraction_of_datasheet'), '.1%')})",
        _cell(predict, "no_mirroring_seconds_per_case") + " / "
        + _cell(predict, "mirroring_seconds_per_case"),
    ]  # fmt: skip


def _speed(data: dict[str, Any]) -> list[str]:
    section = data["sections"]["speed"]
    speed = section.get("data", {})
    rows = [
        _speed_row(ds, name, family)
        for ds, entry in speed.get("datasets", {}).items()
        for name, family in entry.get("families", {}).items()
    ]
    header = (
        "dataset", "config", "patch", "it/s", "channels-last it/s", "compile it/s",
        "loader batches/s (workers)", "end-to-end it/s", "GPU waits on data",
        "TFLOP/s (of peak)", "predict s/case (no mirror / mirror)",
    )  # fmt: skip
    lines = ["## 3. Speed (plans for the detected GPU, AMP)", ""]
    if section.get("status") == "skipped":
        return [*lines, f"Skipped: {section.get('skipped_reason')}."]
    lines += _table(header, rows)
    h2d = speed.get("host_to_device_GBps", {})
    peak = speed.get("peak", {})
    batch_types = {
        f"{ds}/{n}": f.get("loader", {}).get("batch_types")
        for ds, e in speed.get("datasets", {}).items()
        for n, f in e.get("families", {}).items()
        if isinstance(f.get("loader"), dict) and f["loader"].get("batch_types")
    }
    lines += [
        "",
        f"Peak: {peak.get('used')} = {_num(peak.get('tflops'), '.0f')} TFLOP/s (data sheet); "
        f"measured FP16 8192^3 matmul {_num(speed.get('matmul_fp16_tflops'), '.0f')} TFLOP/s. "
        "TFLOP/s = the planner's conv FLOPs per iteration (backward = 2x forward) x best it/s.",
        f"Host to device: pageable {_num(h2d.get('pageable'), '.1f')} GB/s, pinned "
        f"{_num(h2d.get('pinned'), '.1f')} GB/s. Loader batches: {batch_types or '-'}.",
    ]
    return lines


def _e2e(data: dict[str, Any]) -> list[str]:
    demo = data["sections"]["demo"]
    ddp = data["sections"]["ddp"]
    lines = ["## 4. End to end", ""]
    if demo.get("status") == "skipped":
        lines.append(f"- demo --quick: skipped ({demo.get('skipped_reason')})")
    else:
        d = demo.get("data", {})
        planned = d.get("planned_for") or {}
        lines.append(
            f"- demo --quick: {demo.get('status')}, wall {_num(d.get('wall_seconds'), '.0f')} s, "
            f"held-out Dice {_num(d.get('held_out_dice'), '.3f')}, planned for "
            f"{planned.get('device')} {planned.get('device_name')}, trained on "
            f"{sorted({str(v.get('device')) for v in d.get('trained_on', {}).values()})}"
        )
    if ddp.get("status") == "skipped":
        lines.append(f"- torchrun DDP: skipped ({ddp.get('skipped_reason')})")
    else:
        d = ddp.get("data", {})
        run = d.get("torchrun", {})
        single = d.get("single_process")
        lines.append(
            f"- torchrun DDP: {ddp.get('status')}, {d.get('nproc_per_node')} process(es) on "
            f"{d.get('gpus')} GPU(s), backend {d.get('backend')}, world size "
            f"{d.get('world_size')}, wall {_num(run.get('wall_seconds'), '.0f')} s, "
            f"validation Dice {_num(run.get('validation_dice'), '.3f')}"
            + (
                f"; one process: wall {_num(single.get('wall_seconds'), '.0f')} s, Dice "
                f"{_num(single.get('validation_dice'), '.3f')}"
                if isinstance(single, dict)
                else ""
            )
        )
    return lines


def _statuses(data: dict[str, Any]) -> list[str]:
    rows = []
    for name in SECTIONS:
        s = data["sections"][name]
        note = s.get("error") or s.get("skipped_reason") or ""
        rows.append([name, s.get("status", "-"), _num(s.get("seconds"), ".1f"), _short(note, 90)])
    return ["## Sections", "", *_table(("section", "status", "seconds", "note"), rows)]


def format_tables(data: dict[str, Any]) -> str:
    """Every table of the record, as Markdown."""
    env = data["sections"]["environment"].get("data", {})
    device = (env.get("devices") or [{"name": "no CUDA device"}])[0]["name"]
    lines = [
        f"# autoseg GPU check: {device}, {data.get('status')} after "
        f"{_num(data.get('elapsed_seconds'), '.0f')} s",
        "",
    ]
    if data.get("notice"):
        lines += [f"**{data['notice']}**", ""]
    for part in (_environment, _memory, _speed, _e2e, _statuses):
        try:
            lines += [*part(data), ""]
        except Exception as err:  # a table must never stop the others
            lines += [f"({part.__name__[1:]} table failed: {type(err).__name__}: {err})", ""]
    return "\n".join(lines)
