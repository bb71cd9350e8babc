"""What the user's masks are, and therefore what the network learns: the task.

lapseg needs no flag to tell instance label images from binary masks: :func:`survey_masks`
looks at the masks (a sample of them) and :func:`resolve_task` turns what it saw into explicit
settings (mask kind, target representation, output channels), written into the run's
configuration so that prediction does the same. Every decision is returned with its reason, for
the run's log and ``run.json``; an explicit ``data.task`` / ``data.mask_kind`` wins.

Rules (masks that are empty are skipped: unannotated frames of a movie, for example):

- binary: every mask holds at most two values, {0, 1}, {0, 255} or bool;
- instance labels: other integer masks whose objects are mostly one connected piece each
  (at least 80 % of the (mask, label) pairs);
- class maps: the rest (a class value covers several separate regions of an image).

The survey also reads one annotation convention off instance masks: whether objects touching
the image border are annotated. Some annotators leave them out (the Cell Tracking Challenge's
PhC-C2DL-PSC truth: 14 of 2,274 objects touch the border where about 225 would if cells were
annotated wherever they are); a network trained on patches cannot learn that rule, so with
``postprocess.remove_border: auto`` the run drops border objects from its predictions exactly
when its training masks do (:func:`border_convention`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lapseg.config import INSTANCE_TARGETS, TARGET_OUTPUTS, LapsegConfig
from lapseg.errors import LapsegInputError
from lapseg.losses.modules import LOSSES

__all__ = [
    "MaskSurvey",
    "TaskDecision",
    "border_convention",
    "border_statistics",
    "resolve_task",
    "survey_masks",
]

_SINGLE_PIECE_FRACTION = 0.8
_EIGHT = ndimage.generate_binary_structure(2, 2)
_BORDER_RATIO = 0.15
"""Border objects are taken as left out when fewer than this fraction of the expected number
touch the border (measured: 0.06 on PSC silver truth; 0.32-0.56 on DIC-HeLa, 0.36 on
Usiigaci, whose annotators kept border cells)."""
_BORDER_EVIDENCE = 20.0
"""Fewest expected border objects needed to decide (fewer: border objects are kept)."""


@dataclass(frozen=True)
class MaskSurvey:
    """What a sample of masks looks like.

    Attributes
    ----------
    kind : {"binary", "instance", "classes"}
        The detected mask kind.
    n_masks : int
        Masks looked at (empty ones included).
    n_empty : int
        Masks without any foreground.
    max_value : int
        Largest value in any mask.
    objects_per_mask : (int, int)
        Fewest and most distinct nonzero values in a non-empty mask.
    single_piece_fraction : float
        Fraction of (mask, value) pairs whose pixels form one connected piece.
    reason : str
        One sentence saying why ``kind`` was chosen.
    n_objects, border_objects : int
        Objects (nonzero values) in the non-empty masks, and how many touch the image border.
    expected_border_objects : float
        How many would touch it if objects were annotated wherever they lie
        (:func:`border_statistics`).
    """

    kind: str
    n_masks: int
    n_empty: int
    max_value: int
    objects_per_mask: tuple[int, int]
    single_piece_fraction: float
    reason: str
    n_objects: int = 0
    border_objects: int = 0
    expected_border_objects: float = 0.0


def border_statistics(
    mask: np.ndarray, boxes: list[tuple[slice, ...] | None] | None = None
) -> tuple[int, int, float]:
    """Objects of one label image, how many touch its border, and how many would be expected to.

    An object whose bounding box is ``h x w`` in an ``H x W`` image, placed anywhere it
    overlaps the field of view (top-left corner uniform over ``-h+1 .. H-1``), stays clear of
    the border with probability ``(H-h-1)/(H+h-1) * (W-w-1)/(W+w-1)``; the expected count sums
    the complement over the objects.

    Parameters
    ----------
    mask : (Y, X) integer ndarray
        0 = background, objects labelled by positive values.
    boxes : list, optional
        ``scipy.ndimage.find_objects(mask)`` when the caller has it already.

    Returns
    -------
    (n_objects, touching, expected) : (int, int, float)

    Examples
    --------
    >>> mask = np.zeros((100, 100), int)
    >>> mask[0:10, 40:50] = 1; mask[45:55, 45:55] = 2
    >>> n, touching, expected = border_statistics(mask)
    >>> n, touching, round(expected, 2)
    (2, 1, 0.67)
    """
    height, width = mask.shape
    n = touching = 0
    expected = 0.0
    if boxes is None:
        boxes = ndimage.find_objects(np.asarray(mask, dtype=np.int64))
    for box in boxes:
        if box is None:
            continue
        rows, cols = box
        h, w = rows.stop - rows.start, cols.stop - cols.start
        n += 1
        touching += rows.start == 0 or cols.start == 0 or rows.stop == height or cols.stop == width
        clear_y = max(height - h - 1, 0) / (height + h - 1)
        clear_x = max(width - w - 1, 0) / (width + w - 1)
        expected += 1.0 - clear_y * clear_x
    return n, int(touching), expected


def border_convention(survey: MaskSurvey) -> tuple[bool, str]:
    """Whether the surveyed masks leave out objects touching the image border, and why.

    Left out when fewer than 15 % of the expected number touch it, with at least 20 expected
    (fewer objects are no evidence either way: border objects are kept).

    Examples
    --------
    >>> base = MaskSurvey("instance", 16, 0, 200, (100, 200), 1.0, "", 2274, 14, 224.7)
    >>> border_convention(base)[0]
    True
    >>> border_convention(MaskSurvey("instance", 16, 0, 80, (5, 12), 1.0, "", 165, 33, 103.1))[0]
    False
    """
    counted = (
        f"{survey.border_objects} of {survey.n_objects} annotated objects touch the image "
        f"border where about {survey.expected_border_objects:.0f} would"
    )
    if survey.expected_border_objects < _BORDER_EVIDENCE:
        return False, f"{counted}: too few to tell, border objects are kept"
    if survey.border_objects < _BORDER_RATIO * survey.expected_border_objects:
        return True, f"{counted}: the annotations leave them out, so predictions drop them too"
    return False, f"{counted}: border objects are annotated and kept"


def survey_masks(masks: Iterable[np.ndarray]) -> MaskSurvey:
    """Detect the kind of ``masks`` (each a ``(Y, X)`` integer or bool array).

    Raises
    ------
    LapsegInputError
        No mask, or every mask is empty (nothing to learn from).
    """
    n_masks = n_empty = max_value = 0
    counts: list[int] = []
    single = total = 0
    n_objects = border_objects = 0
    expected_border = 0.0
    binary = True
    for mask in masks:
        n_masks += 1
        values = np.unique(mask)
        values = values[values != 0]
        if values.size == 0:
            n_empty += 1
            continue
        max_value = max(max_value, int(values.max()))
        counts.append(int(values.size))
        binary &= (
            mask.dtype == np.bool_ or set(values.tolist()) <= {1} or set(values.tolist()) <= {255}
        )
        boxes = ndimage.find_objects(np.asarray(mask, dtype=np.int64))
        objects, touching, expected = border_statistics(mask, boxes)
        n_objects, border_objects = n_objects + objects, border_objects + touching
        expected_border += expected
        for value in values[:256]:  # a few hundred labels decide it; huge images stay cheap
            box = boxes[int(value) - 1]
            _, pieces = ndimage.label(mask[box] == value, structure=_EIGHT)
            single += pieces == 1
            total += 1
    if n_masks == 0:
        raise LapsegInputError("no masks to learn from")
    if not counts:
        raise LapsegInputError(f"all {n_masks} mask(s) are empty: nothing to learn from")
    fraction = single / max(total, 1)
    spread = (min(counts), max(counts))
    if binary:
        kind, reason = "binary", "every mask holds one foreground value (0/1, 0/255 or bool)"
    elif fraction >= _SINGLE_PIECE_FRACTION:
        kind = "instance"
        reason = (
            f"{spread[0]}-{spread[1]} labels per mask, {fraction:.0%} of them one connected "
            "object each: instance label images"
        )
    else:
        kind = "classes"
        reason = (
            f"values up to {max_value}, only {fraction:.0%} of them one connected region: "
            "class-index images"
        )
    return MaskSurvey(
        kind,
        n_masks,
        n_empty,
        max_value,
        spread,
        fraction,
        reason,
        n_objects,
        border_objects,
        expected_border,
    )


@dataclass(frozen=True)
class TaskDecision:
    """The resolved task and how it was decided (for the log and ``run.json``)."""

    task: str
    mask_kind: str
    target: str
    out_channels: int
    reason: str
    border_weights: bool = False
    remove_border: bool = False
    border_reason: str = ""
    """Why ``postprocess.remove_border`` was set as it was ("" when it was set explicitly)."""

    def summary(self) -> str:
        """One line for the log."""
        weighted = ", weighted by the border weight map" if self.border_weights else ""
        border = f"; border objects: {self.border_reason}" if self.border_reason else ""
        return (
            f"task {self.task} ({self.reason}); the network learns the {self.target} target "
            f"with {self.out_channels} output channel(s){weighted}{border}"
        )


_KIND_OF_TASK = {"instances": "instance", "binary": "binary", "semantic": "classes"}
_TASK_OF_KIND = {kind: task for task, kind in _KIND_OF_TASK.items()}


def resolve_task(
    config: LapsegConfig, survey: MaskSurvey | None
) -> tuple[LapsegConfig, TaskDecision]:
    """Fill the configuration's automatic settings from the masks.

    ``data.task`` (or an explicit ``data.mask_kind``) wins over the survey; ``data.target`` and
    ``model.out_channels`` follow the task unless they are set (by the user or the model
    preset). Without a survey (a trained model's stored configuration), an automatic task
    follows from the target and output channels.

    Returns
    -------
    config : LapsegConfig
        With explicit ``data.task``, ``data.mask_kind``, ``data.target``, ``model.out_channels``,
        ``loss.border_weights`` (``auto``: on for the 3-class target) and
        ``postprocess.remove_border`` (``auto``: as the surveyed instance masks do,
        :func:`border_convention`; off without a survey).
    decision : TaskDecision
    """
    data = config.data
    task: str
    kind: str
    if data.task != "auto":
        task, reason = data.task, "data.task set in the configuration"
        kind = data.mask_kind if data.mask_kind != "auto" else _KIND_OF_TASK[task]
    elif data.mask_kind != "auto":
        kind, reason = data.mask_kind, "data.mask_kind set in the configuration"
        task = _TASK_OF_KIND[kind]
    elif survey is not None:
        kind, task = survey.kind, _TASK_OF_KIND[survey.kind]
        reason = f"{survey.n_masks} mask(s) looked at: {survey.reason}"
    else:  # a trained model without a recorded task: what it outputs says what it learnt
        outputs = config.model.out_channels
        if data.target in INSTANCE_TARGETS:
            task = "instances"
        elif outputs is not None and outputs > 2:
            task = "semantic"
        else:
            task = "binary"
        kind, reason = _KIND_OF_TASK[task], "from the model's target and output channels"
    target: str = data.target
    if target == "auto":
        target = INSTANCE_TARGETS[0] if task == "instances" else "binary"
    if task != "instances" and target in INSTANCE_TARGETS:
        raise LapsegInputError(f"data.target={target} needs instance masks, but the task is {task}")
    out_channels = config.model.out_channels
    if out_channels is None:
        out_channels = _channels(target, task, survey)
    elif target in TARGET_OUTPUTS and out_channels != TARGET_OUTPUTS[target]:
        raise LapsegInputError(
            f"data.target={target} needs model.out_channels={TARGET_OUTPUTS[target]} "
            f"(got {out_channels})"
        )
    border_weights = config.loss.border_weights
    if border_weights == "auto":  # a loss without a pixel-wise term cannot use the map
        border_weights = target == "three_class" and LOSSES[config.loss.name].supports_pixel_weights
    remove_border, border_reason = _remove_border(config, task, survey)
    resolved = config.replace(
        data=data.replace(task=task, mask_kind=kind, target=target),
        model=config.model.replace(out_channels=out_channels),
        loss=config.loss.replace(border_weights=border_weights),
        postprocess=config.postprocess.replace(remove_border=remove_border),
    )
    decision = TaskDecision(
        task,
        kind,
        target,
        out_channels,
        reason,
        bool(border_weights),
        remove_border,
        border_reason,
    )
    return resolved, decision


def _remove_border(config: LapsegConfig, task: str, survey: MaskSurvey | None) -> tuple[bool, str]:
    """``postprocess.remove_border`` resolved, and why (empty when set explicitly)."""
    setting = config.postprocess.remove_border
    if setting != "auto":
        return bool(setting), ""
    if task != "instances":
        return False, ""
    if survey is None or survey.kind != "instance":
        return False, "kept (no instance masks surveyed to tell the annotation convention)"
    return border_convention(survey)


def _channels(target: str, task: str, survey: MaskSurvey | None) -> int:
    if target in TARGET_OUTPUTS:
        return TARGET_OUTPUTS[target]
    if task == "semantic":
        if survey is None:
            raise LapsegInputError(
                "semantic masks need model.out_channels (the number of classes incl. background)"
            )
        return survey.max_value + 1
    return 1
