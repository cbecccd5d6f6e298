"""DeepMedic configuration: plain frozen dataclasses stored in plans.json (no torch here).

Import them from :mod:`autoseg.networks.deepmedic`, which re-exports them next to the module
and the segment geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autoseg import strict
from autoseg.errors import ConfigError

__all__ = ["DeepMedicConfig", "PathwayConfig", "SubsampledPathwayConfig"]

Triple = tuple[int, int, int]

PAPER_FEATURES = (30, 30, 40, 40, 40, 40, 50, 50)
"""Feature maps of DeepMedic's eight pathway layers."""
PAPER_RESIDUAL_AT = (3, 5, 7)
"""0-based layers with a residual connection (the paper's 4th, 6th and 8th layers)."""


def _layers(owner: str, features: Any, kernels: Any, residual_at: Any) -> tuple[Any, Any, Any]:
    """Normalise and check one pathway's layer lists."""
    feats = strict.as_int_tuple(owner, "features", features, 1)
    kerns = strict.as_triple_tuple(owner, "kernels", kernels, 1)
    res = strict.as_int_tuple(owner, "residual_at", residual_at)
    if not feats or len(feats) != len(kerns):
        raise ConfigError(
            f"{owner}: `features` and `kernels` need one entry per layer (at least one), "
            f"got lengths ({len(feats)}, {len(kerns)})"
        )
    for i, kernel in enumerate(kerns):
        if any(k % 2 == 0 for k in kernel):
            raise ConfigError(f"{owner}: `kernels[{i}]` must be odd, got {list(kernel)}")
    if list(res) != sorted(set(res)) or any(not 1 <= i < len(feats) for i in res):
        raise ConfigError(
            f"{owner}: `residual_at` must list distinct increasing layer indices in "
            f"1..{len(feats) - 1}, got {list(res)}"
        )
    return feats, kerns, res


