"""The sbir task's sections (simlearn.config.sbir), checked on their own; the rules across keys
are the task's (tests/sbir/test_sbir_task.py)."""

from __future__ import annotations

import pytest

from simlearn.config import ConfigError, TrainConfig, from_dict
from simlearn.config.sbir import ZERO_SHOT_OPTIONS, ZERO_SHOT_SPLITS, Config


def load(**section):
    return from_dict(Config, {"task": "sbir", "dataset": "sk", **section}, "experiments.e")


def test_defaults_train_for_ten_epochs():
    cfg = load()
    assert cfg.train == TrainConfig(epochs=10, lr=3e-3) and cfg.unseen_names == ()
    assert not cfg.model.baseline and load(model={"method": "raw"}).model.baseline


def test_zero_shot_names_resolve_to_their_split():
    assert ZERO_SHOT_OPTIONS == ("none", "list", "sketchy25", "sketchy21", "synthetic")
    assert load(zero_shot="sketchy25").unseen_names == ZERO_SHOT_SPLITS["sketchy25"]
    assert load(zero_shot="list", unseen_classes=["owl"]).unseen_names == ("owl",)


def test_the_synthetic_split_is_the_synthetic_sets_unseen_categories():
    from simlearn.data.synthetic_sketch import CATEGORIES, UNSEEN_CATEGORIES

    assert load(zero_shot="synthetic").unseen_names == UNSEEN_CATEGORIES
    assert set(UNSEEN_CATEGORIES) < set(CATEGORIES)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"task": "metric"}, "experiments.e.task='metric': this Config belongs to task sbir"),
        ({"zero_shot": "sketchy30"}, "experiments.e.zero_shot='sketchy30': unknown name; allowed"),
        (
            {"unseen_classes": ["a", "a"], "zero_shot": "list"},
            "experiments.e.unseen_classes=['a', 'a']: repeated names",
        ),
        ({"model": {"canny_sigma": 0}}, "experiments.e.model.canny_sigma=0.0: must be > 0"),
        ({"model": {"hog_cell": 40}}, "experiments.e.model.hog_cell=40: a HOG block"),
        ({"model": {"photo_model": {"width": 0}}}, "experiments.e.model.photo_model.width=0: must"),
        ({"loss": {"temperature": -1}}, "experiments.e.loss.temperature=-1.0: must be > 0"),
        ({"loss": {"mining": "easy"}}, "experiments.e.loss.mining='easy': unknown name; allowed"),
        ({"sampler": {"workers": 0}}, "experiments.e.sampler.workers=0: must be >= 1"),
        ({"eval": {"distance": "dot"}}, "experiments.e.eval.distance='dot': unknown name"),
    ],
)
def test_bad_sections_name_the_key(section, message):
    with pytest.raises(ConfigError) as e:
        load(**section)
    assert str(e.value).startswith(message)
