"""Deep-supervised U-Net: shapes over random configs, deep supervision, gradient flow."""

from __future__ import annotations

import random

import pytest
import torch

from autoseg.diagnostics.memory_measure import make_training_batch, reference_loss
from autoseg.networks import UNetConfig, build_network
from autoseg.networks.unet import DeepSupervisedUNet

KERNELS = ((3, 3, 3), (1, 3, 3), (3, 3, 1), (1, 1, 1), (5, 3, 3))


def random_unet(seed: int) -> tuple[UNetConfig, tuple[int, int, int], int]:
    """A random valid U-Net config, a patch size for it and a batch size."""
    rng = random.Random(seed)
    stages = rng.randint(2, 4)
    strides = [(1, 1, 1)] + [tuple(rng.choice((1, 2)) for _ in range(3)) for _ in range(stages - 1)]
    config = UNetConfig(
        in_channels=rng.randint(1, 4),
        num_classes=rng.randint(2, 5),
        features_per_stage=tuple(min(4 * 2**s, 16) for s in range(stages)),
        kernel_sizes=tuple(rng.choice(KERNELS) for _ in range(stages)),
        strides=tuple(strides),  # type: ignore[arg-type]
        convs_per_stage=rng.randint(1, 2),
        deep_supervision=rng.random() < 0.7,
    )
    patch = tuple(d * rng.randint(1, 2) for d in config.patch_divisor())
    return config, patch, rng.randint(1, 2)  # type: ignore[return-value]


@pytest.mark.parametrize("seed", range(12))
def test_shapes_in_train_and_eval_mode(seed: int) -> None:
    config, patch, batch = random_unet(seed)
    torch.manual_seed(seed)
    net = build_network(config)
    assert isinstance(net, DeepSupervisedUNet)
    x = torch.randn(batch, config.in_channels, *patch)
    out = net.train()(x)
    scales = config.deep_supervision_scales()
    if config.deep_supervision:
        assert isinstance(out, list) and len(out) == config.num_stages - 1 == len(scales)
    else:
        assert isinstance(out, torch.Tensor)
        out = [out]
    for logits, scale in zip(out, scales):
        expected = tuple(round(p * s) for p, s in zip(patch, scale))
        assert tuple(logits.shape) == (batch, config.num_classes, *expected)
    with torch.no_grad():
        logits = net.eval()(x)
    assert isinstance(logits, torch.Tensor)
    assert tuple(logits.shape) == (batch, config.num_classes, *patch)


def test_deep_supervision_outputs_are_ordered_full_resolution_first() -> None:
    config = UNetConfig(
        in_channels=1,
        num_classes=2,
        features_per_stage=(4, 8, 8, 8),
        kernel_sizes=((3, 3, 3),) * 4,
        strides=((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 1, 2)),
    )
    net = build_network(config).train()
    out = net(torch.randn(1, 1, 8, 8, 16))
    assert [tuple(o.shape[2:]) for o in out] == [(8, 8, 16), (8, 4, 8), (4, 2, 4)]
    assert config.deep_supervision_scales()[2] == (0.5, 0.25, 0.25)
    # the full-resolution output in training equals the eval output (norms use instance stats)
    net.eval()
    with torch.no_grad():
        x = torch.randn(1, 1, 8, 8, 16)
        assert torch.allclose(net.train()(x)[0], net.eval()(x), atol=1e-6)


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_every_parameter_receives_gradient(seed: int) -> None:
    config, patch, batch = random_unet(seed)
    config = UNetConfig.from_dict({**config.to_dict(), "deep_supervision": True})
    torch.manual_seed(0)
    net = build_network(config).train()
    inputs, targets = make_training_batch(config, patch, batch)
    reference_loss(net(inputs[0]), targets).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_rejects_input_of_wrong_shape() -> None:
    config, _, _ = random_unet(1)
    net = build_network(config)
    divisor = config.patch_divisor()
    bad = tuple(d + 1 if d > 1 else 3 for d in divisor)
    if all(d == 1 for d in divisor):  # pragma: no cover - seed 1 has a stride
        pytest.skip("no stride in this config")
    with pytest.raises(ValueError, match="multiples of"):
        net(torch.randn(1, config.in_channels, *bad))
    with pytest.raises(ValueError, match=f"B×{config.in_channels}×Z×Y×X"):
        net(torch.randn(1, config.in_channels + 1, *divisor))


def test_weights_follow_fan_in_initialisation() -> None:
    config = UNetConfig(
        in_channels=8,
        num_classes=2,
        features_per_stage=(64, 64),
        kernel_sizes=((3, 3, 3),) * 2,
        strides=((1, 1, 1), (2, 2, 2)),
    )
    net = build_network(config)
    conv = net.encoder[1][1].conv  # type: ignore[index]
    fan_in = 64 * 27
    std = float(conv.weight.detach().std())
    assert abs(std - (2.0 / (1 + 0.01**2) / fan_in) ** 0.5) < 0.05 * std
