"""DeepMedic inference: tile a volume into output segments and stitch them exactly.

Arrays are C×Z×Y×X; shapes and starts are (Z, Y, X) voxels of the preprocessed grid.

Tiling rule (see :mod:`autoseg.networks.deepmedic_geometry`, the single source of alignment):

- Every tile produces ``t`` output voxels per axis, where ``t`` is the plan's inference
  segment rounded to the nearest multiple of the *lattice* ``L`` (the least common multiple
  of every subsampling factor along that axis; at least ``L``). Tiles start at ``0, t, 2t,
  ...``: they never overlap, and every start lies on the lattice.
- The first FC layer pads its input by replicating edge voxels, which is only right at the
  volume border. Each tile therefore asks the network for ``t + 2 * margin`` voxels
  (``margin = (fc_first_kernel - 1) // 2``) and keeps the central ``t``.
- The pathway inputs of that request are cut by
  :func:`~autoseg.networks.deepmedic_geometry.extract_pathway_inputs` (zero outside the
  volume). Since all tiles share the request shape and their starts differ by multiples of
  every factor, every subsampled pathway averages the same blocks of voxels in every tile:
  the stitched result equals one network pass over the whole volume on that block grid,
  whatever the tile size, to float rounding.

Test-time mirroring flips the *whole volume* (a flipped tile would put the blocks of the
subsampled pathways on another grid), predicts it tile by tile, flips the result back and
averages the logits.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from autoseg.errors import ConfigError
from autoseg.inference.tta import mirror_combinations
from autoseg.log import get_logger
from autoseg.networks.deepmedic_config import DeepMedicConfig, PathwayConfig
from autoseg.networks.deepmedic_geometry import extract_pathway_inputs, segment_shapes
from autoseg.precision import autocast_context

__all__ = [
    "FeatureLayer",
    "balanced_tile",
    "fc_margin",
    "predict_deepmedic",
    "tile_lattice",
    "tile_output_shape",
    "tile_starts",
    "tiled_voxels",
]

logger = get_logger(__name__)
Triple = tuple[int, int, int]


@dataclass(frozen=True)
class FeatureLayer:
    """A DeepMedic layer whose output feature maps are recorded.

    Attributes:
        pathway: ``"normal"``, ``"subsampled_1"``, ... or ``"fc"``.
        index: 0-based layer of that pathway (after its residual connection, if any).
    """

    pathway: str
    index: int

    @property
    def name(self) -> str:
        return f"{self.pathway}_layer{self.index}"


def tile_lattice(config: DeepMedicConfig) -> Triple:
    """Least common multiple of every subsampling factor, per axis (1 without subsampling)."""
    z, y, x = (math.lcm(1, *(sub.factor[a] for sub in config.subsampled)) for a in range(3))
    return z, y, x


def tile_output_shape(config: DeepMedicConfig, requested: Sequence[int]) -> Triple:
    """The tile shape used for a requested inference segment: each axis rounded to the
    nearest multiple of :func:`tile_lattice` (ties round up), at least one lattice step.

    Example:
        With factors (3, 3, 3) and (5, 5, 5) the lattice is 15: (29, 23, 23) -> (30, 30, 30).
    """
    if len(requested) != 3 or min(requested) < 1:
        raise ConfigError(f"DeepMedic inference segment must be 3 sizes >= 1, got {requested}")
    z, y, x = (
        max(lat, math.floor(n / lat + 0.5) * lat) for n, lat in zip(requested, tile_lattice(config))
    )
    return z, y, x


def balanced_tile(
    volume_shape: Sequence[int], tile: Sequence[int], lattice: Sequence[int]
) -> Triple:
    """The smallest lattice-aligned tile, no larger than ``tile``, that covers the volume with
    as many tiles per axis as ``tile`` needs: the last tile overshoots the volume as little as
    possible (a 50-voxel axis with 39-voxel tiles on a lattice of 3 gets two 27-voxel tiles,
    54 voxels computed instead of 78).

    Args:
        volume_shape: Voxels (Z, Y, X) of the volume to tile.
        tile: The planned tile, each axis a positive multiple of ``lattice``.
        lattice: Per-axis step every tile size must be a multiple of.
    """
    sizes = []
    for n, t, lat in zip(volume_shape, tile, lattice):
        count = math.ceil(int(n) / int(t))
        sizes.append(min(int(t), math.ceil(math.ceil(int(n) / count) / lat) * lat))
    return sizes[0], sizes[1], sizes[2]


def fc_margin(config: DeepMedicConfig) -> Triple:
    """Extra output voxels per side a tile computes so the first FC layer's padding is cut."""
    z, y, x = ((k - 1) // 2 for k in config.fc_first_kernel)
    return z, y, x


def tile_starts(volume_shape: Sequence[int], tile: Sequence[int]) -> list[Triple]:
    """Starts ``(z, y, x)`` of non-overlapping tiles covering the volume (Z slowest).

    The last tile along an axis may reach beyond the volume; its excess is cut off.
    """
    axes = [range(0, int(n), int(t)) for n, t in zip(volume_shape, tile)]
    return [(z, y, x) for z in axes[0] for y in axes[1] for x in axes[2]]


def tiled_voxels(volume_shape: Sequence[int], tile: Sequence[int]) -> int:
    """Output voxels non-overlapping ``tile``-sized tiles compute to cover the volume (the
    last tile along an axis may reach beyond it): ``len(tile_starts(...)) × tile voxels``."""
    return len(tile_starts(volume_shape, tile)) * math.prod(int(t) for t in tile)


def _layer_module(network: nn.Module, layer: FeatureLayer) -> nn.Module:
    """The FC layer itself, or the pathway module holding the layer (validated before)."""
    if layer.pathway == "fc":
        return network.get_submodule(f"fc.{layer.index}")
    if layer.pathway == "normal":
        return network.get_submodule("normal")
    return network.get_submodule(f"subsampled.{_sub_index(layer)}")


def _sub_index(layer: FeatureLayer) -> int:
    """0-based index of a ``subsampled_<n>`` pathway."""
    return int(layer.pathway.split("_")[1]) - 1


@contextlib.contextmanager
def _capture(
    network: nn.Module, config: DeepMedicConfig, layers: Sequence[FeatureLayer]
) -> Iterator[dict[FeatureLayer, torch.Tensor]]:
    """Record each layer's output (pathway layers after their residual addition) per forward."""
    captured: dict[FeatureLayer, torch.Tensor] = {}
    handles = []
    for layer in layers:
        num_layers = len(_layer_features(config, layer))
        module = _layer_module(network, layer)

        def keep(output: torch.Tensor, layer: FeatureLayer = layer) -> None:
            captured[layer] = output.detach()

        if layer.pathway == "fc":
            handles.append(module.register_forward_hook(lambda m, a, out, k=keep: k(out)))
            continue
        if layer.index + 1 < num_layers:  # the next layer's input is this layer's output
            hook: Callable[..., None] = lambda m, args, k=keep: k(args[0])  # noqa: E731
            after = module.get_submodule(f"layers.{layer.index + 1}")
            handles.append(after.register_forward_pre_hook(hook))
        else:
            handles.append(module.register_forward_hook(lambda m, a, out, k=keep: k(out)))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _to_output_grid(
    features: torch.Tensor,
    layer: FeatureLayer,
    config: DeepMedicConfig,
    request: Triple,
    margin: Triple,
    tile: Triple,
) -> torch.Tensor:
    """Crop (and upsample) a captured B×F×… feature map to the tile's B×F×tile output voxels."""
    if layer.pathway != "fc":
        path: PathwayConfig = dict(config.pathways())[layer.pathway]
        rest = [1 + sum(k[a] - 1 for k in path.kernels[layer.index + 1 :]) for a in range(3)]
        shapes = segment_shapes(config, request)
        if layer.pathway == "normal":
            own = shapes.output
        else:
            own = shapes.subsampled_outputs[_sub_index(layer)]
        lo = [(r - 1) // 2 for r in rest]
        features = features[
            :, :, lo[0] : lo[0] + own[0], lo[1] : lo[1] + own[1], lo[2] : lo[2] + own[2]
        ]
        if layer.pathway != "normal":
            factor = config.subsampled[_sub_index(layer)].factor
            for axis, f in enumerate(factor):
                features = features.repeat_interleave(f, dim=axis + 2)
            off = [(m * f - n) // 2 for m, f, n in zip(own, factor, request)]
            features = features[
                :,
                :,
                off[0] : off[0] + request[0],
                off[1] : off[1] + request[1],
                off[2] : off[2] + request[2],
            ]
    return _crop_margin(features, margin, tile)


def _crop_margin(x: torch.Tensor, margin: Triple, tile: Triple) -> torch.Tensor:
    """The central B×F×tile part of a B×F×(tile + 2 margin) tensor."""
    m = margin
    return x[:, :, m[0] : m[0] + tile[0], m[1] : m[1] + tile[1], m[2] : m[2] + tile[2]]


def _place(target: torch.Tensor | np.ndarray, values: torch.Tensor, start: Triple) -> None:
    """Write a F×tile block at ``start`` into a F×Z×Y×X target, cutting what lies outside."""
    shape = target.shape[1:]
    n = [min(int(t), int(s) - o) for t, s, o in zip(values.shape[1:], shape, start)]
    z, y, x = start
    block = values[:, : n[0], : n[1], : n[2]]
    if isinstance(target, np.ndarray):
        target[:, z : z + n[0], y : y + n[1], x : x + n[2]] = block.float().cpu().numpy()
    else:
        target[:, z : z + n[0], y : y + n[1], x : x + n[2]] = block.to(target.device, torch.float32)


def _tiled_pass(
    network: nn.Module,
    volume: np.ndarray,
    config: DeepMedicConfig,
    tile: Triple,
    *,
    batch_size: int,
    device: torch.device,
    accumulate_device: torch.device,
    amp: bool,
    features: dict[FeatureLayer, np.ndarray],
) -> torch.Tensor:
    """Logits K×Z×Y×X of one (unflipped) volume, tile by tile."""
    margin = fc_margin(config)
    request: Triple = (
        tile[0] + 2 * margin[0],
        tile[1] + 2 * margin[1],
        tile[2] + 2 * margin[2],
    )
    out = torch.empty(
        (config.num_classes, *volume.shape[1:]), dtype=torch.float32, device=accumulate_device
    )
    starts = tile_starts(volume.shape[1:], tile)
    layers = tuple(features)
    autocast = autocast_context(amp, device.type)
    with _capture(network, config, layers) as captured, torch.inference_mode():
        for first in range(0, len(starts), batch_size):
            batch_starts = starts[first : first + batch_size]
            per_tile = [
                extract_pathway_inputs(
                    volume, tuple(s - m for s, m in zip(start, margin)), request, config
                )
                for start in batch_starts
            ]
            inputs = [
                torch.from_numpy(np.stack([t[p] for t in per_tile])).to(device)
                for p in range(1 + len(config.subsampled))
            ]
            with autocast:
                logits = network(inputs)
            logits = _crop_margin(logits, margin, tile)
            grids = {
                layer: _to_output_grid(captured[layer], layer, config, request, margin, tile)
                for layer in layers
            }
            for i, start in enumerate(batch_starts):
                _place(out, logits[i], start)
                for layer, grid in grids.items():
                    _place(features[layer], grid[i], start)
    return out


def predict_deepmedic(
    network: nn.Module,
    image: np.ndarray,
    config: DeepMedicConfig,
    tile_shape: Sequence[int],
    *,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    accumulate_device: torch.device | str = "cpu",
    amp: bool = False,
    mirror_axes: Sequence[int] | None = None,
    feature_layers: Sequence[FeatureLayer] = (),
) -> tuple[torch.Tensor, dict[FeatureLayer, np.ndarray]]:
    """Predict a whole preprocessed volume with a DeepMedic network, tile by tile.

    Args:
        network: A :class:`~autoseg.networks.deepmedic.DeepMedic` in eval mode on ``device``.
        image: Preprocessed image C×Z×Y×X (float32).
        config: The network's configuration.
        tile_shape: Output voxels per tile (Z, Y, X); each a multiple of
            :func:`tile_lattice` (use :func:`tile_output_shape`). The largest tile used:
            it shrinks to :func:`balanced_tile` for the volume.
        batch_size: Tiles per forward pass, >= 1.
        device: Device running the network.
        accumulate_device: Device of the stitched logits.
        amp: Run the network under ``torch.autocast`` for ``device``.
        mirror_axes: Spatial axes (0 = Z, 1 = Y, 2 = X) to mirror the whole volume along
            (every combination is predicted and averaged); None or () for no mirroring.
        feature_layers: Layers whose feature maps to record (of the unmirrored pass).

    Returns:
        ``(logits, features)``: float32 logits K×Z×Y×X on ``accumulate_device`` (the mean
        over mirrors), and per recorded layer its float32 F×Z×Y×X feature maps on the same
        grid (subsampled pathways upsampled by repeating each voxel ``factor`` times).

    Raises:
        ConfigError: if the tile shape is not on the lattice, or a feature layer is unknown.
    """
    tile: Triple = tuple(int(v) for v in tile_shape)  # type: ignore[assignment]
    lattice = tile_lattice(config)
    if len(tile) != 3 or any(t < 1 or t % lat for t, lat in zip(tile, lattice)):
        raise ConfigError(
            f"DeepMedic tile shape must be positive multiples of the lattice {list(lattice)} "
            f"(least common multiple of the subsampling factors), got {list(tile_shape)}"
        )
    if batch_size < 1:
        raise ConfigError(f"tile batch size must be >= 1, got {batch_size=}")
    if image.ndim != 4 or image.shape[0] != config.in_channels:
        raise ValueError(
            f"image must be C×Z×Y×X with C = {config.in_channels}, got shape {image.shape}"
        )
    volume = np.ascontiguousarray(image, dtype=np.float32)
    tile = balanced_tile(volume.shape[1:], tile, lattice)
    features = {
        layer: np.zeros(
            (_layer_features(config, layer)[layer.index], *volume.shape[1:]), dtype=np.float32
        )
        for layer in feature_layers
    }
    combos = mirror_combinations(mirror_axes) if mirror_axes else [()]
    total: torch.Tensor | None = None
    logger.debug("deepmedic: tiles %s over %s, %d mirror(s)", tile, volume.shape[1:], len(combos))
    for combo in combos:
        flipped = (
            np.ascontiguousarray(np.flip(volume, tuple(a + 1 for a in combo))) if combo else volume
        )
        logits = _tiled_pass(
            network,
            flipped,
            config,
            tile,
            batch_size=batch_size,
            device=torch.device(device),
            accumulate_device=torch.device(accumulate_device),
            amp=amp,
            features=features if not combo else {},
        )
        if combo:
            logits = torch.flip(logits, [a + 1 for a in combo])
        total = logits if total is None else total.add_(logits)
    assert total is not None  # combos is never empty
    return total.div_(len(combos)), features


def _layer_features(config: DeepMedicConfig, layer: FeatureLayer) -> tuple[int, ...]:
    """Feature maps of every layer of the layer's pathway, checking that the layer exists.

    Raises:
        ConfigError: for an unknown pathway or a layer index out of range.
    """
    pathways = dict(config.pathways())
    if layer.pathway == "fc":
        features = config.fc_features
    elif layer.pathway in pathways:
        features = pathways[layer.pathway].features
    else:
        choices = ", ".join([*pathways, "fc"])
        raise ConfigError(f"no DeepMedic pathway {layer.pathway!r}; choose from {choices}")
    if not 0 <= layer.index < len(features):
        raise ConfigError(
            f"DeepMedic pathway {layer.pathway!r} has layers 0..{len(features) - 1}, "
            f"got {layer.index}"
        )
    return features
