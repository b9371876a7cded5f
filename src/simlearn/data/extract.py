"""Safe extraction of zip, tar and 7z archives: no escape, no special member, no archive bomb.

`safe_extract` unpacks zip, tar and 7z archives (7z through py7zr, the maintained pure-Python
reader; Sketchy ships as one) after checking every member: no ``..``, no absolute
paths, no links that lead outside the target, no devices or FIFOs. While it writes, it counts the
bytes that come out against the compressed bytes read and refuses an archive bomb: more than
``max_bytes`` in total, or more than ``max_ratio`` bytes out per byte in (per member and for the
whole archive). It extracts into a temporary sibling folder and moves the result into place, so a
failed extraction leaves no half-written target.

Every refusal or unreadable archive raises a `FetchError` (:mod:`simlearn.data.fetch`), so a
caller that downloads and then extracts catches one kind of failure.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from simlearn.data.fetch import FetchError

__all__ = [
    "ArchiveBombError",
    "DEFAULT_MAX_EXTRACT_BYTES",
    "DEFAULT_MAX_RATIO",
    "UnsafeArchiveError",
    "safe_extract",
]

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_SEVEN_ZIP_SUFFIXES = (".7z",)
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")
_MAX_LINK_HOPS = 40  # like the kernel's symlink limit: deeper chains are loops or attacks

#: safe_extract's cap on the bytes one archive may write, when the caller names none. The sources
#: pass their own, about twice what the genuine archive holds (sources.EXTRACT_MAX_BYTES).
DEFAULT_MAX_EXTRACT_BYTES = 4 << 30  # 4 GiB
#: safe_extract's cap on bytes written per compressed byte read. Real data compresses far less:
#: zlib level 6 gives 1.2:1 on the Middlebury Motorcycle float32 disparity map, 1.2:1 on its RGB
#: image and 2.5:1 on the 8-bit digits; a deflate bomb of zeros reaches 1029:1 (200 MiB from
#: 204 KB) and bzip2 far more.
DEFAULT_MAX_RATIO = 100.0
#: the ratio is judged only once this many bytes came out, of a member or of the whole archive:
#: a tiny file (a calib.txt, a zero-padded header) may legitimately compress better than 100:1.
_RATIO_FLOOR_BYTES = 1 << 20
#: members are copied in chunks of this size. A zip member reads as much compressed input per
#: chunk, so a bomb is refused within about max_ratio x 64 KiB = 6.4 MiB of output.
_COPY_BYTES = 64 << 10
#: a compressed tar is listed (its headers read) in chunks of this size, the ratio checked
#: after each, so a bomb is refused after about 1 MiB of output (`_list_tar`).
_LIST_BYTES = 1 << 20


class UnsafeArchiveError(FetchError):
    """An archive member would write outside the target or is not a plain file, dir or link."""


class ArchiveBombError(UnsafeArchiveError):
    """An archive expands past ``max_bytes`` or past ``max_ratio`` bytes per compressed byte."""


def safe_extract(
    archive: Path,
    target: Path,
    *,
    max_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> list[Path]:
    """Extract a zip, tar or 7z archive into ``target`` after checking every member.

    Refused (`UnsafeArchiveError`, naming the archive, the member and the reason), before anything
    is written: ``..`` components; absolute names, Windows drive letters and (in zip names)
    backslashes; symlinks or hard links whose target resolves outside ``target`` (following the
    archive's own symlinks); devices, FIFOs and other special members. Tar extraction also uses
    tarfile's ``filter="data"`` as a second line of defence. Zip symlinks are written as regular
    files holding the link text, since zipfile never creates links. 7z symlinks, junctions and
    sockets are refused (no dataset ships one); 7z members are written through a py7zr writer
    that counts every byte, so the same caps hold.

    Archive bombs are refused (`ArchiveBombError`) by counting while writing, not by trusting the
    sizes the archive declares: the bytes written so far against ``max_bytes``, and the bytes
    written against the compressed bytes actually read from the archive, per member and for the
    whole archive, against ``max_ratio`` (judged once 1 MiB has come out). A compressed tar is
    also counted while its member headers are first read, so a bomb is not decompressed in full
    even to list it. Sparse tar members are written out in full and count at their full size.

    The archive is extracted into a temporary sibling of ``target`` and then moved into place:
    renamed to ``target`` when that is absent or empty, otherwise its top-level entries are moved
    into ``target`` (refused with `FileExistsError` before extracting if any already exists). The
    folders it creates get the usual permissions (0777 less the umask), not the 0700 of the
    private staging folder.

    Args:
        archive: a ``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``/``.tbz2``,
            ``.tar.xz``/``.txz`` or ``.7z`` file.
        target: folder to extract into.
        max_bytes: the most bytes the extraction may write, all members together.
        max_ratio: the most bytes written per compressed byte read.

    Returns:
        The extracted files and links (not directories) under ``target``, in archive order.
    """
    archive, target = Path(archive), Path(target)
    kind = _archive_kind(archive)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if isinstance(max_ratio, bool) or not (isinstance(max_ratio, int | float) and max_ratio >= 1):
        raise ValueError(f"max_ratio must be a number >= 1, got {max_ratio!r}")
    if not archive.is_file():
        raise FileNotFoundError(f"archive={str(archive)!r} does not exist or is not a file")
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"target={str(target)!r} exists and is not a directory")
    if kind == "tar" and not hasattr(tarfile, "data_filter"):
        raise RuntimeError("safe_extract needs Python >= 3.11.4 for tarfile extraction filters")

    raw = _CountingReader(archive)
    budget = _Budget(archive, raw, max_bytes, float(max_ratio))
    try:
        read_errors = _read_errors(kind)
        try:
            handle: Any = _open(kind, raw)
        except (*read_errors, OSError) as err:
            raise FetchError(f"cannot read archive {archive}: {_reason(err)}") from err
        with handle:
            try:
                if kind == "zip":
                    members = _check_zip(archive, handle, budget)
                elif kind == "7z":
                    members = _check_7z(archive, handle, budget)
                else:
                    members = _check_tar(archive, handle, budget)
            except read_errors as err:
                raise FetchError(f"cannot read archive {archive}: {_reason(err)}") from err

            top_level = list(dict.fromkeys(parts[0] for parts, _ in members if parts))
            if target.is_dir():
                clashes = sorted(name for name in top_level if (target / name).exists())
                if clashes:
                    raise FileExistsError(
                        f"cannot extract {archive} into {target}: it already holds {clashes}; "
                        "remove them or extract into an empty folder"
                    )

            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".extracting", dir=target.parent)
            )
            try:
                tree = staging / "tree"  # mkdtemp's folder is 0700; this one gets the usual mode
                tree.mkdir()
                budget.start()
                if kind == "zip":
                    _extract_zip(handle, members, tree, budget)
                elif kind == "7z":
                    _extract_7z(handle, members, tree, budget)
                else:
                    handle.budget = budget
                    handle.extractall(tree, filter="data")
                _move_into_place(tree, target, top_level)
            except tarfile.FilterError as err:
                raise UnsafeArchiveError(
                    f"unsafe member in archive {archive}: {err} (refused by tarfile's data filter)"
                ) from err
            except (*read_errors, KeyError) as err:
                raise FetchError(f"cannot extract archive {archive}: {_reason(err)}") from err
            finally:
                if staging.exists():
                    shutil.rmtree(staging)
    finally:
        raw.close()

    files = [target.joinpath(*parts) for parts, is_dir in members if parts and not is_dir]
    return list(dict.fromkeys(files))


class _CountingReader(io.RawIOBase):
    """The archive file, read through a counter of the bytes handed to the decompressors."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._file.readinto(buffer)
        self.bytes_read += n or 0
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
        super().close()


class _Budget:
    """Counts the bytes an extraction writes and refuses when they pass the caps."""

    def __init__(self, archive: Path, raw: _CountingReader, max_bytes: int, max_ratio: float):
        self.archive, self.raw = archive, raw
        self.max_bytes, self.max_ratio = max_bytes, max_ratio
        self.written = 0  # bytes written by the extraction so far
        self.raw_start = 0  # compressed bytes read before the extraction began

    def start(self) -> None:
        """Count from here: the extraction reads the archive again from its first member."""
        self.written, self.raw_start = 0, self.raw.bytes_read

    def copy(self, member: str, source: IO[bytes], target: IO[bytes]) -> None:
        """Copy one member's bytes, checking the caps before each chunk is written."""
        raw_before = self.raw.bytes_read
        out = 0
        while chunk := source.read(_COPY_BYTES):
            self.take(member, len(chunk), out, raw_before)
            out += len(chunk)
            target.write(chunk)

    def take(self, member: str, n: int, member_out: int, raw_before: int) -> None:
        """Account for ``n`` more bytes of ``member`` (``member_out`` written before them, its
        reading began at ``raw_before`` compressed bytes); refuse past the caps."""
        if self.written + n > self.max_bytes:
            raise self._refuse(
                member,
                f"the extraction would write more than max_bytes={self.max_bytes} bytes in "
                f"total ({self.written} written, {n} more decompressed)",
            )
        self.written += n
        self._check_ratio(member, member_out + n, self.raw.bytes_read - raw_before, "this member")
        self._check_ratio(
            member, self.written, self.raw.bytes_read - self.raw_start, "the archive so far"
        )

    def check_declared(self, member: str, declared: int) -> None:
        """Refuse before decompressing when the members' sizes already add up past max_bytes."""
        if declared > self.max_bytes:
            raise self._refuse(
                member,
                f"brings the declared sizes to {declared} bytes, past max_bytes={self.max_bytes}",
            )

    def check_stream(self, member: str, position: int) -> None:
        """While a compressed tar is listed: ``position`` bytes decompressed so far."""
        self._check_ratio(member, position, self.raw.bytes_read, "the archive so far")

    def _check_ratio(self, member: str, out: int, read: int, what: str) -> None:
        if out >= _RATIO_FLOOR_BYTES and out > self.max_ratio * max(read, 1):
            raise self._refuse(
                member,
                f"{what} expanded to {out} bytes from {read} compressed bytes, "
                f"more than max_ratio={self.max_ratio:g} bytes per byte",
            )

    def _refuse(self, member: str, why: str) -> ArchiveBombError:
        return ArchiveBombError(
            f"refusing to extract {self.archive}: at member {member!r}, {why}. This looks like an "
            "archive bomb or the wrong file, and nothing was kept. If the archive is genuine, "
            "pass a larger max_bytes or max_ratio to safe_extract."
        )


class _BudgetedTarFile(tarfile.TarFile):
    """A TarFile whose regular files are written through a `_Budget`.

    Only ``makefile`` changes: links, folders, modes and the data filter stay tarfile's own. The
    member is read with ``extractfile``, so sparse members come out in full and are counted.
    """

    budget: _Budget | None = None

    def makefile(self, tarinfo: tarfile.TarInfo, targetpath: str) -> None:
        if self.budget is None:
            raise RuntimeError("_BudgetedTarFile.makefile needs a budget")
        source = self.extractfile(tarinfo)
        if source is None:
            raise tarfile.ExtractError(f"cannot read the data of {tarinfo.name!r}")
        with source, open(targetpath, "wb") as target:
            self.budget.copy(tarinfo.name, source, target)


def _extract_zip(
    handle: zipfile.ZipFile,
    members: list[tuple[tuple[str, ...], bool]],
    tree: Path,
    budget: _Budget,
) -> None:
    """Write every checked zip member under ``tree`` through ``budget``."""
    for info, (parts, is_dir) in zip(handle.infolist(), members, strict=True):
        if not parts:
            continue
        dest = tree.joinpath(*parts)
        if is_dir:
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        with handle.open(info) as source, open(dest, "wb") as target:
            budget.copy(info.filename, source, target)


def _archive_kind(archive: Path) -> str:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    if name.endswith(_SEVEN_ZIP_SUFFIXES):
        return "7z"
    raise ValueError(
        f"archive={str(archive)!r} has an unsupported suffix; allowed: .zip, "
        + ", ".join(_TAR_SUFFIXES + _SEVEN_ZIP_SUFFIXES)
    )


def _seven_zip_errors() -> tuple[type[BaseException], ...]:
    import lzma

    from py7zr import exceptions

    # a member is decompressed in blocks up to its declared size (which check_declared bounds),
    # so the per-write budget below sees every byte before it reaches the disk
    return (exceptions.ArchiveError, exceptions.Bad7zFile, exceptions.DecompressionError,
            exceptions.CrcError, exceptions.UnsupportedCompressionMethodError,
            lzma.LZMAError)  # fmt: skip


#: what a damaged zip or tar raises while it is listed or read (a truncated zip, a bad header)
_ZIP_TAR_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error)


