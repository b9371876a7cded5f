"""Tests for simlearn.data.extract: crafted unsafe archives, archive bombs, staging."""

from __future__ import annotations

import gzip
import io
import os
import random
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from simlearn.data.extract import (
    DEFAULT_MAX_RATIO,
    ArchiveBombError,
    UnsafeArchiveError,
    safe_extract,
)
from simlearn.data.fetch import FetchError

# ---------------------------------------------------------------------------------- extraction


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return path


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


_OK = (_info("ok.txt"), b"fine")  # a harmless member placed first: nothing may be written at all

UNSAFE_TARS = {
    "dotdot": ([_OK, (_info("../evil"), b"x")], "../evil", "'..'"),
    "dotdot_inner": ([_OK, (_info("a/../../evil"), b"x")], "a/../../evil", "'..'"),
    "absolute": ([_OK, (_info("/tmp/simlearn_evil"), b"x")], "/tmp/simlearn_evil", "absolute"),
    "symlink_out": (
        [_OK, (_info("link", tarfile.SYMTYPE, "../../outside"), None)],
        "link",
        "outside",
    ),
    "symlink_abs": (
        [_OK, (_info("link", tarfile.SYMTYPE, "/etc/passwd"), None)],
        "link",
        "absolute",
    ),
    "symlink_chain": (  # each link looks harmless alone; a -> b/.. with b -> . is the parent
        [
            _OK,
            (_info("b", tarfile.SYMTYPE, "."), None),
            (_info("a", tarfile.SYMTYPE, "b/.."), None),
        ],
        "a",
        "outside",
    ),
    "through_symlink": (  # a file written through a symlinked folder that points outside
        [
            _OK,
            (_info("d", tarfile.SYMTYPE, "sub/../.."), None),
            (_info("d/evil"), b"x"),
        ],
        "d",
        "outside",
    ),
    "hardlink_out": (
        [_OK, (_info("hard", tarfile.LNKTYPE, "../outside"), None)],
        "hard",
        "outside",
    ),
    "hardlink_abs": (
        [_OK, (_info("hard", tarfile.LNKTYPE, "/etc/passwd"), None)],
        "hard",
        "absolute",
    ),
    "chardev": ([_OK, (_info("dev", tarfile.CHRTYPE), None)], "dev", "character device"),
    "blockdev": ([_OK, (_info("blk", tarfile.BLKTYPE), None)], "blk", "block device"),
    "fifo": ([_OK, (_info("pipe", tarfile.FIFOTYPE), None)], "pipe", "FIFO"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TARS))
def test_safe_extract_refuses_unsafe_tar(case: str, tmp_path: Path) -> None:
    members, member, why = UNSAFE_TARS[case]
    archive = _tar(tmp_path / "bad.tar", members)
    target = tmp_path / "work" / "out"
    before = _tree(tmp_path)
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, target)
    assert isinstance(info.value, FetchError)  # stages/download.py reports it as a failed fetch
    message = str(info.value)
    assert repr(member) in message and str(archive) in message and why in message
    assert "data filter" not in message  # refused by the own checks, before any writing
    assert not target.exists()
    assert _tree(tmp_path) == before  # nothing written anywhere, no staging folder left
    assert not Path("/tmp/simlearn_evil").exists()


UNSAFE_ZIPS = {
    "dotdot": ("../evil", "'..'"),
    "dotdot_inner": ("a/../../evil", "'..'"),
    "absolute": ("/tmp/simlearn_evil", "absolute"),
    "drive": ("C:/evil", "drive letter"),
    "drive_backslash": ("C:\\evil", "backslash"),
    "backslash_dotdot": ("..\\evil", "backslash"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_ZIPS))
