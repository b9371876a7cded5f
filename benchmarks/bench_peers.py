"""simlearn beside the libraries its users would pick instead, in one table: each row the same
data, the same model and the same budget for both sides, the two run alternately, quality and
speed as ratios, and which side wins by how much.

Cases (``--cases``; all by default):

``metric``   mnist5k, digits 7, 8, 9 held out. simlearn: the shipped experiments
             ``batch_hard_unseen`` and ``supcon_unseen``, their params.yaml sections as they are
             (``tasks.train``). Peer: pytorch-metric-learning's ``TripletMarginLoss`` +
             ``BatchHardMiner``, and ``SupConLoss``, fed by its ``MPerClassSampler``, in the plain
             loop a user writes (:func:`pml_epochs`). Shared: the network (simlearn's ConvNet
             behind the same input standardisation, the same seeded initial weights), AdamW with
             the section's lr and weight decay and the engine's cosine schedule to 0 per step,
             P classes x K images a batch and the same number of batches an epoch, the margin or
             temperature, one random affine view per image with the section's rotation, shift
             and zoom (the peer: torchvision ``RandomAffine``, bilinear, per image in the
             Dataset), the epochs and the torch threads (``train.num_threads``). Figures: unseen
             and seen mAP (``seen_unseen_metrics``, what the evaluate stage reports) and training
             samples/s.
``simclr``   digits. simlearn: the shipped ``simclr`` experiment. Peer: lightly's
             ``SimCLRTransform`` and ``NTXentLoss`` in lightly's own example loop
             (:func:`lightly_epochs`: each view through the model on its own). Shared: the encoder
             f and projection head g (simlearn's ``SimCLRModel``, same initial weights), the
             temperature, batch size, batches an epoch, AdamW + cosine, epochs. lightly's
             transform set for 8x8 grey digits as simlearn's views are: no colour jitter,
             greyscale, blur or flips; rotation +-degrees (``rr_prob 1, rr_degrees``); its
             random resized crop at ``min_scale`` :data:`LIGHTLY_MIN_SCALE` stands for the shift
             and zoom (SimCLRTransform has no translate). Figures: linear-probe and 5-NN accuracy
             of f (the evaluate stage's ``linear_probe_accuracy``, ``knn_accuracy``), images/s.
``retrieval`` Gaussian classes (``bench_retrieval.make_data``, D = 64, 10 classes): simlearn's
             ``retrieval_metrics`` against pytorch-metric-learning's ``AccuracyCalculator(k=None)``
             with ``CustomKNN(LpDistance)``, no faiss (N = ``--n``) and
             torchmetrics' ``RetrievalMAP``, ``RetrievalRPrecision``, ``RetrievalPrecision(1)``,
             ``RetrievalMRR``, ``RetrievalHitRate(k)`` (Recall@K of metric learning; N =
             ``--tm-n``: torchmetrics takes one flat row per (query, item) pair, N^2 of them).
             torchmetrics scores each item ``1 / (1 + d^2)``: its AP, P@K and MRR count only the
             items with a positive score, so ``-d`` would give 0. Figures: each metric's two
             values (equal?), the time (torchmetrics' includes the distance matrix and the flat
             inputs it needs, as ours includes its distances).
``search``   ``--gallery`` x 128 Gaussian vectors, ``--queries`` queries, k = 10: simlearn's
             ``GalleryIndex`` on its torch backend (``FlatIndex``) against faiss ``IndexFlatL2``
             (euclidean) and ``IndexFlatIP`` (dot) called directly, on the same threads. Figures:
             seconds, and the share of identical neighbours. ``benchmarks/bench_search.py`` has
             the 1,000,000-vector case and the latency.
``stereo``   the motorcycle pair, the held-out bottom rows. simlearn: ``stereo_mccnn`` as
             shipped (trained, then its inference with its ``post:`` section). Peer: OpenCV
             ``StereoSGBM`` as the shipped ``stereo_sgbm`` experiment runs it, through the same
             library calls as the pipeline (``tasks.train``, then ``tasks.embed``:
             :func:`simlearn.stereo.sgbm.sgbm_disparity`, its right-view map, ``hole_labels``
             and the one hole filling of every method), with the parameters that
             ``benchmarks/tune_sgbm.py`` chose on the training rows only (params.yaml holds
             them) and stereo_mccnn's ``post:`` section; SGBM's own output is already
             sub-pixel. Figures: accuracy at 3 and 1 px and EPE on the test rows
             (``disparity_counts``, what the evaluate stage reports), seconds for the full pair
             (each side's ``tasks.embed``), the same with simlearn's network in float32 when the
             shipped ``inference_dtype`` is another; stereo_mccnn's training time is logged
             (SGBM fits nothing).

Alternation: the training cases run the peer's epoch inside simlearn's ``on_epoch_end``
callback, so their epochs alternate (simlearn, peer, simlearn, ...) and machine noise hits both;
samples/s is each side's samples over its epochs' seconds (simlearn's validation and checkpoint
after each epoch are not counted, as the peer has none). The other cases repeat ``--repeats``
times, alternating sides, and keep each side's best time. Everything runs on the CPU.

Quality figures of one training are one seed's: ``--seeds N`` averages N seeds (the shipped
seed, then the next ones). Run: ``python benchmarks/bench_peers.py`` (needs
``pip install -e ".[peers]"``); ``--quick`` is a smoke run with tiny settings; ``--markdown
PATH`` also writes the table. The full run printed its table after 214 s (3.6 minutes) on 2 idle
cores of an AMD EPYC machine (338 s on the 2-core machine of the round before).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import itertools
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "src", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench_retrieval import PML_KEYS, make_data  # noqa: E402

from simlearn import tasks  # noqa: E402
from simlearn.config import AugmentConfig, dataset_config  # noqa: E402
from simlearn.data.sources import build_dataset  # noqa: E402
from simlearn.distances import normalize_embeddings  # noqa: E402
from simlearn.evaluation.classify import knn_accuracy, linear_probe_accuracy  # noqa: E402
from simlearn.evaluation.protocol import probe_rows, seen_unseen_metrics  # noqa: E402
from simlearn.evaluation.retrieval import retrieval_metrics  # noqa: E402
from simlearn.evaluation.stereo import disparity_counts  # noqa: E402
from simlearn.models.embedder import embed_images, new_embedder  # noqa: E402
from simlearn.models.projection import SimCLRModel  # noqa: E402
from simlearn.search import GalleryIndex  # noqa: E402

CASES = ("metric", "simclr", "retrieval", "search", "stereo")
#: lightly's RandomResizedCrop scale floor for the digits: a crop side of 0.84 or more, so zoom
#: up to 1.2x and shifts up to 0.16 of the side, near simlearn's +-0.15 shift and 0.85-1.15 zoom
LIGHTLY_MIN_SCALE = 0.7
#: Recall@K cut-offs compared with torchmetrics' hit rate
RECALL_KS = (1, 2, 4, 8)

# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One figure of one case, both sides. ``kind``: ``higher`` / ``lower`` (quality), ``rate``
    (speed, higher is better), ``time`` (seconds, lower is better), ``equal`` (the two values
    should be the same)."""

    case: str
    figure: str
    ours: float
    peer: float
    kind: str
    unit: str = ""

    def ratio(self) -> float:
        return self.ours / self.peer if self.peer else math.nan

    def verdict(self) -> str:
        a, b = self.ours, self.peer
        if not (math.isfinite(a) and math.isfinite(b)):
            return "-"
        if self.kind == "equal":
            d = abs(a - b)
            return f"equal (|diff| {d:.1e})" if d <= 1e-5 else f"DIFFER by {d:.2e}"
        if a == b:
            return "tie"
        if self.kind in ("rate", "time"):
            fast = a / b if self.kind == "rate" else b / a
            return f"simlearn {fast:.2f}x faster" if fast > 1 else f"peer {1 / fast:.2f}x faster"
        ours_better = (a > b) == (self.kind == "higher")
        who = "simlearn" if ours_better else "peer"
        return f"{who} by {abs(a - b):.4f}{self.unit} ({abs(a - b) / abs(b):.1%})"


