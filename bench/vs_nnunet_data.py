"""The datasets of ``bench/vs_nnunet.py``: what each tool reads, and the held-out cases.

autoseg reads the given dataset as it is (nnU-Net v2 raw, MSD task folder or CSV manifest).
nnU-Net v2 needs its own raw layout under ``$nnUNet_raw``, so the bench writes one in its
``--out`` folder, never in place: ``DatasetNNN_Name/`` with ``imagesTr/{case}_{XXXX}{ending}``
and ``labelsTr/{case}{ending}`` as symbolic links to the original files (a 4D MSD image of
several channels is split into one file per channel, the only files written), and a
``dataset.json`` with ``channel_names``, ``labels`` (name -> value), ``numTraining`` and
``file_ending``. The default dataset, a generated phantom, is already in that layout and both
tools read it.

Held-out cases (``--test``, or the phantom's ``imagesTs``/``labelsTs``) become three folders of
links: the images as autoseg reads them (original naming), the images in nnU-Net's naming,
and the reference labels as ``{case}{ending}``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from autoseg.data.dataset import Case, Dataset
from autoseg.data.formats import load_dataset
from autoseg.data.imageio import file_ending
from autoseg.data.synthetic import PhantomSpec, generate_phantom_dataset

__all__ = ["BenchData", "HeldOut", "held_out", "link_labels", "prepare_dataset", "prepare_phantom"]


@dataclass(frozen=True)
class HeldOut:
    """Held-out cases with labels, as each tool's prediction input.

    Attributes:
        cases: Case ids, sorted.
        autoseg_input: Folder of links named as in the source (``{case}{ending}`` for an MSD
            image, ``{case}_{XXXX}{ending}`` per channel otherwise): ``autoseg predict -i``.
        nnunet_input: Folder of ``{case}_{XXXX}{ending}`` files: ``predict_from_files``.
        labels: Folder of links ``{case}{ending}`` to the reference label maps.
    """

    cases: tuple[str, ...]
    autoseg_input: Path
    nnunet_input: Path
    labels: Path


@dataclass(frozen=True)
class BenchData:
    """The dataset of one bench run.

    Attributes:
        autoseg_path: What autoseg reads (the given dataset, as is, or the phantom).
        raw: nnU-Net's copy, ``$nnUNet_raw/DatasetNNN_Name``.
        dataset_id: NNN.
        label_files: Training case id -> its reference label map (the original file).
        foreground: Foreground label values, scored by autoseg.evaluation.
        heldout: The held-out cases, or None.
    """

    autoseg_path: Path
    raw: Path
    dataset_id: int
    label_files: Mapping[str, Path]
    foreground: tuple[int, ...]
    heldout: HeldOut | None

    @property
    def name(self) -> str:
        return self.raw.name


def prepare_phantom(out: Path, spec: PhantomSpec, dataset_id: int) -> BenchData:
    """Generate the phantom (nnU-Net v2 raw, read by both tools) under ``out/raw``."""
    raw = out / "raw" / f"Dataset{dataset_id:03d}_Phantom"
    _remove_other_ids(raw)
    dataset = generate_phantom_dataset(raw, spec, overwrite=True)
    test = [
        Case(c.case_id, c.channels, raw / "labelsTs" / f"{c.case_id}{dataset.file_ending}")
        for c in dataset.test_cases
    ]
    heldout = held_out(test, out / "heldout", dataset.num_channels) if test else None
    return BenchData(raw, raw, dataset_id, _labels(dataset), dataset.foreground_labels, heldout)


def prepare_dataset(path: Path, out: Path, dataset_id: int, test: Path | None) -> BenchData:
    """Read ``path`` (any format autoseg reads) and write nnU-Net's raw copy under
    ``out/raw``; ``test``: a dataset of held-out labelled cases (its training cases, or its
    test cases with a ``labelsTs`` folder)."""
    dataset = load_dataset(path)
    if dataset.region_based:
        raise SystemExit(f"{path}: region-based datasets are not supported by this bench")
    name = re.sub(r"[^A-Za-z0-9]+", "", dataset.name) or "Data"
    raw = out / "raw" / f"Dataset{dataset_id:03d}_{name}"
    if raw.resolve() == Path(path).resolve() or raw.resolve() in Path(path).resolve().parents:
        raise SystemExit(f"{path}: give a dataset outside --out/raw (it is rewritten there)")
    _remove_other_ids(raw)
    write_nnunet_raw(dataset, raw)
    heldout = None
    if test is not None:
        heldout = held_out(labelled_cases(test), out / "heldout", dataset.num_channels)
    return BenchData(
        Path(path), raw, dataset_id, _labels(dataset), dataset.foreground_labels, heldout
    )


def labelled_cases(path: Path) -> list[Case]:
    """The labelled cases of a held-out dataset: its training cases, or else its test cases
    with labels ``labelsTs/{case}{ending}`` beside ``imagesTs``."""
    dataset = load_dataset(path)
    if dataset.cases:
        return list(dataset.cases)
    cases = []
    for case in dataset.test_cases:
        label = dataset.root / "labelsTs" / f"{case.case_id}{file_ending(case.channels[0])}"
        if not label.is_file():
            raise SystemExit(f"--test {path}: no label for held-out case {case.case_id}: {label}")
        cases.append(dataclasses.replace(case, label=label))
    if not cases:
        raise SystemExit(f"--test {path}: the dataset holds no labelled case")
    return cases


def write_nnunet_raw(dataset: Dataset, raw: Path) -> None:
    """nnU-Net v2's raw layout of ``dataset`` in ``raw`` (links; 4D images split)."""
    shutil.rmtree(raw, ignore_errors=True)  # links and split files written by the bench only
    ending = dataset.file_ending
    for case in dataset.cases:
        _check_ending(case, _label(case), ending)
        _nnunet_images(case, raw / "imagesTr", dataset.num_channels, ending)
        _link(_label(case), raw / "labelsTr" / f"{case.case_id}{ending}")
    labels = {
        "background" if v == 0 else "ignore" if v == dataset.ignore_label else name: int(v)
        for name, v in sorted(dataset.labels.items(), key=lambda item: item[1])
    }
    description = {
        "name": dataset.name,
        "description": f"links to {dataset.source or dataset.root}, written by bench/vs_nnunet.py",
        "channel_names": {str(i): n for i, n in enumerate(dataset.channel_names)},
        "labels": labels,
        "numTraining": len(dataset.cases),
        "file_ending": ending,
    }
    (raw / "dataset.json").write_text(json.dumps(description, indent=1) + "\n")


