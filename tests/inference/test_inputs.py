"""Reading predict's INPUT: folder (nnU-Net naming, ROI files), CSV manifest, single files."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoseg.errors import ConfigError, InputError
from autoseg.inference.inputs import read_inputs

CHANNELS = ("T1", "FLAIR")


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_folder_cases_channels_rois_and_endings(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "a_0000.nii.gz",
        "a_0001.nii.gz",
        "a_roi.nii.gz",
        "b_2_0000.nrrd",
        "b_2_0001.nrrd",
        "notes.txt",
        ".hidden_0000.nii.gz",
    )
    inputs = read_inputs([tmp_path], CHANNELS, use_roi=False)
    assert [c.case_id for c in inputs.cases] == ["a", "b_2"]
    a = inputs.cases[0]
    assert a.channels == (tmp_path / "a_0000.nii.gz", tmp_path / "a_0001.nii.gz")
    assert a.roi is None and a.label is None  # ROI files are ignored without ROI plans
    assert inputs.output_path(Path("out"), "b_2") == Path("out/b_2.nrrd")
    assert not inputs.problems
    with_roi = read_inputs([tmp_path], CHANNELS, use_roi=True)
    assert with_roi.cases[0].roi == tmp_path / "a_roi.nii.gz"
    assert "b_2_roi.nrrd in" in str(with_roi.problems["b_2"])


def test_folder_problems_are_per_case(tmp_path: Path) -> None:
    touch(tmp_path, "a_0000.nii.gz", "a_0002.nii.gz", "b_0000.nii.gz", "b_0001.nii.gz")
    inputs = read_inputs([tmp_path], CHANNELS, use_roi=False)
    assert set(inputs.problems) == {"a"}
    message = str(inputs.problems["a"])
    assert message.startswith("a ") and "channel file(s) 0002" in message
    assert "expected a_0000...a_0001.nii.gz" in message
    # a missing channel file is left for the verify checks (file not found)
    assert inputs.cases[0].channels[1] == tmp_path / "a_0001.nii.gz"


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["a_0000.nii.gz", "scan.nii.gz"], r"does not follow \{case\}_\{XXXX\}.nii.gz"),
        (["readme.md"], "no input images found"),
    ],
)
def test_folder_errors(tmp_path: Path, names: list[str], message: str) -> None:
    touch(tmp_path, *names)
    with pytest.raises(InputError, match=message):
        read_inputs([tmp_path], CHANNELS, use_roi=False)


def test_msd_naming_one_file_per_case(tmp_path: Path) -> None:
    touch(
        tmp_path, "hippocampus_001.nii.gz", "hippocampus_004.nii.gz", "hippocampus_004_roi.nii.gz"
    )
    single = read_inputs([tmp_path], ("MRI",), use_roi=False)
    assert [c.case_id for c in single.cases] == ["hippocampus_001", "hippocampus_004"]
    assert single.cases[0].channels == (tmp_path / "hippocampus_001.nii.gz",)
    assert not single.cases[0].channels_in_one_file and not single.problems
    four_d = read_inputs([tmp_path], ("FLAIR", "T1w", "t1gd", "T2w"), use_roi=True)
    assert all(c.channels_in_one_file for c in four_d.cases)  # MSD's 4D multi-channel files
    assert four_d.cases[1].roi == tmp_path / "hippocampus_004_roi.nii.gz"
    assert "hippocampus_001_roi.nii.gz" in str(four_d.problems["hippocampus_001"])
    assert four_d.output_path(Path("out"), "hippocampus_004") == Path("out/hippocampus_004.nii.gz")


def test_csv_manifest(tmp_path: Path) -> None:
    csv = tmp_path / "cases.csv"
    csv.write_text(
        "case,T1,FLAIR,label,roi\n"
        "p1,img/p1_t1.nii.gz,img/p1_fl.nii.gz,,img/p1_roi.nii.gz\n"
        f"p2,{tmp_path}/p2_t1.mha,img/p2_fl.mha,lab.nii.gz,\n"
    )
    inputs = read_inputs([csv], CHANNELS, use_roi=True)
    p1, p2 = inputs.cases
    assert p1.channels == (tmp_path / "img/p1_t1.nii.gz", tmp_path / "img/p1_fl.nii.gz")
    assert p1.roi == tmp_path / "img/p1_roi.nii.gz" and p1.label is None
    assert p2.label is None and inputs.endings["p2"] == ".mha"
    assert "add a 'roi' column" in str(inputs.problems["p2"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("case,T1\np1,a.nii.gz\n", "one column per channel of the model \\(2: T1, FLAIR\\)"),
        ("case,T1,FLAIR\np1,a.nii.gz,b.nii.gz\np1,c.nii.gz,d.nii.gz\n", "repeated \\('p1'\\)"),
        ("case,T1,FLAIR\n", "lists no case"),
    ],
)
def test_csv_errors(tmp_path: Path, text: str, message: str) -> None:
    csv = tmp_path / "cases.csv"
    csv.write_text(text)
    with pytest.raises(InputError, match=message):
        read_inputs([csv], CHANNELS, use_roi=False)


def test_single_case_files(tmp_path: Path) -> None:
    files = [tmp_path / "brain_0000.nii.gz", tmp_path / "brain_0001.nii.gz"]
    inputs = read_inputs(files, CHANNELS, use_roi=True, roi=tmp_path / "mask.nii.gz")
    (case,) = inputs.cases
    assert case.case_id == "brain" and case.channels == tuple(files)
    assert case.roi == tmp_path / "mask.nii.gz" and not inputs.problems
    touch(tmp_path, "scan.nrrd")
    (four_d,) = read_inputs([tmp_path / "scan.nrrd"], CHANNELS, use_roi=False).cases
    assert four_d.case_id == "scan" and four_d.channels_in_one_file
    with pytest.raises(InputError, match="3 file\\(s\\) given but the model has 2 channel"):
        read_inputs([*files, tmp_path / "x.nii.gz"], CHANNELS, use_roi=False)
    with pytest.raises(InputError, match="input not found"):
        read_inputs([tmp_path / "missing"], CHANNELS, use_roi=False)
    with pytest.raises(ConfigError, match="--roi is for a single case"):
        read_inputs([tmp_path], CHANNELS, use_roi=True, roi=tmp_path / "m.nii.gz")


@pytest.mark.parametrize(
    ("part", "expected"),
    [((1, 2), ["a", "c", "e"]), ((2, 2), ["b", "d"]), ((3, 3), ["c"]), ((1, 1), list("abcde"))],
)
def test_prediction_parts_split_sorted_cases(part, expected) -> None:
    from autoseg.data.dataset import Case
    from autoseg.inference.batch_prediction import part_of

    cases = [Case(c, (Path(f"{c}_0000.nii.gz"),)) for c in "ebdca"]
    assert [c.case_id for c in part_of(cases, part)] == expected
    parts = [c.case_id for k in range(1, 4) for c in part_of(cases, (k, 3))]
    assert sorted(parts) == list("abcde")  # every case in exactly one part


@pytest.mark.parametrize(
    ("text", "ok"),
    [("2/4", True), ("4/4", True), ("0/4", False), ("5/4", False), ("2", False), ("a/b", False)],
)
def test_part_option(text: str, ok: bool, capsys) -> None:
    from autoseg.cli import main

    status = main(["predict", "-i", "x", "-o", "y", "--part", text, "--work", "/nonexistent/w"])
    err = capsys.readouterr().err
    assert ("invalid part" in err) == (not ok) and status == 2


HIPPOCAMPUS = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "Task04_Hippocampus_dev"
)


def test_the_real_msd_hippocampus_folder_is_read_with_its_names() -> None:
    """MSD names as downloaded (``hippocampus_001.nii.gz``): one case per file; the
    dataset.json's value -> name labels give the names shown in tables."""
    if not HIPPOCAMPUS.is_dir():
        pytest.skip(f"real data not available at {HIPPOCAMPUS}")
    from autoseg.evaluation import read_dataset_targets

    inputs = read_inputs([HIPPOCAMPUS / "imagesTr"], ("MRI",), use_roi=False)
    assert len(inputs.cases) == 130 and not inputs.problems
    assert inputs.cases[0].case_id == "hippocampus_001"
    targets = read_dataset_targets(HIPPOCAMPUS / "dataset.json")
    assert targets.labels == [1, 2] and targets.names["1"] == "Anterior"


def test_a_dataset_input_with_a_case_id_that_cannot_name_a_file_is_refused(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    """The dataset readers leave such a case out; predict must not skip it silently."""
    import shutil

    dataset = Path(shutil.copytree(tiny_dataset, tmp_path / "ds"))
    image = sorted((dataset / "imagesTs").glob("*_0000.nii.gz"))[0]
    bad = image.with_name(" " + image.name)  # a leading space
    image.rename(bad)
    bad.with_name(bad.name.replace("_0000", "_0001")).write_bytes(
        image.with_name(image.name.replace("_0000", "_0001")).read_bytes()
    )
    image.with_name(image.name.replace("_0000", "_0001")).unlink()
    with pytest.raises(InputError, match="white space") as raised:
        read_inputs([dataset], CHANNELS, use_roi=False)
    assert raised.value.path == bad


def test_msd_named_files_with_a_case_id_that_cannot_name_a_file_are_refused(
    tmp_path: Path,
) -> None:
    touch(tmp_path, " case.nii.gz")
    with pytest.raises(InputError, match="white space"):
        read_inputs([tmp_path], CHANNELS, use_roi=False)
