import math

import pytest

from lapseg.config import TrainConfig
from lapseg.errors import LapsegInputError
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


def test_piecewise_with_explicit_factors_reproduces_002_table():
    config = TrainConfig(
        schedule="piecewise",
        lr=1e-3,
        milestones=(20, 100, 150, 200, 250),
        milestone_factors=(0.5, 0.1, 0.05, 0.01, 0.005),
    )
    lrs = [config.lr * lr_factor(e, config) for e in (0, 19, 20, 99, 100, 150, 200, 250, 399)]
    assert lrs == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 1e-4, 5e-5, 1e-5, 5e-6, 5e-6])


def test_cosine_follows_the_time_budget_when_it_comes_first():
    config = TrainConfig(schedule="cosine", epochs=100)
    assert lr_factor(10, config, budget_fraction=0.5) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(10, config, budget_fraction=1.2) == pytest.approx(0.01)
    # the epoch count still wins when it is further along than the clock
    assert lr_factor(99, config, budget_fraction=0.1) == pytest.approx(0.01)


def test_piecewise_milestone_fractions_follow_the_epochs_and_the_budget():
    config = TrainConfig(
        schedule="piecewise", milestone_fractions=(0.5, 0.75), epochs=40, gamma=0.1
    )
    assert [lr_factor(e, config) for e in (19, 20, 29, 30)] == pytest.approx([1, 0.1, 0.1, 0.01])
    budget = TrainConfig(schedule="piecewise", milestone_fractions=(0.5,), time_budget_minutes=1)
    assert lr_factor(3, budget, budget_fraction=0.4) == 1.0
    assert lr_factor(3, budget, budget_fraction=0.5) == pytest.approx(0.1)
    with pytest.raises(LapsegInputError, match="not both"):
        TrainConfig(milestones=(10,), milestone_fractions=(0.5,))
    with pytest.raises(LapsegInputError, match=r"each in \(0, 1\)"):
        TrainConfig(milestone_fractions=(0.5, 1.0))
    with pytest.raises(LapsegInputError, match="one factor per milestone"):
        TrainConfig(milestone_fractions=(0.5,), milestone_factors=(0.1, 0.01))