def _read_errors(kind: str) -> tuple[type[BaseException], ...]:
    """What a damaged archive of ``kind`` raises; py7zr (0.19 s to import) only for a 7z."""
    return _ZIP_TAR_ERRORS + (_seven_zip_errors() if kind == "7z" else ())


def _reason(err: BaseException) -> str:
    return str(err) or type(err).__name__


def _open(kind: str, raw: _CountingReader) -> Any:
    if kind == "zip":
        return zipfile.ZipFile(raw)
    if kind == "7z":
        import py7zr

        return py7zr.SevenZipFile(raw, mode="r")
    return _BudgetedTarFile.open(fileobj=raw)


def _check_7z(archive: Path, handle: Any, budget: _Budget) -> list[tuple[tuple[str, ...], bool]]:
    members = []
    declared = 0
    for info in handle.list():
        if not (info.is_directory or info.is_file):
            kind = "symbolic link" if info.is_symlink else "special member (junction or socket)"
            raise _refuse(archive, info.filename, f"is a {kind}, which is not extracted from 7z")
        parts = _member_parts(archive, info.filename, is_dir=info.is_directory, zip_name=True)
        declared += int(info.uncompressed or 0)
        budget.check_declared(info.filename, declared)
        members.append((parts, bool(info.is_directory)))
    return members


