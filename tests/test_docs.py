"""The documentation against the real CLI.

- Every ``autoseg ...`` command in a shell code block of README.md and docs/*.md parses with
  ``autoseg.cli.build_parser()`` (subcommand, options and values), without running it;
  ``autoseg ...`` in inline code names a real subcommand and real options.
- The block of docs/cli.md marked ``<!-- test_docs: run -->`` runs for real, command by
  command, in a temporary folder: it covers every subcommand (``demo`` only with --help; the
  full demo is tests/e2e/test_demo.py). GPU examples (torchrun with NCCL) are only parsed.
- docs/cli.md has a heading per subcommand and names every option of it in its section.
- ``autoseg COMMAND --help`` works for every command.
- The DeepMedic list descriptor of docs/migrating.md reads list files that ``autoseg
  verify`` accepts.

The content of the pages (error messages, the worked network example, the demo presets,
links) is checked by tests/test_docs_pages.py.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from autoseg.cli import COMMANDS, build_parser, main
from autoseg.data.imageio import read_image

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
DOC_FILES = (REPO / "README.md", *sorted(DOCS.glob("*.md")))
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "zsh"}
RUN_MARKER = "<!-- test_docs: run -->"
SCRIPT_MARKER = "<!-- test_docs: deepmedic-descriptor -->"
LAUNCHERS = {"torchrun", "python", "python3", "srun", "time", "nohup", "exec"}
OPERATORS = {"&&", "||", ";", "|", "&", ";;", "(", ")"}
REDIRECTIONS = {">", ">>", "<", ">&", "&>", "<<", "<<<"}
_FENCE = re.compile(r"^(```|~~~)\s*([\w+-]*)\s*$")
_HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_MENTION = re.compile(r"(?<![\w/.-])autoseg(?![\w/.-])")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its file, first line number, language, text and marker comment."""

    path: Path
    line: int
    language: str
    text: str
    marker: str


@dataclass(frozen=True)
class Step:
    """One executable item of a shell block: an autoseg argv, or a heredoc file to write."""

    line: int
    argv: tuple[str, ...] = ()
    write: tuple[str, str] | None = None


