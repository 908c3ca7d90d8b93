"""The web view's server against a real `edge-pose run` on the squat video: every route, the
password, HTTPS, a port that is taken, a camera that stalls, and hostile clients.

A real daemon (real model, real file camera, real sockets); clients are the standard library's,
as a script or an uptime checker would be. The page itself is driven by a real browser in
test_web_page.py, the metrics scraped by a real Prometheus in test_web_metrics.py.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import itertools
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import need_tool
from test_camera_stalls import PipeWriter

SQUATS = "tfjs/pose_squats.mp4"
PASSWORD = "correct horse battery staple"


class Device:
    """One `edge-pose run` in the background and its web view's address."""

    def __init__(self, tmp: Path, *args: str, config: str = "", env: dict[str, str] | None = None):
        self.status_dir = tmp / "status"
        self.status_dir.mkdir()
        path = tmp / "config.toml"
        path.write_text("[mqtt]\nenabled = false\n" + config)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_pose.cli", "run", "--config", str(path), *args],
            stderr=subprocess.PIPE, text=True,
            env={**os.environ, "RUNTIME_DIRECTORY": str(self.status_dir), **(env or {})},
        )  # fmt: skip
        self.port = self._wait_for_port()

    def status(self) -> dict:
        try:
            return json.loads((self.status_dir / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def _wait_for_port(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            doc = self.status()
            if doc.get("state") == "running" and (doc.get("http") or {}).get("port"):
                return int(doc["http"]["port"])
            if self.proc.poll() is not None:
                raise AssertionError(f"edge-pose run ended: {self.proc.stderr.read()}")
            time.sleep(0.1)
        raise AssertionError("the daemon did not start serving")

    def stop(self) -> str:
        self.proc.terminate()
        _, stderr = self.proc.communicate(timeout=15)
        return stderr


def get(
    port: int, path: str, *, auth: str | None = None, method: str = "GET",
    headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """One request; status, headers (lower-case names) and body."""
    if context is not None:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=10, context=context
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    all_headers = dict(headers or {})
    if auth is not None:
        all_headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    try:
        conn.request(method, path, headers=all_headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def mjpeg_parts(port: int, count: int, auth: str | None = None) -> list[bytes]:
    """The first ``count`` JPEG pictures of /stream.mjpg."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    conn.request("GET", "/stream.mjpg", headers=headers)
    response = conn.getresponse()
    assert response.status == 200
    boundary = response.getheader("Content-Type").split("boundary=")[1]
    parts = []
    try:
        while len(parts) < count:
            line = response.fp.readline()
            if line.strip() != f"--{boundary}".encode():
                continue
            part_headers = http.client.parse_headers(response.fp)
            parts.append(response.fp.read(int(part_headers["Content-Length"])))
    finally:
        conn.close()
    return parts


def sse(port: int, seconds: float, headers: dict[str, str] | None = None) -> list[dict]:
    """The Server-Sent Events of /api/events for ``seconds``: name, id and data each."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/events", headers=headers or {})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/event-stream")
    events: list[dict] = []
    current: dict = {}
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            line = response.fp.readline().decode().rstrip("\n")
            if not line:
                if "data" in current:
                    events.append(current)
                current = {}
            elif line.startswith(":"):
                continue
            else:
                key, _, value = line.partition(": ")
                current[key] = value
    finally:
        conn.close()
    return events


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Device]:
    """The squat video looped, in real time (5 fps), the web view on a free port."""
    tmp = tmp_path_factory.mktemp("web")
    run = Device(tmp, "--camera", str(data_dir / SQUATS), "--loop")
    yield run
    stderr = run.stop()
    assert "Traceback" not in stderr, stderr


def test_the_status_says_where_the_page_is(device: Device) -> None:
    http_status = device.status()["http"]
    assert http_status["url"] == f"http://127.0.0.1:{device.port}/"
    assert http_status["enabled"] is True and http_status["auth"] is False
    code, headers, body = get(device.port, "/api/status")
    assert code == 200 and headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["state"] == "running" and doc["http"]["port"] == device.port
    text = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "status"],
        env={**os.environ, "RUNTIME_DIRECTORY": str(device.status_dir)},
        capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    assert f"web view: http://127.0.0.1:{device.port}/, no password" in text


def test_snapshot_is_the_annotated_frame(device: Device, data_dir: Path) -> None:
    code, headers, body = get(device.port, "/snapshot.jpg")
    assert code == 200 and headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    video = cv2.VideoCapture(str(data_dir / SQUATS))
    width = int(video.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(video.get(cv2.CAP_PROP_FRAME_HEIGHT))
    # Shown at most 960 pixels on its longest side (web/stream.py MAX_SIDE).
    scale = min(1.0, 960 / max(width, height))
    assert image.shape == (round(height * scale), round(width * scale), 3)
    # The skeleton's joints are drawn in pure red (RGB 255, 40, 40): many such pixels.
    b, g, r = image[..., 0].astype(int), image[..., 1].astype(int), image[..., 2].astype(int)
    assert np.count_nonzero((r > 200) & (g < 90) & (b < 90)) > 50


def test_stream_sends_changing_pictures_at_most_stream_fps(device: Device) -> None:
    started = time.monotonic()
    parts = mjpeg_parts(device.port, 6)
    elapsed = time.monotonic() - started
    images = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_GRAYSCALE) for p in parts]
    assert all(image is not None for image in images)
    changes = [float(np.mean(cv2.absdiff(a, b))) for a, b in itertools.pairwise(images)]
    assert max(changes) > 1.0, changes  # the person moves
    # At most 5 a second (stream_fps): 6 pictures take at least 5 intervals, less a first one
    # that may be ready at once.
    assert elapsed >= 4 * 0.2 * 0.9, elapsed


def test_ten_viewers_share_one_encode_per_frame(device: Device) -> None:
    results: list[list[bytes]] = []

    def watch() -> None:
        results.append(mjpeg_parts(device.port, 4))

    threads = [threading.Thread(target=watch) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 10
    # Pictures are shared: the ten viewers together saw few distinct pictures.
    distinct = {part for parts in results for part in parts}
    assert len(distinct) <= 8, len(distinct)


def test_events_follow_the_pose_as_on_mqtt(device: Device) -> None:
    events = sse(device.port, 6.0)
    names = [e.get("event") for e in events]
    assert names[0] == "pose"  # the current pose first
    assert "status" in names and "keypoints" in names
    keypoints = json.loads(next(e["data"] for e in events if e.get("event") == "keypoints"))
    assert len(keypoints["keypoints"]) == 17 and keypoints["device"]
    status = json.loads(next(e["data"] for e in events if e.get("event") == "status"))
    assert status["state"] == "running"
    with_ids = [int(e["id"]) for e in events if "id" in e]
    assert with_ids == sorted(with_ids)


def test_a_reconnecting_follower_resumes_after_its_last_event_id(device: Device) -> None:
    first = sse(device.port, 8.0)
    ids = [int(e["id"]) for e in first if "id" in e and e.get("event") in ("pose", "event")]
    assert len(ids) >= 2, first  # squats: labels change and reps count within seconds
    resumed = sse(device.port, 1.0, {"Last-Event-ID": str(ids[0])})
    again = [int(e["id"]) for e in resumed if "id" in e]
    assert again and again[0] == ids[0] + 1  # nothing missed, nothing twice


def test_healthz_and_routes(device: Device) -> None:
    code, _, body = get(device.port, "/healthz")
    assert code == 200 and json.loads(body)["label"] == "healthy"
    code, headers, body = get(device.port, "/")
    assert code == 200 and headers["content-type"].startswith("text/html")
    assert b"<html" in body.lower() and "default-src 'none'" in headers["content-security-policy"]
    code, headers, body = get(device.port, "/", method="HEAD")
    assert code == 200 and body == b"" and int(headers["content-length"]) > 1000
    assert get(device.port, "/nope")[0] == 404
    assert get(device.port, "/api/status", method="POST")[0] == 405
    code, headers, _ = get(device.port, "/metrics")
    assert code == 200 and headers["content-type"].startswith("text/plain")


def test_hostile_requests_get_answers_and_the_pipeline_keeps_its_pace(device: Device) -> None:
    """Seeded random paths, methods and headers; huge heads; 200 slow clients; a viewer that
    stops reading. Every request gets an HTTP answer or a closed socket, nothing crashes, the
    frame rate holds, and the threads go away with the clients."""
    rng = random.Random(14)
    alphabet = "/abc%.?&=#~\\\x7f" + "".join(map(chr, range(0x20, 0x7F)))
    for _ in range(150):
        path = "/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        method = rng.choice(["GET", "HEAD", "POST", "BREW", "OPTIONS", "get"])
        header = {"X-" + str(rng.randint(0, 9)): "".join(rng.choice(alphabet) for _ in range(50))}
        try:
            code, _, _ = get(device.port, path.replace(" ", "%20"), method=method, headers=header)
        except http.client.InvalidURL:
            continue
        assert 200 <= code < 600
    # A head over the limit: 431; a request line over it: 414.
    assert get(device.port, "/", headers={"X-Big": "a" * 20000})[0] == 431
    assert get(device.port, "/", headers={f"X-{i}": "b" * 200 for i in range(100)})[0] == 431
    assert get(device.port, "/" + "c" * 20000)[0] == 414

    pid = device.proc.pid
    threads_before = len(os.listdir(f"/proc/{pid}/task"))
    frames_before = device.status()["frames"]["processed"]
    started = time.monotonic()
    slow = []
    for _ in range(200):  # slow clients: connect, send half a request line, wait
        sock = socket.create_connection(("127.0.0.1", device.port), timeout=5)
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /api/sta")
        slow.append(sock)
    stuck = socket.create_connection(("127.0.0.1", device.port), timeout=5)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # (a viewer that stops reading: it is among the 200 above once the limit is reached, so
    # first free a slot by closing one slow client)
    slow.pop().close()
    time.sleep(0.5)
    stuck.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
    time.sleep(6)
    during = device.status()
    assert during["state"] == "running"
    # Real time at 5 fps: the pipeline kept up while 200 clients held the server.
    processed = during["frames"]["processed"] - frames_before
    assert processed >= 5 * (time.monotonic() - started) * 0.6, processed
    for sock in slow:
        sock.close()
    stuck.close()
    # Connections time out or close; their threads end.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if len(os.listdir(f"/proc/{pid}/task")) <= threads_before + 1:
            break
        time.sleep(0.5)
    assert len(os.listdir(f"/proc/{pid}/task")) <= threads_before + 1
    assert get(device.port, "/healthz")[0] == 200
    rss = device.status()["memory"]["rss_mb"]
    assert rss < 400, rss


def test_a_password_guards_everything_but_healthz(tmp_path: Path, data_dir: Path) -> None:
    secret = tmp_path / "http-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    run = Device(
        tmp_path, "--camera", str(data_dir / "tfjs" / "pose_squats.mp4"), "--loop",
        config=f'[http]\npassword_file = "{secret}"\n',
    )  # fmt: skip
    try:
        assert run.status()["http"]["auth"] is True
        guarded = ("/", "/api/status", "/snapshot.jpg", "/stream.mjpg", "/metrics", "/api/events")
        for path in guarded:
            code, headers, _ = get(run.port, path)
            assert code == 401, path
            assert headers["www-authenticate"].startswith('Basic realm="edge-pose"')
        for path in ("/", "/stream.mjpg"):
            assert get(run.port, path, auth="edge-pose:wrong")[0] == 401
            assert get(run.port, path, auth=f"someone:{PASSWORD}")[0] == 401
        assert get(run.port, "/", headers={"Authorization": "Basic !!notbase64"})[0] == 401
        assert get(run.port, "/", auth=f"edge-pose:{PASSWORD}")[0] == 200
        assert get(run.port, "/api/status", auth=f"edge-pose:{PASSWORD}")[0] == 200
        assert len(mjpeg_parts(run.port, 2, auth=f"edge-pose:{PASSWORD}")) == 2
        assert get(run.port, "/healthz")[0] == 200
        # Guessing fast is slowed down: after a burst, 429 for any password, the right one too
        # (else a right guess would stand out); a try comes back each second.
        codes = [get(run.port, "/", auth=f"edge-pose:guess{i}")[0] for i in range(15)]
        first = codes.index(429)  # the wrong tries above count too: the burst is 10 in all
        assert 3 <= first <= 10 and codes[:first] == [401] * first, codes
        assert codes[first:] == [429] * (15 - first), codes
        assert get(run.port, "/", auth=f"edge-pose:{PASSWORD}")[0] == 429
        time.sleep(1.2)
        assert get(run.port, "/", auth=f"edge-pose:{PASSWORD}")[0] == 200
    finally:
        assert "Traceback" not in run.stop()


def test_https_with_a_certificate(tmp_path: Path, data_dir: Path) -> None:
    openssl = need_tool("openssl", "openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    run = Device(
        tmp_path, "--camera", str(data_dir / "tfjs" / "pose_squats.mp4"), "--loop",
        config=f'[http]\ncertfile = "{cert}"\nkeyfile = "{key}"\n',
    )  # fmt: skip
    try:
        assert run.status()["http"]["url"] == f"https://127.0.0.1:{run.port}/"
        context = ssl.create_default_context(cafile=str(cert))
        code, _, body = get(run.port, "/api/status", context=context)
        assert code == 200 and json.loads(body)["http"]["tls"] is True
        # Plain HTTP to the HTTPS port: refused, and the server goes on.
        with pytest.raises((http.client.HTTPException, OSError)):
            get(run.port, "/api/status")
        assert get(run.port, "/healthz", context=context)[0] == 200
    finally:
        assert "Traceback" not in run.stop()


def test_a_port_in_use_is_one_line_naming_it(tmp_path: Path, data_dir: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        config = tmp_path / "config.toml"
        config.write_text("[mqtt]\nenabled = false\n")
        proc = subprocess.run(
            [sys.executable, "-m", "edge_pose.cli", "run", "--config", str(config),
             "--camera", str(data_dir / "tfjs" / "pose_squats.mp4"), "--http-port", str(port)],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "RUNTIME_DIRECTORY": str(tmp_path)},
        )  # fmt: skip
    finally:
        holder.close()
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(lines) == 1, proc.stderr
    assert f"http.port = {port}" in lines[0] and "in use by another program" in lines[0]
    assert f"edge-pose config set http.port={port + 1}" in lines[0]  # as it is typed
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("value", ["abc", "-1", "65536", "8080x", "\u0663"])
def test_a_bad_port_in_the_environment_names_the_variable(tmp_path: Path, value: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[mqtt]\nenabled = false\n")
    proc = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "validate", "--config", str(config)],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "EDGE_POSE_HTTP_PORT": value},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"edge-pose: error: $EDGE_POSE_HTTP_PORT = {value!r}: not a port")
    # The flag wins over the variable.
    flagged = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "validate", "--config", str(config),
         "--http-port", "0"],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "EDGE_POSE_HTTP_PORT": value},
    )  # fmt: skip
    assert flagged.returncode == 0, flagged.stderr


