"""``autoseg show`` overlays: orientation from the direction matrix, aspect from the spacing,
slices through the largest component (26-connectivity), legend entries, file formats, 4D
channel pick and one-line errors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from autoseg.cli import main
from autoseg.data.geometry import Geometry
from autoseg.data.imageio import write_image
from autoseg.errors import InputError
from autoseg.viz.overlays import (
    anatomical_views,
    intensity_window,
    label_names_from_dataset_json,
    largest_component_centre,
    render_overlay,
)

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
LPS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
# Voxel axes i -> R, j -> S, k -> A: a coronal acquisition (array Z runs anterior).
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0)
SHAPE = (12, 40, 30)
SPACING = (4.0, 1.0, 0.5)


def _geometry(direction: tuple[float, ...] = LPS, shape=SHAPE, spacing=SPACING) -> Geometry:
    return Geometry(shape, spacing, (0.0, 0.0, 0.0), direction)  # type: ignore[arg-type]


def _case(folder: Path, ending: str = ".nii.gz") -> dict[str, Path]:
    """Image with a bright block, reference with a large (1) and a small (2) component, and
    a prediction shifted by two voxels that also holds label 3."""
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 5.0, SHAPE).astype(np.float32)
    ref = np.zeros(SHAPE, dtype=np.uint8)
    ref[3:9, 20:32, 5:20] = 1
    ref[1:3, 2:5, 24:28] = 2
    image[ref == 1] += 80.0
    seg = np.roll(ref, 2, axis=1)
    seg[10, 36:39, 2:4] = 3
    geometry = _geometry()
    paths = {name: folder / f"{name}{ending}" for name in ("image", "ref", "seg")}
    for name, array in (("image", image), ("ref", ref), ("seg", seg)):
        write_image(paths[name], array, geometry)
    return paths


def _png(path: Path) -> np.ndarray:
    import matplotlib.image

    return np.asarray(matplotlib.image.imread(str(path)))


def _check_picture(path: Path) -> None:
    pixels = _png(path)
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 800
    assert float(pixels[..., :3].std()) > 0.05
    colours = {tuple(np.round(p, 1)) for p in pixels[::3, ::3, :3].reshape(-1, 3)}
    assert len(colours) > 10


def test_views_follow_the_direction_matrix() -> None:
    views = {v.name: v for v in anatomical_views(_geometry(LPS), (5, 6, 7))}
    assert (views["axial"].axis, views["coronal"].axis, views["sagittal"].axis) == (0, 1, 2)
    assert (views["axial"].index, views["coronal"].index, views["sagittal"].index) == (5, 6, 7)
    # LPS: array Y runs posterior and X runs left, so anterior-up / right-left needs no flip.
    assert views["axial"].ends == ("A", "P", "R", "L")
    assert not views["axial"].flip_rows and not views["axial"].flip_cols
    # Z runs superior: rows are flipped to put superior on top.
    assert views["coronal"].flip_rows and views["coronal"].ends[:2] == ("S", "I")

    identity = {v.name: v for v in anatomical_views(_geometry(IDENTITY), (0, 0, 0))}
    assert identity["axial"].flip_rows and identity["axial"].flip_cols

    coronal = {v.name: v for v in anatomical_views(_geometry(CORONAL), (1, 2, 3))}
    assert coronal["axial"].axis == 1  # array Y runs superior
    assert coronal["coronal"].axis == 0  # array Z runs anterior
    assert coronal["sagittal"].axis == 2


@pytest.mark.parametrize("direction", [LPS, IDENTITY, CORONAL])
def test_aspect_is_row_over_column_spacing(direction: tuple[float, ...]) -> None:
    geometry = _geometry(direction)
    for view in anatomical_views(geometry, (0, 0, 0)):
        expected = geometry.spacing[view.row_axis] / geometry.spacing[view.col_axis]
        assert view.aspect == pytest.approx(expected)
        plane = view.extract(np.zeros(geometry.shape))
        assert plane.shape == (geometry.shape[view.row_axis], geometry.shape[view.col_axis])
    axial = anatomical_views(_geometry(LPS), (0, 0, 0))[0]
    assert axial.aspect == pytest.approx(1.0 / 0.5)  # rows Y (1 mm), columns X (0.5 mm)


def test_extract_orients_the_slice() -> None:
    volume = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    coronal = anatomical_views(_geometry(LPS, (2, 3, 4), (1, 1, 1)), (1, 1, 1))[1]
    plane = coronal.extract(volume)  # rows Z flipped (superior on top), columns X
    np.testing.assert_array_equal(plane, volume[::-1, 1, :])


def test_largest_component_uses_26_connectivity() -> None:
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    for i in range(5):  # a diagonal chain: one component only with 26-connectivity
        labels[i, i, i] = 1
    labels[7:9, 7:9, 8] = 2  # 4 voxels, face-connected
    centre, voxels = largest_component_centre(labels)  # type: ignore[misc]
    assert voxels == 5
    assert centre == (2, 2, 2)
    assert largest_component_centre(np.zeros((3, 3, 3))) is None


def test_slices_pass_through_the_largest_reference_component(tmp_path: Path) -> None:
    paths = _case(tmp_path)
    layout = render_overlay(
        paths["image"], tmp_path / "o.png", seg=paths["seg"], ref=paths["ref"],
        label_names={1: "lesion", 2: "core"},
    )  # fmt: skip
    z, y, x = layout.centre
    assert 3 <= z < 9 and 20 <= y < 32 and 5 <= x < 20
    assert layout.centre_source == "reference"
    assert layout.component_voxels == 6 * 12 * 15
    assert {v.name: v.index for v in layout.views} == {"axial": z, "coronal": y, "sagittal": x}
    assert layout.legend == (
        "lesion (1)",
        "core (2)",
        "label 3",
        "reference: filled area",
        "prediction: outline",
    )
    _check_picture(layout.path)


def test_prediction_is_used_without_reference_and_centre_without_labels(tmp_path: Path) -> None:
    paths = _case(tmp_path)
    layout = render_overlay(paths["image"], tmp_path / "p.png", seg=paths["seg"])
    assert layout.centre_source == "prediction"
    assert 22 <= layout.centre[1] < 34  # the prediction is shifted by 2 along Y
    bare = render_overlay(paths["image"], tmp_path / "b.png")
    assert bare.centre_source == "image centre" and bare.centre == (6, 20, 15)
    assert bare.legend == ()


def test_window_is_robust() -> None:
    image = np.zeros(1000, dtype=np.float32)
    image[:997] = np.linspace(0.0, 1.0, 997)
    image[997:] = 1e6  # 0.3 % outliers
    low, high = intensity_window(image)
    assert low == pytest.approx(0.0, abs=0.01) and high < 2.0
    assert intensity_window(np.full(10, 3.0)) == (2.5, 3.5)


@pytest.mark.parametrize("ending", [".nrrd", ".mha"])
def test_other_formats(tmp_path: Path, ending: str) -> None:
    paths = _case(tmp_path, ending)
    layout = render_overlay(paths["image"], tmp_path / "o.png", ref=paths["ref"])
    assert layout.component_voxels == 6 * 12 * 15
    assert layout.views[0].aspect == pytest.approx(2.0)


def test_channel_of_a_4d_image(tmp_path: Path) -> None:
    data = np.zeros((6, 7, 8, 2), dtype=np.float32)  # X, Y, Z, channels on disk
    data[..., 0] = np.random.default_rng(1).normal(10.0, 1.0, (6, 7, 8))
    data[..., 1] = data[..., 0] * 100.0
    path = tmp_path / "four_d.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    first = render_overlay(path, tmp_path / "c0.png")
    second = render_overlay(path, tmp_path / "c1.png", channel=1)
    assert second.window[1] == pytest.approx(first.window[1] * 100.0, rel=1e-4)
    with pytest.raises(InputError, match="out of range: the image has 2 channel"):
        render_overlay(path, tmp_path / "c2.png", channel=2)


def test_bad_label_maps_raise(tmp_path: Path) -> None:
    paths = _case(tmp_path)
    small = tmp_path / "small.nii.gz"
    write_image(small, np.zeros((4, 4, 4), dtype=np.uint8), _geometry(shape=(4, 4, 4)))
    with pytest.raises(InputError, match=r"shape \(Z, Y, X\) \(4, 4, 4\) differs") as err:
        render_overlay(paths["image"], tmp_path / "x.png", seg=small)
    assert err.value.path == small
    floats = tmp_path / "floats.nii.gz"
    write_image(floats, np.full(SHAPE, 0.5, dtype=np.float32), _geometry())
    with pytest.raises(InputError, match="non-integer"):
        render_overlay(paths["image"], tmp_path / "x.png", ref=floats)
    with pytest.raises(InputError, match="PNG"):
        render_overlay(paths["image"], tmp_path / "x.jpg")
    assert not (tmp_path / "x.png").exists()


def test_cli_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = _case(tmp_path)
    dataset_json = tmp_path / "dataset.json"
    dataset_json.write_text('{"labels": {"background": 0, "lesion": 1, "core": 2}}')
    assert label_names_from_dataset_json(dataset_json) == {0: "background", 1: "lesion", 2: "core"}
    out = tmp_path / "shown.png"
    argv = ["show", str(paths["image"]), "--seg", str(paths["seg"]), "--ref", str(paths["ref"])]
    assert main([*argv, "--dataset-json", str(dataset_json), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out} (axial Z=") and "largest reference component" in printed
    _check_picture(out)

    small = tmp_path / "small.nii.gz"
    write_image(small, np.zeros((4, 4, 4), dtype=np.uint8), _geometry(shape=(4, 4, 4)))
    status = main(["show", str(paths["image"]), "--seg", str(small), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.startswith("autoseg: error: ") and str(small) in err and "differs" in err
    assert len(err.splitlines()) == 1
    assert main(["show", str(paths["image"]), "--channel", "-1", "--out", str(out)]) == 2


def _planes(values: list[int], shape=(40, 60)) -> tuple[np.ndarray, np.ndarray]:
    """A mid-grey image slice and a label slice with one 6x8 block per value."""
    labels = np.zeros(shape, dtype=np.int64)
    for i, value in enumerate(values):
        labels[5 + (i % 4) * 8 : 11 + (i % 4) * 8, 4 + (i // 4) * 20 : 12 + (i // 4) * 20] = value
    return np.full(shape, 0.5, dtype=np.float32), labels


def _draw(values, ref, seg, names=None):  # type: ignore[no-untyped-def]
    from autoseg.viz.overlay_figure import draw_overlay

    image, labels = _planes(values)
    return draw_overlay(
        [image],
        [labels if ref else None],
        [labels if seg else None],
        [("axial", 1.0, ("A", "P", "R", "L"))],
        window=(0.0, 1.0),
        values=values,
        names=names or {},
        title="case",
    )


def _pixels_of(figure, colour) -> int:  # type: ignore[no-untyped-def]
    """Pixels of ``colour`` inside the panel (the legend's swatches left out)."""
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3] / 255.0
    box = figure.axes[0].get_window_extent()
    height = pixels.shape[0]
    panel = pixels[int(height - box.y1) : int(height - box.y0), int(box.x0) : int(box.x1)]
    return int((np.abs(panel - np.asarray(colour)).max(axis=-1) < 0.02).sum())


