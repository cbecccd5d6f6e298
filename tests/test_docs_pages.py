"""Documentation pages against the code they describe.

- docs/troubleshooting.md quotes the messages the CLI really prints (produced here on broken
  inputs).
- docs/networks.md's worked example is what the planner plans for that dataset and GPU.
- docs/demo.md states the presets of ``autoseg demo`` as autoseg/demo/settings.py sets them.
- Links between the pages, and their anchors, resolve.

The commands in the pages are checked by tests/test_docs.py.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from autoseg.cli import main
from autoseg.demo.settings import demo_settings
from autoseg.frozendict import FrozenDict
from autoseg.networks import UNetConfig
from autoseg.planner.fingerprint import CaseFingerprint, Fingerprint, IntensityStats
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.planner.planner import plan_dataset
from autoseg.planner.plans import HardwareTarget

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
DOC_FILES = (REPO / "README.md", *sorted(DOCS.glob("*.md")))
_CODE = re.compile(r"^(```|~~~).*?^\1", flags=re.S | re.M)


# --- docs/troubleshooting.md quotes the real messages --------------------------------------


def _broken(dataset: Path, tmp: Path, edit: Callable[[Path], None]) -> Path:
    copy = tmp / "broken"
    shutil.copytree(dataset, copy)
    edit(copy)
    return copy


def _with_nan(root: Path) -> None:
    path = root / "imagesTr" / "phantom_000_0000.nii.gz"
    image: Any = nib.load(path)
    data = np.asarray(image.dataobj, dtype=np.float32)
    data[3, 4, 5] = np.nan
    nib.save(nib.Nifti1Image(data, image.affine), path)


def _manifest(dataset: Path, tmp: Path, case_id: str) -> Path:
    images = dataset / "imagesTr"
    csv = tmp / "study.csv"
    csv.write_text(
        "case,T1,FLAIR,label\n"
        f"{case_id},{images}/phantom_000_0000.nii.gz,{images}/phantom_000_0001.nii.gz,"
        f"{dataset}/labelsTr/phantom_000.nii.gz\n"
        f"good,{images}/phantom_001_0000.nii.gz,{images}/phantom_001_0001.nii.gz,"
        f"{dataset}/labelsTr/phantom_001.nii.gz\n"
    )
    return csv


def _label_loop(root: Path) -> None:
    label = root / "labelsTr" / "phantom_002.nii.gz"
    label.unlink()
    label.symlink_to(label.name)


def _garbage(root: Path) -> None:
    path = root / "labelsTr" / "phantom_001.nii.gz"
    path.write_bytes(path.read_bytes() + b"garbage!!")


def _nested(path: Path, prefix: str = "", suffix: str = "") -> Path:
    path.write_text(prefix + "[" * 100_000 + "]" * 100_000 + suffix)
    return path


def _written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


ERROR_CASES: dict[str, Callable[[Path, Path], list[str]]] = {
    "case id": lambda ds, tmp: ["verify", str(_manifest(ds, tmp, "../../x"))],
    "label loop": lambda ds, tmp: ["verify", str(_broken(ds, tmp, _label_loop))],
    "gzip garbage": lambda ds, tmp: ["verify", str(_broken(ds, tmp, _garbage))],
    "nested dataset.json": lambda ds, tmp: [
        "verify",
        str(_broken(ds, tmp, lambda r: _nested(r / "dataset.json", '{"labels": ', "}"))),
    ],
    "nested heuristics": lambda ds, tmp: [
        "plan",
        str(ds),
        "--work",
        str(tmp / "w"),
        "--heuristics",
        str(_nested(tmp / "h.json")),
    ],
    "image too small to pool": lambda ds, tmp: [
        "plan",
        str(ds),
        "--work",
        str(tmp / "w"),
        "--gpu-memory",
        "24GB",
        "--heuristics",
        str(_written(tmp / "h.json", '{"unet_min_feature_map": 32}')),
    ],
    "negative duration": lambda ds, tmp: ["train", "--time-budget", "-5m"],
    "negative clip": lambda ds, tmp: ["train", "--grad-clip", "-1"],
    "nan lr": lambda ds, tmp: ["train", "--lr", "nan"],
    "negative size": lambda ds, tmp: ["plan", str(ds), "--gpu-memory", "-1GB"],
    "huge size": lambda ds, tmp: ["plan", str(ds), "--gpu-memory", "1e30TB"],
    "negative label": lambda ds, tmp: ["evaluate", "p", "g", "--labels", "-3"],
    "train before plan": lambda ds, tmp: ["train", "--work", str(tmp / "w"), "fold=0"],
    "bad fold": lambda ds, tmp: ["train", "--work", str(tmp / "w"), "fold=x"],
    "bad duration": lambda ds, tmp: ["train", "--time-budget", "90"],
    "bad size": lambda ds, tmp: ["plan", str(ds), "--gpu-memory", "11G8"],
    "predict without plan": lambda ds, tmp: [
        "predict",
        "-i",
        str(ds / "imagesTs"),
        "-o",
        str(tmp / "o"),
        "--work",
        str(tmp / "w"),
    ],
    "missing channel": lambda ds, tmp: [
        "verify",
        str(_broken(ds, tmp, lambda r: (r / "imagesTr/phantom_001_0001.nii.gz").unlink())),
    ],
    "nan": lambda ds, tmp: ["verify", str(_broken(ds, tmp, _with_nan))],
    "nnU-Net configuration": lambda ds, tmp: ["train", "--config", "3d_fullres"],
    "misspelt option": lambda ds, tmp: ["train", "--epoch", "3"],
    "bad part": lambda ds, tmp: ["predict", "-i", "x", "-o", "y", "--part", "5/4"],
    "folds twice": lambda ds, tmp: ["train", "--work", str(tmp), "fold=0", "--fold", "1"],
    "one folder to ensemble": lambda ds, tmp: ["ensemble", "-i", str(tmp), "-o", str(tmp / "o")],
    "no rule": lambda ds, tmp: [
        "apply-postprocessing",
        "-i",
        str(tmp),
        "-o",
        str(tmp / "o"),
        "--work",
        str(tmp / "w"),
    ],
    "no dataset.json": lambda ds, tmp: [
        "verify",
        str(_broken(ds, tmp, lambda r: (r / "dataset.json").unlink())),
    ],
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_troubleshooting_quotes_the_real_message(
    case: str, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ERROR_CASES[case](tiny_dataset, tmp_path)
    assert main(argv) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    # what is wrong: the text after "autoseg[ CMD]: error: [<case> <file>: ]"
    what = re.sub(r"^autoseg( [\w-]+)?: error: ", "", line)
    what = re.sub(r"^(\S+ )?/\S+: ", "", what)
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    assert what in text, f"docs/troubleshooting.md does not quote: {what}"


# --- docs/networks.md: the worked example is what the planner plans -------------------------


def _fingerprint(
    channels: tuple[str, ...], classes: int, spacing: tuple[float, ...], shape: tuple[int, ...]
) -> Fingerprint:
    """20 identical cases of ``shape`` voxels at ``spacing`` mm (what the example states)."""
    stats = tuple(IntensityStats(0.0, 1.0, 0.0, -2.0, 2.0, -3.0, 3.0) for _ in channels)
    voxels = FrozenDict({v: 10_000 if v == 0 else 1_000 for v in range(classes)})
    case = CaseFingerprint("c", spacing, shape, shape, stats, voxels, FrozenDict(), FrozenDict())  # type: ignore[arg-type]
    total = sum(voxels.values())
    return Fingerprint(
        "Example", channels, FrozenDict({f"class_{v}": v for v in range(classes)}), (case,) * 20,
        stats, FrozenDict({v: n / total for v, n in voxels.items()}),
        FrozenDict({v: 1.0 for v in range(1, classes)}), spacing, shape,  # type: ignore[arg-type]
    )  # fmt: skip


def _x(values: tuple[int, ...]) -> str:
    return "×".join(str(v) for v in values)


def test_networks_worked_example_is_the_plan() -> None:
    text = (DOCS / "networks.md").read_text(encoding="utf-8")
    gpu = HardwareTarget("cuda", "example", 11 * 10**9, "--gpu-memory", 16)
    brats = plan_dataset(
        _fingerprint(("FLAIR", "T1w", "T1gd", "T2w"), 4, (1.0, 1.0, 1.0), (138, 170, 138)),
        PlannerHeuristics(),
        gpu,
    )
    unet, deepmedic = brats.configurations["unet3d"], brats.configurations["deepmedic"]
    assert f"| `unet3d` | patch {_x(unet.patch_size)} | {unet.batch_size} | AMP | " in text
    assert (
        f"| `deepmedic` | output segment {_x(deepmedic.patch_size)} (inference "
        f"{_x(deepmedic.inference_patch_size)}) | {deepmedic.batch_size} | AMP | "
    ) in text
    for config in (unet, deepmedic):
        assert f"{config.estimated_memory_bytes / 1e9:.2f} GB" in text
    assert isinstance(unet.network, UNetConfig)
    shapes = unet.network.stage_shapes(unet.patch_size)
    for stage, (shape, stride) in enumerate(zip(shapes, unet.network.strides)):
        assert re.search(
            rf"\| encoder stage {stage}[^|]* \| {_x(shape)} \|[^\n]*\| {_x(stride)} \|", text
        )
    prostate = plan_dataset(
        _fingerprint(("T2", "ADC"), 3, (3.6, 0.62, 0.62), (20, 320, 320)), PlannerHeuristics(), gpu
    )
    network = prostate.configurations["unet3d"].network
    assert isinstance(network, UNetConfig)
    assert "| kernel | " + " | ".join(_x(k) for k in network.kernel_sizes) + " |" in text
    assert "| stride | " + " | ".join(_x(s) for s in network.strides) + " |" in text
    two_d = prostate.configurations["unet2d"]
    assert isinstance(two_d.network, UNetConfig) and two_d.network.slice_axis == 0
    assert f"{_x(two_d.patch_size[1:])} patch and a batch\nof {two_d.batch_size} " in text
    assert "| kernel | " + " | ".join(_x(k) for k in two_d.network.kernel_sizes) + " |" in text
    assert "| stride | " + " | ".join(_x(s) for s in two_d.network.strides) + " |" in text
    planes = [_x(shape[1:]) for shape in two_d.network.stage_shapes(two_d.patch_size)]
    assert "| resolution (Y×X) | " + " | ".join(planes) + " |" in text
    ct = plan_dataset(
        _fingerprint(("CT",), 3, (0.8, 0.8, 0.8), (400, 512, 512)), PlannerHeuristics(), gpu
    )
    lowres = ct.configurations["unet3d_lowres"]
    assert f"patch of {_x(ct.configurations['unet3d'].patch_size)}" in text
    assert f"at {lowres.target_spacing[0]:.2f} mm" in text
    assert ct.decisions["unet3d_lowres"].reason.endswith("the patch covers 29%")


# --- docs/demo.md: the presets are the demo's settings -------------------------------------


@pytest.mark.parametrize("quick", [True, False])
def test_demo_page_states_the_presets(quick: bool) -> None:
    text = (DOCS / "demo.md").read_text(encoding="utf-8")
    settings = demo_settings(quick=quick, gpu=False)
    column = 1 if quick else 2
    rows = {
        line.split("|")[1].strip(): line.split("|")[column + 1].strip()
        for line in text.splitlines()
        if line.startswith("| ") and line.count("|") == 4
    }
    phantom, train = settings.phantom, settings.train
    assert rows["phantom"].startswith(
        f"{phantom.num_train_cases} training + {phantom.num_test_cases} held-out cases"
    ) or rows["phantom"].startswith(f"{phantom.num_train_cases} + {phantom.num_test_cases}")
    assert f"~{_x(phantom.base_shape)} voxels" in rows["phantom"]
    assert rows["folds"] == str(settings.num_folds)
    if train.epochs is None:
        assert rows["training per fold"] == (
            f"{train.time_budget_seconds:g} s (`--time-budget`), epochs fitted to it"
        )
    else:
        assert rows["training per fold"] == (
            f"{train.epochs} epochs × {train.iters_per_epoch} iterations, "
            f"{train.val_iters} validation batches"
        )
    assert rows["test-time mirroring"] == ("on" if settings.use_mirroring else "off")
    for name, value in settings.heuristics_json().items():
        assert f"{name}={value}" in text or rows.get(f"`{name}`") == str(value), name


# --- links between the pages ---------------------------------------------------------------


def _anchors(path: Path) -> set[str]:
    """GitHub-style anchors of a page's headings (outside code blocks)."""
    text = _CODE.sub("", path.read_text(encoding="utf-8"))
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)
    }


def test_relative_links_and_anchors_resolve() -> None:
    """Links to the documentation pages (docs/, README.md) and their headings resolve;
    links elsewhere in the repository (bench/README.md, written with the benchmarks) are
    left to their owners."""
    broken = []
    for path in DOC_FILES:
        text = _CODE.sub("", path.read_text(encoding="utf-8"))
        for target, anchor in re.findall(r"\]\(([^)#\s:]*)(?:#([^)\s]+))?\)", text):
            linked = (path.parent / target).resolve() if target else path
            if linked.parent != DOCS and linked != REPO / "README.md":
                continue
            if not linked.exists():
                broken.append(f"{path.name}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{path.name}: {target}#{anchor}")
    assert not broken, broken
