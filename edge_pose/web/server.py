"""The HTTP server of the web view: routes, password, HTTPS and the limits that keep it small.

The standard library's ``ThreadingHTTPServer`` (a thread per connection, as picamera2's
``mjpeg_server.py``): a web view has a handful of clients, the streams are long-lived and
blocking writes are the simplest correct way to pace them. What makes it fit for a device on a
network is around it:

- **Bounded**: at most :data:`MAX_CONNECTIONS` connections (a slow-client flood holds the web
  view, never the pipeline, whose thread no request touches), of which at most
  :data:`MAX_STREAMS` MJPEG streams and :data:`MAX_FOLLOWERS` event streams; a request's line
  and headers are at most :data:`MAX_HEAD_BYTES` (431 beyond); every socket has a timeout, so a
  client that stops reading is dropped and its thread ends.
- **Private**: with ``http.password_file`` every route but ``/healthz`` asks for HTTP Basic auth
  (user ``edge-pose``), compared in constant time; failed attempts are rate-limited. HTTPS with
  ``http.certfile``/``keyfile``, the handshake done on the connection's thread.
- **Quiet**: no line per request in the journal, no traceback for a client that went away.

HTTP/1.0 responses (one request per connection): the streams end with the connection anyway,
and it keeps every response's framing trivially right.
"""

from __future__ import annotations

import errno
import http.client
import io
import json
import logging
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from edge_pose import __version__
from edge_pose.config import HttpConfig
from edge_pose.errors import EdgePoseError
from edge_pose.service.health import evaluate
from edge_pose.web.auth import Logins, Verdict, host_allowed
from edge_pose.web.hub import FallenBehind, WebHub
from edge_pose.web.metrics import CONTENT_TYPE as METRICS_TYPE
from edge_pose.web.stream import JpegStream
from edge_pose.web.urls import page_url

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
MAX_STREAMS = 16
MAX_FOLLOWERS = 16
MAX_HEAD_BYTES = 16 * 1024
SOCKET_TIMEOUT_S = 10.0  # a client that neither sends nor reads for this long is dropped
KEEPALIVE_S = 15.0  # an idle event stream sends a comment this often (proxies close idle ones)
# A stream waiting for something to send looks this often whether its client has gone (a viewer
# counts until then: the picture maker works for it, and a slot is held).
PEER_CHECK_S = 1.0
BOUNDARY = "frame"
# Failed logins: a burst of 10, then one a second, for everyone together (a LAN brute force is
# slowed to a crawl; the owner mistyping twice is not).

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PAGE_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