def _fmt(v: float, kind: str) -> str:
    if not math.isfinite(v):
        return "-"
    if kind == "equal":
        return f"{v:.7f}"
    if kind == "rate":
        return f"{v:,.0f}"
    if kind == "time":
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    return f"{v:.4f}"


def render(rows: list[Row]) -> str:
    """The table as markdown: case, figure, simlearn, peer, simlearn / peer, verdict."""
    head = ["case", "figure", "simlearn", "peer", "simlearn / peer", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r.case,
            r.figure + (f" ({r.unit.strip()})" if r.unit.strip() else ""),
            _fmt(r.ours, r.kind),
            _fmt(r.peer, r.kind),
            f"{r.ratio():.3f}",
            r.verdict(),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Data and configs
# --------------------------------------------------------------------------------------------


def dataset_dir(params: dict, name: str, tmp: Path) -> Path:
    """``data/<name>`` when ``dvc repro`` built it, else the dataset built in ``tmp`` (embedded
    sources: offline)."""
    built = ROOT / "data" / name
    if (built / "manifest.parquet").exists():
        return built
    cfg_ds, _ = dataset_config(params, name)
    out = tmp / name
    if not (out / "manifest.parquet").exists():
        build_dataset(name, cfg_ds, out, ROOT / "downloads" / cfg_ds.source)
    return out


def experiment(params: dict, key: str, seed_offset: int = 0, quick: bool = False) -> Any:
    """``experiments.<key>`` as shipped, on the CPU, seed + ``seed_offset``; ``quick``: one
    epoch of a few batches."""
    section = copy.deepcopy(params["experiments"][key])
    section["seed"] = int(section.get("seed", 0)) + seed_offset
    section.setdefault("train", {})["device"] = "cpu"
    if quick:
        section["train"]["epochs"] = 1
        section.setdefault("sampler", {})["steps_per_epoch"] = 2 if key != "stereo_mccnn" else 5
    return tasks.experiment_config(
        {"datasets": params["datasets"], "experiments": {key: section}}, key
    )


def optimizer_and_schedule(
    model: torch.nn.Module, cfg: Any, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The engine's optimizer and schedule, as a user writes them with torch."""
    t = cfg.train
    if t.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(),
            lr=t.lr,
            momentum=t.momentum,
            weight_decay=t.weight_decay,
            nesterov=True,
        )
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    if t.scheduler == "cosine":
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


@contextlib.contextmanager
def torch_state() -> Iterator[None]:
    """Restore torch's threads and deterministic mode after the block: ``engine.fit`` sets both
    for its training (``train.num_threads``, ``train.deterministic``) and leaves them set, and
    the embed stage, a process of its own, runs with neither."""
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det, warn_only=warn)


