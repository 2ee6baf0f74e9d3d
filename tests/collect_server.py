"""A real HTTP server on a loopback port for the collect tests: good and bad images, errors that
pass, a server that never answers, redirect loops, a huge file."""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

HYMENOPTERA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "hymenoptera_data"


def photo(index: int, fmt: str = "JPEG", side: int = 160) -> bytes:
    """The ``index``-th ants photo of hymenoptera, ``side`` px wide, encoded as ``fmt``."""
    files = sorted((HYMENOPTERA / "train" / "ants").glob("*.jpg"))
    with Image.open(files[index]) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, fmt, quality=90) if fmt != "PNG" else image.save(buffer, fmt)
    return buffer.getvalue()


class Site:
    """Paths -> answers; ``hits`` counts requests per path, ``times`` their moments."""

    def __init__(self, slow: int = 0, delay: float = 0.0):
        self.hits: Counter = Counter()
        self.times: dict[str, list[float]] = {}
        self.stop = threading.Event()
        self.delay = delay
        self.files = {"/good.jpg": photo(0), "/good.png": photo(1, "PNG"), "/good.webp": photo(2, "WEBP"),
                      "/same-a.jpg": photo(3), "/same-b.jpg": photo(3), "/resized.jpg": photo(3, side=90),
                      "/flaky.jpg": photo(4), "/busy.jpg": photo(5), "/target.jpg": photo(6),
                      "/escape.jpg": photo(7), "/page.jpg": b"<!DOCTYPE html><html><body>Not here</body></html>",
                      "/tiny.png": photo(8, "PNG", side=12)}
        self.files |= {f"/slow/{i}.jpg": photo(10 + i, side=96) for i in range(slow)}

    def serve(self):
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path
                site.hits[path] += 1
                site.times.setdefault(path, []).append(time.monotonic())
                count = site.hits[path]
                if path.startswith("/slow/"):
                    time.sleep(site.delay)
                if path == "/flaky.jpg" and count == 1:
                    return self.send(500, b"oops")
                if path == "/busy.jpg" and count == 1:
                    return self.send(429, b"slow down", {"Retry-After": "1"})
                if path == "/hang.jpg":
                    site.stop.wait(30)
                    return
                if path == "/loop-a":
                    return self.send(302, headers={"Location": "/loop-b"})
                if path == "/loop-b":
                    return self.send(302, headers={"Location": f"http://127.0.0.1:{self.server.server_port}/loop-a"})
                if path == "/moved.jpg":
                    return self.send(301, headers={"Location": "/target.jpg"})
                if path == "/to-file.jpg":
                    return self.send(302, headers={"Location": "file:///etc/passwd"})
                if path == "/huge.jpg":  # no Content-Length: only counting the bytes stops it
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    head = photo(0)
                    try:
                        self.wfile.write(head + b"\0" * (3 * 2**20))
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                if "escape" in path:
                    return self.send(200, site.files["/escape.jpg"], {"Content-Type": "image/jpeg"})
                if path in site.files:
                    return self.send(200, site.files[path], {"Content-Type": "image/jpeg"})
                return self.send(404, b"not found")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        return server

    def close(self, server) -> None:
        self.stop.set()
        server.shutdown()
        server.server_close()
