"""Safe, resumable, checksummed downloads.

`fetch` downloads one file over HTTP(S) (or copies a ``file://`` URL) into ``dest``:

- a file already at ``dest`` is verified and used as it is, without any request: this is how a file
  placed by hand is picked up. A wrong hash moves it to ``<dest>.corrupt`` (never deleted, never
  used again), so the next call downloads the file afresh;
- bytes stream into ``<dest>.part``; an interrupted transfer keeps the part, and the next call asks
  the server for the rest (``Range: bytes=<size>-``);
- only a part whose SHA-256 matches is renamed to ``dest``; a mismatching one is moved to
  ``<dest>.corrupt`` for inspection and never used;
- a source that cannot be reached raises `SourceUnreachableError`, whose message says where to
  place the file by hand.

Unpacking a downloaded archive is :func:`simlearn.data.extract.safe_extract`; its errors
subclass `FetchError` too.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from simlearn.data.errors import DataError

__all__ = [
    "ChecksumMismatchError",
    "FetchError",
    "SourceUnreachableError",
    "TransferTruncatedError",
    "fetch",
    "sha256_file",
]

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20  # 1 MiB: large enough for throughput, small enough for a smooth progress bar
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_SCHEMES = ("http", "https", "file")
_USER_AGENT = "simlearn-fetch/1 (+python-urllib)"
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


class FetchError(DataError, RuntimeError):
    """Base class of every download failure raised here and every extraction failure raised by
    :mod:`simlearn.data.extract`."""


class SourceUnreachableError(FetchError):
    """The source could not be reached (network, DNS, refused, timeout, HTTP error status)."""


class ChecksumMismatchError(FetchError):
    """A file's SHA-256 differs from the expected one."""


class TransferTruncatedError(FetchError):
    """The transfer stopped early; the ``.part`` file is kept and a rerun resumes it."""


# --------------------------------------------------------------------------------------- hashing


def sha256_file(path: Path, chunk_bytes: int = _CHUNK_BYTES) -> str:
    """Return the lowercase hex SHA-256 of the file at ``path``, read in ``chunk_bytes`` chunks."""
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be a positive integer, got {chunk_bytes!r}")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


# -------------------------------------------------------------------------------------- download


