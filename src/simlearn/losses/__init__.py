"""Metric-learning losses, one per module, and in-batch triplet / pair mining."""

from simlearn.losses.batch_hard_triplet_loss import BatchHardTripletLoss
from simlearn.losses.contrastive_loss import ContrastiveLoss
from simlearn.losses.mining import STRATEGIES, all_pairs, mine_triplets
from simlearn.losses.n_pair_loss import NPairLoss
from simlearn.losses.nt_xent_loss import NTXentLoss
from simlearn.losses.soft_nearest_neighbor_loss import SoftNearestNeighborLoss
from simlearn.losses.supcon_loss import SupConLoss
from simlearn.losses.triplet_margin_loss import TripletMarginLoss

__all__ = [
    "STRATEGIES",
    "BatchHardTripletLoss",
    "ContrastiveLoss",
    "NPairLoss",
    "NTXentLoss",
    "SoftNearestNeighborLoss",
    "SupConLoss",
    "TripletMarginLoss",
    "all_pairs",
    "mine_triplets",
]