def test_safe_extract_refuses_unsafe_zip(case: str, tmp_path: Path) -> None:
    member, why = UNSAFE_ZIPS[case]
    archive = _zip(tmp_path / "bad.zip", {"ok.txt": b"fine", member: b"x"})
    with zipfile.ZipFile(archive) as check:  # the crafted name really is in the archive
        assert check.namelist() == ["ok.txt", member]
    target = tmp_path / "work" / "out"
    before = _tree(tmp_path)
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, target)
    message = str(info.value)
    assert repr(member) in message and str(archive) in message and why in message
    assert not target.exists()
    assert _tree(tmp_path) == before


def test_safe_extract_benign_zip(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "good.zip",
        {"top.txt": b"top", "sub/": b"", "sub/inner.bin": bytes(range(256))},
    )
    target = tmp_path / "out"
    files = safe_extract(archive, target)
    assert files == [target / "top.txt", target / "sub" / "inner.bin"]
    assert (target / "top.txt").read_bytes() == b"top"
    assert (target / "sub" / "inner.bin").read_bytes() == bytes(range(256))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.zip", "out"]  # no staging left


@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz"])
def test_safe_extract_benign_tar(suffix: str, tmp_path: Path) -> None:
    archive = tmp_path / f"good{suffix}"
    mode = {".tar.gz": "w:gz", ".tgz": "w:gz", ".tar": "w", ".tar.bz2": "w:bz2", ".tar.xz": "w:xz"}
    with tarfile.open(archive, mode[suffix]) as out:
        for info, data in [
            (_info("./", tarfile.DIRTYPE), None),
            (_info("./pkg", tarfile.DIRTYPE), None),
            (_info("./pkg/a.txt"), b"alpha"),
            (_info("./pkg/deep", tarfile.DIRTYPE), None),
            (_info("./pkg/deep/b.txt"), b"beta"),
            (_info("./pkg/deep/up", tarfile.SYMTYPE, "../a.txt"), None),  # inside: allowed
            (_info("./pkg/hard", tarfile.LNKTYPE, "pkg/a.txt"), None),  # inside: allowed
        ]:
            if data is not None:
                info.size = len(data)
            out.addfile(info, io.BytesIO(data) if data is not None else None)
    target = tmp_path / "out"
    files = safe_extract(archive, target)
    pkg = target / "pkg"
    assert files == [pkg / "a.txt", pkg / "deep" / "b.txt", pkg / "deep" / "up", pkg / "hard"]
    assert (pkg / "a.txt").read_bytes() == b"alpha"
    assert (pkg / "deep" / "b.txt").read_bytes() == b"beta"
    assert os.readlink(pkg / "deep" / "up") == "../a.txt"
    assert (pkg / "deep" / "up").read_bytes() == b"alpha"
    assert (pkg / "hard").read_bytes() == b"alpha"
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name, "out"]


def test_safe_extract_merges_into_existing_folder(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "kept.txt").write_bytes(b"user")
    files = safe_extract(_zip(tmp_path / "a.zip", {"new/x.txt": b"x"}), target)
    assert files == [target / "new" / "x.txt"]
    assert _tree(target) == {"kept.txt", "new", "new/x.txt"}
    # a clash is refused before anything is extracted; the existing file is untouched
    with pytest.raises(FileExistsError, match="kept.txt"):
        safe_extract(_zip(tmp_path / "b.zip", {"kept.txt": b"other", "y": b"y"}), target)
    assert (target / "kept.txt").read_bytes() == b"user"
    assert _tree(target) == {"kept.txt", "new", "new/x.txt"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "b.zip", "out"]


def test_safe_extract_failure_leaves_no_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _tar(tmp_path / "good.tar", [(_info("a.txt"), b"a"), (_info("b.txt"), b"b")])

    def extract_first_then_fail(self: tarfile.TarFile, path: str, **kwargs: object) -> None:
        self.extract(self.getmembers()[0], path, filter="data")
        assert (Path(path) / "a.txt").read_bytes() == b"a"  # half of the archive is written
        raise OSError("disk full")

    monkeypatch.setattr(tarfile.TarFile, "extractall", extract_first_then_fail)
    target = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        safe_extract(archive, target)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.tar"]  # staging removed