def fetch(
    url: str,
    dest: Path,
    sha256: str | None,
    *,
    progress: bool = True,
    timeout: float = 30,
    accept_hint: Callable[[str], str] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified) unless a verified ``dest`` is there.

    Args:
        url: ``http://``, ``https://`` or ``file://`` URL of the file.
        dest: where the file ends up. If it already exists it is verified and returned without
            any request; a wrong hash moves it to ``<dest>.corrupt`` and raises
            `ChecksumMismatchError`.
        sha256: expected hex SHA-256 (64 hex digits, any case), or None when the source
            publishes none; the file is then used unverified and a warning says so.
        progress: show a tqdm progress bar (bytes) while downloading.
        timeout: seconds to wait for the server on connect and on each read.
        accept_hint: given the SHA-256 actually found, a sentence telling the user how to accept
            that file (the params key to set); appended to a mismatch message.

    Returns:
        ``dest``, which now holds the verified file.

    Raises:
        SourceUnreachableError: the source cannot be reached; the message names the URL, the
            file and the absolute path where it can be placed by hand.
        TransferTruncatedError: the transfer stopped early; ``<dest>.part`` is kept and rerunning
            resumes it.
        ChecksumMismatchError: ``dest`` or the downloaded bytes have the wrong hash; they are
            moved to ``<dest>.corrupt``.
        ValueError: a malformed ``url``, ``sha256`` or ``timeout``.
    """
    dest = Path(dest)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in _SCHEMES:
        raise ValueError(f"url must start with one of {', '.join(_SCHEMES)}; got {url!r}")
    if sha256 is not None:
        if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
            raise ValueError(f"sha256 must be 64 hex digits or None, got {sha256!r}")
        sha256 = sha256.lower()
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")

    hint = (lambda actual: " " + accept_hint(actual)) if accept_hint else (lambda actual: "")
    if dest.exists():
        return _use_existing(dest, sha256, hint)

    part = dest.with_name(dest.name + ".part")
    _transfer(url, dest, part, sha256, progress=progress, timeout=timeout, may_restart=True)

    actual = sha256_file(part)
    if sha256 is None:
        logger.warning(
            "%s was downloaded from %s but NOT verified: no SHA-256 is known for it "
            "(its SHA-256 is %s)",
            dest,
            url,
            actual,
        )
    elif actual != sha256:
        corrupt = dest.with_name(dest.name + ".corrupt")
        os.replace(part, corrupt)
        raise ChecksumMismatchError(
            f"SHA-256 mismatch for {dest.name} downloaded from {url}: expected {sha256}, "
            f"got {actual}. The bytes were moved to {_absolute(corrupt)} for inspection and "
            f"{_absolute(dest)} was not created. Rerun to download again, or place the correct "
            f"file at {_absolute(dest)}.{hint(actual)}"
        )
    os.replace(part, dest)
    return dest


def _use_existing(dest: Path, sha256: str | None, hint: Callable[[str], str]) -> Path:
    """Verify a file already at ``dest`` (downloaded earlier or placed by hand) and return it;
    one with the wrong hash is moved to ``<dest>.corrupt``."""
    if not dest.is_file():
        raise FetchError(f"{_absolute(dest)} exists but is not a file; move it away and rerun")
    if sha256 is None:
        logger.warning("using %s as it is: NOT verified, no SHA-256 is known for it", dest)
        return dest
    actual = sha256_file(dest)
    if actual != sha256:
        corrupt = dest.with_name(dest.name + ".corrupt")
        os.replace(dest, corrupt)
        raise ChecksumMismatchError(
            f"{_absolute(dest)} was there but its SHA-256 is {actual}, expected {sha256}. It was "
            f"not used and was moved to {_absolute(corrupt)}; the next run downloads the file "
            f"again (or place the correct file at {_absolute(dest)}).{hint(actual)}"
        )
    logger.info("using existing %s (SHA-256 verified)", dest)
    return dest


def _transfer(
    url: str,
    dest: Path,
    part: Path,
    sha256: str | None,
    *,
    progress: bool,
    timeout: float,
    may_restart: bool,
) -> None:
    """Bring ``part`` to the full content of ``url``, resuming from its current size."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if offset > 0:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        content_range = err.headers.get("Content-Range") if err.headers else None
        if getattr(err, "fp", None) is not None:
            err.close()
        if err.code == 416 and offset > 0:
            total = _parse_content_range(content_range)[2]
            if total is None or total == offset:
                logger.info("%s is already complete (%d bytes)", part, offset)
                return
            if may_restart:  # the part is longer than the source: it is no prefix of it
                logger.info("%s has %d bytes but the source %d; restarting", part, offset, total)
                part.unlink()
                _transfer(
                    url, dest, part, sha256, progress=progress, timeout=timeout, may_restart=False
                )
                return
        raise _unreachable(url, dest, sha256, f"HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as err:
        reason = err.reason if isinstance(err, urllib.error.URLError) else err
        raise _unreachable(url, dest, sha256, str(reason) or type(err).__name__) from err

    with response:
        status = getattr(response, "status", None) or 200  # file:// responses carry no status
        length = _parse_int(response.headers.get("Content-Length"))
        if status == 206:
            start, _, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != offset:
                if not may_restart:
                    raise FetchError(
                        f"{url} answered a range request for byte {offset} with a range starting "
                        f"at {start}; delete {_absolute(part)} and rerun"
                    )
                logger.info("%s answered an unexpected range; restarting from zero", url)
                response.close()
                part.unlink()
                _transfer(
                    url, dest, part, sha256, progress=progress, timeout=timeout, may_restart=False
                )
                return
            mode, written = "ab", offset
            if total is None and length is not None:
                total = offset + length
        else:
            if offset > 0:
                logger.info("%s does not support resuming; restarting from zero", url)
            mode, written, total = "wb", 0, length

        dest.parent.mkdir(parents=True, exist_ok=True)
        with (
            open(part, mode) as out,
            tqdm(
                total=total,
                initial=written,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=not progress,
            ) as bar,
        ):
            while True:
                try:
                    chunk = response.read(_CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as err:
                    out.flush()
                    raise _truncated(url, part, written, total, str(err)) from err
                if not chunk:
                    break
                out.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
    if total is not None and written < total:
        raise _truncated(url, part, written, total, "the connection closed early")


def _unreachable(url: str, dest: Path, sha256: str | None, reason: str) -> SourceUnreachableError:
    """Build the error that tells the user how to supply the file by hand."""
    checksum = f"with SHA-256 {sha256}" if sha256 else "(no SHA-256 is known for it)"
    return SourceUnreachableError(
        f"cannot download {url}: {reason}. To use a copy obtained another way, place the file "
        f"{dest.name!r} {checksum} at exactly {_absolute(dest)} and rerun; it is verified and "
        "used without any download."
    )


def _truncated(
    url: str, part: Path, written: int, total: int | None, reason: str
) -> TransferTruncatedError:
    expected = f"{total}" if total is not None else "an unknown number of"
    return TransferTruncatedError(
        f"download of {url} was truncated after {written} of {expected} bytes ({reason}). "
        f"The partial file is kept at {_absolute(part)}; rerunning resumes from byte {written}."
    )


def _parse_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """``'bytes 10-99/100'`` -> (10, 99, 100); ``'bytes */100'`` -> (None, None, 100)."""
    match = _CONTENT_RANGE_RE.fullmatch(value.strip()) if value else None
    if match is None:
        return None, None, None
    first, last, total = match.groups()
    return (
        int(first) if first is not None else None,
        int(last) if last is not None else None,
        int(total) if total not in (None, "*") else None,
    )


def _absolute(path: Path) -> Path:
    """Absolute, normalised path (symlinks kept: this is where the user should look)."""
    return Path(os.path.abspath(path))
