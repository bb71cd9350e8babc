"""The napari dock widgets *Segment* and *Train* (magicgui; needs ``lapseg[napari]``).

Thin by design: a widget reads its fields and the chosen layers on the GUI thread, hands plain
arrays to a background job (napari's thread worker) that calls the pure functions of
:mod:`lapseg.napari.segment` and :mod:`lapseg.napari.train`, and adds the layer data tuples of
:func:`lapseg.napari.layers.result_layers` when the job returns. Progress messages travel from
the worker to the GUI thread through a queue that a timer drains, so no widget is touched from
the worker thread; Cancel sets a flag the job checks after every frame and every epoch.
"""

from __future__ import annotations

from lapseg.napari.panel import add_layers
from lapseg.napari.segment_widget import SegmentWidget
from lapseg.napari.train_widget import TrainWidget

__all__ = ["SegmentWidget", "TrainWidget", "add_layers"]
