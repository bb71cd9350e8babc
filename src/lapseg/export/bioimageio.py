"""A trained run as a bioimage.io model package (spec 0.5): Fiji/deepImageJ, ilastik, QuPath,
napari and every other bioimage.io consumer can run it.

The package holds TorchScript and ONNX weights of the BatchNorm-folded network, the run's
normalisation as the input's ``preprocessing`` (``scale_range`` per image and channel with the
stored percentiles; ``fixed_zero_mean_unit_variance`` with the stored per-channel mean and std;
both, in that order, for ``percentile+meanstd``), class probabilities as the output (``sigmoid``
or ``softmax`` over the channel axis as ``postprocessing``), test tensors made from a real image
(a crop of it and lapseg's own prediction of the crop), a cover, a README and citations. The
package is validated by ``bioimageio.spec`` as it is written; ``bioimageio.core``'s
``test_model`` reproduces the test outputs from the test inputs with both weight formats.

What the spec cannot express is refused (``data.resize``, ``data.crop_or_pad``, temporal median
background subtraction) or stated in the README (the instance post-processing; lapseg's
percentile subsampling of very large images). The package names no URL and no GitHub user, so
it validates offline.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lapseg import __version__
from lapseg.data.normalization import apply_normalization
from lapseg.data.targets import REGRESSION_CHANNELS
from lapseg.errors import LapsegInputError, optional_import
from lapseg.export.bioimageio_nodes import (
    INPUT_ID,
    OUTPUT_ID,
    input_description,
    lapseg_config,
    output_description,
    package_identity,
    weights_description,
)
from lapseg.export.documentation import (
    UNET_CITATION,
    UNET_DOI,
    PackageFacts,
    readme_text,
    write_cover,
)
from lapseg.export.networks import (
    ExportSource,
    check_output_path,
    load_export_source,
    writable,
    write_onnx,
    write_torchscript,
)
from lapseg.inference.engines import torch_predictor
from lapseg.inference.instances import instances_from_probabilities
from lapseg.inference.outputs import probabilities_from_logits
from lapseg.inference.predict import LoadedModel, model_mask, predict_probabilities
from lapseg.io.images import read_image, write_tiff

__all__ = ["MAX_TEST_SIZE", "export_bioimageio", "output_channel_names"]

MAX_TEST_SIZE = 256
"""The test tensors are a centre crop of at most this many pixels per axis."""


def _spec() -> Any:
    return optional_import("bioimageio.spec", extra="bioimageio", purpose="bioimage.io export")


def output_channel_names(target: str, channels: int) -> list[str]:
    """Names of the output channels: what each probability is of."""
    if target == "three_class" and channels == 3:
        return ["background", "interior", "boundary"]
    if channels == 1:
        return ["foreground"]
    if channels == 2:
        return ["background", "foreground"]
    return [f"class{k}" for k in range(channels)]


def _check_expressible(source: ExportSource) -> None:
    config = source.config
    if config.data.target in REGRESSION_CHANNELS:
        raise LapsegInputError(
            f"data.target={config.data.target} mixes softmax classes with regressed maps, which "
            "one bioimage.io postprocessing step cannot express; export ONNX or TorchScript "
            "instead",
            path=source.checkpoint_path,
        )
    for key in ("resize", "crop_or_pad"):
        if getattr(config.data, key) is not None:
            raise LapsegInputError(
                f"data.{key} is set: bioimage.io has no preprocessing step that resizes or "
                "crops to a fixed size; export ONNX or TorchScript instead",
                path=source.checkpoint_path,
            )
    if config.temporal.background != "none":
        raise LapsegInputError(
            "temporal.background=median needs the whole sequence, which a bioimage.io model "
            "does not see; export ONNX or TorchScript instead",
            path=source.checkpoint_path,
        )
    stats = source.stats
    if stats.mean_image is not None:
        raise LapsegInputError(
            "bioimage.io has no preprocessing that subtracts a mean image "
            "(normalization.mode=mean-image); export ONNX or TorchScript instead",
            path=source.checkpoint_path,
        )
    if stats.mode.startswith("percentile") and stats.high_percentile <= 1.0:
        raise LapsegInputError(
            "bioimage.io scale_range needs a high percentile above 1, got "
            f"{stats.high_percentile:g}",
            path=source.checkpoint_path,
        )


def _halo(source: ExportSource) -> int:
    """Half of lapseg's own tile overlap; 0 for valid convolutions (no zero-padded border)."""
    if source.output_margin:
        return 0
    predict = source.config.predict
    return int(predict.overlap * min(predict.tile_size) / 2)


