"""Tests for simlearn.data.fetch: downloads against a loopback HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simlearn.data.fetch import (
    ChecksumMismatchError,
    FetchError,
    SourceUnreachableError,
    TransferTruncatedError,
    fetch,
    sha256_file,
)

PAYLOAD = random.Random(0).randbytes(300_000)  # several 64 KiB socket reads, well under 1 s
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


# ------------------------------------------------------------------------- loopback HTTP server


@dataclass
class ServerState:
    payload: bytes = PAYLOAD
    honour_range: bool = True
    truncate_at: int | None = None  # payload offset at which the next response drops the link
    status: int = 200  # anything else: answer every request with this error status
    requests: list[dict[str, str]] = field(default_factory=list)  # headers of each request


class _Server(http.server.HTTPServer):
    state: ServerState


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server  # type: ignore[assignment]

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
        state = self.server.state
        state.requests.append(dict(self.headers.items()))
        if state.status != 200:
            self.send_error(state.status)
            return
        size = len(state.payload)
        start = 0
        range_header = self.headers.get("Range")
        if range_header is not None and state.honour_range:
            start = int(range_header.removeprefix("bytes=").removesuffix("-"))
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        body = state.payload[start:]
        self.send_header("Content-Length", str(len(body)))  # always the full length
        self.end_headers()
        if state.truncate_at is not None:  # send part of the body, then close (HTTP/1.0)
            cut = max(state.truncate_at - start, 0)
            state.truncate_at = None
            self.wfile.write(body[:cut])
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        pass


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours *_proxy variables; loopback requests must not go to a proxy."""
    for scheme in ("http", "https", "all"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)


@pytest.fixture
def server() -> Iterator[tuple[ServerState, str]]:
    state = ServerState()
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = state
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------- hashing


def test_sha256_file_known_vector_and_chunking(tmp_path: Path) -> None:
    abc = tmp_path / "abc"
    abc.write_bytes(b"abc")  # FIPS 180-2 test vector
    assert sha256_file(abc) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    data = tmp_path / "data"
    data.write_bytes(PAYLOAD)
    # chunk sizes that do and do not divide the file give the one-shot digest
    for chunk in (1000, 4096, 7, len(PAYLOAD) + 1):
        assert sha256_file(data, chunk_bytes=chunk) == PAYLOAD_SHA
    with pytest.raises(ValueError, match="chunk_bytes"):
        sha256_file(data, chunk_bytes=0)


# ------------------------------------------------------------------------------------ download


def test_fetch_downloads_and_verifies(server: tuple[ServerState, str], tmp_path: Path) -> None:
    state, base = server
    dest = tmp_path / "nested" / "data.bin"
    result = fetch(f"{base}/data.bin", dest, PAYLOAD_SHA.upper(), progress=True)
    assert result == dest
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.parent.iterdir()) == ["data.bin"]  # no .part left
    assert len(state.requests) == 1 and "Range" not in state.requests[0]


