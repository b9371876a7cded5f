"""The sbir task's engine task: two towers (sketch, photo) trained into one space.

Each batch is P categories x K training photos of the seen categories, each photo with one of
its own sketches, drawn from (seed, epoch, rank) and read from disk by worker threads
(:class:`~simlearn.data.sketch_dataset.ImageStream`). Both domains get a random flip and shift
(:func:`simlearn.augment.flip_and_shift`), photos optionally a random channel order and negative
(:func:`simlearn.augment.recolour`). The batch loss (:func:`cross_domain_loss`, ``loss.name``):

- ``triplet``: cross-domain triplets
  (:func:`~simlearn.losses.cross_domain_mining.cross_domain_triplets`), anchor a sketch,
  positive and negative photos;
- ``supcon``: supervised contrastive loss over sketches and photos together;
- ``ntxent``: InfoNCE between a sketch and its own photo;

plus ``loss.anchor_weight`` times the class-anchor loss of both domains
(:func:`~simlearn.losses.class_anchor_loss.class_anchor_loss`). Validation: mAP and P@1 of val
sketches against val photos (seen categories).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from simlearn.config import ConfigError, to_dict

# torch, the streaming loader, the engine and the models are imported where they are used, so
# that importing this module (the task module does, when params load) does not pay for them
if TYPE_CHECKING:
    import torch
    from torch import nn

    from simlearn.config.sbir import Config, LossConfig
    from simlearn.data.sketch_dataset import ImageStream, SketchDataset
    from simlearn.models.two_tower import TwoTower

__all__ = ["SBIRTask", "cross_domain_loss", "embed_rows", "unseen_labels"]


def unseen_labels(cfg: Config, ds: SketchDataset) -> np.ndarray:
    """Label ids of the zero-shot categories; unknown names raise ConfigError."""
    names = cfg.unseen_names
    try:
        return ds.class_ids(names)
    except ValueError as e:
        key = "unseen_classes" if cfg.zero_shot == "list" else "zero_shot"
        value = list(names) if cfg.zero_shot == "list" else cfg.zero_shot
        raise ConfigError(f"{key}={value!r}: {e}") from None


def embed_rows(
    model: nn.Module,
    stream: ImageStream,
    rows: np.ndarray,
    domain: str,
    device: Any,
    batch_size: int,
) -> np.ndarray:
    """Dataset ``rows`` of one ``domain`` (sketch | photo) embedded by that domain's tower, in
    eval mode and batches of ``batch_size``: float32 (len(rows), D); (0, 0) for no rows."""
    import torch

    model.eval()
    with torch.no_grad():
        out = [
            model.embed(x.to(device), domain).float().cpu()
            for _, x in stream.iterate(rows, batch_size)
        ]
    return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, 0), np.float32)


def _domain_stats(stream: ImageStream, rows: np.ndarray, n: int, seed: int) -> tuple[list, list]:
    """Per-channel mean and std on the [0, 1] scale of up to ``n`` seeded rows."""
    import torch

    rng = np.random.default_rng(seed)
    pick = rows if len(rows) <= n else np.sort(rng.choice(rows, size=n, replace=False))
    x = torch.cat([b for _, b in stream.iterate(pick, 256)]).double()  # (n, C, S, S)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return mean.tolist(), std.tolist()


class SBIRTask:
    """Engine task: P x K photo batches with one sketch each, a cross-domain loss, validation
    mAP of val sketches against val photos (seen categories)."""

    def __init__(self, cfg: Config, ds: SketchDataset) -> None:
        if cfg.model.baseline:
            raise ValueError(f"model.method={cfg.model.method!r} is fitted, not trained")
        import torch

        from simlearn.data.samplers import PKSampler
        from simlearn.data.sketch_dataset import ImageStream
        from simlearn.losses.class_anchor_loss import random_class_anchors
        from simlearn.models.two_tower import build_two_tower

        self.cfg, self.ds = cfg, ds
        self.unseen = unseen_labels(cfg, ds)
        self.stream = ImageStream(ds, cfg.model.image_size, cfg.sampler.workers)
        sketches = ds.rows("sketch", ["train"], exclude=self.unseen)
        self.photos = ds.rows("photo", ["train"], exclude=self.unseen)
        photo_of = {p: i for i, p in enumerate(ds.photo_ids[self.photos])}
        owner = np.array([photo_of.get(p, -1) for p in ds.photo_ids[sketches]])
        keep = owner >= 0
        sketches, owner = sketches[keep], owner[keep]
        order = np.argsort(owner, kind="stable")
        self._sketches = sketches[order]  # training sketches grouped by photo
        starts = np.searchsorted(owner[order], np.arange(len(self.photos) + 1))
        self._first, self._count = starts[:-1], np.diff(starts)  # per training photo
        has = self._count > 0
        self.photos, self._first, self._count = self.photos[has], self._first[has], self._count[has]
        s = cfg.sampler
        steps = s.steps_per_epoch or max(
            1, len(self._sketches) // (s.classes_per_batch * s.photos_per_class)
        )
        self.sampler = PKSampler(
            ds.labels[self.photos], s.classes_per_batch, max(2, s.photos_per_class), cfg.seed, steps
        )
        self.k = s.photos_per_class
        torch.manual_seed(cfg.seed)
        spec = {
            "method": "two_tower",
            "shared": cfg.model.shared,
            "sketch_model": to_dict(cfg.model.sketch_model),
            "photo_model": to_dict(cfg.model.photo_model),
            "embedding_dim": cfg.model.embedding_dim,
            "normalize": cfg.model.normalize,
            "image_size": cfg.model.image_size,
        }
        for d, rows in (("sketch", self._sketches), ("photo", self.photos)):
            spec[f"{d}_mean"], spec[f"{d}_std"] = _domain_stats(self.stream, rows, 512, cfg.seed)
        torch.manual_seed(cfg.seed)
        self.model: TwoTower = build_two_tower(spec, load_pretrained=True)
        self.spec = spec
        self.criterion = _build_loss(cfg)
        # (num_classes, D) fixed unit class vectors, drawn from the seed (not trained, not saved)
        self.anchors = random_class_anchors(ds.num_classes, cfg.model.embedding_dim, cfg.seed + 1)

    @property
    def embedder(self) -> TwoTower:
        return self.model

    def batches(self, epoch: int, rank: int = 0, world_size: int = 1):
        """Lazy batches (sketch rows, photo rows), each with a seed for its augmentation."""
        rng = np.random.default_rng([self.cfg.seed, epoch, rank, 7])
        parts, seeds = [], []
        for b in self.sampler.epoch(epoch, rank, world_size):
            if self.k < 2:  # K = 1: the sampler drew 2 per class; keep the first of each
                b = b[::2]
            pick = self._first[b] + (rng.random(len(b)) * self._count[b]).astype(np.int64)
            parts.append((self._sketches[pick], self.photos[b]))
            seeds.append(int(rng.integers(2**62)))
        yield from zip(self.stream.lazy(parts), seeds, strict=True)

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        import torch

        from simlearn.augment import flip_and_shift, recolour
        from simlearn.engine import gather_across_ranks
        from simlearn.losses.class_anchor_loss import class_anchor_loss

        lazy, seed = batch
        xs, xp = lazy.get()
        if self.cfg.sampler.augment:
            g = torch.Generator().manual_seed(seed)
            xs, xp = flip_and_shift(xs, g), flip_and_shift(xp, g)
            if self.cfg.sampler.recolour and xp.shape[1] == 3:
                xp = recolour(xp, g)
        net = getattr(model, "module", model)  # DistributedDataParallel wraps the TwoTower
        es = net.sketch(xs.to(device)).float()  # (B, D)
        ep = net.photo(xp.to(device)).float()  # (B, D)
        y = torch.as_tensor(self.ds.labels[lazy.rows[1]], device=device)  # (B,) both domains
        es, ep, y = gather_across_ranks(es), gather_across_ranks(ep), gather_across_ranks(y)
        loss = cross_domain_loss(self.cfg.loss, self.criterion, es, ep, y)
        if self.cfg.loss.anchor_weight > 0:
            a = self.anchors.to(device)
            t = self.cfg.loss.temperature
            loss = loss + self.cfg.loss.anchor_weight * (
                class_anchor_loss(es, a, y, t) + class_anchor_loss(ep, a, y, t)
            )
        return loss, 2 * len(y)

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """mAP and P@1 of val sketches against val photos, seen categories only."""
        from simlearn.evaluation import retrieval_metrics

        q = self.ds.rows("sketch", ["val"], exclude=self.unseen)
        g = self.ds.rows("photo", ["val"], exclude=self.unseen)
        if len(q) == 0 or len(g) == 0:
            return {}
        eq = embed_rows(model, self.stream, q, "sketch", device, self.cfg.sampler.batch_size)
        eg = embed_rows(model, self.stream, g, "photo", device, self.cfg.sampler.batch_size)
        s = retrieval_metrics(
            eq, self.ds.labels[q], eg, self.ds.labels[g], distance=self.cfg.eval.distance, ks=(1,)
        ).summary()
        return {"val_map": s["map"], "val_precision_at_1": s["precision_at_1"]}


def _build_loss(cfg: Config) -> nn.Module:
    from simlearn import losses as L

    c = cfg.loss
    if c.name == "triplet":
        return L.TripletMarginLoss(margin=c.margin, distance=c.distance, soft=c.soft)
    if c.name == "supcon":
        return L.SupConLoss(temperature=c.temperature)
    return L.NTXentLoss(temperature=c.temperature)


def cross_domain_loss(
    c: LossConfig, criterion: nn.Module, es: torch.Tensor, ep: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """The batch loss of sketch embeddings ``es`` (B, D) and photo embeddings ``ep`` (B, D);
    row i of both is a sketch and its own photo, of category ``y[i]``: ``criterion`` (built from
    ``c`` by :func:`_build_loss`) on both domains stacked (supcon), on the pairs (ntxent), or on
    the cross-domain triplets that ``c.mining`` picks (triplet)."""
    import torch

    from simlearn.losses.cross_domain_mining import cross_domain_triplets

    if c.name == "supcon":
        return criterion(torch.cat([es, ep]), torch.cat([y, y]))
    if c.name == "ntxent":
        return criterion(es, ep)
    a, p, n = cross_domain_triplets(es.detach(), ep.detach(), y, c.mining, c.margin, c.distance)
    if len(a) == 0:  # nothing to learn from this batch; a zero that keeps the graph
        return (es.sum() + ep.sum()) * 0.0
    return criterion(es[a], ep[p], ep[n])