class WebServer:
    """The web view of one run: serves ``hub`` on ``http.bind``:``http.port``."""

    def __init__(self, cfg: HttpConfig, hub: WebHub, password: str | None) -> None:
        self.cfg = cfg
        self.hub = hub
        self.stream = JpegStream(hub, cfg.stream_fps, cfg.jpeg_quality)  # started once bound
        self.logins = Logins(password)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._streams = threading.BoundedSemaphore(MAX_STREAMS)
        self._followers = threading.BoundedSemaphore(MAX_FOLLOWERS)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.refused = 0  # connections refused at the limit
        self.closing = False
        self.page = resources.files("edge_pose.web").joinpath("page.html").read_bytes()

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve in a thread. A port that cannot be had is one line naming it."""
        context = self._tls_context()
        try:
            server = _Server(self)
        except OSError as exc:
            raise EdgePoseError(bind_error(self.cfg, exc)) from None
        server.tls = context
        self._server = server
        self.stream.start()  # its thread only now: a port that cannot be had leaves none
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.5},
            name="edge-pose-http", daemon=True,
        )  # fmt: skip
        self._thread.start()
        log.info("web view at %s", self.url)

    def _tls_context(self) -> ssl.SSLContext | None:
        if not self.cfg.certfile:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.cfg.certfile, self.cfg.keyfile)
        except (OSError, ValueError) as exc:
            raise EdgePoseError(
                f"http.certfile = {self.cfg.certfile!r}, http.keyfile = {self.cfg.keyfile!r}: "
                f"cannot load the certificate and key ({exc})"
            ) from None
        return context

    def close(self) -> None:
        """Stop serving: the streams and event streams end, the port is free again."""
        self.closing = True
        self.stream.close()
        self.hub.wake()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(2.0)

    @property
    def port(self) -> int | None:
        """The port bound (the real one when ``http.port = 0``); None before ``start``."""
        return None if self._server is None else int(self._server.server_address[1])

    @property
    def url(self) -> str | None:
        """Where the page is, for people (status, doctor, the log)."""
        return page_url(self.cfg, self.port)

    @property
    def viewers(self) -> int:
        return self.stream.viewers

    @property
    def followers(self) -> int:
        return self.hub.followers


def bind_error(cfg: HttpConfig, exc: OSError) -> str:
    """Why ``http.bind``:``http.port`` could not be had, in one line with the fix."""
    where = f"http.port = {cfg.port}: cannot listen on {cfg.bind} port {cfg.port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{where}: the port is in use by another program — choose another "
            f"(edge-pose config set http.port={_another_port(cfg.port)}; under systemd allow it "
            f"too, docs/web.md \"Another port\") or stop that program "
            f"(ss -ltnp 'sport = :{cfg.port}' shows it)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"{where}: not allowed (ports below 1024 need root; the systemd unit allows only "
            "the ports in its SocketBindAllow=, see docs/web.md, \"Another port\")"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"http.bind = {cfg.bind!r}: not an address of this machine — use 127.0.0.1, "
            "0.0.0.0 or one of `ip -brief address`"
        )
    return f"{where}: {exc.strerror or exc}"


def bind_problem(cfg: HttpConfig) -> str | None:
    """Why ``http.bind``:``http.port`` cannot be had right now (:func:`bind_error`'s line), or
    None. A reload asks before it stops the running session, so a taken port rejects it
    without interrupting the device (a program may still take the port in between: then the
    start fails as usual and the running config comes back)."""
    family = socket.AF_INET6 if ":" in cfg.bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((cfg.bind, cfg.port))
        except OSError as exc:
            return bind_error(cfg, exc)
    return None


def _another_port(port: int) -> int:
    return port + 1 if 0 < port < 65535 else 8081


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 16

    def __init__(self, web: WebServer) -> None:
        self.web = web
        self.tls: ssl.SSLContext | None = None
        self.address_family = socket.AF_INET6 if ":" in web.cfg.bind else socket.AF_INET
        super().__init__((web.cfg.bind, web.cfg.port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.web._slots.acquire(blocking=False):
            self.web.refused += 1
            _refuse(request)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.web._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away or sent garbage is no news: a debug line, no traceback.
        Anything else is a defect of ours, and the journal gets its traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError | ValueError):  # ValueError: a write to a closed stream
            log.debug("http: connection from %s ended: %s", client_address, error)
        else:
            log.warning("http: a request from %s failed", client_address, exc_info=True)


def _refuse(sock: socket.socket) -> None:
    """503 to a connection over the limit, without reading it (and without TLS)."""
    try:
        sock.settimeout(0.5)
        sock.sendall(
            b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
            b"Retry-After: 5\r\nConnection: close\r\n\r\ntoo many connections\n"
        )
    except OSError:
        pass


class _HeadLimit:
    """The request's line and headers read through a budget: beyond it, 431."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self.raw = raw
        self.budget = MAX_HEAD_BYTES
        self.lines = 0

    def readline(self, size: int = -1) -> bytes:
        self.lines += 1
        if self.budget <= 0:
            raise http.client.LineTooLong("request head")
        line = self.raw.readline(min(size if size >= 0 else self.budget, self.budget) + 1)
        self.budget -= len(line)
        if self.budget < 0:
            if self.lines == 1:
                return b"X" * (2**16 + 1)  # the request line: 414, as the stdlib says it
            raise http.client.LineTooLong("request head")
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = f"edge-pose/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.0"
    timeout = SOCKET_TIMEOUT_S

    def setup(self) -> None:
        tls = self.server.tls
        if tls is not None:
            self.request.settimeout(SOCKET_TIMEOUT_S)
            self.request = tls.wrap_socket(self.request, server_side=True)
        super().setup()
        self.rfile = _HeadLimit(self.rfile)  # type: ignore[assignment]

    # -- plumbing --------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s: " + format, self.client_address[0], *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors as JSON with our headers (the stdlib's HTML page would need escaping care)."""
        self._send(code, json.dumps({"error": message or HTTPStatus(code).phrase}).encode(),
                   "application/json")  # fmt: skip

    def _send(
        self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, value: object) -> None:
        self._send(code, json.dumps(value).encode(), "application/json")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _method_not_allowed(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b'{"error": "only GET and HEAD"}',
            "application/json",
            {"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    # -- routes ----------------------------------------------------------------------------

    def do_GET(self) -> None:
        web = self.server.web
        path = urlsplit(self.path).path
        route = _ROUTES.get(path)
        if route is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path[:100]}",
                                              "pages": sorted(_ROUTES)})  # fmt: skip
            return
        if web.closing:  # a reload or stop: the new settings (a password) apply from now on
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "restarting"})
            return
        host = self.headers.get("Host")
        if not web.logins.required and not host_allowed(host):
            self._json(HTTPStatus.MISDIRECTED_REQUEST, {"error": (
                f"Host {str(host)[:100]!r} is not this device's name or address: open the page "
                "by its address or host name, or set http.password_file (docs/web.md)"
            )})  # fmt: skip
            return
        verdict = (
            Verdict.ALLOWED
            if path == "/healthz"
            else web.logins.check(self.headers.get("Authorization"), self.client_address[0])
        )
        if verdict is Verdict.THROTTLED:
            self._send(
                HTTPStatus.TOO_MANY_REQUESTS, b'{"error": "too many failed logins"}',
                "application/json", {"Retry-After": "5"},
            )  # fmt: skip
            return
        if verdict is Verdict.ASK:
            self._send(
                HTTPStatus.UNAUTHORIZED, b'{"error": "password required (user edge-pose)"}',
                "application/json",
                {"WWW-Authenticate": 'Basic realm="edge-pose", charset="UTF-8"'},
            )  # fmt: skip
            return
        route(self)

    def page(self) -> None:
        self._send(HTTPStatus.OK, self.server.web.page, "text/html; charset=utf-8",
                   {"Content-Security-Policy": PAGE_CSP})  # fmt: skip

    def status(self) -> None:
        data = self.server.web.hub.document_json()
        if data is None:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "starting: no status yet"})
        else:
            self._send(HTTPStatus.OK, data, "application/json")

    def healthz(self) -> None:
        web = self.server.web
        verdict = evaluate(web.hub.document(), time.time(), missing="starting")
        body = {"label": verdict.label, **verdict.to_json()}
        header = self.headers.get("Authorization")
        allowed = header is not None and (
            web.logins.check(header, self.client_address[0]) is Verdict.ALLOWED
        )
        if web.logins.required and not allowed:
            body["reasons"] = []  # they name the broker and errors: for those with the password
        self._json(HTTPStatus.OK if verdict.code == 0 else HTTPStatus.SERVICE_UNAVAILABLE, body)

    def metrics(self) -> None:
        web = self.server.web
        self._send(HTTPStatus.OK, web.hub.metrics.render(web.hub.document()), METRICS_TYPE)

    def snapshot(self) -> None:
        data = self.server.web.stream.snapshot()
        if data is None:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "no frame yet"})
        else:
            self._send(HTTPStatus.OK, data, "image/jpeg")

    def mjpeg(self) -> None:
        web = self.server.web
        self._streaming(web._streams, self._send_mjpeg, "too many viewers")

    def events(self) -> None:
        web = self.server.web
        self._streaming(web._followers, self._send_events, "too many event streams")

    def _streaming(
        self, slots: threading.BoundedSemaphore, send: Callable[[], None], full: str
    ) -> None:
        if not slots.acquire(blocking=False):
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, json.dumps({"error": full}).encode(),
                       "application/json", {"Retry-After": "5"})  # fmt: skip
            return
        try:
            send()
        except (OSError, ValueError):  # the client went away (ValueError: write to closed file)
            pass
        finally:
            slots.release()

    def _start_stream(self, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        for name, value in _HEADERS.items():
            self.send_header(name, value)
        self.send_header("X-Accel-Buffering", "no")  # nginx: pass the stream on as it comes
        self.end_headers()

    def _send_mjpeg(self) -> None:
        self._start_stream(f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        if self.command == "HEAD":
            return
        viewer = self.server.web.stream.viewer(PEER_CHECK_S)
        last = b""
        idle = 0.0
        try:
            while True:
                data = viewer.next()
                if data is None:
                    if viewer.stopped or self._peer_gone():
                        return
                    idle += PEER_CHECK_S
                    if idle < KEEPALIVE_S or not last:
                        continue
                    data = last  # a stalled camera: the last picture again, now and then
                idle = 0.0
                last = data
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                    + b"\r\n"
                )
        finally:
            viewer.close()

    def _peer_gone(self) -> bool:
        """Whether the client closed its end: a stream's client sends nothing after its
        request, so a readable socket that reads as end-of-file is a client that left. (Over
        TLS this is not looked at without reading; the next write finds out.)"""
        connection = self.connection
        if isinstance(connection, ssl.SSLSocket):
            return False
        try:
            poller = select.poll()  # not select(): it fails for descriptors above 1023
            poller.register(connection, select.POLLIN)
            return bool(poller.poll(0)) and not connection.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError):
            return True

    def _send_events(self) -> None:
        self._start_stream("text/event-stream; charset=utf-8")
        if self.command == "HEAD":
            return
        hub = self.server.web.hub
        keypoints = "keypoints=0" not in urlsplit(self.path).query.split("&")
        follower = hub.follow(_last_event_id(self.headers.get("Last-Event-ID")), keypoints)
        idle = 0.0
        try:
            self.wfile.write(b"retry: 2000\n\n")
            while not self.server.web.closing:
                try:
                    messages = follower.wait(PEER_CHECK_S)
                except FallenBehind:
                    return  # the browser reconnects and starts from the current pose
                if not messages:
                    if self._peer_gone():
                        return
                    idle += PEER_CHECK_S
                    if idle >= KEEPALIVE_S:
                        self.wfile.write(b": keep-alive\n\n")
                        idle = 0.0
                    continue
                idle = 0.0
                out = []
                for name, text, seq in messages:
                    if name == "status":
                        text = (hub.document_json() or b"null").decode()
                    head = f"event: {name}\n" + (f"id: {seq}\n" if seq is not None else "")
                    out.append(f"{head}data: {text}\n\n")
                self.wfile.write("".join(out).encode())
        finally:
            follower.close()


def _last_event_id(header: str | None) -> int | None:
    """The ``Last-Event-ID`` a reconnecting browser sends, when it is one of ours."""
    if header is None or not header.isdigit() or len(header) > 18:
        return None
    return int(header)


_ROUTES: dict[str, Callable[[_Handler], None]] = {
    "/": _Handler.page,
    "/stream.mjpg": _Handler.mjpeg,
    "/snapshot.jpg": _Handler.snapshot,
    "/api/status": _Handler.status,
    "/api/events": _Handler.events,
    "/healthz": _Handler.healthz,
    "/metrics": _Handler.metrics,
}