def _extract_7z(
    handle: Any, members: list[tuple[tuple[str, ...], bool]], tree: Path, budget: _Budget
) -> None:
    """Write the checked 7z members under ``tree``: folders and empty files first, then every
    file's bytes through a py7zr writer that counts them against ``budget``."""
    from py7zr.io import Py7zIO, WriterFactory

    files = {"/".join(parts): parts for parts, is_dir in members if parts and not is_dir}
    for parts, is_dir in members:
        if parts:
            folder = tree.joinpath(*parts) if is_dir else tree.joinpath(*parts).parent
            folder.mkdir(parents=True, exist_ok=True)
            if not is_dir:
                tree.joinpath(*parts).touch()  # empty members get no writer

    class Writer(Py7zIO):
        def __init__(self, name: str, dest: Path) -> None:
            self.name, self.dest, self.out = name, dest, 0
            self.raw_before = budget.raw.bytes_read
            self.handle = open(dest, "wb")  # noqa: SIM115 - closed by close()

        def write(self, s: bytes | bytearray) -> int:
            budget.take(self.name, len(s), self.out, self.raw_before)
            self.out += len(s)
            return self.handle.write(s)

        def read(self, size: int | None = None) -> bytes:
            return b""

        def seek(self, offset: int, whence: int = 0) -> int:
            return self.handle.seek(offset, whence)

        def flush(self) -> None:
            self.handle.flush()

        def size(self) -> int:
            return self.out

        def close(self) -> None:
            self.handle.close()

    class Writers(WriterFactory):
        def __init__(self) -> None:
            self.open: list[Writer] = []

        def create(self, filename: str) -> Py7zIO:
            name = filename.lstrip("/")
            if name not in files:  # py7zr hands back the names it listed; anything else is not
                raise UnsafeArchiveError(f"7z writer asked for unlisted member {filename!r}")
            writer = Writer(name, tree.joinpath(*files[name]))
            self.open.append(writer)
            return writer

    writers = Writers()
    handle.reset()  # listing read the headers; extraction starts from the first stream again
    try:
        handle.extractall(factory=writers)
    finally:
        for w in writers.open:
            w.handle.close()


