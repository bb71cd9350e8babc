"""The pixel size of a TIFF file, in micrometres, from OME metadata or ImageJ resolution tags."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import tifffile

from lapseg.errors import LapsegInputError

__all__ = ["tiff_pixel_size"]

# Length units of OME PhysicalSize*, as factors to micrometres.
_UNIT_TO_MICROMETRE: dict[str, float] = {
    "m": 1e6,
    "cm": 1e4,
    "mm": 1e3,
    "µm": 1.0,
    "μm": 1.0,  # Greek mu
    "um": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "nm": 1e-3,
    "pm": 1e-6,
    "Å": 1e-4,
}


def _to_micrometre(value: str | float, unit: str | None, path: Path) -> float:
    size = float(value)
    factor = _UNIT_TO_MICROMETRE.get(unit or "µm")
    if factor is None:
        raise LapsegInputError(f"unknown pixel size unit {unit!r} in OME metadata", path=path)
    if not np.isfinite(size) or size <= 0:
        raise LapsegInputError(f"invalid pixel size {value!r} in metadata", path=path)
    return size * factor


def _ome_pixel_size(xml_text: str, path: Path) -> tuple[float, float] | None:
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise LapsegInputError(f"corrupt OME metadata ({exc})", path=path) from exc
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    x = _to_micrometre(pixels.attrib["PhysicalSizeX"], pixels.get("PhysicalSizeXUnit"), path)
    y_value = pixels.get("PhysicalSizeY", pixels.attrib["PhysicalSizeX"])
    y = _to_micrometre(y_value, pixels.get("PhysicalSizeYUnit"), path)
    return (y, x)


def _resolution_pixel_size(tif: tifffile.TiffFile) -> tuple[float, float] | None:
    """Pixel size from ImageJ's unit plus the TIFF resolution tags, micrometre units only."""
    unit = (tif.imagej_metadata or {}).get("unit")
    if not isinstance(unit, str) or unit.replace("\\u00B5", "µ") not in {
        "micron",
        "microns",
        "um",
        "µm",
        "μm",
    }:
        return None
    page = tif.pages.first
    if not isinstance(page, tifffile.TiffPage):
        return None
    tags = page.tags
    sizes = []
    for name in ("YResolution", "XResolution"):
        tag = tags.get(name)
        if tag is None:
            return None
        numerator, denominator = tag.value
        if numerator <= 0 or denominator <= 0:
            return None
        sizes.append(denominator / numerator)  # tags hold pixels per unit
    return (sizes[0], sizes[1])


def tiff_pixel_size(tif: tifffile.TiffFile, path: Path) -> tuple[float, float] | None:
    """``(y, x)`` pixel size in micrometres of an open TIFF (OME or resolution tags), or None."""
    if tif.is_ome:
        return _ome_pixel_size(tif.ome_metadata or "", path)
    return _resolution_pixel_size(tif)
