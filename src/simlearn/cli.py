"""The ``simlearn`` command.

    simlearn search --exp triplet --query path/to/image.png --k 8
    simlearn search --exp triplet --query-id <id> --distance cosine --normalize l2

``search`` finds the items of an experiment's gallery (``data/embeddings/<exp>.npz``: every
embedded item, or the photos of a sketch/photo experiment) nearest to a query, prints them with
their ids, labels and distances, and draws the query beside its results in a PNG. The query is
an image file, embedded with the experiment's trained model (``models/<exp>/model.pt``) exactly
as the ``embed`` stage embeds the dataset (uint8 pixels to [0, 1], then the model's own
training-split normalisation), or an item of the dataset (``--query-id``), whose stored embedding
is used and which is left out of its own results. ``--distance`` and ``--normalize`` override
the experiment's ``eval`` section. The gallery index is saved beside the embeddings
(:mod:`simlearn.search`), so the next search loads it instead of building it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from simlearn.distances import ALIASES, DISTANCES, NORMALIZATIONS

__all__ = ["SearchError", "main", "search_command"]

_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


class SearchError(Exception):
    """A search that cannot run as asked; the message says what is expected."""


#: the most results the search figure draws (the printed table lists every one of the k)
FIGURE_RESULTS = 16


def _file_part(text: str) -> str:
    """``text`` as one safe file-name component: an id such as ``../x`` or ``a/b`` never makes
    the figure land outside the output folder."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "query"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="simlearn", description="simlearn command line")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "search",
        help="nearest gallery items of a query image or of a dataset item",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--exp", required=True, help="experiment key in params.yaml, e.g. triplet")
    q = s.add_mutually_exclusive_group(required=True)
    q.add_argument("--query", type=Path, help="an image file (PNG, JPEG, ...)")
    q.add_argument("--query-id", help="the id of an embedded item (see the `ids` of the npz)")
    s.add_argument("--k", type=int, default=8, help="results to show (default 8)")
    s.add_argument(
        "--distance",
        choices=(*DISTANCES, *ALIASES),
        help="default: the experiment's eval.distance",
    )
    s.add_argument(
        "--normalize", choices=NORMALIZATIONS, help="default: the experiment's eval.normalize"
    )
    s.add_argument("--params", type=Path, default=Path("params.yaml"))
    s.add_argument(
        "--root", type=Path, default=Path("."), help="project folder with data/ and models/"
    )
    s.add_argument("--out", type=Path, help="the PNG (default: search_<exp>_<query>.png)")
    s.add_argument("--backend", choices=("auto", "faiss", "torch"), default="auto")
    return p.parse_args(argv)


# --------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------


def _experiment(params_path: Path, exp: str) -> Any:
    from simlearn.config import load_params
    from simlearn.tasks import experiment_config

    if not params_path.exists():
        raise SearchError(f"{params_path} is missing: give the project's params with --params")
    return experiment_config(load_params(params_path), exp)  # ConfigError lists the keys