def held_out(cases: Sequence[Case], folder: Path, num_channels: int) -> HeldOut:
    """Folders of links to ``cases`` (labelled) for both tools' prediction and the scoring."""
    shutil.rmtree(folder, ignore_errors=True)
    images_a, images_n, labels = (
        folder / "autoseg_images",
        folder / "nnunet_images",
        folder / "labels",
    )
    for case in cases:
        ending = file_ending(case.channels[0])
        _check_ending(case, _label(case), ending)
        if case.channels[0].name == f"{case.case_id}{ending}":  # MSD naming, 4D if several
            _link(case.channels[0], images_a / f"{case.case_id}{ending}")
        else:
            for i, channel in enumerate(case.channels):
                _link(channel, images_a / f"{case.case_id}_{i:04d}{ending}")
        _nnunet_images(case, images_n, num_channels, ending)
        _link(_label(case), labels / f"{case.case_id}{ending}")
    return HeldOut(tuple(sorted(c.case_id for c in cases)), images_a, images_n, labels)


def link_labels(files: Mapping[str, Path], cases: Sequence[str], folder: Path) -> Path:
    """A folder of links ``{case}{ending}`` to the label maps of ``cases``."""
    shutil.rmtree(folder, ignore_errors=True)
    for case in cases:
        _link(files[case], folder / f"{case}{file_ending(files[case])}")
    return folder


def _labels(dataset: Dataset) -> dict[str, Path]:
    return {c.case_id: c.label for c in dataset.cases if c.label is not None}


def _label(case: Case) -> Path:
    if case.label is None:
        raise SystemExit(f"{case.case_id}: a training or held-out case without a label map")
    return case.label


def _remove_other_ids(raw: Path) -> None:
    """nnU-Net refuses two raw folders of one dataset id: remove the bench's earlier ones."""
    for other in raw.parent.glob(f"{raw.name.split('_', 1)[0]}_*"):
        if other != raw:
            shutil.rmtree(other)


def _check_ending(case: Case, label: Path, ending: str) -> None:
    for path in (*case.channels, label):
        if file_ending(path) != ending:
            raise SystemExit(
                f"{case.case_id}: {path} does not end with {ending}, the dataset's file ending "
                "(nnU-Net needs one ending for every file)"
            )


def _nnunet_images(case: Case, folder: Path, num_channels: int, ending: str) -> None:
    """``{case}_{XXXX}{ending}`` in ``folder``: links, or the channels of a 4D NIfTI."""
    if not case.channels_in_one_file:
        for i, channel in enumerate(case.channels):
            _link(channel, folder / f"{case.case_id}_{i:04d}{ending}")
        return
    image = nib.load(case.channels[0])
    data = np.asanyarray(image.dataobj)
    if data.ndim != 4 or data.shape[3] != num_channels:
        raise SystemExit(f"{case.channels[0]}: expected a 4D image of {num_channels} channels")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(num_channels):
        header = image.header.copy()
        channel = nib.Nifti1Image(np.ascontiguousarray(data[..., i]), image.affine, header)
        nib.save(channel, folder / f"{case.case_id}_{i:04d}{ending}")


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(Path(target).resolve())
