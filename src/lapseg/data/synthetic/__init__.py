"""Synthetic microscopy images with instance labels, for the demo, tests and benchmarks.

An image is composed by small pure functions that later generators (time-lapse sequences with
moving or dividing cells) can reuse:

- :func:`random_cell` draws one cell shape (an ellipse with a smooth random radial perturbation);
  :func:`cell_distance` evaluates it on a pixel grid;
- :func:`place_cells` scatters cells, some of them in contact with another;
- :func:`render_labels` turns cells into a label partition (overlaps go to the nearer centre);
- :func:`render_cells` paints cytoplasm, texture, a darker nucleus, contact lines and a halo;
- :func:`debris_map` draws small, dark, sharp specks and fibres that are *not* cells;
- :func:`illumination_field` and :func:`add_noise` degrade the image like a real microscope.

:func:`synthetic_sample` combines them; :func:`synthetic_image` returns ``(image, labels)`` and
:func:`write_synthetic_dataset` writes a folder of TIFF pairs.

Modules: ``config`` (:class:`SyntheticConfig`), ``shapes`` (cells and their placement),
``render`` (labels, intensities, debris, illumination, noise) and ``dataset`` (one sample, and a
folder of samples written atomically). Every name is importable from this package.
"""

from lapseg.data.synthetic.config import SyntheticConfig
from lapseg.data.synthetic.dataset import (
    SyntheticSample,
    atomic_dataset_folder,
    synthetic_image,
    synthetic_sample,
    write_synthetic_dataset,
)
from lapseg.data.synthetic.dataset import _sample_names as _sample_names
from lapseg.data.synthetic.dataset import _to_dtype as _to_dtype
from lapseg.data.synthetic.render import (
    BACKGROUND_LEVEL,
    DEBRIS_LEVEL,
    add_noise,
    debris_map,
    illumination_field,
    render_cells,
    render_labels,
)
from lapseg.data.synthetic.shapes import (
    Cell,
    cell_boundary_radius,
    cell_distance,
    place_cells,
    random_cell,
)

__all__ = [
    "BACKGROUND_LEVEL",
    "DEBRIS_LEVEL",
    "Cell",
    "SyntheticConfig",
    "SyntheticSample",
    "add_noise",
    "atomic_dataset_folder",
    "cell_boundary_radius",
    "cell_distance",
    "debris_map",
    "illumination_field",
    "place_cells",
    "random_cell",
    "render_cells",
    "render_labels",
    "synthetic_image",
    "synthetic_sample",
    "write_synthetic_dataset",
]