def test_safe_extract_data_filter_is_second_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simlearn.data.extract as extract_module

    # blind the own link check: tarfile's data filter must still refuse, and nothing is left
    monkeypatch.setattr(extract_module, "_resolve", lambda parts, links: [])
    archive = _tar(tmp_path / "bad.tar", [_OK, (_info("link", tarfile.SYMTYPE, "../out"), None)])
    target = tmp_path / "work" / "out"
    with pytest.raises(UnsafeArchiveError, match="data filter") as info:
        safe_extract(archive, target)
    assert "link" in str(info.value)
    assert not target.exists()
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == []


def test_safe_extract_rejects_corrupt_and_unknown(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.zip"
    corrupt.write_bytes(b"this is not a zip file")
    with pytest.raises(FetchError, match="broken.zip"):
        safe_extract(corrupt, tmp_path / "out")
    truncated = tmp_path / "broken.tar.gz"
    truncated.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(FetchError, match="broken.tar.gz"):
        safe_extract(truncated, tmp_path / "out")
    with pytest.raises(ValueError, match="unsupported suffix"):
        safe_extract(tmp_path / "data.rar", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -------------------------------------------------------------------------------- archive bombs

MiB = 1 << 20
BOMB_BYTES = 200 * MiB  # one member of zeros: deflate packs it into about 204 KB


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, streamed: a bomb is built without holding it in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def _zip_bomb(path: Path, members: dict[str, int]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, size in members.items():
            with archive.open(name, "w", force_zip64=True) as out:
                left = size
                while left:
                    out.write(bytes(min(left, MiB)))
                    left -= min(left, MiB)
    return path


def _tar_bomb(path: Path, members: dict[str, int]) -> Path:
    mode = {".gz": "w:gz", ".bz2": "w:bz2", ".xz": "w:xz"}[path.suffix]
    options = {"preset": 0} if path.suffix == ".xz" else {}  # preset 0: fast, still ~3000:1
    with tarfile.open(path, mode, **options) as archive:
        for name, size in members.items():
            info = _info(name)
            info.size = size
            archive.addfile(info, _Zeros(size))
    return path


def _expanded_to(message: str) -> int:
    """The byte count in 'expanded to N bytes' of an ArchiveBombError."""
    return int(message.split("expanded to ")[1].split(" bytes")[0])


def _tar_gz_from_zip(zip_path: Path, path: Path) -> Path:
    """The zip bomb's member as a .tar.gz, reusing its deflate stream (deflating 200 MiB costs
    seconds): a tar header, the member's data and the end blocks, as three gzip members."""
    with zipfile.ZipFile(zip_path) as archive:
        (member,) = archive.infolist()
    with open(zip_path, "rb") as f:
        f.seek(member.header_offset)
        local = f.read(30)  # fixed part of the local file header
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(member.header_offset + 30 + name_len + extra_len)
        deflated = f.read(member.compress_size)
    info = _info(member.filename)
    info.size = member.file_size  # a multiple of 512: no padding block needed
    gzip_member = (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # magic, deflate, no flags, mtime 0
        + deflated
        + struct.pack("<II", member.CRC, member.file_size & 0xFFFFFFFF)
    )
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    path.write_bytes(gzip.compress(header) + gzip_member + gzip.compress(bytes(1024)))
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Archives of a few hundred KB or less, built once, that expand to 16 to 200 MiB."""
    root = tmp_path_factory.mktemp("bombs")
    many = {f"part{i:02d}.bin": MiB // 4 for i in range(64)}  # 16 MiB in 256 KiB pieces
    one_zip = _zip_bomb(root / "one.zip", {"zeros.bin": BOMB_BYTES})
    return {
        "zip": one_zip,
        "tar.gz": _tar_gz_from_zip(one_zip, root / "one.tar.gz"),
        "tar.bz2": _tar_bomb(root / "one.tar.bz2", {"zeros.bin": 32 * MiB}),
        "tar.xz": _tar_bomb(root / "one.tar.xz", {"zeros.bin": 32 * MiB}),
        "many.zip": _zip_bomb(root / "many.zip", many),
        "many.tar.gz": _tar_bomb(root / "many.tar.gz", many),
    }


def test_bombs_are_small_archives(bombs: dict[str, Path]) -> None:
    sizes = {kind: path.stat().st_size for kind, path in bombs.items()}
    assert 150_000 < sizes["zip"] < 300_000 and 150_000 < sizes["tar.gz"] < 300_000, sizes
    assert max(sizes.values()) < 300_000, sizes
    with zipfile.ZipFile(bombs["zip"]) as check:  # the bombs are genuine: 200 MiB of zeros
        assert check.getinfo("zeros.bin").file_size == BOMB_BYTES
        with check.open("zeros.bin") as member:
            assert member.read(MiB) == bytes(MiB)
    with tarfile.open(bombs["tar.gz"]) as check:
        first = check.next()
        assert first is not None and (first.name, first.size) == ("zeros.bin", BOMB_BYTES)
        assert check.extractfile(first).read(MiB) == bytes(MiB)  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar.bz2", "tar.xz"])
def test_one_member_bomb_is_refused_after_about_a_mebibyte(
    kind: str, bombs: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "out"
    with pytest.raises(ArchiveBombError) as info:
        safe_extract(bombs[kind], target)
    message = str(info.value)
    assert str(bombs[kind]) in message and "'zeros.bin'" in message
    assert f"more than max_ratio={DEFAULT_MAX_RATIO:g} bytes per byte" in message
    assert "pass a larger max_bytes or max_ratio" in message
    # refused once past the 1 MiB floor, within max_ratio x 64 KiB: far from the 32 to 200 MiB
    assert MiB <= _expanded_to(message) <= 8 * MiB
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left


@pytest.mark.parametrize("kind", ["many.zip", "many.tar.gz"])
def test_bomb_of_many_small_members_is_refused_for_the_whole_archive(
    kind: str, bombs: dict[str, Path], tmp_path: Path
) -> None:
    # each 256 KiB member is under the 1 MiB floor; together they are refused
    with pytest.raises(ArchiveBombError, match="the archive so far expanded to") as info:
        safe_extract(bombs[kind], tmp_path / "out")
    assert _expanded_to(str(info.value)) <= 8 * MiB
    assert list(tmp_path.iterdir()) == []


def test_tar_bomb_is_refused_while_writing_too(
    bombs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simlearn.data.extract as extract_module

    # blind the check made while the member headers are listed: the writer still refuses
    monkeypatch.setattr(extract_module._Budget, "check_stream", lambda self, member, position: None)
    with pytest.raises(ArchiveBombError, match="this member expanded to") as info:
        safe_extract(bombs["tar.gz"], tmp_path / "out")
    assert MiB <= _expanded_to(str(info.value)) <= 8 * MiB
    assert list(tmp_path.iterdir()) == []


def test_max_bytes_is_counted_while_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simlearn.data.extract as extract_module

    noise = random.Random(1).randbytes(MiB)  # incompressible: ratio about 1
    archive = _zip(tmp_path / "big.zip", {"a.bin": noise, "b.bin": noise, "c.bin": noise})
    # the declared sizes are refused before any byte is written ...
    with pytest.raises(ArchiveBombError, match="declared sizes to 3145728 bytes") as info:
        safe_extract(archive, tmp_path / "out", max_bytes=2 * MiB + 1)
    assert "'c.bin'" in str(info.value) and "max_bytes=2097153" in str(info.value)
    # ... and an archive whose declared sizes lie is still stopped by the count of written bytes
    monkeypatch.setattr(extract_module._Budget, "check_declared", lambda self, member, n: None)
    with pytest.raises(ArchiveBombError) as info:
        safe_extract(archive, tmp_path / "out", max_bytes=2 * MiB + 1)
    message = str(info.value)
    assert "'c.bin'" in message and "more than max_bytes=2097153 bytes in total" in message
    assert "(2097152 written, 65536 more decompressed)" in message  # nothing past the cap
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.zip"]


def test_genuine_archives_pass_and_caps_are_parameters(tmp_path: Path) -> None:
    noise = random.Random(2).randbytes(3 * MiB)
    archive = _zip(tmp_path / "ok.zip", {"noise.bin": noise})
    assert safe_extract(archive, tmp_path / "a", max_bytes=3 * MiB) == [tmp_path / "a/noise.bin"]
    assert (tmp_path / "a/noise.bin").read_bytes() == noise
    # zeros compress about 1000:1: refused by default, extracted when the caller allows it
    zeros = _zip_bomb(tmp_path / "zeros.zip", {"zeros.bin": 4 * MiB})
    with pytest.raises(ArchiveBombError):
        safe_extract(zeros, tmp_path / "b")
    safe_extract(zeros, tmp_path / "b", max_ratio=2000)
    assert (tmp_path / "b/zeros.bin").read_bytes() == bytes(4 * MiB)
    # a small, highly compressible member (under the 1 MiB floor) is fine
    small = _zip_bomb(tmp_path / "small.zip", {"calib.txt": MiB - 1})
    safe_extract(small, tmp_path / "c")
    assert (tmp_path / "c/calib.txt").stat().st_size == MiB - 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_bytes": 0}, "max_bytes must be a positive integer, got 0"),
        ({"max_bytes": 1.5}, "max_bytes must be a positive integer, got 1.5"),
        ({"max_ratio": 0.5}, "max_ratio must be a number >= 1, got 0.5"),
        ({"max_ratio": float("nan")}, "max_ratio must be a number >= 1, got nan"),
    ],
)
def test_safe_extract_rejects_bad_caps(kwargs: dict, message: str, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"a": b"a"})
    with pytest.raises(ValueError, match=message):
        safe_extract(archive, tmp_path / "out", **kwargs)


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_extracted_folders_get_the_usual_permissions(suffix: str, tmp_path: Path) -> None:
    if suffix == ".zip":
        archive = _zip(tmp_path / "a.zip", {"sub/": b"", "sub/f.txt": b"f", "g/h.txt": b"h"})
    else:
        archive = tmp_path / "a.tar.gz"
        with tarfile.open(archive, "w:gz") as out:
            for name, data in [("sub/", None), ("sub/f.txt", b"f"), ("g/h.txt", b"h")]:
                info = _info(name, tarfile.DIRTYPE if data is None else tarfile.REGTYPE)
                info.mode = 0o700 if data is None else 0o600  # the archive's modes are ignored
                if data is not None:
                    info.size = len(data)
                out.addfile(info, io.BytesIO(data) if data is not None else None)
    old = os.umask(0o022)
    try:
        safe_extract(archive, tmp_path / "out")
    finally:
        os.umask(old)
    for folder in ("out", "out/sub", "out/g"):  # not the 0700 of the private staging folder
        assert (tmp_path / folder).stat().st_mode & 0o777 == 0o755, folder
    assert (tmp_path / "out/g/h.txt").stat().st_mode & 0o777 in (0o644, 0o600)


def test_every_archive_source_has_an_extraction_cap() -> None:
    from simlearn.data.sources import ARCHIVES, EXTRACT_MAX_BYTES

    archive_sources = {
        source
        for source, files in ARCHIVES.items()
        if source == "middlebury2014"
        or any(f.endswith((".zip", ".tar.gz", ".tgz", ".7z")) for f in files)
    }
    assert archive_sources == set(EXTRACT_MAX_BYTES)
    assert all(isinstance(v, int) and 100 * MiB <= v <= 8 << 30 for v in EXTRACT_MAX_BYTES.values())
