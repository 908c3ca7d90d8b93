"""`make demo` without network: the sample download fails in one line that says what to do.

deploy/demo.py is run for real from a copy (so its .cache/ is the test's own), with every
proxy pointed at a local server that fails the way networks fail: nothing listening, a proxy
refusing the tunnel, a connection dropped, bytes that are not TLS. Nothing reaches the internet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def refuse_tunnel(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")


def drop(conn: socket.socket) -> None:
    conn.recv(4096)


def not_tls(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    conn.recv(4096)  # the TLS client hello
    conn.sendall(b"\x1b[2J this is not TLS \r\n\x00" * 8)


def status_line_garbage(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.sendall(b"\xff\xfe garbage\r\n\r\n")


PROXIES: dict[str, Callable[[socket.socket], None]] = {
    "refused-tunnel": refuse_tunnel,
    "dropped": drop,
    "not-tls": not_tls,
    "garbage": status_line_garbage,
}


@pytest.fixture
def proxy(request: pytest.FixtureRequest) -> Iterator[str]:
    """A local 'proxy' on a free port that answers every connection with ``request.param``."""
    behave = PROXIES[request.param]
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                behave(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    server.close()


def demo_copy(tmp_path: Path) -> Path:
    """deploy/demo.py in a folder of its own: the cache it writes is tmp_path/.cache."""
    (tmp_path / "deploy").mkdir()
    return Path(shutil.copy(REPO / "deploy" / "demo.py", tmp_path / "deploy" / "demo.py"))


def run_demo(script: Path, proxy_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(https_proxy=proxy_url, HTTPS_PROXY=proxy_url, http_proxy=proxy_url)
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], cache: Path) -> None:
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("demo: cannot download the sample video https://")
    assert line.endswith("(offline? give a video of your own: make demo VIDEO=/path/to/video.mp4)")
    assert line.isprintable()  # nothing the server sent reaches the terminal raw
    assert not (cache / "pose_squats.mp4").exists()
    assert not (cache / "pose_squats.mp4.part").exists()


@pytest.mark.parametrize("proxy", list(PROXIES), indirect=True)
def test_a_failed_sample_download_is_one_line(proxy: str, tmp_path: Path) -> None:
    assert_one_line_failure(run_demo(demo_copy(tmp_path), proxy), tmp_path / ".cache")


def test_nothing_listening_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_demo(demo_copy(tmp_path), f"http://127.0.0.1:{port}")
    assert_one_line_failure(result, tmp_path / ".cache")
    assert "refused" in result.stderr.lower()


def test_a_cache_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".cache").write_text("a file where the cache folder goes")
    result = run_demo(demo_copy(tmp_path), "http://127.0.0.1:1")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("demo: cannot download the sample video ") and "VIDEO=" in line
