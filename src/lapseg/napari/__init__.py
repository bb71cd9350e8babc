"""The napari plugin (``pip install 'lapseg[napari]'``, docs/napari.md).

- :mod:`lapseg.napari.layers`: layer data <-> lapseg arrays (axes, frames, result layers);
- :mod:`lapseg.napari.segment`: segment a layer's frames with lapseg's prediction path;
- :mod:`lapseg.napari.train`: layers -> a dataset ``lapseg train`` reads -> ``fit``;
- :mod:`lapseg.napari.curves`: the live learning curve (matplotlib);
- :mod:`lapseg.napari.reader`: the reader for run and prediction folders;
- :mod:`lapseg.napari.widgets`: the Segment and Train dock widgets (needs Qt; the only module
  that imports napari, magicgui or Qt).

The manifest ``napari.yaml`` beside these modules names the widgets and the reader for napari.
"""