def _read_image(path: Path, expected: tuple[int, int, int]) -> np.ndarray:
    """uint8 (H, W, C) pixels of ``path``, checked against the model's input ``expected``."""
    from PIL import Image, UnidentifiedImageError

    h, w, c = expected
    want = f"{w}x{h} pixels with {c} channel{'s' if c > 1 else ''}"
    mode_of = {1: "greyscale, PIL mode L", 3: "RGB", 4: "RGBA", 2: "greyscale + alpha, LA"}
    want += f" ({mode_of.get(c, 'uint8')}, 8 bits)"
    if not path.exists():
        raise SearchError(f"query image {path} does not exist")
    if path.is_dir():
        raise SearchError(
            f"--query {path} is a folder; give one image file (a .png or .jpg), or an item of "
            "the dataset with --query-id"
        )
    try:
        with Image.open(path) as img:
            img.load()
            mode, size = img.mode, img.size
            pixels = np.asarray(img)
    except UnidentifiedImageError as e:
        raise SearchError(f"{path} is not an image file PIL can read: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:  # a truncated or damaged image
        raise SearchError(
            f"{path} cannot be decoded ({e}): the file is truncated or damaged"
        ) from e
    if mode not in _MODES:
        raise SearchError(
            f"{path}: PIL mode {mode!r} does not fit the model, which takes {want}; convert it, "
            f"e.g. Image.open(path).convert({'L' if c == 1 else 'RGB'!r})"
        )
    got_c = _MODES[mode]
    if (size[0], size[1], got_c) != (w, h, c):
        raise SearchError(
            f"{path} is {size[0]}x{size[1]} pixels with {got_c} channel"
            f"{'s' if got_c > 1 else ''} (mode {mode}); the model takes {want}. Resize or "
            f"convert it first, e.g. Image.open(path).convert({'L' if c == 1 else 'RGB'!r})"
            f".resize(({w}, {h}))"
        )
    return pixels.reshape(h, w, c).astype(np.uint8)


def _load_model(task: Any, model_dir: Path) -> Any:
    if not (model_dir / "model.pt").exists():
        raise SearchError(
            f"no trained model at {model_dir / 'model.pt'}: run `dvc repro train@{model_dir.name}`"
            f" (or stages/train.py) first"
        )
    if hasattr(task, "load_model"):
        model, _ = task.load_model(model_dir)
    else:
        from simlearn.models import load_model

        model, _ = load_model(model_dir / "model.pt")
    return model


def _item_image(data: Any, row: int) -> np.ndarray:
    """uint8 (H, W, C) pixels of dataset row ``row``."""
    if hasattr(data, "images"):
        return np.asarray(data.images[row])
    from PIL import Image

    with Image.open(Path(data.root) / str(data.paths[row])) as img:
        a = np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
    return a[..., None] if a.ndim == 2 else a


def _as_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) of any (H', W', C) image, resized to ``size`` (H, W) for a common grid."""
    from PIL import Image

    a = image[..., 0] if image.shape[-1] == 1 else image[..., :3]
    img = Image.fromarray(a).convert("RGB")
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.NEAREST)
    return np.asarray(img)


def plot_search(
    query_image: np.ndarray,
    result_images: list[np.ndarray],
    captions: list[str],
    path: Path,
    *,
    title: str,
    query_caption: str,
    same_class: np.ndarray | None = None,
) -> Path:
    """One row: the query, a gap, then its results nearest first, each with its caption; the
    frames are green (same class as the query) or red (another class) when ``same_class`` is
    known, with a check or a cross as well, so that colour is not the only cue."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = query_image.shape[:2]
    k = len(result_images)
    fig = plt.figure(figsize=(1.45 * (k + 1) + 0.4, 2.5))
    grid = fig.add_gridspec(1, k + 2, width_ratios=[1.0, 0.15] + [1.0] * k)
    cells = [(fig.add_subplot(grid[0, 0]), query_image, query_caption, "#555555", "")]
    for i, (img, cap) in enumerate(zip(result_images, captions, strict=True)):
        color, mark = "#555555", ""
        if same_class is not None:
            color = "#2ca02c" if same_class[i] else "#d62728"
            mark = "\u2713" if same_class[i] else "\u2717"
        cells.append((fig.add_subplot(grid[0, i + 2]), img, cap, color, mark))
    for j, (ax, img, cap, color, mark) in enumerate(cells):
        ax.imshow(_as_rgb(img, (h, w)), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_edgecolor(color)
            side.set_linewidth(3)
        ax.set_xlabel(cap, fontsize=7)
        ax.set_title("query" if j == 0 else f"#{j}{' ' + mark if mark else ''}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# search
# --------------------------------------------------------------------------------------------


def search_command(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``simlearn search``; returns what it printed, as values (for tests)."""
    from simlearn import distances, tasks
    from simlearn.search import load_index

    root = args.root
    params = args.params if args.params.is_absolute() else root / args.params
    cfg = _experiment(params, args.exp)
    task = tasks.get(cfg.task)
    ev = getattr(cfg, "eval", None)
    distance = distances.get(args.distance or getattr(ev, "distance", "euclidean"))
    normalize = args.normalize or getattr(ev, "normalize", "none")
    emb_path = root / "data" / "embeddings" / f"{args.exp}.npz"
    if not emb_path.exists():
        raise SearchError(
            f"{emb_path} is missing: embed the experiment first (`dvc repro embed@{args.exp}`)"
        )
    from simlearn.data.readers import read_npz

    arrays = read_npz(emb_path, remedy=f"`dvc repro embed@{args.exp}` writes it again.")
    if "embeddings" not in arrays:
        raise SearchError(
            f"experiment {args.exp!r} (task {cfg.task}) writes {', '.join(sorted(arrays))}, not "
            "embeddings, so it has no gallery to search; pick an experiment of task metric, "
            "simclr or sbir"
        )
    index = load_index(emb_path, normalize)
    if args.k < 1:
        raise SearchError(f"--k {args.k}: give at least 1 result")
    data_dir = root / "data" / cfg.dataset
    try:
        data = task.load_data(data_dir)
    except FileNotFoundError as e:
        raise SearchError(f"the dataset of {args.exp} is missing: {e}") from e

    with np.load(emb_path, allow_pickle=False) as z:  # read whole above: not truncated
        all_ids = z["ids"].astype(str)
        all_labels = z["labels"] if "labels" in z.files else None
        domains = z["domain"].astype(str) if "domain" in z.files else None
        if len(all_ids) != len(data.ids) or not np.array_equal(all_ids, np.asarray(data.ids, str)):
            raise SearchError(
                f"{emb_path} does not list the items of {data_dir} in order: the embeddings are "
                f"stale, rerun `dvc repro embed@{args.exp}`"
            )
        if args.query_id is not None:
            hits = np.flatnonzero(all_ids == str(args.query_id))
            if len(hits) == 0:
                raise SearchError(
                    f"--query-id {args.query_id!r} is not an item of {emb_path}; ids look like "
                    f"{', '.join(all_ids[:5])}"
                )
            row = int(hits[0])
            query = z["embeddings"][row : row + 1]
            query_image = _item_image(data, row)
            query_label = None if all_labels is None else all_labels[row]
            exclude = [row]
            name = str(args.query_id)
        else:
            if not hasattr(data, "images"):
                raise SearchError(
                    f"task {cfg.task}: image-file queries are supported for the image tasks "
                    "(metric, simclr); pick a sketch of the dataset with --query-id"
                )
            model = _load_model(task, root / "models" / args.exp)
            query_image = _read_image(args.query, tuple(data.shape))
            from simlearn.models.embedder import embed_images

            query = embed_images(model, query_image[None], "cpu")  # (1, D)
            if query.shape[1] != index.dim:
                raise SearchError(
                    f"models/{args.exp}/model.pt gives {query.shape[1]}-d embeddings but "
                    f"{emb_path} holds {index.dim}-d ones: rerun `dvc repro embed@{args.exp}`"
                )
            query_label, exclude, name = None, None, args.query.stem
    in_gallery = exclude is not None and index.position_of(exclude[0]) is not None
    k = min(args.k, len(index) - (1 if in_gallery else 0))
    res = index.search(query, k, distance=distance, backend=args.backend, exclude_rows=exclude)

    names = list(getattr(data, "class_names", []) or [])

    def label_text(y: Any) -> str:
        y = int(y)
        return f"{y} ({names[y]})" if 0 <= y < len(names) and names[y] != str(y) else str(y)

    d_name = distance.label + (" (-q.g)" if distance == distances.DOT else "")
    where = f"{len(index)} items" + (f" of domain {index.domain}" if index.domain else "")
    print(
        f"[{args.exp}] query {name}"
        + (f" (label {label_text(query_label)})" if query_label is not None else "")
        + f": top {k} of {where}, distance {d_name}, normalize {normalize}, {res.backend}"
    )
    width = max(4, max(len(str(i)) for i in res.ids[0]))
    print(f"{'rank':>4}  {'id':<{width}}  {'label':<12}  distance")
    for r in range(k):
        lab = label_text(res.labels[0, r]) if all_labels is not None else "-"
        print(f"{r + 1:>4}  {res.ids[0, r]:<{width}}  {lab:<12}  {res.distances[0, r]:.6g}")

    same = None if query_label is None else res.labels[0] == query_label
    captions = [
        f"{res.ids[0, r]}\nlabel {label_text(res.labels[0, r])}\nd={res.distances[0, r]:.3g}"
        for r in range(k)
    ]
    q_caption = "" if query_label is None else f"label {label_text(query_label)}"
    q_caption = f"{name}\n{q_caption}" if q_caption else name
    if domains is not None and exclude is not None:
        q_caption += f"\n({domains[exclude[0]]})"
    out = args.out or Path(f"search_{_file_part(args.exp)}_{_file_part(name)}.png")
    matched = "" if same is None else f", {int(same.sum())}/{k} share its label"
    shown = min(k, FIGURE_RESULTS)  # the table lists all k; the figure the nearest ones
    plot_search(
        query_image,
        [_item_image(data, int(r)) for r in res.rows[0][:shown]],
        captions[:shown],
        out,
        title=f"{args.exp}: top {k} by {d_name} (normalize {normalize}){matched}"
        + (f"; the nearest {shown} shown" if shown < k else ""),
        query_caption=q_caption,
        same_class=None if same is None else same[:shown],
    )
    print(f"figure: {out}")
    return {"result": res, "figure": out, "query_label": query_label, "distance": distance.name}


def main(argv: list[str] | None = None) -> int:
    from simlearn.config import ConfigError
    from simlearn.data.errors import DataError

    args = parse_args(argv)
    try:
        if args.command == "search":
            search_command(args)
    except (SearchError, ConfigError, DataError) as e:
        print(f"simlearn {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
