"""The options of ``autoseg train`` and their translation into a TrainingRequest (no torch).

Every TrainConfig knob has one option; left out, the knob keeps its default (or is decided at
run time where the default is None, see :class:`autoseg.trainers.config.TrainConfig`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from autoseg.cli.options import (
    configuration_name,
    fraction,
    non_negative_float,
    positive_float,
    positive_int,
)
from autoseg.durations import parse_duration
from autoseg.errors import ConfigError
from autoseg.trainers.config import (
    DEVICES,
    LOSSES,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    TrainingRequest,
    is_train_device,
)

__all__ = ["add_train_arguments", "request_from_args"]


def _momentum(text: str) -> float:
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(err.message) from None


def _device(text: str) -> str:
    if not is_train_device(text):
        raise argparse.ArgumentTypeError(
            f"invalid device {text!r}; expected one of {', '.join(DEVICES)} or cuda:N (e.g. cuda:1)"
        )
    return text


def _add_schedule_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("length and schedule")
    g.add_argument("--epochs", type=positive_int, metavar="N", help="epochs (GPU default: 1000)")
    g.add_argument(
        "--iters-per-epoch",
        type=positive_int,
        metavar="N",
        help="default: 250 (fewer for short budgets)",
    )
    g.add_argument(
        "--val-iters",
        type=positive_int,
        metavar="N",
        help="validation batches per epoch (default: 50)",
    )
    g.add_argument(
        "--time-budget",
        type=_duration,
        metavar="DURATION",
        help="fit the epochs of each fold into this wall-clock time, e.g. 90m, 2h, 45s "
        "(CPU default without --epochs: 60m)",
    )
    g.add_argument(
        "--optimizer", choices=OPTIMIZERS, default=None,
        help="default: the plan's (SGD on a GPU; Adam on a CPU)",
    )  # fmt: skip
    g.add_argument("--lr", type=positive_float, metavar="LR", help="initial learning rate")
    g.add_argument("--momentum", type=_momentum, metavar="M", help="SGD (Nesterov) momentum")
    g.add_argument(
        "--weight-decay", type=non_negative_float, default=3e-5, metavar="W", help="default: 3e-5"
    )
    g.add_argument("--schedule", choices=SCHEDULES, default="poly", help="default: poly")
    g.add_argument(
        "--grad-clip",
        type=non_negative_float,
        default=12.0,
        metavar="NORM",
        help="0 = off (default: 12)",
    )
    g.add_argument("--loss", choices=LOSSES, help="default: the plan's (Dice + CE)")
    g.add_argument(
        "--early-stopping",
        type=positive_int,
        metavar="EPOCHS",
        help="stop when the smoothed pseudo-Dice has not improved for this many epochs",
    )


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Declare every ``autoseg train`` option except the folds and --work."""
    p.add_argument(
        "--config",
        type=configuration_name,
        default="all",
        metavar="CONFIG",
        help="planned configuration(s) to train: unet3d, unet2d, unet3d_lowres, "
        "unet3d_cascade, deepmedic, a comma-separated list, or all (default: all that was "
        "planned; plans.json's decisions say why each was or was not)",
    )
    _add_schedule_options(p)
    g = p.add_argument_group("run")
    g.add_argument("--resume", action="store_true", help="continue unfinished folds")
    g.add_argument("--overwrite", action="store_true", help="retrain folds from scratch")
    g.add_argument(
        "--break-lock",
        action="store_true",
        help="take over a fold another host's run seems to hold (train.lock); a live run "
        "on this host is never taken over",
    )
    g.add_argument(
        "--pretrained", type=Path, metavar="CKPT", help="initialise the weights (fresh optimiser)"
    )
    g.add_argument(
        "--device",
        type=_device,
        default="auto",
        metavar="DEVICE",
        help="auto (default), cuda, cuda:N, cpu or mps",
    )
    g.add_argument("--seed", type=int, default=0, help="default: 0")
    g.add_argument(
        "-np",
        "--num-workers",
        type=int,
        metavar="N",
        help="data-loading processes (0: in-process; default: from the CPU count)",
    )
    g.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch CPU threads (default: every core; fewer when other work busies the cores)",
    )
    amp = g.add_mutually_exclusive_group()
    amp.add_argument(
        "--amp", dest="amp", action="store_true", default=None,
        help="force mixed precision (float16 on CUDA, bfloat16 on a CPU that has it natively; "
        "default: as planned)",
    )  # fmt: skip
    amp.add_argument("--no-amp", dest="amp", action="store_false", help="train in fp32")
    g.add_argument("--compile", action="store_true", help="torch.compile the network")
    layout = g.add_mutually_exclusive_group()
    layout.add_argument(
        "--channels-last", dest="channels_last", action="store_true", default=None,
        help="channels-last-3d memory format (default: U-Net on CPUs only)",
    )  # fmt: skip
    layout.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    g.add_argument("--tensorboard", action="store_true", help="also write TensorBoard scalars")
    validation = g.add_mutually_exclusive_group()
    validation.add_argument(
        "--validation", dest="final_validation", action="store_true", default=None,
        help="run the end-of-training validation (default: on, except for fold=all)",
    )  # fmt: skip
    validation.add_argument(
        "--no-validation", dest="final_validation", action="store_false",
        help="skip the end-of-training validation",
    )  # fmt: skip
    mirror = g.add_mutually_exclusive_group()
    mirror.add_argument(
        "--val-mirroring", dest="val_mirroring", action="store_true", default=None,
        help="mirroring TTA in the final validation (default: on a GPU; on a CPU when a case "
        "stays within 2 s with it)",
    )  # fmt: skip
    mirror.add_argument("--no-val-mirroring", dest="val_mirroring", action="store_false")
    g.add_argument(
        "--val-step", type=fraction, default=0.5, metavar="F", help="sliding-window step (0, 1]"
    )


def request_from_args(args: argparse.Namespace, folds: list[int | str]) -> TrainingRequest:
    """The :class:`~autoseg.trainers.config.TrainingRequest` of parsed ``autoseg train`` options.

    Raises:
        ConfigError: for invalid option values (e.g. a negative learning rate).
    """
    config = TrainConfig(
        epochs=args.epochs,
        iters_per_epoch=args.iters_per_epoch,
        val_iters=args.val_iters,
        time_budget_seconds=args.time_budget,
        device=args.device,
        amp=args.amp,
        seed=args.seed,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        grad_clip_norm=args.grad_clip if args.grad_clip > 0 else None,
        loss=args.loss,
        early_stopping_patience=args.early_stopping,
        num_workers=args.num_workers,
        threads=args.threads,
        channels_last=args.channels_last,
        compile=args.compile,
        final_validation=args.final_validation,
        val_mirroring=args.val_mirroring,
        val_step_fraction=args.val_step,
        tensorboard=args.tensorboard,
    )
    return TrainingRequest(
        configs=tuple(c.strip() for c in args.config.split(",") if c.strip()) or ("all",),
        folds=tuple(folds),
        config=config,
        resume=args.resume,
        overwrite=args.overwrite,
        pretrained=args.pretrained,
        break_lock=args.break_lock,
    )
