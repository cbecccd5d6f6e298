"""autoseg: self-configuring 3D medical image segmentation (DeepMedic and deep-supervised U-Net)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
