"""Random-forest pixel classifier baseline (ilastik-style features, scikit-learn forest).

Submodules: :mod:`~lapseg.baseline.settings` (``BaselineConfig``, no heavy imports),
:mod:`~lapseg.baseline.features` (per-pixel features, tiled), :mod:`~lapseg.baseline.forest`
(train / predict / save / load) and :mod:`~lapseg.baseline.pipeline` (dataset folder in,
``lapseg predict`` layout out). Import those directly; this package imports only the settings so
that :mod:`lapseg.config` can use them.
"""

from __future__ import annotations

from lapseg.baseline.settings import DEFAULT_SIGMAS, BaselineConfig

__all__ = ["DEFAULT_SIGMAS", "BaselineConfig"]