def train_alternating(
    cfg: Any, data: Any, peer: Iterator[tuple[float, int]]
) -> tuple[Any, list[tuple[float, int]]]:
    """simlearn's training of ``cfg``, with one epoch of ``peer`` after each of its epochs;
    returns simlearn's ``Trained`` and the peer's (seconds, samples) per epoch."""
    peer_log: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory() as ck, torch_state():  # a fresh folder: never resumes
        trained = tasks.train(
            cfg, data, checkpoint_dir=ck, on_epoch_end=lambda row: peer_log.append(next(peer))
        )
    return trained, peer_log


def rate(log_: list[tuple[float, int]]) -> float:
    seconds = sum(s for s, _ in log_)
    return sum(n for _, n in log_) / seconds if seconds > 0 else math.nan


def ours_rate(trained: Any) -> float:
    return rate([(r["seconds"], r["samples"]) for r in trained.history])


# --------------------------------------------------------------------------------------------
# Metric learning: pytorch-metric-learning
# --------------------------------------------------------------------------------------------


def pml_epochs(cfg: Any, ds: Any, model: torch.nn.Module) -> Iterator[tuple[float, int]]:
    """Train ``model`` the way pytorch-metric-learning's examples do, one epoch per ``next``;
    yields (seconds, samples) of each epoch."""
    from pytorch_metric_learning import losses, miners, samplers
    from torch.utils.data import DataLoader, Dataset
    from torchvision.transforms import InterpolationMode, v2

    rows = ds.indices("train", exclude=np.asarray(cfg.holdout_classes, dtype=np.int64))
    images = torch.from_numpy(ds.images[rows]).permute(0, 3, 1, 2)  # (N, C, H, W) uint8
    labels = torch.from_numpy(ds.labels[rows].astype(np.int64))
    a = cfg.augment
    augment = v2.RandomAffine(
        degrees=a.degrees,
        translate=(a.translate, a.translate),
        scale=(a.scale_min, a.scale_max),
        interpolation=InterpolationMode.BILINEAR,
    )

    class TrainSet(Dataset):
        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return augment(images[i]).float() / 255.0, labels[i]

    s = cfg.sampler
    batch = s.classes_per_batch * s.samples_per_class
    steps = s.steps_per_epoch or len(rows) // batch
    sampler = samplers.MPerClassSampler(
        labels, m=s.samples_per_class, batch_size=batch, length_before_new_iter=steps * batch
    )
    loader = DataLoader(TrainSet(), batch_size=batch, sampler=sampler)
    if cfg.loss.name == "batch_hard":
        loss_fn, miner = losses.TripletMarginLoss(margin=cfg.loss.margin), miners.BatchHardMiner()
    elif cfg.loss.name == "supcon":
        loss_fn, miner = losses.SupConLoss(temperature=cfg.loss.temperature), None
    else:
        raise ValueError(f"loss.name={cfg.loss.name!r}: the peer mirrors batch_hard and supcon")
    opt, sched = optimizer_and_schedule(model, cfg, cfg.train.epochs * steps)
    for _ in range(cfg.train.epochs):
        model.train()
        t0, n = time.perf_counter(), 0
        for x, y in loader:
            emb = model(x)
            loss = loss_fn(emb, y, miner(emb, y)) if miner is not None else loss_fn(emb, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            n += len(y)
        yield time.perf_counter() - t0, n


def seen_unseen(cfg: Any, ds: Any, model: torch.nn.Module) -> dict[str, float]:
    """The evaluate stage's seen and unseen retrieval of ``model`` on the test split."""
    emb = normalize_embeddings(embed_images(model, ds.images), cfg.eval.normalize)
    holdout = np.isin(ds.labels, np.asarray(cfg.holdout_classes, dtype=np.int64))
    return seen_unseen_metrics(emb, ds.labels, ds.splits == "test", holdout, cfg)


def metric_case(params: dict, data_dir: Path, args: argparse.Namespace) -> list[Row]:
    from simlearn.data.image_dataset import load_image_dataset

    ds = load_image_dataset(data_dir)
    rows: list[Row] = []
    peers = {
        "batch_hard_unseen": "PML TripletMarginLoss + BatchHardMiner",
        "supcon_unseen": "PML SupConLoss",
    }
    for key, peer_name in peers.items():
        figs = {"ours": [], "peer": []}
        ours_log: list[tuple[float, int]] = []
        peer_log: list[tuple[float, int]] = []
        for s in range(args.seeds):
            cfg = experiment(params, key, s, args.quick)
            train_rows = ds.indices("train", exclude=np.asarray(cfg.holdout_classes))
            peer_model, _ = new_embedder(cfg.model, ds.images, cfg.seed, train_rows)
            t0 = time.perf_counter()
            trained, plog = train_alternating(cfg, ds, pml_epochs(cfg, ds, peer_model))
            log(f"[metric] {key} seed {cfg.seed}: both trained in {time.perf_counter() - t0:.0f} s")
            ours_log += [(r["seconds"], r["samples"]) for r in trained.history]
            peer_log += plog
            figs["ours"].append(seen_unseen(cfg, ds, trained.model))
            figs["peer"].append(seen_unseen(cfg, ds, peer_model))
        case = f"{key} / {peer_name}"
        for metric, label in (("unseen_map", "unseen mAP"), ("seen_map", "seen mAP")):
            mean = {k: float(np.mean([f[metric] for f in v])) for k, v in figs.items()}
            rows.append(Row(case, label, mean["ours"], mean["peer"], "higher"))
        rows.append(Row(case, "training samples/s", rate(ours_log), rate(peer_log), "rate"))
    return rows


# --------------------------------------------------------------------------------------------
# SimCLR: lightly
# --------------------------------------------------------------------------------------------


def lightly_epochs(cfg: Any, ds: Any, model: torch.nn.Module) -> Iterator[tuple[float, int]]:
    """Train ``model`` (f and g) the way lightly's SimCLR example does, one epoch per ``next``;
    yields (seconds, images) of each epoch."""
    from lightly.loss import NTXentLoss
    from lightly.transforms import SimCLRTransform
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    rows = ds.indices("train", exclude=np.asarray(cfg.holdout_classes, dtype=np.int64))
    a = cfg.augment or AugmentConfig()
    transform = SimCLRTransform(
        input_size=ds.images.shape[1],
        cj_prob=0.0,
        random_gray_scale=0.0,
        gaussian_blur=0.0,
        hf_prob=a.flip_p,
        rr_prob=1.0 if a.degrees else 0.0,
        rr_degrees=a.degrees or None,
        min_scale=LIGHTLY_MIN_SCALE,
        normalize=None,
    )

    class TrainSet(Dataset):
        def __len__(self) -> int:
            return len(rows)

        def __getitem__(self, i: int) -> tuple[list[torch.Tensor], int]:
            x = ds.images[rows[i]]  # (H, W, C) uint8
            return transform(Image.fromarray(x[..., 0] if x.shape[2] == 1 else x)), 0

    loader = DataLoader(TrainSet(), batch_size=cfg.sampler.batch_size, shuffle=True, drop_last=True)
    steps = min(cfg.sampler.steps_per_epoch or len(loader), len(loader))
    criterion = NTXentLoss(temperature=cfg.loss.temperature)
    opt, sched = optimizer_and_schedule(model, cfg, cfg.train.epochs * steps)
    for _ in range(cfg.train.epochs):
        model.train()
        t0, n = time.perf_counter(), 0
        for (x0, x1), _ in itertools.islice(loader, steps):
            loss = criterion(model(x0), model(x1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            n += len(x0)
        yield time.perf_counter() - t0, n


def frozen_probes(cfg: Any, ds: Any, encoder: torch.nn.Module) -> dict[str, float]:
    """The evaluate stage's linear probe and kNN on the frozen encoder f."""
    emb = normalize_embeddings(embed_images(encoder, ds.images), cfg.eval.normalize)
    holdout = np.isin(ds.labels, np.asarray(cfg.holdout_classes, dtype=np.int64))
    ref, q = probe_rows(ds.labels, ds.splits, holdout)
    split = (emb[ref], ds.labels[ref], emb[q], ds.labels[q])
    return {
        "linear_probe_accuracy": float(linear_probe_accuracy(*split, seed=cfg.seed)),
        "knn_accuracy": float(knn_accuracy(*split, k=cfg.eval.knn_k, distance=cfg.eval.distance)),
    }


def simclr_case(params: dict, data_dir: Path, args: argparse.Namespace) -> list[Row]:
    from simlearn.data.image_dataset import load_image_dataset

    ds = load_image_dataset(data_dir)
    figs: dict[str, list[dict[str, float]]] = {"ours": [], "peer": []}
    ours_log: list[tuple[float, int]] = []
    peer_log: list[tuple[float, int]] = []
    for s in range(args.seeds):
        cfg = experiment(params, "simclr", s, args.quick)
        train_rows = ds.indices("train", exclude=np.asarray(cfg.holdout_classes))
        f, _ = new_embedder(cfg.model, ds.images, cfg.seed, train_rows)
        peer_model = SimCLRModel(f, cfg.model.embedding_dim, cfg.model.projection_dim)
        t0 = time.perf_counter()
        trained, plog = train_alternating(cfg, ds, lightly_epochs(cfg, ds, peer_model))
        log(f"[simclr] seed {cfg.seed}: both trained in {time.perf_counter() - t0:.0f} s")
        ours_log += [(r["seconds"], r["samples"]) for r in trained.history]
        peer_log += plog
        figs["ours"].append(frozen_probes(cfg, ds, trained.model))
        figs["peer"].append(frozen_probes(cfg, ds, peer_model.embedder))
    case = "simclr / lightly SimCLRTransform + NTXentLoss"
    rows = []
    for metric, label in (
        ("linear_probe_accuracy", "linear-probe accuracy"),
        ("knn_accuracy", f"{cfg.eval.knn_k}-NN accuracy"),
    ):
        mean = {k: float(np.mean([f[metric] for f in v])) for k, v in figs.items()}
        rows.append(Row(case, label, mean["ours"], mean["peer"], "higher"))
    rows.append(Row(case, "training images/s", rate(ours_log), rate(peer_log), "rate"))
    return rows


# --------------------------------------------------------------------------------------------
# Retrieval metrics: pytorch-metric-learning, torchmetrics
# --------------------------------------------------------------------------------------------


def best_alternating(
    ours: Callable[[], Any], peer: Callable[[], Any], repeats: int
) -> tuple[float, Any, float, Any]:
    """Both functions ``repeats`` times, alternating which goes first; the best time of each and
    the last result of each."""
    t_ours = t_peer = math.inf
    out_ours = out_peer = None
    for i in range(repeats):
        for side in ("ours", "peer") if i % 2 == 0 else ("peer", "ours"):
            t0 = time.perf_counter()
            if side == "ours":
                out_ours = ours()
                t_ours = min(t_ours, time.perf_counter() - t0)
            else:
                out_peer = peer()
                t_peer = min(t_peer, time.perf_counter() - t0)
    return t_ours, out_ours, t_peer, out_peer


def pml_accuracy(emb: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    calc = AccuracyCalculator(
        include=tuple(PML_KEYS),
        k=None,
        device=torch.device("cpu"),
        knn_func=CustomKNN(LpDistance(normalize_embeddings=False)),
    )
    acc = calc.get_accuracy(torch.from_numpy(emb), torch.from_numpy(labels))
    return {PML_KEYS[k]: float(v) for k, v in acc.items()}


def torchmetrics_retrieval(emb: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Leave-one-out retrieval with torchmetrics: one flat row per (query, other item), scored
    ``1 / (1 + d^2)``. The score must be positive: torchmetrics' AP, P@K and MRR drop the items
    whose score is <= 0 (its ``retrieval_average_precision``: ``target = where(preds > 0, ...)``),
    so the usual ``-d`` gives 0 for every query."""
    import torchmetrics.retrieval as R

    e, y = torch.from_numpy(emb).double(), torch.from_numpy(labels)
    n = len(y)
    off = ~torch.eye(n, dtype=torch.bool)  # (N, N): a query never retrieves itself
    preds = 1.0 / (1.0 + torch.cdist(e, e).square()[off])  # (N * (N - 1),)
    target = (y[:, None] == y[None, :])[off]
    indexes = torch.arange(n)[:, None].expand(n, n)[off]
    metrics = {
        "map": R.RetrievalMAP(),
        "r_precision": R.RetrievalRPrecision(),
        "precision_at_1": R.RetrievalPrecision(top_k=1),
        "mrr": R.RetrievalMRR(),
    }
    metrics |= {f"recall_at_{k}": R.RetrievalHitRate(top_k=k) for k in RECALL_KS}
    out = {}
    for k, m in metrics.items():
        m.update(preds, target, indexes=indexes)
        out[k] = float(m.compute())
    return out


def retrieval_case(params: dict, data_dir: Path | None, args: argparse.Namespace) -> list[Row]:
    rows = []
    emb, labels = make_data(args.n, 64, 10, 0)
    for warm_up in (retrieval_metrics, pml_accuracy, torchmetrics_retrieval):  # imports, pools
        warm_up(emb[:100], labels[:100])
    t_o, ours, t_p, peer = best_alternating(
        lambda: retrieval_metrics(emb, labels).summary(),
        lambda: pml_accuracy(emb, labels),
        args.repeats,
    )
    case = f"retrieval metrics, N={args.n:,} D=64 / PML AccuracyCalculator(k=None)"
    rows += [Row(case, k, ours[k], peer[k], "equal") for k in PML_KEYS.values()]
    rows.append(Row(case, "seconds", t_o, t_p, "time"))
    log(f"[retrieval] PML: ours {t_o:.2f} s, peer {t_p:.2f} s")

    emb, labels = make_data(args.tm_n, 64, 10, 1)
    t_o, ours, t_p, peer = best_alternating(
        lambda: retrieval_metrics(emb, labels, recall_ks=RECALL_KS).summary(),
        lambda: torchmetrics_retrieval(emb, labels),
        args.repeats,
    )
    case = f"retrieval metrics, N={args.tm_n:,} D=64 / torchmetrics Retrieval*"
    rows += [Row(case, k, ours[k], peer[k], "equal") for k in peer]
    rows.append(Row(case, "seconds", t_o, t_p, "time"))
    log(f"[retrieval] torchmetrics: ours {t_o:.2f} s, peer {t_p:.2f} s")
    return rows


# --------------------------------------------------------------------------------------------
# Search: faiss
# --------------------------------------------------------------------------------------------


def search_case(params: dict, data_dir: Path | None, args: argparse.Namespace) -> list[Row]:
    import faiss

    faiss.omp_set_num_threads(torch.get_num_threads())  # the same threads on both sides
    rng = np.random.default_rng(0)
    g = rng.standard_normal((args.gallery, 128), dtype=np.float32)
    q = rng.standard_normal((args.queries, 128), dtype=np.float32)
    index = GalleryIndex(g)
    rows = []
    for distance, flat in (("euclidean", faiss.IndexFlatL2), ("dot", faiss.IndexFlatIP)):
        peer_index = flat(128)
        peer_index.add(g)
        index.prepare(distance, "torch")
        t_o, ours, t_p, peer = best_alternating(
            lambda d=distance: index.search(q, 10, distance=d, backend="torch").positions,
            lambda p=peer_index: p.search(q, 10)[1],
            args.repeats,
        )
        same = float(np.mean(np.sort(ours, 1) == np.sort(peer, 1)))
        case = (
            f"search {distance}, {args.queries:,} queries x {args.gallery:,} x 128, k=10 / "
            f"faiss {flat.__name__}"
        )
        rows.append(Row(case, "identical neighbours", same, 1.0, "equal"))
        rows.append(Row(case, "seconds", t_o, t_p, "time"))
        log(f"[search] {distance}: ours {t_o:.2f} s, faiss {t_p:.2f} s, same {same:.4%}")
        del peer_index
    return rows


# --------------------------------------------------------------------------------------------
# Stereo: OpenCV SGBM, tuned on the training rows
# --------------------------------------------------------------------------------------------


def stereo_case(params: dict, data_dir: Path, args: argparse.Namespace) -> list[Row]:
    cfg = experiment(params, "stereo_mccnn", 0, args.quick)
    data = tasks.load(cfg, data_dir)
    stereo_task = tasks.get("stereo")
    with tempfile.TemporaryDirectory() as ck, torch_state():
        t0 = time.perf_counter()
        trained = tasks.train(cfg, data, checkpoint_dir=ck)
        train_s = time.perf_counter() - t0
    matcher = trained.model.eval()
    log(f"[stereo] stereo_mccnn trained in {train_s:.0f} s (OpenCV SGBM fits nothing)")
    region = stereo_task.regions(cfg, data)[0]  # the pair's train / test pixels
    pair = data[region.index]
    test_mask = region.codes == stereo_task.TEST
    sgbm_cfg = experiment(params, "stereo_sgbm", 0, args.quick)
    sgbm_cfg = dataclasses.replace(sgbm_cfg, post=cfg.post)  # stereo_mccnn's post-processing
    with tempfile.TemporaryDirectory() as ck:  # OpenCV's parameters; nothing is fitted
        sgbm_model = tasks.train(sgbm_cfg, data, checkpoint_dir=ck).model
    t_o, ours, t_p, peer_map = best_alternating(
        lambda: tasks.embed(cfg, matcher, data, "cpu")[f"post/{pair.id}"],
        lambda: tasks.embed(sgbm_cfg, sgbm_model, data, "cpu")[f"post/{pair.id}"],
        args.repeats,
    )
    m_o = disparity_counts(ours, pair.disparity, test_mask).metrics()
    m_p = disparity_counts(peer_map, pair.disparity, test_mask).metrics()
    case = "stereo_mccnn / OpenCV SGBM (stereo_sgbm, tuned on the training rows), same post"
    extra = []
    if matcher.dtype != torch.float32:  # the shipped inference_dtype, against float32
        fp32 = copy.deepcopy(matcher)
        fp32.dtype = torch.float32
        t32, _, t_p32, _ = best_alternating(
            lambda: tasks.embed(cfg, fp32, data, "cpu"),
            lambda: tasks.embed(sgbm_cfg, sgbm_model, data, "cpu"),
            args.repeats,
        )
        figure = f"seconds, full pair, network in float32 (shipped: {cfg.model.inference_dtype})"
        extra.append(Row(case, figure, t32, t_p32, "time"))
    return [
        Row(
            case, "accuracy at 3 px, test rows", m_o["accuracy_3px"], m_p["accuracy_3px"], "higher"
        ),
        Row(
            case, "accuracy at 1 px, test rows", m_o["accuracy_1px"], m_p["accuracy_1px"], "higher"
        ),
        Row(case, "EPE, test rows", m_o["epe"], m_p["epe"], "lower", " px"),
        Row(case, "seconds, full pair", t_o, t_p, "time"),
        *extra,
    ]


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> list[Row]:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny settings")
    ap.add_argument("--seeds", type=int, default=1, help="trainings per case (seed, seed+1, ..)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default 2; quick 1)")
    ap.add_argument("--n", type=int, default=None, help="PML comparison size (default 5,000)")
    ap.add_argument("--tm-n", type=int, default=None, help="torchmetrics size (default 2,000)")
    ap.add_argument("--gallery", type=int, default=None, help="search gallery (500,000)")
    ap.add_argument("--queries", type=int, default=None, help="search queries (1,000)")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    small = args.quick
    for key, full, quick in (
        ("repeats", 2, 1),
        ("n", 5_000, 600),
        ("tm_n", 2_000, 200),
        ("gallery", 500_000, 20_000),
        ("queries", 1_000, 50),
    ):
        if getattr(args, key) is None:
            setattr(args, key, quick if small else full)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    threads = torch.get_num_threads()
    datasets = {"metric": "mnist5k", "simclr": "digits", "stereo": "motorcycle"}
    run = {
        "metric": metric_case,
        "simclr": simclr_case,
        "retrieval": retrieval_case,
        "search": search_case,
        "stereo": stereo_case,
    }
    rows: list[Row] = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            t0 = time.perf_counter()
            torch.set_num_threads(threads)  # a training's train.num_threads does not carry over
            data_dir = dataset_dir(params, datasets[case], Path(tmp)) if case in datasets else None
            rows += run[case](params, data_dir, args)
            log(f"[{case}] done in {time.perf_counter() - t0:.0f} s")
    table = render(rows)
    print(
        f"simlearn against its peers: CPU, {threads} torch threads (training cases: their "
        f"train.num_threads), {args.seeds} seed(s), best of {args.repeats} alternating timed "
        f"repeat(s){', QUICK smoke settings' if args.quick else ''}; "
        f"{time.perf_counter() - t_all:.0f} s in all"
    )
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return rows


if __name__ == "__main__":
    main()
