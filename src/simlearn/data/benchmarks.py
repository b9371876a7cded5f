"""The three metric-learning benchmarks as sources: CUB-200-2011, Cars196, Stanford Online Products.

Each benchmark is read from its official archive and layout into one table, a row per image:
``path`` (absolute), ``class_name``, ``split`` (train | test, by the official protocol) and
``is_query`` / ``is_gallery``. The parsers (:func:`cub_table`, :func:`cars_table`,
:func:`sop_table`) are pure: an extracted folder in, ``(table, class_names)`` out, with
``class_names`` in official class-id order. The builders (:func:`build_cub200`,
:func:`build_cars196`, :func:`build_sop`) fetch and unpack the archive, parse it and hand the
table to :func:`simlearn.data.image_files.write_files_dataset`, which copies the images and
writes the manifest of kind ``"files"``.

The class split is the one of the metric-learning literature (Oh Song et al., "Deep Metric
Learning via Lifted Structured Feature Embedding", CVPR 2016, kept by Musgrave et al., "A Metric
Learning Reality Check", ECCV 2020, https://arxiv.org/abs/2003.08505): the first half of the
official class ids trains, the second half tests (:func:`first_half_split`).

=========  ==================================================  ==========  ======================
source     files                                               classes     train / test
=========  ==================================================  ==========  ======================
cub200     ``CUB_200_2011.tgz``: ``classes.txt``,              200         1-100 / 101-200
           ``images.txt``, ``image_class_labels.txt``                      (5,864 / 5,924 images)
cars196    ``car_ims.tgz`` + ``cars_annos.mat`` (scipy)        196         1-98 / 99-196
                                                                           (8,054 / 8,131 images)
sop        ``Stanford_Online_Products.zip``:                   22,634      ``Ebay_train.txt`` /
           ``Ebay_train.txt``, ``Ebay_test.txt``                           ``Ebay_test.txt``
                                                                           (59,551 / 60,502)
=========  ==================================================  ==========  ======================

None of the three defines separate query and gallery sets: every test image is both a query and
a gallery item (leave-one-out retrieval), so ``is_query`` and ``is_gallery`` are True throughout.

A layout error (a missing index file, a malformed line, an index naming a missing image, a class
id out of range) raises one :class:`BenchmarkLayoutError` naming the file and the line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from simlearn.config import DatasetConfig
from simlearn.data.errors import LayoutError
from simlearn.data.fetch import SourceUnreachableError
from simlearn.data.image_files import write_files_dataset
from simlearn.data.unpack import find_dir, unpack

__all__ = [
    "BenchmarkLayoutError",
    "CARS_ANNOTATIONS",
    "CARS_ARCHIVE",
    "CUB_ARCHIVE",
    "PROTOCOLS",
    "SOP_ARCHIVE",
    "build_cars196",
    "build_cub200",
    "build_sop",
    "cars_table",
    "cub_table",
    "first_half_split",
    "sop_table",
]

CUB_ARCHIVE = "CUB_200_2011.tgz"
CUB_FOLDER = "CUB_200_2011"
CARS_ARCHIVE = "car_ims.tgz"
CARS_FOLDER = "car_ims"
CARS_ANNOTATIONS = "cars_annos.mat"
SOP_ARCHIVE = "Stanford_Online_Products.zip"
SOP_FOLDER = "Stanford_Online_Products"
SOP_HEADER = ("image_id", "class_id", "super_class_id", "path")

#: meta.json ``protocol``: how each benchmark is split
PROTOCOLS = {
    "cub200": "classes 1-100 train, 101-200 test (first half of the class ids; Musgrave et al. "
    "2020); val carved from the train images",
    "cars196": "classes 1-98 train, 99-196 test, all images of a class (first half of the class "
    "ids; Musgrave et al. 2020); val carved from the train images",
    "sop": "Ebay_train.txt (classes 1-11,318) train, Ebay_test.txt (11,319-22,634) test; val "
    "carved from the train images",
}

#: fetch(cfg, filename, dest, dataset name) -> dest: downloads one of the source's files (URL and
#: SHA-256 from the source registry, :func:`simlearn.data.sources._fetch`); passed in by the
#: registry
FetchFile = Callable[[DatasetConfig, str, Path, str], Path]
#: check_raw(layout, root), as :data:`simlearn.data.sources.RawCheck`; the benchmarks check their
#: own layout while parsing, so the builders accept it and do not call it
RawCheck = Callable[[str, Path], None]
#: meta(cfg) -> meta.json's ``config`` entry (:func:`simlearn.data.sources._meta`)
ConfigMeta = Callable[[DatasetConfig], Mapping[str, object]]


class BenchmarkLayoutError(LayoutError):
    """A benchmark's files do not follow the official layout; the message names file and line."""


