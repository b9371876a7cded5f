"""Supervised contrastive loss (Khosla et al. 2020), the L_out form."""

from __future__ import annotations

import torch
from torch import nn

from simlearn import distances
from simlearn.distances import COSINE, LOSS_NAMES, Distance
from simlearn.losses._checks import check_embeddings, check_labels, check_positive


class SupConLoss(nn.Module):
    """Each anchor's same-class samples must outscore all other samples, softmax-style.

    P. Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020,
    https://arxiv.org/abs/2004.11362 (Eq. 2, L_out: the 1/|P(i)| average outside the log)

    With ``z`` the L2-normalised embeddings (normalised here), ``P(i)`` the other samples with
    the label of ``i`` and ``t`` the temperature::

        L = 1/|A| sum_{i in A} -1/|P(i)| sum_{p in P(i)}
                log( exp(z_i . z_p / t) / sum_{a != i} exp(z_i . z_a / t) )

    where ``A`` holds the anchors with ``|P(i)| >= 1``; the others are skipped. A multi-view batch
    (the paper's 2N augmented samples) is passed as all views stacked with their labels repeated,
    so the other views of a sample count among its positives. If no anchor has a positive, the
    loss is a zero that still has a ``grad_fn``.

    Args:
        temperature: ``t > 0`` (the paper uses 0.1).
        distance: ``z_i . z_a`` (larger = closer; a distance is negated): a
            :mod:`simlearn.distances` object or loss name, default ``COSINE``, the paper's.
    """

    def __init__(self, temperature: float = 0.1, distance: Distance | str = COSINE) -> None:
        super().__init__()
        self.temperature = check_positive("temperature", temperature)
        self.distance = distances.get(distance, names=LOSS_NAMES)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, distance={self.distance.name!r}"

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean over anchors with a positive, of ``emb (B, D)`` with ``labels (B,)``."""
        check_embeddings("emb", emb)
        check_labels(labels, emb.shape[0])
        same = labels[:, None] == labels[None, :]  # (B, B)
        eye = torch.eye(emb.shape[0], dtype=torch.bool, device=emb.device)
        pos_mask = same & ~eye  # (B, B)
        has_pos = pos_mask.any(dim=1)  # (B,)
        if not bool(has_pos.any()):
            return emb.sum() * 0.0
        sim = -self.distance.as_dissimilarity(self.distance.pairwise(emb, emb))  # (B, B)
        logits = sim / self.temperature  # (B, B) cosine / t
        logits, pos_mask, others = logits[has_pos], pos_mask[has_pos], ~eye[has_pos]  # (A, B)
        neg_inf = torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device)
        log_den = torch.where(others, logits, neg_inf).logsumexp(dim=1, keepdim=True)  # (A, 1)
        log_prob = logits - log_den  # (A, B)
        n_pos = pos_mask.sum(dim=1)  # (A,)
        mean_log_prob_pos = torch.where(pos_mask, log_prob, 0.0).sum(dim=1) / n_pos  # (A,)
        return -mean_log_prob_pos.mean()
