"""A loopback HTTP server over a folder, for the download tests: the remote sources' files in
their official layouts, served as a mirror would serve them."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 for the block; yields the base URL (ends with ``/``).
    Proxy variables are cleared meanwhile: urllib honours them, and loopback must not use one."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for scheme in ("http", "https", "all"):
                mp.delenv(f"{scheme}_proxy", raising=False)
                mp.delenv(f"{scheme.upper()}_PROXY", raising=False)
            yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
