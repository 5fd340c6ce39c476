"""A small recording, fault-injecting HTTP proxy in front of the real llama.cpp server. It never
answers for the server: a successful answer always comes from upstream; a fault replaces or
damages the answer of one request (by its order of arrival)."""

from __future__ import annotations

import hashlib
import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


@dataclass(frozen=True)
class Fault:
    """kind: "status" (answer `status` with `headers`, not forwarded), "delay" (wait `seconds`, then
    forward), "truncate" (forward, send half the body), "garbage" (forward, send a non-JSON 200),
    "reset" (close the connection without an answer, not forwarded)."""

    kind: str
    status: int = 0
    headers: dict = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Exchange:
    body_hash: str
    forwarded: bool = False
    delivered: bool = False  # a complete upstream answer reached the client
    authorization: str = ""


@dataclass
class RecordingProxy:
    upstream: str  # e.g. http://127.0.0.1:PORT/v1
    plan: Callable[[int], Fault | None] = lambda index: None
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        target = urlparse(self.upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _upstream(self, body: bytes) -> tuple[int, list, bytes]:
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=300)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                connection.request(self.command, self.path, body=body or None, headers=headers)
                response = connection.getresponse()
                return response.status, response.getheaders(), response.read()

            def _reply(self, status: int, headers: list, payload: bytes, send_bytes: int | None = None) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload if send_bytes is None else payload[:send_bytes])

            def do_GET(self):
                status, headers, payload = self._upstream(b"")
                self._reply(status, headers, payload)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                exchange = Exchange(hashlib.sha256(body).hexdigest(), authorization=self.headers.get("Authorization", ""))
                with proxy.lock:
                    index = len(proxy.exchanges)
                    proxy.exchanges.append(exchange)
                fault = proxy.plan(index)
                if fault and fault.kind == "reset":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault and fault.kind == "status":
                    error = b'{"error": {"message": "injected fault", "type": "server_error"}}'
                    self._reply(fault.status, [("Content-Type", "application/json"), *fault.headers.items()], error)
                    return
                if fault and fault.kind == "delay":
                    time.sleep(fault.seconds)
                try:
                    status, headers, payload = self._upstream(body)
                except OSError:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                exchange.forwarded = True
                if fault and fault.kind == "truncate":
                    self._reply(status, headers, payload, send_bytes=len(payload) // 2)
                    self.close_connection = True
                    return
                if fault and fault.kind == "garbage":
                    self._reply(200, [("Content-Type", "application/json")], b"<html>502 upstream hiccup</html>")
                    return
                try:
                    self._reply(status, headers, payload)
                    exchange.delivered = status == 200
                except OSError:  # the client gave up (timeout): the answer never reached it
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}{target.path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answered(self) -> list[str]:
        """Bodies of the requests whose complete answer reached the client (what rr paid for)."""
        with self.lock:
            return [e.body_hash for e in self.exchanges if e.delivered]