@dataclass(frozen=True, slots=True, kw_only=True)
class PathwayConfig:
    """Layers of one pathway.

    Attributes:
        features: Output feature maps of each layer.
        kernels: Odd kernel size of each layer, (Z, Y, X); convolutions are 'valid'.
        residual_at: 0-based layers ``i`` (1 <= i < layers) whose output gets the input of
            layer ``i - 1`` added (centre-cropped; zero-padded if it has fewer channels).
    """

    features: tuple[int, ...]
    kernels: tuple[Triple, ...]
    residual_at: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        feats, kerns, res = _layers(
            type(self).__name__, self.features, self.kernels, self.residual_at
        )
        object.__setattr__(self, "features", feats)
        object.__setattr__(self, "kernels", kerns)
        object.__setattr__(self, "residual_at", res)

    def receptive_field(self) -> Triple:
        """Receptive field per axis (Z, Y, X) in this pathway's own voxels."""
        z, y, x = (1 + sum(k[a] - 1 for k in self.kernels) for a in range(3))
        return z, y, x

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return {
            "features": list(self.features),
            "kernels": [list(k) for k in self.kernels],
            "residual_at": list(self.residual_at),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PathwayConfig:
        """Strict inverse of :meth:`to_dict`."""
        strict.check_keys(cls.__name__, data, ("features", "kernels", "residual_at"))
        return cls(**data)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubsampledPathwayConfig(PathwayConfig):
    """A pathway fed a context downsampled by ``factor`` (per axis Z, Y, X, each >= 1).

    Its layer lists are its own (copy the normal pathway's to get DeepMedic's default).
    """

    factor: Triple = (3, 3, 3)

    def __post_init__(self) -> None:
        PathwayConfig.__post_init__(self)
        object.__setattr__(
            self, "factor", strict.as_triple(type(self).__name__, "factor", self.factor, 1)
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return {"factor": list(self.factor), **PathwayConfig.to_dict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubsampledPathwayConfig:
        """Strict inverse of :meth:`to_dict`."""
        strict.check_keys(cls.__name__, data, ("factor", "features", "kernels", "residual_at"))
        return cls(**data)


_OWNER = "DeepMedicConfig"
_FIELDS = (
    "kind",
    "in_channels",
    "num_classes",
    "normal",
    "subsampled",
    "fc_features",
    "fc_first_kernel",
    "dropout",
    "batch_norm",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeepMedicConfig:
    """Topology of a DeepMedic network; JSON round trip via to_dict / from_dict.

    Attributes:
        kind: Always ``"deepmedic"`` (selects the builder).
        in_channels: Image channels, >= 1.
        num_classes: Output classes including background, >= 2.
        normal: The full-resolution pathway.
        subsampled: Zero or more subsampled pathways.
        fc_features: Feature maps of the FC layers before the classifier.
        fc_first_kernel: Odd kernel of the first FC layer (replicate padding keeps the size).
        dropout: Drop probability before each FC layer and before the classifier
            (``len(fc_features) + 1`` values in [0, 1)).
        batch_norm: Batch norm in the pre-activations.

    Raises:
        ConfigError: when lengths disagree or a value breaks the rules above.
    """

    kind: str = "deepmedic"
    in_channels: int
    num_classes: int
    normal: PathwayConfig
    subsampled: tuple[SubsampledPathwayConfig, ...] = ()
    fc_features: tuple[int, ...] = (250, 250)
    fc_first_kernel: Triple = (3, 3, 3)
    dropout: tuple[float, ...] = (0.0, 0.5, 0.5)
    batch_norm: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.kind != "deepmedic":
            raise ConfigError(f"{_OWNER}: `kind` must be 'deepmedic', got {self.kind!r}")
        set_(self, "in_channels", strict.as_int(_OWNER, "in_channels", self.in_channels, 1))
        set_(self, "num_classes", strict.as_int(_OWNER, "num_classes", self.num_classes, 2))
        set_(self, "fc_features", strict.as_int_tuple(_OWNER, "fc_features", self.fc_features, 1))
        set_(
            self,
            "fc_first_kernel",
            strict.as_triple(_OWNER, "fc_first_kernel", self.fc_first_kernel, 1),
        )
        set_(self, "dropout", strict.as_float_tuple(_OWNER, "dropout", self.dropout))
        set_(self, "batch_norm", strict.as_bool(_OWNER, "batch_norm", self.batch_norm))
        set_(self, "subsampled", tuple(self.subsampled))
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.normal, PathwayConfig) or isinstance(
            self.normal, SubsampledPathwayConfig
        ):
            raise ConfigError(f"{_OWNER}: `normal` must be a PathwayConfig, got {self.normal!r}")
        for i, sub in enumerate(self.subsampled):
            if not isinstance(sub, SubsampledPathwayConfig):
                raise ConfigError(
                    f"{_OWNER}: `subsampled[{i}]` must be a SubsampledPathwayConfig, got {sub!r}"
                )
        if any(k % 2 == 0 for k in self.fc_first_kernel):
            raise ConfigError(
                f"{_OWNER}: `fc_first_kernel` must be odd, got {list(self.fc_first_kernel)}"
            )
        if len(self.dropout) != len(self.fc_features) + 1 or any(
            not 0.0 <= p < 1.0 for p in self.dropout
        ):
            raise ConfigError(
                f"{_OWNER}: `dropout` needs len(fc_features) + 1 = {len(self.fc_features) + 1} "
                f"probabilities in [0, 1), got {list(self.dropout)}"
            )
        for name, path in self.pathways():
            for i in path.residual_at:
                source = self.in_channels if i == 1 else path.features[i - 2]
                if source > path.features[i]:
                    raise ConfigError(
                        f"{_OWNER}: residual at layer {i} of the {name} pathway adds {source} "
                        f"channels to {path.features[i]}; the added input must not have more"
                    )

    def pathways(self) -> tuple[tuple[str, PathwayConfig], ...]:
        """``(name, config)`` of every pathway: ``normal``, ``subsampled_1``, ..."""
        named: list[tuple[str, PathwayConfig]] = [("normal", self.normal)]
        named += [(f"subsampled_{i + 1}", sub) for i, sub in enumerate(self.subsampled)]
        return tuple(named)

    def concat_features(self) -> int:
        """Channels entering the first FC layer (last layer of every pathway)."""
        return sum(path.features[-1] for _, path in self.pathways())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {
            "kind": self.kind,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "normal": self.normal.to_dict(),
            "subsampled": [s.to_dict() for s in self.subsampled],
            "fc_features": list(self.fc_features),
            "fc_first_kernel": list(self.fc_first_kernel),
            "dropout": list(self.dropout),
            "batch_norm": self.batch_norm,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeepMedicConfig:
        """Strict inverse of :meth:`to_dict`: every key required, unknown keys rejected."""
        strict.check_keys(_OWNER, data, _FIELDS)
        values = {key: data[key] for key in _FIELDS}
        values["normal"] = PathwayConfig.from_dict(data["normal"])
        subs = data["subsampled"]
        if not isinstance(subs, (list, tuple)):
            raise ConfigError(f"{_OWNER}: `subsampled` must be a list, got {subs!r}")
        values["subsampled"] = tuple(SubsampledPathwayConfig.from_dict(s) for s in subs)
        return cls(**values)

    @classmethod
    def default(
        cls,
        in_channels: int,
        num_classes: int,
        factors: tuple[Triple, ...] = ((3, 3, 3), (5, 5, 5)),
        kernel: Triple = (3, 3, 3),
    ) -> DeepMedicConfig:
        """The paper's layers (8 per pathway, residuals at layers 4, 6, 8) with given factors.

        Args:
            in_channels: Image channels.
            num_classes: Classes including background.
            factors: One subsampling factor per subsampled pathway, (Z, Y, X).
            kernel: Kernel of every pathway layer; e.g. (1, 3, 3) for a coarse z axis.
        """
        kernels = (kernel,) * len(PAPER_FEATURES)
        normal = PathwayConfig(
            features=PAPER_FEATURES, kernels=kernels, residual_at=PAPER_RESIDUAL_AT
        )
        subs = tuple(
            SubsampledPathwayConfig(
                factor=f, features=PAPER_FEATURES, kernels=kernels, residual_at=PAPER_RESIDUAL_AT
            )
            for f in factors
        )
        return cls(in_channels=in_channels, num_classes=num_classes, normal=normal, subsampled=subs)
