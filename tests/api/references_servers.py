"""Local servers for reference tests: an S3 API (moto), an HTTP file server, a GCS emulator.

All bind 127.0.0.1 on a free port; nothing reaches the internet.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
from contextlib import contextmanager


@contextmanager
def s3_server():
    """Yield the endpoint URL of a moto S3 server."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory with an ETag (MD5 of the content) and Content-Length."""

    def end_headers(self):
        path = self.translate_path(self.path)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                self.send_header("ETag", '"' + hashlib.md5(f.read()).hexdigest() + '"')
        super().end_headers()

    def log_message(self, *args):  # keep test output quiet
        pass


@contextmanager
def http_server(root: str):
    """Yield the base URL of an HTTP server over ``root``."""
    def handler(*a, **kw):
        return _Handler(*a, directory=root, **kw)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def free_port() -> int:
    """Return a TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gcs_server(bucket: str):
    """Yield the URL of a gcp-storage-emulator server holding ``bucket``."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
