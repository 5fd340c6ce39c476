"""A small recording (and, for fault tests, fault-injecting) HTTP proxy in front of the real
llama.cpp server. It never answers for the server: every successful answer comes from upstream."""

from __future__ import annotations

import hashlib
import http.client
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


@dataclass
class Exchange:
    body_hash: str
    status: int | None = None  # None while in flight


@dataclass
class RecordingProxy:
    upstream: str  # e.g. http://127.0.0.1:PORT/v1
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        target = urlparse(self.upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                exchange = Exchange(hashlib.sha256(body).hexdigest())
                with proxy.lock:
                    proxy.exchanges.append(exchange)
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=300)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                exchange.status = response.status

            do_GET = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}{target.path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answered(self) -> list[str]:
        with self.lock:
            return [e.body_hash for e in self.exchanges if e.status == 200]
