"""Curriculum learning (seed 002): augmentation stages entered as training progresses.

Stage 0 is the start of training: every transform not named by a curriculum stage is active.
Stage ``k`` adds the transforms of ``config.curriculum[k - 1]``. After each epoch the trainer
passes the epoch's history row to :meth:`CurriculumState.update`, which enters the next stage(s)
whose trigger fired; the stage used during an epoch is logged in that epoch's row as ``stage``,
and the learning-curve plot marks every change of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lapseg.config import AugmentationConfig, CurriculumStage, config_for_stage


def stage_triggered(stage: CurriculumStage, row: Mapping[str, Any]) -> bool:
    """Whether ``row`` (one epoch's history row) fires the trigger of ``stage``.

    ``after_epoch``: the row's ``"epoch"`` (epochs completed, 1-based) is ``>= after_epoch``.
    ``when_metric``: the row holds a finite value of it that is ``>= threshold`` (``<=`` when
    the metric name contains "loss"). A row without the metric (no validation that epoch)
    does not fire.
    """
    if stage.after_epoch is not None:
        if "epoch" not in row:
            raise ValueError("the history row has no 'epoch' value (needed by after_epoch)")
        if int(row["epoch"]) >= stage.after_epoch:
            return True
    if stage.when_metric is not None and stage.threshold is not None:
        value = row.get(stage.when_metric)
        if value is None:
            return False
        value = float(value)
        if not math.isfinite(value):
            return False
        if "loss" in stage.when_metric:
            return value <= stage.threshold
        return value >= stage.threshold
    return False


@dataclass
class CurriculumState:
    """Where a run is in its augmentation curriculum.

    Attributes
    ----------
    config : AugmentationConfig
        The full configuration (its ``curriculum`` defines the stages).
    stage : int
        Stages entered so far (0 .. ``len(config.curriculum)``).
    entered_at : list of int
        The history ``epoch`` after which each entered stage was entered.
    """

    config: AugmentationConfig
    stage: int = 0
    entered_at: list[int] = field(default_factory=list)

    @property
    def n_stages(self) -> int:
        """Number of curriculum stages (0 without a curriculum)."""
        return len(self.config.curriculum)

    @property
    def stage_name(self) -> str:
        """Name of the current stage ("start" before the first, ``stageK`` when unnamed)."""
        if self.stage == 0:
            return "start"
        return self.config.curriculum[self.stage - 1].name or f"stage{self.stage}"

    def active_config(self) -> AugmentationConfig:
        """The configuration of the current stage (inactive transforms at probability 0)."""
        return config_for_stage(self.config, self.stage)

    def update(self, history_row: Mapping[str, Any]) -> bool:
        """Enter every next stage whose trigger ``history_row`` fires; True if the stage changed."""
        changed = False
        while self.stage < self.n_stages and stage_triggered(
            self.config.curriculum[self.stage], history_row
        ):
            self.stage += 1
            self.entered_at.append(int(history_row.get("epoch", -1)))
            changed = True
        return changed

    def state_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints (the configuration is stored with the run's config)."""
        return {"stage": self.stage, "entered_at": list(self.entered_at)}

    @classmethod
    def from_state_dict(
        cls, config: AugmentationConfig, state: Mapping[str, Any] | None
    ) -> CurriculumState:
        """Restore from :meth:`state_dict` (``None``, e.g. an older checkpoint: stage 0)."""
        if not state:
            return cls(config)
        stage = int(state["stage"])
        if not 0 <= stage <= len(config.curriculum):
            raise ValueError(f"stored curriculum stage {stage} does not exist in this config")
        return cls(config, stage=stage, entered_at=[int(e) for e in state.get("entered_at", [])])
