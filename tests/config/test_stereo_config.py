"""The stereo task's sections (simlearn.config.stereo), checked on their own; the rules across
keys are the task's (tests/stereo/test_stereo_task.py)."""

from __future__ import annotations

import pytest

from simlearn.config import ConfigError, TrainConfig, from_dict
from simlearn.config.stereo import Config, PostConfig, StereoSplitConfig


def test_defaults_are_the_paper_setup():
    cfg = from_dict(Config, {"task": "stereo", "dataset": "kitti2015"}, "experiments.s")
    assert cfg.model.method == "learned" and cfg.model.features == 64 and cfg.model.layers == 4
    assert cfg.loss.margin == 0.2 and cfg.train == TrainConfig()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"task": "metric"}, "experiments.s.task='metric': this Config belongs to task stereo"),
        (
            {"model": {"method": "sift"}},
            "experiments.s.model.method='sift': unknown name; allowed: learned, ncc, sgbm",
        ),
        (
            {"model": {"inference_dtype": "float16"}},
            "experiments.s.model.inference_dtype='float16': unknown dtype; allowed: float32",
        ),
        ({"model": {"block_size": 4}}, "experiments.s.model.block_size=4: must be odd and >= 1"),
        ({"sampler": {"neg_high": 3}}, "experiments.s.sampler.neg_low=4: must be > pos_offset"),
        (
            {"post": {"paths": 6}},
            "experiments.s.post.paths=6: unknown number of paths; allowed: 4, 8",
        ),
        ({"post": {"median": 4}}, "experiments.s.post.median=4: must be odd and >= 1 (1 = off)"),
        (
            {"split": {"holdout_rows": 1.0}},
            "experiments.s.split.holdout_rows=1.0: must be in (0, 1)",
        ),
        ({"eval": {"train_pairs": -1}}, "experiments.s.eval.train_pairs=-1: must be >= 0"),
    ],
)
def test_bad_sections_name_the_key(section, message):
    data = {"task": "stereo", "dataset": "d", **section}
    if "sampler" in section:
        data["sampler"] = {"pos_offset": 4, **section["sampler"]}
    with pytest.raises(ConfigError) as e:
        from_dict(Config, data, "experiments.s")
    assert str(e.value).startswith(message)


def test_open_and_closed_ends():
    StereoSplitConfig(holdout_rows=0.99)
    with pytest.raises(ConfigError, match=r"holdout_rows=0.0: must be in \(0, 1\)"):
        StereoSplitConfig(holdout_rows=0.0)
    PostConfig(p1=0.0, p2=0.0, median=1, paths=8)