def test_a_server_that_cannot_bind_leaves_no_thread(tmp_path: Path) -> None:
    """A reload onto a taken port, again and again, must not pile up encoder threads."""
    from edge_pose.config import HttpConfig
    from edge_pose.errors import EdgePoseError
    from edge_pose.web.hub import WebHub
    from edge_pose.web.server import WebServer

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    before = threading.active_count()
    try:
        for _ in range(3):
            server = WebServer(HttpConfig(port=holder.getsockname()[1]), WebHub(), None)
            with pytest.raises(EdgePoseError, match="in use by another program"):
                server.start()
    finally:
        holder.close()
    assert threading.active_count() == before


def test_a_page_asked_for_by_another_name_is_refused_without_a_password(device: Device) -> None:
    """DNS rebinding: a web page that points its own name at the device sends that name in
    Host; without a password only the device's names and addresses are served."""
    for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example"):
        code, _, body = get(device.port, "/api/status", headers={"Host": host})
        assert code == 421 and b"not this device's name or address" in body, host
    for host in (f"127.0.0.1:{device.port}", f"localhost:{device.port}", f"[::1]:{device.port}",
                 f"{socket.gethostname()}.local:{device.port}", "192.168.1.20"):  # fmt: skip
        assert get(device.port, "/api/status", headers={"Host": host})[0] == 200, host


