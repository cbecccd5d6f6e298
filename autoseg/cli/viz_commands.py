"""``show``: option declarations and handler (overlay pictures)."""

from __future__ import annotations

import argparse
from pathlib import Path

from autoseg.cli.options import add_num_workers


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a channel index >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a channel index >= 0, got {value}")
    return value


def add_show(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "image",
        type=Path,
        help="image file (NIfTI, NRRD, MHA; 3D or 4D), or a folder of {case}_{XXXX} images "
        "(or a dataset folder with imagesTr/, labelsTr/) for one PNG per case",
    )
    p.add_argument(
        "--seg",
        type=Path,
        default=None,
        metavar="PRED",
        help="predicted label map, drawn as outlines (a folder of {case} label maps with a "
        "folder IMAGE)",
    )
    p.add_argument(
        "--ref",
        type=Path,
        default=None,
        metavar="LABEL",
        help="reference label map, drawn as filled areas (a folder with a folder IMAGE; "
        "default there: the dataset's labelsTr/)",
    )
    p.add_argument(
        "--channel",
        type=_non_negative,
        default=0,
        metavar="N",
        help="channel of a 4D image, 0-based (default: 0)",
    )
    p.add_argument(
        "--dataset-json",
        type=Path,
        default=None,
        metavar="PATH",
        help="dataset.json whose labels name the legend entries (default: 'label <value>')",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="PNG",
        help="picture to write (a folder for a folder IMAGE: OUT/<case>.png)",
    )
    add_num_workers(p, "drawing cases (folder IMAGE)")


def run_show(args: argparse.Namespace) -> int:
    if args.image.is_dir():
        from autoseg.viz.overlay_folder import render_folder_overlays

        report = render_folder_overlays(
            args.image,
            args.out,
            seg=args.seg,
            ref=args.ref,
            channel=args.channel,
            dataset_json=args.dataset_json,
            num_workers=args.num_workers,
        )
        print(report.describe())
        return report.exit_code
    from autoseg.viz.overlays import label_names_from_dataset_json, render_overlay

    names = None if args.dataset_json is None else label_names_from_dataset_json(args.dataset_json)
    layout = render_overlay(
        args.image, args.out, seg=args.seg, ref=args.ref, channel=args.channel, label_names=names
    )
    print(layout.describe())
    return 0
