"""Params that only the data can refuse are refused by ``tasks.load`` (train@ calls it before any
MLflow run exists): batches larger than the training split, P and K beyond its classes."""

from __future__ import annotations

import numpy as np
import pytest

from simlearn.config import ConfigError, ExperimentConfig, from_dict
from simlearn.tasks.metric import check_data


def cfg_for(**section) -> ExperimentConfig:
    return from_dict(ExperimentConfig, {"task": "metric", "dataset": "digits", **section})


def _split_facts(ds, holdout=()) -> tuple[int, int]:
    """Brute force: training images and the largest class's count, holdout classes removed."""
    rows = [i for i in range(len(ds.labels)) if ds.splits[i] == "train"]
    rows = [i for i in rows if int(ds.labels[i]) not in holdout]
    counts: dict[int, int] = {}
    for i in rows:
        counts[int(ds.labels[i])] = counts.get(int(ds.labels[i]), 0) + 1
    return len(rows), max(counts.values())


@pytest.mark.parametrize("sampler", ["pairs", "triplets"])
@pytest.mark.parametrize("holdout", [(), (7, 8, 9)])
def test_a_batch_larger_than_the_training_split_is_refused(digits, sampler, holdout):
    n, _ = _split_facts(digits, holdout)
    loss = "contrastive" if sampler == "pairs" else "triplet"
    ok = cfg_for(loss={"name": loss}, sampler={"name": sampler, "batch_size": n},
                 holdout_classes=list(holdout))  # fmt: skip
    check_data(ok, digits)
    too_big = cfg_for(loss={"name": loss}, sampler={"name": sampler, "batch_size": 10**9},
                      holdout_classes=list(holdout))  # fmt: skip
    with pytest.raises(ConfigError) as e:
        check_data(too_big, digits)
    after = " once holdout_classes are removed" if holdout else ""
    assert str(e.value) == (
        f"sampler.batch_size=1000000000: the training split has {n} images{after}; use at most {n}"
    )


def test_k_beyond_the_largest_class_is_refused(digits):
    _, largest = _split_facts(digits)
    check_data(cfg_for(sampler={"samples_per_class": largest}), digits)
    with pytest.raises(ConfigError) as e:
        check_data(cfg_for(sampler={"samples_per_class": largest + 1}), digits)
    assert str(e.value).startswith(
        f"sampler.samples_per_class={largest + 1}: the largest class of the training split has "
        f"{largest} images, so every class would repeat"
    )


def test_p_beyond_the_seen_classes_is_refused(digits):
    with pytest.raises(ConfigError, match="classes_per_batch=8: the training split has 7 classes"):
        check_data(cfg_for(holdout_classes=[7, 8, 9], sampler={"classes_per_batch": 8}), digits)
    assert np.unique(digits.labels).size == 10
