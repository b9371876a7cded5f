"""Turn a downloaded archive into its extracted tree, or set it aside: one way for every source.

:func:`unpack` extracts an archive (zip, tar, 7z: :func:`simlearn.data.extract.safe_extract`)
into a scratch folder beside it, looks for the tree the source needs, and moves that tree into
place. When the archive cannot be read, is refused as unsafe, or does not hold the expected
layout, nothing is extracted into place: the scratch folder is removed and the archive is moved
aside to ``<archive>.corrupt``, exactly like a download whose checksum does not match, so the
next run fetches it again instead of failing on the same file for ever. The error says what was
wrong, which folder was expected and what the archive held instead, and where the file went.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from simlearn.data.extract import safe_extract
from simlearn.data.fetch import FetchError

__all__ = [
    "CORRUPT_SUFFIX",
    "CorruptDownloadError",
    "describe_tree",
    "find_dir",
    "set_aside",
    "unpack",
]

#: what a file set aside is renamed to (``fetch`` does the same with a checksum mismatch)
CORRUPT_SUFFIX = ".corrupt"


class CorruptDownloadError(FetchError):
    """A downloaded (or hand-placed) file cannot be used; it was moved aside, and the message
    says where and what the next run does."""


def set_aside(path: Path) -> Path:
    """Move ``path`` to ``<path>.corrupt`` (replacing an older one there) and return that path."""
    path = Path(path)
    moved = path.with_name(path.name + CORRUPT_SUFFIX)
    if moved.is_dir():
        shutil.rmtree(moved)
    os.replace(path, moved)
    return Path(os.path.abspath(moved))


def find_dir(root: Path, accept: Callable[[Path], bool], max_depth: int = 3) -> Path | None:
    """The shallowest folder at or below ``root`` (at most ``max_depth`` levels down) for which
    ``accept(folder)`` holds, searching breadth-first in name order; hidden folders and folders
    set aside are skipped. None when there is none."""
    level = [Path(root)]
    for _ in range(max_depth + 1):
        for folder in level:
            if accept(folder):
                return folder
        level = [
            child
            for folder in level
            for child in sorted(folder.iterdir())
            if child.is_dir()
            and not child.name.startswith(".")
            and not child.name.endswith(CORRUPT_SUFFIX)
        ]
        if not level:
            break
    return None


def describe_tree(root: Path, depth: int = 2, limit: int = 6) -> str:
    """What a folder holds, for an error message: ``a/ (b/, c.txt), d.txt`` with at most
    ``limit`` entries per folder, ``depth`` levels down; ``nothing`` for an empty folder."""
    root = Path(root)
    if not root.is_dir():
        return "nothing"
    entries = sorted(root.iterdir(), key=lambda p: (not p.is_dir(), p.name))
    shown = []
    for entry in entries[:limit]:
        if entry.is_dir():
            inner = describe_tree(entry, depth - 1, limit) if depth > 1 else ""
            shown.append(f"{entry.name}/" + (f" ({inner})" if inner and inner != "nothing" else ""))
        else:
            shown.append(entry.name)
    if len(entries) > limit:
        shown.append(f"... {len(entries) - limit} more")
    return ", ".join(shown) or "nothing"


def unpack(
    archive: Path,
    dest: Path,
    *,
    find: Callable[[Path], Path | None],
    expected: str,
    max_bytes: int,
    again: str,
) -> Path:
    """Extract ``archive`` and move the tree that ``find`` locates in it to ``dest``.

    Args:
        archive: the downloaded or hand-placed archive (.zip, .tar.*, .tgz, .7z).
        dest: where the tree goes; an older tree there (an incomplete earlier extraction) is
            replaced, but only once the new one is complete.
        find: given the extracted scratch folder, the folder that becomes ``dest``, or None when
            the archive does not hold the expected layout (the scratch folder itself for an
            archive whose files sit at its top).
        expected: the layout, in words, for the error (``"training/colored_0/"``).
        max_bytes: the most bytes the archive may expand to (``safe_extract``'s cap).
        again: what the next run does once the archive is set aside (``"downloads it again
            from <url>"``), for the error.

    Returns:
        ``dest``.

    Raises:
        CorruptDownloadError: the archive is unreadable, unsafe, or lacks the layout; it was moved
            to ``<archive>.corrupt`` and nothing was extracted into place.
    """
    archive, dest = Path(archive), Path(dest)
    scratch = archive.parent / f".{archive.name}.extracting"
    shutil.rmtree(scratch, ignore_errors=True)  # left by an interrupted run
    try:
        try:
            safe_extract(archive, scratch, max_bytes=max_bytes)
        except FetchError as err:
            reason = str(err)
        else:
            found = find(scratch)
            if found is not None:
                if dest.exists():
                    shutil.rmtree(dest)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(found, dest)
                return dest
            reason = (
                f"it does not hold the expected layout: {expected}; it holds "
                f"{describe_tree(scratch)}"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    moved = set_aside(archive)
    raise CorruptDownloadError(
        f"{archive.name} cannot be used: {reason}. Nothing was extracted; the file was moved to "
        f"{moved}, and the next `dvc repro` {again}."
    )