def test_perfect_agreement_shows_both_fill_and_outline() -> None:
    from matplotlib.colors import to_rgb

    from autoseg.viz.overlay_figure import FILL_ALPHA
    from autoseg.viz.palette import OKABE_ITO

    colour = np.asarray(to_rgb(OKABE_ITO[0]))
    blended = (1 - FILL_ALPHA) * 0.5 + FILL_ALPHA * colour  # the fill over mid-grey
    both, legend = _draw([1], ref=True, seg=True, names={1: "lesion"})
    assert legend == ("lesion (1)", "reference: filled area", "prediction: outline")
    assert _pixels_of(both, blended) > 100 and _pixels_of(both, colour) > 30
    ref_only, _ = _draw([1], ref=True, seg=False)
    assert _pixels_of(ref_only, blended) > 100 and _pixels_of(ref_only, colour) < 5
    seg_only, legend = _draw([1], ref=False, seg=True)
    assert _pixels_of(seg_only, blended) < 5 and _pixels_of(seg_only, colour) > 30
    assert legend == ("label 1", "prediction: outline")


@pytest.mark.parametrize("count", [4, 9])
def test_legend_fits_with_many_labels(count: int) -> None:
    values = list(range(1, count + 1))
    names = {v: f"left anterior structure number {v}" for v in values}
    figure, legend = _draw(values, ref=True, seg=True, names=names)
    assert len(legend) == count + 2
    figure.canvas.draw()
    box = figure.legends[0].get_window_extent(figure.canvas.get_renderer())
    width, height = figure.canvas.get_width_height()
    assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height


