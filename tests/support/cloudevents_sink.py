"""A CloudEvents sink for the tests: what a logger's `url` points at (Knative Eventing's broker, or
any receiver of CloudEvents over HTTP), writing each event it receives as one line of the
structured JSON format.

Events are read with the CloudEvents SDK (`cloudevents.http.from_http`: binary mode, as KServe's
agent sends them, or structured) and written with it (`to_json`), so nothing here knows KServe's
event types or our reader: the file holds what the sender sent.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from pathlib import Path

from cloudevents.conversion import to_json
from cloudevents.http import from_http


class Sink:
    def __init__(self, directory: Path):
        self.path = directory / "events.jsonl"
        self.types: list[str] = []
        self.lock = threading.Lock()
        self.url = ""

    def receive(self, headers: dict[str, str], body: bytes) -> None:
        event = from_http(headers, body)
        with self.lock, open(self.path, "ab") as out:
            out.write(to_json(event) + b"\n")
            self.types.append(event["type"])


@contextlib.contextmanager
def cloudevents_sink(directory: Path):
    """Yields a `Sink` listening on 127.0.0.1 (its `url`); every event lands in `sink.path`."""
    directory.mkdir(parents=True, exist_ok=True)
    sink = Sink(directory)

    class Receive(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                sink.receive(dict(self.headers.items()), body)
                code = 202
            except Exception:  # not a CloudEvent: refused, as a broker would, and not written
                code = 400
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receive)
    server.daemon_threads = True
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
