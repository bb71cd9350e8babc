"""Random-forest pixel classifier baseline (ilastik-style features, scikit-learn forest).

Submodules: :mod:`~lapseg.baseline.features` (per-pixel features, tiled),
:mod:`~lapseg.baseline.forest` (train / predict / save / load) and
:mod:`~lapseg.baseline.pipeline` (dataset folder in, ``lapseg predict`` layout out); the settings
are the ``baseline`` section of :mod:`lapseg.config`. Import the submodules directly (they load
scikit-learn).
"""