def code_blocks(path: Path) -> list[Block]:
    """Fenced code blocks of a markdown file (the marker is the previous non-blank line)."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i].strip())
        if match is None:
            i += 1
            continue
        fence, language, start = match.group(1), match.group(2).lower(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        previous = next(
            (lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), ""
        )
        blocks.append(Block(path, start + 2, language, "\n".join(body), previous))
        i += 1
    return blocks


def _substitute(line: str) -> str:
    """Shell expansions -> plain words: ``$(which autoseg)`` -> autoseg, others -> 0."""
    line = re.sub(r"\$\(\s*which\s+autoseg\s*\)", "autoseg", line)
    line = re.sub(r"\$\([^)]*\)", "0", line)
    line = re.sub(r"(?<!\S)\d+(?=>|<)", "", line)  # the file descriptor of "2>&1"
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", "0", line)


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(_substitute(line), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def split_commands(line: str) -> list[list[str]]:
    """The simple commands of one logical shell line: split at operators, without
    redirections, leading ``VAR=value`` assignments and ``do``/``then``/``else``."""
    commands: list[list[str]] = [[]]
    tokens = _tokens(line)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in OPERATORS:
            commands.append([])
        elif token in REDIRECTIONS:
            i += 1  # skip the target too
        else:
            commands[-1].append(token)
        i += 1
    cleaned = []
    for command in commands:
        while command and (
            _ASSIGNMENT.match(command[0]) or command[0] in {"do", "then", "else", "!"}
        ):
            command = command[1:]
        if command:
            cleaned.append(command)
    return cleaned


def autoseg_argv(command: list[str]) -> list[str] | None:
    """The autoseg arguments of a simple command (``autoseg ...``, ``torchrun ... -m autoseg
    ...``, ``python -m autoseg ...``), or None if it does not run autoseg."""
    if command[0] == "autoseg":
        return command[1:]
    if command[0] in LAUNCHERS and "autoseg" in command:
        return command[command.index("autoseg") + 1 :]
    return None


def shell_steps(text: str, first_line: int = 1) -> list[Step]:
    """Executable steps of a shell block: autoseg commands, and heredoc files."""
    steps: list[Step] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        number, logical = first_line + i, lines[i].strip()
        while logical.endswith("\\") and i + 1 < len(lines):
            i += 1
            logical = logical[:-1] + " " + lines[i].strip()
        i += 1
        if logical.startswith("$ "):
            logical = logical[2:]
        heredoc = _HEREDOC.search(logical)
        if heredoc is not None:
            body: list[str] = []
            while i < len(lines) and lines[i].strip() != heredoc.group(1):
                body.append(lines[i])
                i += 1
            i += 1
            target = re.search(r">\s*(\S+)", logical[: heredoc.start()])
            if target is not None:
                steps.append(Step(number, write=(target.group(1), "\n".join(body) + "\n")))
            continue
        if not _MENTION.search(logical):
            continue
        try:
            commands = split_commands(logical)
        except ValueError as err:  # e.g. an unbalanced quote
            raise ValueError(f"line {number}: {err}: {logical}") from None
        for command in commands:
            argv = autoseg_argv(command)
            if argv is not None:
                steps.append(Step(number, argv=tuple(argv)))
    return steps


def doc_commands() -> list[tuple[str, tuple[str, ...]]]:
    """(``file:line``, argv) of every autoseg command in a shell block of the docs."""
    found = []
    for path in DOC_FILES:
        for block in code_blocks(path):
            if block.language not in SHELL_LANGUAGES:
                continue
            try:
                steps = shell_steps(block.text, block.line)
            except ValueError as err:
                raise ValueError(f"{path.relative_to(REPO)}, {err}") from None
            for step in steps:
                if step.argv:
                    found.append((f"{path.relative_to(REPO)}:{step.line}", step.argv))
    return found


def strict_parser() -> argparse.ArgumentParser:
    """The real parser, with option abbreviations refused (the docs spell options out, so a
    renamed ``--epochs`` must not pass as an abbreviation)."""
    parser = build_parser()
    parser.allow_abbrev = False
    for sub in subparsers(parser).values():
        sub.allow_abbrev = False
    return parser


def parse_error(argv: list[str] | tuple[str, ...]) -> str | None:
    """None when the real parser accepts ``argv`` (``--help`` included), else its message."""
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            args = strict_parser().parse_args(list(argv))
    except SystemExit as exit_:
        return None if exit_.code in (0, None) else err.getvalue().strip() or f"exit {exit_.code}"
    return None if args.command else "no subcommand"


def subparsers(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.ArgumentParser]:
    """Subcommand name -> its parser (of ``parser``, default a fresh real one)."""
    parser = parser if parser is not None else build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


DOC_COMMANDS = doc_commands()


# --- the checker itself --------------------------------------------------------------------


def test_shell_lines_are_split_into_autoseg_commands() -> None:
    line = "CUDA_VISIBLE_DEVICES=$fold autoseg train --work W --epochs 2 > log$fold.txt 2>&1 &"
    assert [autoseg_argv(c) for c in split_commands(line)] == [
        ["train", "--work", "W", "--epochs", "2"]
    ]
    line = "python3 -m venv .venv && . .venv/bin/activate && autoseg demo  # ten minutes"
    assert [autoseg_argv(c) for c in split_commands(line)] == [None, None, ["demo"]]
    assert autoseg_argv(_tokens("torchrun --nproc_per_node=4 -m autoseg train fold=0")) == [
        "train",
        "fold=0",
    ]
    assert autoseg_argv(_tokens("torchrun --nproc_per_node=2 $(which autoseg) train")) == ["train"]
    steps = shell_steps("cat > a.json <<'EOF'\n{\"x\": 1}\nEOF\nautoseg plan D \\\n  --work W\n")
    assert steps == [
        Step(1, write=("a.json", '{"x": 1}\n')),
        Step(4, argv=("plan", "D", "--work", "W")),
    ]


@pytest.mark.parametrize(
    ("argv", "fails"),
    [
        (["train", "--work", "W", "fold=0..4", "--epochs", "3"], False),
        (["train", "--epoch", "3"], True),  # a renamed option
        (["train", "fold=x"], True),  # a bad value
        (["trian"], True),  # a misspelt subcommand
        (["predict", "-i", "x", "-o", "y", "--config", "unet"], True),
        (["plan", "--help"], False),
    ],
)
def test_parse_error_detects_bad_commands(argv: list[str], fails: bool) -> None:
    assert (parse_error(argv) is not None) == fails


# --- every documented command parses -------------------------------------------------------


def test_docs_have_commands_for_every_subcommand() -> None:
    assert len(DOC_COMMANDS) > 40
    assert set(COMMANDS) <= {argv[0] for _, argv in DOC_COMMANDS if argv}


@pytest.mark.parametrize(("where", "argv"), DOC_COMMANDS, ids=[w for w, _ in DOC_COMMANDS])
def test_documented_command_parses(where: str, argv: tuple[str, ...]) -> None:
    error = parse_error(argv)
    assert error is None, f"{where}: autoseg {shlex.join(argv)}\n{error}"


def _inline_commands() -> Iterator[tuple[str, list[str]]]:
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        prose = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)
        for span in re.findall(r"`(autoseg [^`]+)`", prose):
            try:
                tokens = shlex.split(span)
            except ValueError:
                tokens = span.split()
            yield f"{path.relative_to(REPO)}: `{span}`", tokens[1:]


def test_inline_commands_name_real_subcommands_and_options() -> None:
    parsers = subparsers()
    top = {s for a in build_parser()._actions for s in a.option_strings}
    checked = 0
    for where, tokens in _inline_commands():
        name = tokens[0]
        if name.isupper() or name.endswith(":"):  # autoseg COMMAND --help, autoseg plan: error
            continue
        if name.startswith("-"):
            assert name in top, where
            continue
        assert name in parsers, f"{where}: no subcommand {name!r}"
        known = {s for a in parsers[name]._actions for s in a.option_strings}
        for token in tokens[1:]:
            option = token.split("=", 1)[0]
            if re.fullmatch(r"--?[a-z][\w-]*", option):
                assert option in known, f"{where}: {name} has no option {option}"
        checked += 1
    assert checked > 10


# --- docs/cli.md covers every command and option -------------------------------------------


def _cli_sections() -> dict[str, str]:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    headings = list(re.finditer(r"^#{2,3} autoseg ([\w-]+)\s*$", text, flags=re.M))
    return {
        m.group(1): text[m.end() : headings[i + 1].start() if i + 1 < len(headings) else None]
        for i, m in enumerate(headings)
    }


def test_cli_reference_has_a_heading_per_command() -> None:
    assert set(COMMANDS) <= set(_cli_sections())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_cli_reference_names_every_option(name: str) -> None:
    section = _cli_sections()[name]
    missing = []
    for action in subparsers()[name]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        names = action.option_strings or [
            action.metavar if isinstance(action.metavar, str) else action.dest.upper()
        ]
        for option in names:
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", section):
                missing.append(option)
    assert not missing, f"docs/cli.md, section 'autoseg {name}' does not mention {missing}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_of_every_command(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    assert f"usage: autoseg {name}" in capsys.readouterr().out


# --- the tour of docs/cli.md runs for real -------------------------------------------------


def _marked_block(path: Path, marker: str) -> Block:
    blocks = [b for b in code_blocks(path) if b.marker == marker]
    assert len(blocks) == 1, f"{path}: expected one block marked {marker}"
    return blocks[0]


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread (the suite shares two cores); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_cli_tour_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    one_thread: None,
) -> None:
    block = _marked_block(DOCS / "cli.md", RUN_MARKER)
    steps = shell_steps(block.text, block.line)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOSEG_WORK", raising=False)
    run = set()
    for step in steps:
        if step.write is not None:
            Path(step.write[0]).write_text(step.write[1])
            continue
        status = main(list(step.argv))
        output = capsys.readouterr()
        assert status == 0, f"line {step.line}: autoseg {shlex.join(step.argv)}\n{output.err}"
        run.add(step.argv[0])
    assert run == set(COMMANDS)

    best = json.loads(Path("work/best.json").read_text())
    assert best["configs"] == ["unet3d"] and best["folds"] == [0, 1, 2, 3, 4]
    for fold in range(5):
        assert Path(f"work/results/unet3d/fold_{fold}/checkpoint_final.pt").is_file()
    _, reference = read_image(Path("phantom/imagesTs/phantom_005_0000.nii.gz"))
    from_work, geometry = read_image(Path("seg/phantom_005.nii.gz"))
    from_zip, _ = read_image(Path("seg_from_zip/phantom_005.nii.gz"))
    assert geometry.shape == reference.shape
    np.testing.assert_array_equal(geometry.affine, reference.affine)
    np.testing.assert_array_equal(from_work, from_zip)  # the archive predicts the same
    assert Path("seg/metrics.csv").is_file() and Path("overlay.png").stat().st_size > 0
    study = Path("tune/tuning/studies/autoseg-Phantom")
    heuristics = json.loads((study / "best_heuristics.json").read_text())["heuristics"]
    assert heuristics["cpu_unet_max_features"] == 16


# --- docs/migrating.md: the DeepMedic list-file conversion ---------------------------------


def test_deepmedic_descriptor_of_the_docs_reads_the_lists(
    tmp_path: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The descriptor of docs/migrating.md over DeepMedic-style list files (one path per
    line, relative to the list): verify accepts it, the validation lists are one fold."""
    block = _marked_block(DOCS / "migrating.md", SCRIPT_MARKER)
    assert block.language == "json"
    descriptor = json.loads(block.text)
    root = tmp_path / "deepmedic"
    cases = sorted(p.name[: -len(".nii.gz")] for p in (tiny_dataset / "labelsTr").iterdir())
    splits = {"train": cases[:4], "validation": cases[4:], "test": ["phantom_006"]}

    def write(listing: str, paths: list[Path]) -> None:
        path = root / listing
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [os.path.relpath(p, path.parent) for p in paths]
        path.write_text("# DeepMedic list\n" + "".join(f"{r}\n" for r in rows) + "\n")

    for split, key in (("train", "Training"), ("validation", "Validation"), ("test", "Test")):
        folder = "imagesTs" if split == "test" else "imagesTr"
        for channel, listing in enumerate(descriptor[f"channels{key}"]):
            files = [tiny_dataset / folder / f"{c}_{channel:04d}.nii.gz" for c in splits[split]]
            write(listing, files)
        cases_of = splits[split]
        if f"gtLabels{key}" in descriptor:
            labels = [tiny_dataset / "labelsTr" / f"{c}.nii.gz" for c in cases_of]
            write(descriptor[f"gtLabels{key}"], labels)
        for names in (f"namesForPredictionsPerCase{key[:3]}", f"namesForPredictionsPerCase{key}"):
            if names in descriptor:
                predictions = "".join(f"pred_{c}.nii.gz\n" for c in cases_of)
                (root / descriptor[names]).write_text(predictions)
        roi = f"roiMasks{key}"
        if roi in descriptor:
            shape_of = tiny_dataset / folder
            write(descriptor[roi], [shape_of / f"{c}_0000.nii.gz" for c in splits[split]])
    (root / "deepmedic.json").write_text(block.text)
    assert main(["verify", str(root / "deepmedic.json"), "-np", "1"]) == 0, capsys.readouterr().err
    from autoseg.data.formats import load_dataset

    dataset = load_dataset(root / "deepmedic.json")
    assert dataset.validation_folds == (tuple(f"pred_{c}" for c in cases[4:]),)
    assert [c.case_id for c in dataset.test_cases] == ["pred_phantom_006"]
