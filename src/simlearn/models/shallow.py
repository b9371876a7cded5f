"""Shallow, fitted (not trained) embeddings: the baselines every learned model must beat.

All three are a linear map of the flattened pixels, ``f(x) = W (x - mu)``:

- ``raw``: W = I, mu = 0. Euclidean distance between raw pixels. Kept as the flattening itself
  (:class:`PixelEmbedding`), with no matrix: an identity W holds D^2 floats (604 MB for 64x64
  RGB images, D = 12,288; 91 GB at 224x224) and costs a D^2 product per image, for the same
  numbers bit for bit.
- ``mahalanobis``: W = Sigma^{-1/2}, whitening with the inverse square root of a training
  covariance shrunk towards a multiple of I (Ledoit-Wolf style, ``shrinkage`` x trace/d). Then
  ||f(x) - f(y)||^2 = (x - y)^T M (x - y) with M = W^T W = Sigma^{-1}: the Mahalanobis
  distance. ``covariance="within"`` (default) uses the pooled within-class covariance (the
  classical choice for recognition, as in LDA and WCCN: directions in which a class varies are
  discounted); ``"total"`` whitens the data as a whole, labels unused.
- ``lda``: Fisher's linear discriminant analysis (scikit-learn, eigen solver with automatic
  shrinkage): W projects onto the C-1 directions that maximise between-class over within-class
  scatter.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class LinearEmbedding(nn.Module):
    """f(x) = W (flatten(x) - mu); W (D_out, D_in), mu (D_in,)."""

    def __init__(self, weight: torch.Tensor, mean: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight.float())
        self.register_buffer("mean", mean.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, D_out)
        x = x.flatten(1) - self.mean
        return x @ self.weight.T


class PixelEmbedding(nn.Module):
    """f(x) = flatten(x): the ``raw`` baseline, no parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C*H*W)
        return x.flatten(1)


def fit_shallow(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    shrinkage: float = 0.1,
    covariance: str = "within",
) -> LinearEmbedding | PixelEmbedding:
    """Fit a shallow embedding on flattened training images ``x`` (N, D_in) with labels ``y``."""
    if name == "raw":
        return PixelEmbedding()
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    d = x.shape[1]
    if name == "mahalanobis":
        mu = x.mean(axis=0)
        if covariance == "within":
            classes, inv = np.unique(y, return_inverse=True)
            means = np.stack([x[inv == c].mean(axis=0) for c in range(len(classes))])
            cov = np.cov(x - means[inv], rowvar=False)
        elif covariance == "total":
            cov = np.cov(x - mu, rowvar=False)
        else:
            raise ValueError(f"model.covariance={covariance!r}: allowed within, total")
        # shrink towards (trace/d) I so constant pixels (digits' borders) stay invertible
        cov = cov + shrinkage * np.trace(cov) / d * np.eye(d) + 1e-12 * np.eye(d)
        vals, vecs = np.linalg.eigh(cov)
        w = (vecs / np.sqrt(vals)) @ vecs.T  # Sigma^{-1/2}, symmetric
    elif name == "lda":
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(x, y)
        n_comp = min(len(np.unique(y)) - 1, d)
        w = lda.scalings_[:, :n_comp].T  # (C-1, D_in)
        mu = x.mean(axis=0)  # distances ignore the offset; centring keeps values small
    else:
        raise ValueError(
            f"model.name={name!r}: not a shallow model; allowed: raw, mahalanobis, lda"
        )
    return LinearEmbedding(torch.from_numpy(np.ascontiguousarray(w)), torch.from_numpy(mu))