# ----------------------------------------------------------------------------- protocol


def first_half_split(class_ids: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """``"train"`` for official class ids ``1..num_classes // 2``, ``"test"`` for the rest.

    The class-disjoint protocol of the metric-learning benchmarks (Oh Song et al. 2016; Musgrave
    et al. 2020): CUB-200-2011 trains on classes 1-100 and tests on 101-200, Cars196 on 1-98 and
    99-196. Ids are 1-based, as the benchmarks number them.
    """
    ids = np.asarray(class_ids, dtype=np.int64)
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r}: need at least 2 classes to split")
    if ids.size and (ids.min() < 1 or ids.max() > num_classes):
        raise ValueError(f"class ids must lie in 1..{num_classes}, got {ids.min()}..{ids.max()}")
    return np.where(ids <= num_classes // 2, "train", "test").astype(object)


def _table(paths: list[str], class_names: list[str], splits: Sequence[str]) -> pd.DataFrame:
    """The writer's table; every image is both query and gallery (leave-one-out retrieval)."""
    n = len(paths)
    return pd.DataFrame(
        {
            "path": pd.Series(paths, dtype=object),
            "class_name": pd.Series(class_names, dtype=object),
            "split": pd.Series(list(splits), dtype=object),
            "is_query": np.ones(n, dtype=bool),
            "is_gallery": np.ones(n, dtype=bool),
        }
    )


# ----------------------------------------------------------------------------- index files


def _lines(path: Path, what: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped line) of a text index, blank lines skipped."""
    if not path.is_file():
        raise BenchmarkLayoutError(f"{path}: missing; {what}")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, line.strip()


def _fields(path: Path, number: int, line: str, names: Sequence[str]) -> list[str]:
    """Split ``line`` into ``len(names)`` fields, the last one taking the rest of the line."""
    parts = line.split(maxsplit=len(names) - 1)
    if len(parts) != len(names):
        raise BenchmarkLayoutError(
            f"{path}, line {number}: expected {len(names)} fields "
            f"'{' '.join(f'<{n}>' for n in names)}', got {line!r}"
        )
    return parts


def _int(path: Path, number: int, line: str, name: str, value: str) -> int:
    try:
        parsed = int(value)
    except ValueError:
        raise BenchmarkLayoutError(
            f"{path}, line {number}: {name} {value!r} is not an integer: {line!r}"
        ) from None
    if parsed < 1:
        raise BenchmarkLayoutError(
            f"{path}, line {number}: {name} {parsed} must be >= 1 (ids are 1-based): {line!r}"
        )
    return parsed


def _image(root: Path, relative: str, where: str) -> str:
    """The absolute path of an indexed image; raises when it is missing or escapes ``root``."""
    if relative.startswith("/") or ".." in relative.replace("\\", "/").split("/"):
        raise BenchmarkLayoutError(f"{where}: image path {relative!r} leaves {root}")
    path = root / relative
    if not path.is_file():
        raise BenchmarkLayoutError(f"{where}: names {relative!r}, but {path} does not exist")
    return str(path.absolute())


# ----------------------------------------------------------------------------- CUB-200-2011


def cub_table(root: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Read an extracted ``CUB_200_2011/`` folder: (table, class names in class-id order).

    ``classes.txt`` holds ``<class_id> <name>`` (ids 1..C), ``images.txt`` ``<image_id>
    <path under images/>`` and ``image_class_labels.txt`` ``<image_id> <class_id>``. Rows follow
    ``images.txt``; classes ``1..C // 2`` train, the rest test (:func:`first_half_split`).
    The official ``train_test_split.txt`` (a per-image split for classification) is not used.
    """
    root = Path(root)
    hint = f"not the {CUB_FOLDER}/ folder of {CUB_ARCHIVE}?"

    classes_txt = root / "classes.txt"
    names: dict[int, str] = {}
    for number, line in _lines(classes_txt, hint):
        cid_s, name = _fields(classes_txt, number, line, ("class_id", "name"))
        cid = _int(classes_txt, number, line, "class id", cid_s)
        if cid in names:
            raise BenchmarkLayoutError(
                f"{classes_txt}, line {number}: class id {cid} is listed twice: {line!r}"
            )
        if name in names.values():
            raise BenchmarkLayoutError(
                f"{classes_txt}, line {number}: class name {name!r} is listed twice: {line!r}"
            )
        names[cid] = name
    num_classes = len(names)
    if sorted(names) != list(range(1, num_classes + 1)):
        missing = sorted(set(range(1, max(names, default=0) + 1)) - set(names))
        raise BenchmarkLayoutError(
            f"{classes_txt}: class ids must run 1..{num_classes} without gaps; missing {missing}"
        )

    images_txt = root / "images.txt"
    images: dict[int, tuple[int, str]] = {}  # image id -> (line number, relative path)
    for number, line in _lines(images_txt, hint):
        iid_s, relative = _fields(images_txt, number, line, ("image_id", "path"))
        iid = _int(images_txt, number, line, "image id", iid_s)
        if iid in images:
            raise BenchmarkLayoutError(
                f"{images_txt}, line {number}: image id {iid} is listed twice: {line!r}"
            )
        images[iid] = (number, relative)

    labels_txt = root / "image_class_labels.txt"
    labels: dict[int, int] = {}
    for number, line in _lines(labels_txt, hint):
        iid_s, cid_s = _fields(labels_txt, number, line, ("image_id", "class_id"))
        iid = _int(labels_txt, number, line, "image id", iid_s)
        cid = _int(labels_txt, number, line, "class id", cid_s)
        if iid not in images:
            raise BenchmarkLayoutError(
                f"{labels_txt}, line {number}: image id {iid} is not in images.txt: {line!r}"
            )
        if iid in labels:
            raise BenchmarkLayoutError(
                f"{labels_txt}, line {number}: image id {iid} is labelled twice: {line!r}"
            )
        if cid > num_classes:
            raise BenchmarkLayoutError(
                f"{labels_txt}, line {number}: class id {cid} is out of range 1..{num_classes} "
                f"(classes.txt lists {num_classes} classes): {line!r}"
            )
        labels[iid] = cid

    paths, class_ids = [], []
    for iid, (number, relative) in images.items():
        if iid not in labels:
            raise BenchmarkLayoutError(
                f"{images_txt}, line {number}: image id {iid} has no line in image_class_labels.txt"
            )
        paths.append(_image(root / "images", relative, f"{images_txt}, line {number}"))
        class_ids.append(labels[iid])
    class_names = [names[c] for c in range(1, num_classes + 1)]
    table = _table(paths, [names[c] for c in class_ids], first_half_split(class_ids, num_classes))
    return table, class_names


# ----------------------------------------------------------------------------- Cars196


def _mat_scalar(value: object) -> object:
    """The one element of a MATLAB field as loadmat gives it (nested 1x1 arrays)."""
    flat = np.asarray(value).ravel()
    if flat.size != 1:
        raise ValueError(f"expected one value, got {flat.size}")
    item = flat[0]
    return _mat_scalar(item) if isinstance(item, np.ndarray) else item


def cars_table(root: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Read a folder holding ``cars_annos.mat`` and the extracted ``car_ims/``.

    ``cars_annos.mat`` (read with :func:`scipy.io.loadmat`) holds ``annotations``, a struct array
    with one record per image (``relative_im_path`` such as ``car_ims/000001.jpg``, the
    ``bbox_*`` corners, ``class`` in 1..196 and ``test``), and ``class_names``, 196 names in
    class-id order. Classes ``1..C // 2`` train and the rest test, every image of a class: the
    mat's own ``test`` flag (the classification split of Krause et al. 2013) is ignored, as the
    metric-learning protocol does. Records are numbered from 1 in messages, as MATLAB does.
    """
    from scipy.io import loadmat  # scipy.io is slow to import and only Cars196 needs it

    root = Path(root)
    mat_path = root / CARS_ANNOTATIONS
    if not mat_path.is_file():
        raise BenchmarkLayoutError(f"{mat_path}: missing; it ships beside {CARS_ARCHIVE}")
    try:
        mat = loadmat(mat_path)
    except Exception as err:  # scipy raises ValueError, TypeError, MatReadError, ...
        raise BenchmarkLayoutError(f"{mat_path}: not a readable MATLAB file ({err})") from err
    for key in ("annotations", "class_names"):
        if key not in mat:
            raise BenchmarkLayoutError(f"{mat_path}: has no variable {key!r}")
    annotations = np.asarray(mat["annotations"]).ravel()  # (N,) struct records
    fields = annotations.dtype.names or ()
    missing = [f for f in ("relative_im_path", "class") if f not in fields]
    if missing:
        raise BenchmarkLayoutError(f"{mat_path}: annotations lack the fields {missing}")
    try:
        class_names = [str(_mat_scalar(n)) for n in np.asarray(mat["class_names"]).ravel()]
    except ValueError as err:
        raise BenchmarkLayoutError(f"{mat_path}: class_names: {err}") from err
    num_classes = len(class_names)
    duplicates = sorted({n for n in class_names if class_names.count(n) > 1})
    if duplicates:
        raise BenchmarkLayoutError(f"{mat_path}: class_names lists {duplicates} more than once")

    paths, class_ids = [], []
    for i, record in enumerate(annotations, start=1):
        where = f"{mat_path}, annotations({i})"
        try:
            relative = str(_mat_scalar(record["relative_im_path"]))
            cid = _mat_scalar(record["class"])
        except ValueError as err:
            raise BenchmarkLayoutError(f"{where}: {err}") from err
        if not isinstance(cid, int | np.integer | float | np.floating) or cid != int(cid):
            raise BenchmarkLayoutError(f"{where}: class {cid!r} is not an integer")
        if not 1 <= int(cid) <= num_classes:
            raise BenchmarkLayoutError(
                f"{where}: class {int(cid)} is out of range 1..{num_classes} "
                f"(class_names lists {num_classes} classes)"
            )
        paths.append(_image(root, relative, where))
        class_ids.append(int(cid))
    names = [class_names[c - 1] for c in class_ids]
    return _table(paths, names, first_half_split(class_ids, num_classes)), class_names


# ----------------------------------------------------------------------------- SOP


def _sop_index(root: Path, filename: str) -> list[tuple[int, str, int]]:
    """(line number, absolute image path, class id) for each image line of an Ebay_*.txt."""
    path = root / filename
    rows = _lines(path, f"not the {SOP_FOLDER}/ folder of {SOP_ARCHIVE}?")
    first = next(rows, None)
    if first is None or tuple(first[1].split()) != SOP_HEADER:
        raise BenchmarkLayoutError(
            f"{path}, line {first[0] if first else 1}: expected the header "
            f"{' '.join(SOP_HEADER)!r}, got {first[1] if first else ''!r}"
        )
    entries, seen = [], set()
    for number, line in rows:
        iid_s, cid_s, super_s, relative = _fields(path, number, line, SOP_HEADER)
        iid = _int(path, number, line, "image id", iid_s)
        cid = _int(path, number, line, "class id", cid_s)
        _int(path, number, line, "super class id", super_s)
        if iid in seen:
            raise BenchmarkLayoutError(f"{path}, line {number}: image id {iid} is listed twice")
        seen.add(iid)
        entries.append((number, _image(root, relative, f"{path}, line {number}"), cid))
    return entries


def sop_table(root: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Read an extracted ``Stanford_Online_Products/`` folder: (table, class names by id).

    ``Ebay_train.txt`` and ``Ebay_test.txt`` start with the header ``image_id class_id
    super_class_id path`` and list one image per line, paths relative to the folder (such as
    ``bicycle_final/111085122871_0.JPG``). The official split is the files themselves: classes
    1-11,318 train, 11,319-22,634 test, no class in both. A class is named by its id.
    """
    root = Path(root)
    train = _sop_index(root, "Ebay_train.txt")
    test = _sop_index(root, "Ebay_test.txt")
    train_ids = {cid for _, _, cid in train}
    for number, _, cid in test:
        if cid in train_ids:
            raise BenchmarkLayoutError(
                f"{root / 'Ebay_test.txt'}, line {number}: class id {cid} is also in "
                "Ebay_train.txt; the official splits are class-disjoint"
            )
    rows = train + test
    table = _table(
        [path for _, path, _ in rows],
        [str(cid) for _, _, cid in rows],
        ["train"] * len(train) + ["test"] * len(test),
    )
    return table, [str(c) for c in sorted({cid for _, _, cid in rows})]


# ----------------------------------------------------------------------------- builders


def _fetch_tree(
    cfg: DatasetConfig,
    downloads: Path,
    fetch: FetchFile,
    archive: str,
    markers: Sequence[str],
    max_bytes: int,
    name: str,
) -> None:
    """Make sure ``downloads`` holds the extracted ``archive``: every path in ``markers``.

    An extracted tree (unpacked before, or by hand) is used as it is. Otherwise the archive is
    fetched into ``downloads`` (an archive placed there by hand is verified and used) and its
    top folder (the first component of the markers) unpacked into place, wherever the archive
    nests it (:func:`simlearn.data.unpack.unpack`); anything else it holds (CUB's stray
    top-level ``attributes.txt``) is dropped. An archive that cannot be read or lacks the
    markers is moved aside to ``<archive>.corrupt``, so the next run fetches it again.
    """
    if all((downloads / m).exists() for m in markers):
        return
    try:
        path = fetch(cfg, archive, downloads / archive, name)
    except SourceUnreachableError as err:
        raise SourceUnreachableError(
            f"{err} Alternatively extract it yourself into {downloads.absolute()}, so that "
            f"{(downloads / markers[0]).absolute()} exists."
        ) from err
    top = Path(markers[0]).parts[0]
    inside = [Path(m).relative_to(top) for m in markers]

    def is_top(folder: Path) -> bool:
        return folder.name == top and all((folder / m).exists() for m in inside)

    where = "" if cfg.url is None else f" from {cfg.url}"
    unpack(
        path, downloads / top, find=lambda root: find_dir(root, is_top, max_depth=2),
        expected=", ".join(markers), max_bytes=max_bytes,
        again=f"downloads it again{where} (or uses a good copy placed at {path})",
    )  # fmt: skip


def _write(
    cfg: DatasetConfig,
    out: Path,
    name: str,
    meta: ConfigMeta,
    table: pd.DataFrame,
    class_names: list[str],
) -> pd.DataFrame:
    """Copy the images and write the manifest; the table's train/test split makes meta.json's
    ``split_by`` "official", and val is carved from train by ``cfg.val_fraction``."""
    return write_files_dataset(
        out, table, cfg, source=cfg.source, name=name, class_names=class_names,
        extra_meta={**meta(cfg), "protocol": PROTOCOLS[cfg.source]},
    )  # fmt: skip


def build_cub200(
    cfg: DatasetConfig,
    out: Path,
    downloads: Path,
    name: str,
    check_raw: RawCheck | None = None,
    *,
    fetch: FetchFile,
    max_bytes: int,
    meta: ConfigMeta,
) -> pd.DataFrame:
    """CUB-200-2011 from ``CUB_200_2011.tgz``: classes 1-100 train, 101-200 test."""
    markers = [f"{CUB_FOLDER}/{f}" for f in ("images.txt", "image_class_labels.txt",
                                              "classes.txt", "images")]  # fmt: skip
    _fetch_tree(cfg, downloads, fetch, CUB_ARCHIVE, markers, max_bytes, name)
    return _write(cfg, out, name, meta, *cub_table(downloads / CUB_FOLDER))


def build_cars196(
    cfg: DatasetConfig,
    out: Path,
    downloads: Path,
    name: str,
    check_raw: RawCheck | None = None,
    *,
    fetch: FetchFile,
    max_bytes: int,
    meta: ConfigMeta,
) -> pd.DataFrame:
    """Cars196 from ``car_ims.tgz`` and ``cars_annos.mat``: classes 1-98 train, 99-196 test."""
    _fetch_tree(cfg, downloads, fetch, CARS_ARCHIVE, [CARS_FOLDER], max_bytes, name)
    fetch(cfg, CARS_ANNOTATIONS, downloads / CARS_ANNOTATIONS, name)  # used as it is when present
    return _write(cfg, out, name, meta, *cars_table(downloads))


def build_sop(
    cfg: DatasetConfig,
    out: Path,
    downloads: Path,
    name: str,
    check_raw: RawCheck | None = None,
    *,
    fetch: FetchFile,
    max_bytes: int,
    meta: ConfigMeta,
) -> pd.DataFrame:
    """Stanford Online Products from ``Stanford_Online_Products.zip``: Ebay_train / Ebay_test."""
    markers = [f"{SOP_FOLDER}/Ebay_train.txt", f"{SOP_FOLDER}/Ebay_test.txt"]
    _fetch_tree(cfg, downloads, fetch, SOP_ARCHIVE, markers, max_bytes, name)
    return _write(cfg, out, name, meta, *sop_table(downloads / SOP_FOLDER))
