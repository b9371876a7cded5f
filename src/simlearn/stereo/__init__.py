"""Dense stereo matching: cost volumes from per-pixel embeddings, winner-takes-all, semi-global
matching, left-right check, sub-pixel refinement and median filter (all in torch, CPU and GPU),
the training triplets of patches, and the classical baselines (raw NCC, OpenCV StereoSGBM)."""

from simlearn.stereo.cost_volume import (
    ncc_embedding,
    similarity_to_cost,
    similarity_volume,
    winner_takes_all,
)
from simlearn.stereo.matcher import PostProcessing, StereoMatcher, num_disparities, predict
from simlearn.stereo.refine import (
    fill_holes,
    left_right_check,
    median_filter,
    right_disparity,
    subpixel,
)
from simlearn.stereo.sampling import TripletPatchSampler, candidate_anchors, gather_patches
from simlearn.stereo.sgm import sgm

__all__ = [
    "PostProcessing",
    "StereoMatcher",
    "TripletPatchSampler",
    "candidate_anchors",
    "fill_holes",
    "gather_patches",
    "left_right_check",
    "median_filter",
    "ncc_embedding",
    "num_disparities",
    "predict",
    "right_disparity",
    "sgm",
    "similarity_to_cost",
    "similarity_volume",
    "subpixel",
    "winner_takes_all",
]
