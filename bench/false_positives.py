"""Where a fold's false positives lie: next to the structure, or far from it (not a test).

Reads the exported validation predictions of one or more trained folds
(``<work>/results/<config>/fold_<k>/validation/<case>.nii.gz``) and the dataset's reference
labels, and prints, per configuration and fold, the mean number of false-positive voxels per
case (foreground predicted where the reference is background) and how many of them lie more
than ``--far`` voxels from any reference foreground voxel (stray blobs rather than a slightly
thick boundary), with the ratio of predicted to reference foreground voxels.

    python bench/false_positives.py --work W --configs unet3d deepmedic --folds 0

No assertions: a benchmark prints what it measures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from autoseg.data.dataset import Dataset
from autoseg.data.formats import load_dataset
from autoseg.data.imageio import read_image
from autoseg.workspace import Workspace


def fold_false_positives(
    work: Workspace, config: str, fold: int, dataset: Dataset, far: float
) -> dict[str, float]:
    """Mean false-positive voxels per case, those beyond ``far`` voxels, and pred/ref volume."""
    folder = work.fold_paths(config, fold).validation
    labelled = [(folder / f"{c.case_id}{dataset.file_ending}", c.label) for c in dataset.cases]
    cases = [(p, label) for p, label in labelled if label is not None and p.is_file()]
    if not cases:
        raise SystemExit(f"no exported validation predictions in {folder}")
    fp, fp_far, predicted, reference = [], [], 0, 0
    for prediction, label in cases:
        pred = read_image(prediction)[0] > 0
        ref = np.rint(read_image(label)[0]) > 0  # float32 label files (MSD) included
        wrong = pred & ~ref
        distance = ndimage.distance_transform_edt(~ref) if ref.any() else np.full(ref.shape, np.inf)
        fp.append(int(wrong.sum()))
        fp_far.append(int((wrong & (distance > far)).sum()))
        predicted += int(pred.sum())
        reference += int(ref.sum())
    return {
        "cases": len(cases),
        "false_positive_voxels_per_case": float(np.mean(fp)),
        "far_false_positive_voxels_per_case": float(np.mean(fp_far)),
        "cases_with_far_false_positives": int(sum(v > 0 for v in fp_far)),
        "predicted_over_reference_voxels": predicted / max(reference, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a trained workspace")
    parser.add_argument("--configs", nargs="+", required=True)
    parser.add_argument("--folds", nargs="+", type=int, default=[0])
    parser.add_argument("--far", type=float, default=3.0, help="voxels from any foreground")
    args = parser.parse_args()
    work = Workspace(args.work)
    dataset = load_dataset(json.loads(work.source_json.read_text())["dataset"])
    print(
        f"| configuration | fold | cases | FP voxels per case | of them > {args.far:g} voxels "
        "from foreground | cases with far FPs | predicted / reference voxels |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for config in args.configs:
        for fold in args.folds:
            r = fold_false_positives(work, config, fold, dataset, args.far)
            print(
                f"| {config} | {fold} | {r['cases']} | {r['false_positive_voxels_per_case']:.0f} "
                f"| {r['far_false_positive_voxels_per_case']:.1f} "
                f"| {r['cases_with_far_false_positives']} "
                f"| {r['predicted_over_reference_voxels']:.3f} |"
            )


if __name__ == "__main__":
    main()
