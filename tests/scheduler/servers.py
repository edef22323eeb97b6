"""Edge-of-the-world fakes for the scheduler tests: an HTTP feed and a webhook receiver, both
real `http.server` servers on 127.0.0.1 (nothing of FMW's own is mocked)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HEADER = ("Group", "Feature", "MCC", "MNC", "Status", "Value", "Owner", "Updated")


def csv_body(n: int, status: str = "enabled") -> bytes:
    lines = [",".join(HEADER)]
    lines += [f"volte,Feature {i:05d},450,05,{status},1,kim,2026-11-01" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "text/csv; charset=utf-8"


@dataclass
class Feed:
    """Serves `replies` in order (the last one repeats); holds each GET while `gate` is clear."""

    replies: list[Reply]
    gate: threading.Event = field(default_factory=threading.Event)
    requests: int = 0
    url: str = ""
    arrived: threading.Event = field(default_factory=threading.Event)

    def reply(self) -> Reply:
        self.requests += 1
        self.arrived.set()
        return self.replies[min(self.requests, len(self.replies)) - 1]


@contextmanager
def serve_feed(replies: Sequence[Reply], open_gate: bool = True) -> Iterator[Feed]:
    feed = Feed(list(replies))
    if open_gate:
        feed.gate.set()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            r = feed.reply()
            feed.gate.wait(60)
            self.send_response(r.status)
            self.send_header("Content-Type", r.content_type)
            self.send_header("Content-Length", str(len(r.body)))
            self.end_headers()
            self.wfile.write(r.body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    with _running(Handler) as base:
        feed.url = f"{base}/features.csv"
        try:
            yield feed
        finally:
            feed.gate.set()


@dataclass
class Hook:
    """Records every JSON body POSTed; answers `fail_first` requests with HTTP 500."""

    fail_first: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    url: str = ""

    def events(self, event: str) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b.get("event") == event]


@contextmanager
def serve_webhook(fail_first: int = 0) -> Iterator[Hook]:
    hook = Hook(fail_first=fail_first)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                hook.attempts += 1
                failing = hook.attempts <= hook.fail_first
                if not failing:
                    hook.bodies.append(json.loads(body))
            self.send_response(500 if failing else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    with _running(Handler) as base:
        hook.url = f"{base}/hooks/fmw-secret-token"
        yield hook


@contextmanager
def _running(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def http_source(url: str, name: str = "feed", fmt: str = "csv") -> str:
    return f"""
[[sources]]
name = "{name}"
kind = "http"
url = "{url}"
format = "{fmt}"
timeout_s = 30
[sources.columns]
feature_group = "Group"
feature_name = "Feature"
mcc = "MCC"
mnc = "MNC"
status = "Status"
value = "Value"
owner = "Owner"
source_updated_at = "Updated"
"""
