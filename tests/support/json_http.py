"""The JSON-over-HTTP handler base of the emulated KFP API."""

from __future__ import annotations

import http.server
import json
from typing import Any


class JsonHandler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so a streamed body simply ends when the server closes.
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def _send(self, code: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None