def _refuse(archive: Path, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"refusing to extract {archive}: member {member!r} {why}")


def _member_parts(archive: Path, name: str, *, is_dir: bool, zip_name: bool) -> tuple[str, ...]:
    """Check one member name and return its path components relative to the target."""
    if not name or "\x00" in name:
        raise _refuse(archive, name, "has an empty name or a NUL byte")
    if zip_name and "\\" in name:
        raise _refuse(archive, name, "contains a backslash (a Windows path separator)")
    if name.startswith(("/", "\\")):
        raise _refuse(archive, name, "is an absolute path")
    if _DRIVE_RE.match(name):
        raise _refuse(archive, name, "starts with a Windows drive letter")
    if ".." in re.split(r"[/\\]", name):
        raise _refuse(archive, name, "has a '..' component")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if not parts and not is_dir:  # './' is the archive root and harmless; a nameless file is not
        raise _refuse(archive, name, "has no file name")
    return parts


def _check_zip(
    archive: Path, handle: zipfile.ZipFile, budget: _Budget
) -> list[tuple[tuple[str, ...], bool]]:
    members = []
    declared = 0
    for info in handle.infolist():
        parts = _member_parts(archive, info.filename, is_dir=info.is_dir(), zip_name=True)
        declared += info.file_size
        budget.check_declared(info.filename, declared)
        members.append((parts, info.is_dir()))
    return members