def test_a_lan_bind_without_password_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[http]\nbind = "0.0.0.0"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "validate", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 78
    assert "http.bind = '0.0.0.0'" in proc.stderr and "http.password_file" in proc.stderr
    config.write_text('[http]\nbind = "0.0.0.0"\nallow_anonymous = true\n')
    assert subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "validate", "--config", str(config)],
        capture_output=True, timeout=60,
    ).returncode == 0  # fmt: skip


def test_healthz_turns_503_while_the_camera_stalls_and_back(tmp_path: Path) -> None:
    """A named-pipe camera whose writer pauses: /healthz says 503 (no frame for longer than
    the stall limit: half the watchdog interval, 2 s here) and 200 again once frames flow. The
    device has a password: /healthz answers without it, its reasons only to those with it."""
    resumed = threading.Event()
    secret = tmp_path / "http-password"
    secret.write_text(PASSWORD + "\n")
    writer = PipeWriter(tmp_path, 1500, stall_after=30, stall=7.0)
    run = Device(
        tmp_path, "--camera", str(writer.path), env={"WATCHDOG_USEC": "4000000"},
        config=f'[http]\npassword_file = "{secret}"\n',
    )  # fmt: skip
    try:
        codes: list[tuple[float, int, str]] = []
        reasons: dict[str, list[str]] = {}
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            code, _, body = get(run.port, "/healthz")
            codes.append((time.monotonic(), code, json.loads(body)["label"]))
            if code == 503 and not reasons:
                reasons["anyone"] = json.loads(body)["reasons"]
                _, _, told = get(run.port, "/healthz", auth=f"edge-pose:{PASSWORD}")
                reasons["owner"] = json.loads(told)["reasons"]
            if any(c == 503 for _, c, _ in codes) and code == 200:
                resumed.set()
                break
            time.sleep(0.3)
        labels = [label for _, _, label in codes]
        assert "degraded" in labels, codes
        assert resumed.is_set(), codes
        stalled = next(body for _, c, body in codes if c == 503)
        assert stalled == "degraded"
        assert reasons["anyone"] == [] and reasons["owner"], reasons  # the why: for the owner
    finally:
        run.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_reload_moves_the_web_view_and_a_taken_port_is_rejected(
    tmp_path: Path, data_dir: Path
) -> None:
    """SIGHUP with another http.port: the page moves there (the old port is closed). A reload
    onto a port another program holds is rejected in one line and the page stays served."""
    first, second = free_port(), free_port()
    run = Device(
        tmp_path, "--camera", str(data_dir / SQUATS), "--loop",
        config=f"[http]\nport = {first}\n", env={"EDGE_POSE_HTTP_PORT": ""},
    )  # fmt: skip
    config = tmp_path / "config.toml"
    try:
        assert run.port == first
        config.write_text(f"[mqtt]\nenabled = false\n[http]\nport = {second}\n")
        run.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while (run.status().get("http") or {}).get("port") != second:
            assert time.monotonic() < deadline, run.status()
            time.sleep(0.2)
        assert get(second, "/healthz")[0] in (200, 503)
        with pytest.raises(OSError):
            get(first, "/healthz")

        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        try:
            processed = run.status()["frames"]["processed"]
            config.write_text(f"[mqtt]\nenabled = false\n[http]\nport = {taken}\n")
            run.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while "reload rejected" not in (run.status().get("last_error") or ""):
                assert time.monotonic() < deadline, run.status()
                time.sleep(0.2)
            assert f"http.port = {taken}" in run.status()["last_error"]
            deadline = time.monotonic() + 30
            while run.status().get("state") != "running" or run.status()["http"]["port"] != second:
                assert time.monotonic() < deadline, run.status()
                time.sleep(0.2)
            assert get(second, "/api/status")[0] == 200
            # Rejected before the running session stopped: the pipeline's counts went on.
            assert run.status()["frames"]["processed"] > processed
        finally:
            holder.close()
    finally:
        assert "Traceback" not in run.stop()