def _min_input_size(source: ExportSource, halo: int) -> int:
    return source.network.valid_input_size(2 * halo + 1)


def _crop_size(length: int, source: ExportSource, minimum: int, path: Path) -> int:
    step = source.size_multiple
    n = minimum + (min(length, MAX_TEST_SIZE) - minimum) // step * step
    if n < minimum or length < minimum:
        raise LapsegInputError(
            f"the sample image must be at least {minimum} x {minimum} px for this model, "
            f"its size is {length} px along one axis",
            path=path,
        )
    return n


def _loaded(source: ExportSource) -> LoadedModel:
    checkpoint = source.checkpoint
    return LoadedModel(
        model=source.network,
        config=source.config,
        stats=source.stats,
        threshold=float(checkpoint.get("threshold", source.config.predict.threshold)),
        path=source.checkpoint_path,
        device=torch.device("cpu"),
        predictor=torch_predictor(source.network),
        object_area=checkpoint.get("object_area"),
    )


@torch.inference_mode()
def _test_tensors(
    loaded: LoadedModel, source: ExportSource, image: np.ndarray, minimum: int, *, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """A centre crop ``(1, C, Y, X)`` of ``image`` and lapseg's probabilities of it.

    'same' padding: :func:`~lapseg.inference.predict.predict_probabilities` with one tile the
    size of the crop, which is the network applied to the whole crop. 'valid' padding: the
    network on the normalised crop (the output is ``2 * margin`` smaller, as the package says).
    """
    sizes = [_crop_size(n, source, minimum, path) for n in image.shape[-2:]]
    starts = [(n - s) // 2 for n, s in zip(image.shape[-2:], sizes, strict=True)]
    crop = np.ascontiguousarray(
        image[:, starts[0] : starts[0] + sizes[0], starts[1] : starts[1] + sizes[1]],
        dtype=np.float32,
    )
    if source.output_margin:
        tensor = torch.from_numpy(apply_normalization(crop, source.stats))[None]
        prob = probabilities_from_logits(source.network(tensor)[0]).numpy()
    else:
        settings = source.config.predict.replace(tile_size=tuple(sizes))
        prob = predict_probabilities([loaded], crop, predict=settings)
    return crop[None], np.ascontiguousarray(prob[None], dtype=np.float32)


def _labels_for_cover(loaded: LoadedModel, prob: np.ndarray) -> np.ndarray:
    config = loaded.config
    if config.data.task == "instances":
        method = config.predict.threshold_method
        threshold = loaded.threshold if method == "tuned" else config.predict.threshold
        return instances_from_probabilities(
            prob, config.postprocess, threshold=threshold, object_area=loaded.object_area
        ).astype(np.int64)
    return np.asarray(model_mask(loaded, prob)).astype(np.int64)


def export_bioimageio(
    run: str | Path,
    out_zip: str | Path,
    *,
    sample_image: str | Path,
    name: str | None = None,
    authors: Sequence[str | Mapping[str, str]] | None = None,
    description: str | None = None,
    license: str = "MIT",
    tags: Sequence[str] = (),
) -> Path:
    """Write a run as a bioimage.io model package (a ``.zip``, spec 0.5), validated.

    Parameters
    ----------
    run : str or Path
        A run folder (its ``best.pt``) or a checkpoint file.
    out_zip : str or Path
        The ``.zip`` to write (atomically).
    sample_image : str or Path
        A real image of the run's data (read with the run's ``data.axes``); a centre crop of it
        (at most 256 px per axis) and lapseg's prediction of the crop become the test tensors,
        the sample tensors and the cover.
    name : str, optional
        Model name (5-128 letters, digits, spaces, ``_+-()``); default from the task.
    authors : sequence of str or mapping, optional
        Names, or mappings with ``name`` and optionally ``affiliation``, ``email``, ``orcid``.
    description : str, optional
        One or two sentences; default from the task and the normalisation.
    license : str, optional
        SPDX identifier, default ``"MIT"``.
    tags : sequence of str, optional
        Added to the automatic tags (``2d``, ``unet``, ``pytorch``, ``lapseg``, the task); add
        the bioimage.io modality and content tags (``fluorescence-light-microscopy``,
        ``cells``...) for your data.

    Returns
    -------
    Path
        ``out_zip``.

    Raises
    ------
    LapsegInputError
        Not a run, an unwritable output, a sample image that is too small or has the wrong
        channel count, a run whose preprocessing bioimage.io cannot express, or a package the
        validator rejects (the message gives its reason).
    """
    out = check_output_path(out_zip, (".zip",), "bioimage.io package")
    spec = _spec()
    m = optional_import("bioimageio.spec.model.v0_5", extra="bioimageio", purpose="bioimage.io")
    source = load_export_source(run)
    _check_expressible(source)
    identity = package_identity(
        m, source, name=name, authors=authors, description=description, license=license, tags=tags
    )
    image = read_image(sample_image, axes=source.config.data.axes).array
    if image.shape[0] != source.in_channels:
        raise LapsegInputError(
            f"sample image has {image.shape[0]} channel(s), the model expects {source.in_channels}",
            path=sample_image,
        )
    loaded = _loaded(source)
    halo = _halo(source)
    minimum = _min_input_size(source, halo)
    test_in, test_out = _test_tensors(loaded, source, image, minimum, path=Path(sample_image))
    channels = output_channel_names(source.config.data.target, test_out.shape[1])
    facts = PackageFacts(
        name=identity.name,
        config=source.config,
        stats=source.stats,
        threshold=loaded.threshold,
        object_area=loaded.object_area,
        checkpoint=source.checkpoint,
        run_info=_run_info(source.checkpoint_path),
        input_id=INPUT_ID,
        output_id=OUTPUT_ID,
        output_channels=tuple(channels),
        halo=halo,
        min_size=minimum,
        sample_name=Path(sample_image).name,
    )
    with tempfile.TemporaryDirectory(prefix="lapseg-bioimageio-") as tmp:
        folder = Path(tmp)
        _write_files(folder, source, loaded, (test_in, test_out), facts)
        try:
            descr = m.ModelDescr(
                **identity.fields(),
                cite=[m.CiteEntry(text=UNET_CITATION, doi=m.Doi(UNET_DOI))],
                documentation=m.FileDescr(source=folder / "README.md"),
                covers=[m.FileDescr(source=folder / "cover.png")],
                inputs=[input_description(m, source, folder, minimum)],
                outputs=[output_description(m, source, folder, channels, halo)],
                weights=weights_description(m, folder),
                config=m.Config(lapseg=lapseg_config(source)),
                version_comment=f"exported by lapseg {__version__}",
            )
        except ValueError as error:  # pydantic's ValidationError: a value the spec refuses
            raise LapsegInputError(f"bioimage.io refuses the package: {_first(error)}") from None
        with writable(out) as tmp_zip:
            try:
                spec.save_bioimageio_package(descr, output_path=tmp_zip)
            except ValueError as error:  # raised when the written package does not validate
                raise LapsegInputError(f"bioimage.io package is invalid: {_first(error)}") from None
    return out


def _first(error: Exception) -> str:
    """The first lines of a (pydantic) error as one line."""
    return " ".join(" ".join(str(error).strip().splitlines()[:3]).split())[:300]


def _write_files(
    folder: Path,
    source: ExportSource,
    loaded: LoadedModel,
    tests: tuple[np.ndarray, np.ndarray],
    facts: PackageFacts,
) -> None:
    """Weights, test and sample tensors, cover and README of the package into ``folder``."""
    test_in, test_out = tests
    write_torchscript(source, folder / "weights_torchscript.pt")
    write_onnx(source, folder / "weights.onnx")
    np.save(folder / "test_input.npy", test_in)
    np.save(folder / "test_output.npy", test_out)
    write_tiff(folder / "sample_input.tif", test_in[0], axes="CYX")
    write_tiff(folder / "sample_output.tif", test_out[0], axes="CYX")
    m = source.output_margin  # valid convolutions: the output is the input's centre
    shown = test_in[0][:, m : test_in.shape[2] - m, m : test_in.shape[3] - m]
    write_cover(folder / "cover.png", shown, _labels_for_cover(loaded, test_out[0]))
    (folder / "README.md").write_text(readme_text(facts), encoding="utf-8")


def _run_info(checkpoint_path: Path) -> dict[str, Any]:
    path = checkpoint_path.parent / "run.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