def _list_tar(handle: tarfile.TarFile, budget: _Budget) -> list[tarfile.TarInfo]:
    """``handle.getmembers()``, with the caps checked as the stream is read.

    Listing a compressed tar decompresses everything up to its last header. Here that is done a
    chunk at a time, so a bomb is refused after about 1 MiB of output rather than decompressed in
    full; and the declared sizes are summed, so an archive claiming more than ``max_bytes`` is
    refused before its data is decompressed at all.
    """
    stream = handle.fileobj  # GzipFile, BZ2File, LZMAFile, or the archive itself (plain .tar)
    compressed = stream is not budget.raw
    infos: list[tarfile.TarInfo] = []
    declared = 0
    while True:
        if compressed:
            # the data of the member last listed (tarfile read the first header when opening)
            name = handle.members[-1].name if handle.members else ""
            while (position := stream.tell()) < handle.offset:
                if not stream.read(min(_LIST_BYTES, handle.offset - position)):
                    break  # a truncated stream: tarfile reports it
                budget.check_stream(name, stream.tell())
        info = handle.next()
        if info is None:
            break
        if info.isreg():
            declared += info.size
            budget.check_declared(info.name, declared)
        infos.append(info)
    return infos  # tarfile kept them too (handle.members): extractall() lists nothing again


def _check_tar(
    archive: Path, handle: tarfile.TarFile, budget: _Budget
) -> list[tuple[tuple[str, ...], bool]]:
    infos = _list_tar(handle, budget)
    checked: list[tuple[tarfile.TarInfo, tuple[str, ...]]] = []
    links: dict[str, str] = {}  # symlink path (joined parts) -> its link text
    for info in infos:
        parts = _member_parts(archive, info.name, is_dir=info.isdir(), zip_name=False)
        if not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
            raise _refuse(
                archive,
                info.name,
                f"is a {_tar_kind(info)}; only regular files, directories and links are allowed",
            )
        if info.issym():
            links["/".join(parts)] = info.linkname
        checked.append((info, parts))

    for info, parts in checked:
        if _resolve(parts[:-1], links) is None:
            raise _refuse(
                archive, info.name, "is written through a symlink that leads outside the target"
            )
        if info.issym() or info.islnk():
            kind = "symlink" if info.issym() else "hard link"
            link = info.linkname
            if not link or link.startswith(("/", "\\")) or _DRIVE_RE.match(link):
                raise _refuse(archive, info.name, f"is a {kind} to the absolute path {link!r}")
            # a symlink is relative to its own folder, a hard link to the archive root
            base = parts[:-1] if info.issym() else ()
            if _resolve((*base, *link.split("/")), links) is None:
                raise _refuse(
                    archive,
                    info.name,
                    f"is a {kind} to {link!r}, which resolves outside the target",
                )
    return [(parts, info.isdir()) for info, parts in checked]


def _resolve(parts: Iterable[str], links: dict[str, str]) -> list[str] | None:
    """Resolve a target-relative path through the archive's own symlinks, like realpath.

    Returns the resolved components, or None when the path climbs above the target, goes through
    an absolute symlink, or follows more than `_MAX_LINK_HOPS` links (a loop).
    """
    pending = list(reversed(list(parts)))
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        candidate = "/".join([*resolved, part])
        if candidate in links:
            hops += 1
            link = links[candidate]
            if hops > _MAX_LINK_HOPS or link.startswith(("/", "\\")) or _DRIVE_RE.match(link):
                return None
            pending.extend(reversed(link.split("/")))  # relative to the link's folder: resolved
            continue
        resolved.append(part)
    return resolved


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.ischr():
        return "character device"
    if info.isblk():
        return "block device"
    if info.isfifo():
        return "FIFO"
    return f"special member (type {info.type!r})"


def _move_into_place(staging: Path, target: Path, top_level: list[str]) -> None:
    """Move the extracted tree from ``staging`` to ``target`` with renames only."""
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        os.replace(staging, target)
        return
    for name in top_level:
        os.replace(staging / name, target / name)