def test_palette_is_colour_blind_safe_and_distinct() -> None:
    from matplotlib.colors import to_rgb

    from autoseg.viz.palette import OKABE_ITO, label_colour

    assert [label_colour(i) for i in range(7)] == list(OKABE_ITO)
    assert label_colour(7) == OKABE_ITO[0]
    rgb = np.asarray([to_rgb(c) for c in OKABE_ITO])
    distances = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)
    assert distances[~np.eye(len(rgb), dtype=bool)].min() > 0.25  # no cyan/steel-blue pairs


def test_cli_show_over_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = tmp_path / "Dataset001_X"
    for sub in ("imagesTr", "labelsTr", "pred"):
        (dataset / sub).mkdir(parents=True)
    (dataset / "dataset.json").write_text('{"labels": {"background": 0, "lesion": 1, "core": 2}}')
    for case in ("a", "b", "c"):
        (tmp_path / case).mkdir()
        paths = _case(tmp_path / case)
        paths["image"].rename(dataset / "imagesTr" / f"{case}_0000.nii.gz")
        paths["ref"].rename(dataset / "labelsTr" / f"{case}.nii.gz")
        if case != "c":  # c has no prediction
            paths["seg"].rename(dataset / "pred" / f"{case}.nii.gz")
    out = tmp_path / "overlays"
    argv = ["show", str(dataset), "--seg", str(dataset / "pred"), "--out", str(out), "-np", "1"]
    assert main(argv) == 2  # case c has no prediction: the others are drawn
    captured = capsys.readouterr()
    assert captured.out.startswith(f"wrote 2 overlay(s) to {out}; 1 FAILED (c)")
    assert "c: no prediction c{ending} in" in captured.err
    for case in ("a", "b"):
        _check_picture(out / f"{case}.png")
    assert main(["show", str(dataset), "--out", str(out)]) == 0  # labelsTr only: every case
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