def test_fetch_resumes_after_truncation(server: tuple[ServerState, str], tmp_path: Path) -> None:
    state, base = server
    dest = tmp_path / "data.bin"
    part = tmp_path / "data.bin.part"
    state.truncate_at = 120_000
    with pytest.raises(TransferTruncatedError) as info:
        fetch(f"{base}/data.bin", dest, PAYLOAD_SHA, progress=False)
    message = str(info.value)
    assert isinstance(info.value, FetchError)
    assert "truncated" in message and "resumes" in message and str(part) in message
    assert "120000 of 300000 bytes" in message
    assert not dest.exists()
    assert part.read_bytes() == PAYLOAD[:120_000]  # kept for resuming

    fetch(f"{base}/data.bin", dest, PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not part.exists()
    assert [r.get("Range") for r in state.requests] == [None, "bytes=120000-"]


def test_fetch_restarts_when_server_ignores_range(
    server: tuple[ServerState, str], tmp_path: Path
) -> None:
    state, base = server
    state.honour_range = False
    dest = tmp_path / "data.bin"
    # a stale part that is NOT a prefix of the payload: appending to it would corrupt the file
    (tmp_path / "data.bin.part").write_bytes(b"\xff" * 5000)
    fetch(f"{base}/data.bin", dest, PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert state.requests[0].get("Range") == "bytes=5000-"  # it asked, the server answered 200
    assert not (tmp_path / "data.bin.part").exists()


def test_fetch_complete_part_answered_416(server: tuple[ServerState, str], tmp_path: Path) -> None:
    state, base = server
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    fetch(f"{base}/data.bin", dest, PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [r.get("Range") for r in state.requests] == [f"bytes={len(PAYLOAD)}-"]


def test_fetch_part_longer_than_source_restarts(
    server: tuple[ServerState, str], tmp_path: Path
) -> None:
    state, base = server
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD + b"extra")  # 416 with a smaller total
    fetch(f"{base}/data.bin", dest, PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [r.get("Range") for r in state.requests] == [f"bytes={len(PAYLOAD) + 5}-", None]


def test_fetch_checksum_mismatch_keeps_corrupt(
    server: tuple[ServerState, str], tmp_path: Path
) -> None:
    _, base = server
    dest = tmp_path / "data.bin"
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ChecksumMismatchError) as info:
        fetch(f"{base}/data.bin", dest, wrong, progress=False)
    corrupt = tmp_path / "data.bin.corrupt"
    message = str(info.value)
    assert wrong in message and PAYLOAD_SHA in message and str(corrupt) in message
    assert not dest.exists()
    assert not (tmp_path / "data.bin.part").exists()
    assert corrupt.read_bytes() == PAYLOAD


def test_fetch_uses_user_placed_file_without_request(
    server: tuple[ServerState, str], tmp_path: Path
) -> None:
    state, base = server
    dest = tmp_path / "data.bin"
    dest.write_bytes(PAYLOAD)
    assert fetch(f"{base}/data.bin", dest, PAYLOAD_SHA, progress=False) == dest
    assert state.requests == []
    assert dest.read_bytes() == PAYLOAD


def test_fetch_user_placed_wrong_file_is_set_aside_then_downloaded_again(
    server: tuple[ServerState, str], tmp_path: Path
) -> None:
    state, base = server
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"not the dataset")
    os.utime(dest, (1_000_000, 1_000_000))
    actual = hashlib.sha256(b"not the dataset").hexdigest()
    with pytest.raises(ChecksumMismatchError) as info:
        fetch(
            f"{base}/data.bin", dest, PAYLOAD_SHA, progress=False,
            accept_hint=lambda sha: f"set checksums: {{data.bin: {sha}}}",
        )  # fmt: skip
    message = str(info.value)
    corrupt = tmp_path / "data.bin.corrupt"
    assert PAYLOAD_SHA in message and actual in message and str(corrupt) in message
    assert f"set checksums: {{data.bin: {actual}}}" in message
    # nothing lost: the bytes are kept aside, untouched, and never used again
    assert corrupt.read_bytes() == b"not the dataset"
    assert corrupt.stat().st_mtime == 1_000_000
    assert state.requests == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin.corrupt"]
    # the next run downloads the genuine file
    assert fetch(f"{base}/data.bin", dest, PAYLOAD_SHA, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD


def test_fetch_unreachable_says_where_to_place_file(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/archive/mnist.npz"
    dest = tmp_path / "raw" / "mnist.npz"
    with pytest.raises(SourceUnreachableError) as info:
        fetch(url, dest, PAYLOAD_SHA, progress=False, timeout=5)
    message = str(info.value)
    assert url in message
    assert "'mnist.npz'" in message
    assert str(dest.absolute()) in message and os.path.isabs(str(dest.absolute()))
    assert PAYLOAD_SHA in message
    assert not (tmp_path / "raw" / "mnist.npz.part").exists()


def test_fetch_unreachable_relative_dest_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"http://127.0.0.1:{_closed_port()}/x.bin"
    with pytest.raises(SourceUnreachableError) as info:
        fetch(url, Path("sub/x.bin"), None, progress=False, timeout=5)
    assert str(tmp_path / "sub" / "x.bin") in str(info.value)
    assert "no SHA-256 is known" in str(info.value)


def test_fetch_http_error_is_unreachable(server: tuple[ServerState, str], tmp_path: Path) -> None:
    state, base = server
    state.status = 404
    with pytest.raises(SourceUnreachableError, match="HTTP 404"):
        fetch(f"{base}/missing.bin", tmp_path / "missing.bin", None, progress=False)
    assert not (tmp_path / "missing.bin").exists()
    assert not (tmp_path / "missing.bin.part").exists()


def test_fetch_timeout_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/slow.bin"
        with pytest.raises(SourceUnreachableError) as info:
            fetch(url, tmp_path / "slow.bin", None, progress=False, timeout=0.3)
    assert url in str(info.value)


def test_fetch_file_url(tmp_path: Path) -> None:
    source = tmp_path / "mirror" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "data.bin"
    fetch(source.as_uri(), dest, PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "out" / "data.bin.part").exists()
    # a stale part is overwritten: file:// responses ignore Range, like a server answering 200
    dest.unlink()
    (tmp_path / "out" / "data.bin.part").write_bytes(b"\x00" * 10)
    fetch(source.as_uri(), dest, PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(SourceUnreachableError, match="absent.bin"):
        fetch((tmp_path / "absent.bin").as_uri(), tmp_path / "absent.bin", None, progress=False)


def test_fetch_without_checksum_warns(
    server: tuple[ServerState, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, base = server
    dest = tmp_path / "data.bin"
    with caplog.at_level(logging.WARNING, logger="simlearn.data.fetch"):
        fetch(f"{base}/data.bin", dest, None, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert "NOT verified" in caplog.text and PAYLOAD_SHA in caplog.text


@pytest.mark.parametrize(
    ("url", "sha256", "timeout", "match"),
    [
        ("ftp://host/x", None, 30, "url must start with"),
        ("data.bin", None, 30, "url must start with"),
        ("http://host/x", "abc", 30, "sha256 must be 64 hex digits"),
        ("http://host/x", "g" * 64, 30, "sha256 must be 64 hex digits"),
        ("http://host/x", None, 0, "timeout must be a positive"),
    ],
)
def test_fetch_rejects_bad_arguments(
    url: str, sha256: str | None, timeout: float, match: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=match):
        fetch(url, tmp_path / "x", sha256, progress=False, timeout=timeout)
