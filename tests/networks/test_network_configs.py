"""Network configs: validation, strict JSON round trip, kind registry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autoseg.errors import ConfigError
from autoseg.networks import (
    DeepMedicConfig,
    PathwayConfig,
    SubsampledPathwayConfig,
    UNetConfig,
    build_network,
    network_config_from_dict,
)


def _unet(**overrides: object) -> UNetConfig:
    values: dict[str, object] = dict(
        in_channels=2,
        num_classes=3,
        features_per_stage=(8, 16, 32),
        kernel_sizes=((1, 3, 3), (3, 3, 3), (3, 3, 3)),
        strides=((1, 1, 1), (1, 2, 2), (2, 2, 2)),
    )
    values.update(overrides)
    return UNetConfig(**values)  # type: ignore[arg-type]


def _deepmedic(**overrides: object) -> DeepMedicConfig:
    values: dict[str, object] = dict(
        in_channels=2,
        num_classes=4,
        normal=PathwayConfig(features=(4, 4, 8), kernels=((3, 3, 3),) * 3, residual_at=(2,)),
        subsampled=(
            SubsampledPathwayConfig(
                factor=(1, 3, 3), features=(4, 8), kernels=((1, 3, 3),) * 2, residual_at=()
            ),
        ),
        fc_features=(16,),
        dropout=(0.0, 0.5),
    )
    values.update(overrides)
    return DeepMedicConfig(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "config",
    [
        _unet(),
        _unet(deep_supervision=False, convs_per_stage=3),
        _deepmedic(),
        DeepMedicConfig.default(1, 2),
        DeepMedicConfig.default(3, 5, ((1, 3, 3),), (1, 3, 3)),
    ],
)
def test_json_round_trip_is_exact(config: UNetConfig | DeepMedicConfig) -> None:
    text = json.dumps(config.to_dict())
    restored = network_config_from_dict(json.loads(text))
    assert restored == config
    assert type(restored) is type(config)
    assert json.dumps(restored.to_dict()) == text


def test_numpy_scalars_become_python_types() -> None:
    config = _unet(in_channels=np.int64(2), features_per_stage=np.array([8, 16, 32]))
    assert type(config.in_channels) is int
    assert all(type(f) is int for f in config.features_per_stage)
    json.dumps(config.to_dict())  # would fail on int64
    dm = _deepmedic(dropout=(np.float32(0.0), np.float64(0.5)), batch_norm=np.bool_(True))
    assert all(type(p) is float for p in dm.dropout) and dm.batch_norm is True


@pytest.mark.parametrize("factory", [_unet, _deepmedic])
def test_from_dict_rejects_unknown_and_missing_keys(factory) -> None:  # type: ignore[no-untyped-def]
    data = factory().to_dict()
    with pytest.raises(ConfigError, match=r"unknown keys \['extra'\].*expected keys"):
        network_config_from_dict({**data, "extra": 1})
    del data["num_classes"]
    with pytest.raises(ConfigError, match=r"missing keys \['num_classes'\].*expected keys"):
        network_config_from_dict(data)


def test_nested_pathway_keys_are_strict() -> None:
    data = _deepmedic().to_dict()
    data["subsampled"][0]["factors"] = data["subsampled"][0].pop("factor")
    with pytest.raises(ConfigError, match=r"SubsampledPathwayConfig.*missing keys \[.factor.\]"):
        network_config_from_dict(data)


def test_unknown_kind_lists_choices() -> None:
    choices = r"choose one of \['deepmedic', 'unet2d', 'unet3d'\].*'unet3d'\?"
    with pytest.raises(ConfigError, match=choices):
        network_config_from_dict({**_unet().to_dict(), "kind": "unet"})
    with pytest.raises(ConfigError, match="needs a `kind`"):
        network_config_from_dict({"in_channels": 1})
    with pytest.raises(ConfigError, match="unknown network kind"):
        build_network(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"features_per_stage": (8, 16)}, "one entry per stage"),
        ({"kernel_sizes": ((1, 3, 3), (2, 3, 3), (3, 3, 3))}, r"kernel_sizes\[1\]` must be odd"),
        ({"strides": ((1, 1, 1), (1, 3, 2), (2, 2, 2))}, r"strides\[1\]` must hold 1 or 2"),
        ({"strides": ((2, 2, 2), (1, 2, 2), (2, 2, 2))}, r"strides\[0\]` must be all 1"),
        ({"num_classes": 1}, "`num_classes` must be >= 2"),
        ({"in_channels": 1.5}, "`in_channels` must be an integer"),
        ({"convs_per_stage": True}, "`convs_per_stage` must be an integer"),
        ({"deep_supervision": 1}, "`deep_supervision` must be true or false"),
        (
            {"features_per_stage": (8,), "kernel_sizes": ((3, 3, 3),), "strides": ((1, 1, 1),)},
            "at least 2 stages",
        ),
        ({"kernel_sizes": ((1, 3), (3, 3, 3), (3, 3, 3))}, r"needs 3 values \(Z, Y, X\)"),
        ({"kind": "deepmedic"}, "`kind` must be 'unet3d'"),
    ],
)
def test_unet_validation_messages(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _unet(**overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dropout": (0.0,)}, r"`dropout` needs len\(fc_features\) \+ 1 = 2"),
        ({"dropout": (0.0, 1.0)}, r"probabilities in \[0, 1\)"),
        ({"fc_first_kernel": (3, 2, 3)}, "`fc_first_kernel` must be odd"),
        (
            {
                "normal": PathwayConfig(
                    features=(8, 4, 4), kernels=((3, 3, 3),) * 3, residual_at=(2,)
                )
            },
            "residual at layer 2 of the normal pathway adds 8 channels to 4",
        ),
        (
            {
                "in_channels": 5,
                "normal": PathwayConfig(
                    features=(4, 4), kernels=((3, 3, 3),) * 2, residual_at=(1,)
                ),
            },
            "residual at layer 1 of the normal pathway adds 5 channels",
        ),
        (
            {"subsampled": (PathwayConfig(features=(4,), kernels=((3, 3, 3),)),)},
            r"`subsampled\[0\]` must be a SubsampledPathwayConfig",
        ),
    ],
)
def test_deepmedic_validation_messages(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _deepmedic(**overrides)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": (4, 4), "kernels": ((3, 3, 3),)}, "one entry per layer"),
        ({"features": (4, 4), "kernels": ((3, 3, 3), (3, 4, 3))}, r"kernels\[1\]` must be odd"),
        (
            {"features": (4, 4), "kernels": ((3, 3, 3),) * 2, "residual_at": (0,)},
            r"residual_at` must list .* in 1..1",
        ),
        (
            {"features": (4, 4, 4), "kernels": ((3, 3, 3),) * 3, "residual_at": (2, 1)},
            "distinct increasing",
        ),
        ({"features": (), "kernels": ()}, "at least one"),
    ],
)
def test_pathway_validation_messages(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PathwayConfig(**kwargs)  # type: ignore[arg-type]


def test_unet_helpers() -> None:
    config = _unet(
        features_per_stage=(8, 16, 32, 64),
        kernel_sizes=((1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3)),
        strides=((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 1)),
    )
    assert config.num_stages == 4
    assert config.patch_divisor() == (4, 8, 4)
    assert config.deep_supervision_scales() == (
        (1.0, 1.0, 1.0),
        (1.0, 0.5, 0.5),
        (0.5, 0.25, 0.25),
    )
    assert config.stage_shapes((8, 16, 8)) == ((8, 16, 8), (8, 8, 4), (4, 4, 2), (2, 2, 2))
    assert _unet(deep_supervision=False).deep_supervision_scales() == ((1.0, 1.0, 1.0),)
    with pytest.raises(
        ConfigError, match=r"patch size \[8, 16, 6\] must be a multiple .*\[4, 8, 4\]"
    ):
        config.check_patch_size((8, 16, 6))


def test_deepmedic_default_is_the_paper_network() -> None:
    config = DeepMedicConfig.default(4, 5)
    assert config.normal.features == (30, 30, 40, 40, 40, 40, 50, 50)
    assert config.normal.residual_at == (3, 5, 7)
    assert [s.factor for s in config.subsampled] == [(3, 3, 3), (5, 5, 5)]
    assert config.fc_features == (250, 250) and config.dropout == (0.0, 0.5, 0.5)
    assert config.concat_features() == 150
    assert [name for name, _ in config.pathways()] == ["normal", "subsampled_1", "subsampled_2"]


def test_configs_import_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, autoseg.networks, autoseg.networks.deepmedic_geometry, "
        "autoseg.planner.memory; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
