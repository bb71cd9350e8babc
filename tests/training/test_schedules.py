import math

import pytest

from lapseg.config import TrainConfig
from lapseg.training.schedules import PlateauState, lr_factor


def test_exponential_decay_matches_tensorflow_formula():
    config = TrainConfig(schedule="exponential", decay_rate=0.5, decay_epochs=2)
    assert lr_factor(0, config) == 1.0
    assert lr_factor(2, config) == pytest.approx(0.5)
    assert lr_factor(3, config) == pytest.approx(0.5**1.5)


def test_piecewise_counts_milestones():
    config = TrainConfig(schedule="piecewise", milestones=(10, 20), gamma=0.1)
    assert [lr_factor(e, config) for e in (0, 9, 10, 19, 20, 50)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )


def test_cosine_ends_at_one_percent_and_warmup_ramps():
    config = TrainConfig(schedule="cosine", epochs=11)
    assert lr_factor(0, config) == 1.0
    assert lr_factor(5, config) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(10, config) == pytest.approx(0.01)
    warm = TrainConfig(schedule="none", warmup_epochs=3)
    assert [lr_factor(e, warm) for e in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_plateau_reduces_after_patience():
    state = PlateauState()
    for value in [0.5, 0.6, 0.6, 0.59, 0.58]:
        state.update(value, higher_is_better=True, patience=3, gamma=0.5)
    assert state.factor == 0.5
    assert state.best == 0.6
    assert not math.isnan(state.factor)
