"""lapseg: U-Net segmentation for microscopy images, stacks and time-lapse sequences."""

from lapseg.errors import LapsegInputError

__version__ = "0.1.0"

__all__ = ["LapsegInputError", "__version__"]
