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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lapseg.config import INSTANCE_TARGETS, LapsegConfig
from lapseg.errors import LapsegInputError
from lapseg.losses.modules import LOSSES

__all__ = ["MaskSurvey", "TaskDecision", "resolve_task", "survey_masks"]

_SINGLE_PIECE_FRACTION = 0.8
_EIGHT = ndimage.generate_binary_structure(2, 2)


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
    """

    kind: str
    n_masks: int
    n_empty: int
    max_value: int
    objects_per_mask: tuple[int, int]
    single_piece_fraction: float
    reason: str


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
    return MaskSurvey(kind, n_masks, n_empty, max_value, spread, fraction, reason)


@dataclass(frozen=True)
class TaskDecision:
    """The resolved task and how it was decided (for the log and ``run.json``)."""

    task: str
    mask_kind: str
    target: str
    out_channels: int
    reason: str
    border_weights: bool = False

    def summary(self) -> str:
        """One line for the log."""
        weighted = ", weighted by the border weight map" if self.border_weights else ""
        return (
            f"task {self.task} ({self.reason}); the network learns the {self.target} target "
            f"with {self.out_channels} output channel(s){weighted}"
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
        With explicit ``data.task``, ``data.mask_kind``, ``data.target``, ``model.out_channels``
        and ``loss.border_weights`` (``auto``: on for the 3-class target).
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
    elif target == "three_class" and out_channels != 3:
        raise LapsegInputError(
            f"data.target=three_class needs model.out_channels=3 (got {out_channels})"
        )
    border_weights = config.loss.border_weights
    if border_weights == "auto":  # a loss without a pixel-wise term cannot use the map
        border_weights = target == "three_class" and LOSSES[config.loss.name].supports_pixel_weights
    resolved = config.replace(
        data=data.replace(task=task, mask_kind=kind, target=target),
        model=config.model.replace(out_channels=out_channels),
        loss=config.loss.replace(border_weights=border_weights),
    )
    return resolved, TaskDecision(task, kind, target, out_channels, reason, bool(border_weights))


def _channels(target: str, task: str, survey: MaskSurvey | None) -> int:
    if target == "three_class":
        return 3
    if task == "semantic":
        if survey is None:
            raise LapsegInputError(
                "semantic masks need model.out_channels (the number of classes incl. background)"
            )
        return survey.max_value + 1
    return 1
