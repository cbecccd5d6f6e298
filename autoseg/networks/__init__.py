"""Network families built from plain, JSON-serialisable configs (stored in plans.json).

``build_network(config)`` picks the builder by ``config.kind`` from an explicit registry;
``network_config_from_dict(d)`` picks the config type by ``d["kind"]``. The configs and the
DeepMedic geometry are torch-free; torch is imported only when a network is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from autoseg.errors import ConfigError
from autoseg.networks.deepmedic_config import (
    DeepMedicConfig,
    PathwayConfig,
    SubsampledPathwayConfig,
)
from autoseg.networks.unet_config import UNetConfig
from autoseg.strict import choice_error

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "NETWORK_KINDS",
    "DeepMedicConfig",
    "NetworkConfig",
    "PathwayConfig",
    "SubsampledPathwayConfig",
    "UNetConfig",
    "build_network",
    "network_config_from_dict",
]

NetworkConfig: TypeAlias = "UNetConfig | DeepMedicConfig"
"""Either network family's config."""


def _build_unet(config: Any) -> nn.Module:
    from autoseg.networks.unet import DeepSupervisedUNet

    return DeepSupervisedUNet(config)


def _build_deepmedic(config: Any) -> nn.Module:
    from autoseg.networks.deepmedic import DeepMedic

    return DeepMedic(config)


_BUILDERS: Mapping[str, Callable[[Any], nn.Module]] = {
    "unet3d": _build_unet,
    "unet2d": _build_unet,
    "deepmedic": _build_deepmedic,
}
_PARSERS: Mapping[str, Callable[[dict[str, Any]], Any]] = {
    "unet3d": UNetConfig.from_dict,
    "unet2d": UNetConfig.from_dict,
    "deepmedic": DeepMedicConfig.from_dict,
}
NETWORK_KINDS: tuple[str, ...] = tuple(sorted(_BUILDERS))
"""The values of ``kind`` a network config may take."""


def build_network(config: UNetConfig | DeepMedicConfig) -> nn.Module:
    """Build the ``nn.Module`` a network config describes (weights freshly initialised).

    Raises:
        ConfigError: if ``config.kind`` names no known family.
    """
    kind = getattr(config, "kind", None)
    if not isinstance(kind, str) or kind not in _BUILDERS:
        raise choice_error("network kind", kind, _BUILDERS)
    return _BUILDERS[kind](config)


def network_config_from_dict(data: dict[str, Any]) -> UNetConfig | DeepMedicConfig:
    """Parse a network config from its JSON dict, choosing the type by ``data["kind"]``.

    Raises:
        ConfigError: for an unknown kind (listing the choices) or a malformed config.
    """
    if not isinstance(data, Mapping) or "kind" not in data:
        raise ConfigError(
            f"network config needs a `kind` (one of {sorted(_PARSERS)}), got {data!r}"
        )
    kind = data["kind"]
    if kind not in _PARSERS:
        raise choice_error("network kind", kind, _PARSERS)
    return _PARSERS[kind](dict(data))  # type: ignore[no-any-return]
