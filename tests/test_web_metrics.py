"""/metrics against a real `edge-pose run` on the squat video: promtool's lint, the numbers a
scrape shows, counters that only grow, a real Prometheus scraping the device (with and without
the password), and Metrics.render fed hostile status documents.

The families and their document paths are written out here (EXPECTED), not read from
edge_pose/web/metrics.py, so a renamed metric or a moved field fails; docs/metrics.md lists
the same names.
"""

from __future__ import annotations

import json
import math
import random
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import REPO, need_tool
from prometheus_client.parser import text_string_to_metric_families
from test_web_server import PASSWORD, SQUATS, Device, get

from edge_pose import __version__
from edge_pose.web.metrics import Metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

THROTTLE_FLAGS = (
    "under-voltage", "arm-frequency-capped", "throttled", "soft-temperature-limit",
    "under-voltage-occurred", "arm-frequency-capped-occurred", "throttled-occurred",
    "soft-temperature-limit-occurred",
)  # fmt: skip


class Expected(NamedTuple):
    """One sample read from one document field: ``kind`` gauge (any finite number), counter
    (a finite number >= 0) or flag (a bool as 0/1)."""

    name: str
    labels: dict[str, str]
    path: tuple[str, ...]
    kind: str
    scale: float = 1.0


EXPECTED = (
    Expected("edge_pose_start_time_seconds", {}, ("started",), "gauge"),
    Expected("edge_pose_paused", {}, ("paused",), "flag"),
    Expected("edge_pose_last_frame_timestamp_seconds", {}, ("last_frame",), "gauge"),
    Expected("edge_pose_stall_limit_seconds", {}, ("stall_s",), "gauge"),
    Expected("edge_pose_camera_restarts_total", {}, ("camera", "restarts"), "counter"),
    Expected("edge_pose_frames_per_second", {"stage": "capture"}, ("fps", "capture"), "gauge"),
    Expected("edge_pose_frames_per_second", {"stage": "processed"}, ("fps", "processed"),
             "gauge"),
    Expected("edge_pose_events_total", {}, ("events",), "counter"),
    Expected("edge_pose_person_present", {}, ("pose", "person"), "flag"),
    Expected("edge_pose_pose_confidence_ratio", {}, ("pose", "confidence"), "gauge"),
    Expected("edge_pose_pose_changed_timestamp_seconds", {}, ("pose", "since"), "gauge"),
    Expected("edge_pose_fall", {}, ("fall",), "flag"),
    Expected("edge_pose_inactive", {}, ("inactive",), "flag"),
    Expected("edge_pose_mqtt_connected", {}, ("mqtt", "connected"), "flag"),
    *(Expected("edge_pose_mqtt_messages_total", {"result": r}, ("mqtt", r), "counter")
      for r in ("sent", "dropped", "rate_limited")),
    Expected("edge_pose_mqtt_events_dropped_total", {}, ("mqtt", "events_dropped"), "counter"),
    Expected("edge_pose_mqtt_reconnects_total", {}, ("mqtt", "reconnects"), "counter"),
    Expected("edge_pose_mqtt_unacked_messages", {}, ("mqtt", "unacked"), "gauge"),
    Expected("edge_pose_mqtt_last_publish_timestamp_seconds", {}, ("mqtt", "last_publish"),
             "gauge"),
    Expected("edge_pose_cpu_temperature_celsius", {}, ("system", "cpu_temp_c"), "gauge"),
    Expected("edge_pose_peak_resident_memory_bytes", {}, ("memory", "peak_rss_mb"), "gauge",
             1024 * 1024),
    Expected("edge_pose_http_viewers", {}, ("http", "viewers"), "gauge"),
    Expected("edge_pose_http_followers", {}, ("http", "followers"), "gauge"),
)  # fmt: skip
# Families of their own shape (checked one by one below) and the two histograms.
OTHER_NAMES = {
    "edge_pose_build_info", "edge_pose_frames_total", "edge_pose_pose_info", "edge_pose_reps",
    "edge_pose_throttled", "edge_pose_people", "edge_pose_zone_occupied",
}  # fmt: skip
HISTOGRAMS = ("edge_pose_inference_seconds", "edge_pose_latency_seconds")
FALLS = "edge_pose_falls_total"  # a counter fed per frame, as the histograms are


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """The families' types by name, and every sample by (name, labels)."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"sample twice: {key}"
            samples[key] = sample.value
    return types, samples


def one(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def labelled(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample, labels in samples if sample == name]


def scrape(port: int, auth: str | None = None) -> tuple[dict[str, str], Samples]:
    code, headers, body = get(port, "/metrics", auth=auth)
    assert code == 200, body
    assert headers["content-type"].startswith("text/plain; version="), headers
    return parse(body.decode())


def until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """``check()``'s first truthy answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if answer := check():
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(every)


# --------------------------------------------------------------------------- the real device


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Device]:
    """The squat video looped in real time (5 fps), MQTT off, no password."""
    run = Device(tmp_path_factory.mktemp("metrics"), "--camera", str(data_dir / SQUATS), "--loop")
    yield run
    stderr = run.stop()
    assert "Traceback" not in stderr, stderr


class PrivateDevice(Device):
    """A device behind the password (user edge-pose), kept in ``secret``."""

    def __init__(self, tmp: Path, camera: Path) -> None:
        self.secret = tmp / "http-password"
        self.secret.write_text(PASSWORD + "\n")
        self.secret.chmod(0o600)
        super().__init__(tmp, "--camera", str(camera), "--loop",
                         config=f'[http]\npassword_file = "{self.secret}"\n')  # fmt: skip


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[PrivateDevice]:
    """The squat video again, behind the password."""
    run = PrivateDevice(tmp_path_factory.mktemp("private"), data_dir / SQUATS)
    yield run
    stderr = run.stop()
    assert "Traceback" not in stderr, stderr


def test_promtool_finds_nothing_to_lint(device: Device) -> None:
    promtool = need_tool("promtool", "prometheus")
    until(lambda: one(scrape(device.port)[1], "edge_pose_inference_seconds_count"), 20,
          "a frame observed")  # fmt: skip
    code, _, body = get(device.port, "/metrics")
    assert code == 200
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30
    )
    assert (check.returncode, check.stdout, check.stderr) == (0, b"", b""), check


def test_a_scrape_shows_the_running_device(device: Device) -> None:
    def seen() -> tuple[dict[str, str], Samples] | None:
        types, samples = scrape(device.port)
        ready = (one(samples, "edge_pose_inference_seconds_count") or 0) >= 5
        return (types, samples) if ready and one(samples, "edge_pose_person_present") else None

    types, samples = until(seen, 30, "5 frames inferred and the person seen")
    for histogram in HISTOGRAMS:
        assert types[histogram] == "histogram"
    count = one(samples, "edge_pose_inference_seconds_count")
    total = one(samples, "edge_pose_inference_seconds_sum")
    assert count is not None and total is not None and count > 0
    assert 0.0005 < total / count < 1, (total, count)
    assert one(samples, "edge_pose_inference_seconds_bucket", le="+Inf") == count
    latency = one(samples, "edge_pose_latency_seconds_count")
    assert latency is not None and latency > 0
    assert (one(samples, "edge_pose_frames_total", result="person") or 0) > 0
    assert (one(samples, "edge_pose_frames_per_second", stage="processed") or 0) > 0
    assert one(samples, "edge_pose_person_present") == 1
    assert one(samples, "edge_pose_people") == 1
    assert one(samples, "edge_pose_paused") == 0
    assert one(samples, "edge_pose_fall") == one(samples, "edge_pose_inactive") == 0
    assert one(samples, FALLS) == 0 and types["edge_pose_falls"] == "counter"
    assert not labelled(samples, "edge_pose_zone_occupied")  # no zones configured
    assert types["edge_pose_frames"] == types["edge_pose_events"] == "counter"

    (build,) = labelled(samples, "edge_pose_build_info")
    doc = device.status()
    assert build["model"] == "movenet_lightning_int8"
    assert build["version"] == __version__ == doc["version"]
    assert build["device"] == doc["device"] and build["backend"] == doc["backend"]["kind"]
    assert one(samples, "edge_pose_build_info", **build) == 1
    assert [r["exercise"] for r in labelled(samples, "edge_pose_reps")] == ["squat"]
    (pose,) = labelled(samples, "edge_pose_pose_info")
    assert pose["label"]
    # The stall limit of the document (10 s without a watchdog), not a time since a frame.
    assert one(samples, "edge_pose_stall_limit_seconds") == doc["stall_s"]
    throttled = {r["flag"]: one(samples, "edge_pose_throttled", **r)
                 for r in labelled(samples, "edge_pose_throttled")}  # fmt: skip
    assert set(throttled) <= set(THROTTLE_FLAGS) and set(throttled.values()) <= {0, 1}
    if (temperature := one(samples, "edge_pose_cpu_temperature_celsius")) is not None:
        assert -40 < temperature < 150
    # MQTT is off: no family says "disconnected".
    assert not [name for name, _ in samples if name.startswith("edge_pose_mqtt_")]
    # The process collector and the platform collector of prometheus_client.
    assert (one(samples, "process_resident_memory_bytes") or 0) > 10 * 1024 * 1024
    assert (one(samples, "process_cpu_seconds_total") or 0) > 0
    assert labelled(samples, "python_info")


def test_counters_never_go_down(device: Device) -> None:
    def counted(samples: Samples, types: dict[str, str]) -> Samples:
        families = {n for n, t in types.items() if t in ("counter", "histogram")}
        return {key: value for key, value in samples.items()
                if key[0].rsplit("_", 1)[0] in families}  # fmt: skip

    types, first = scrape(device.port)
    time.sleep(1.5)  # the document is rebuilt about once a second: at least once in between
    _, second = scrape(device.port)
    before, after = counted(first, types), counted(second, types)
    assert len(before) > 30, before  # two histograms' buckets, frames, events, CPU seconds
    went_down = {key: (v, after[key]) for key, v in before.items() if after.get(key, v) < v}
    assert not went_down
    assert set(before) <= set(after)
    frames = ("edge_pose_frames_total", frozenset({("result", "person")}))
    assert after[frames] > before[frames]  # 5 frames a second, all with the person
    count = ("edge_pose_inference_seconds_count", frozenset())
    assert after[count] >= before[count] + 5  # observed per frame, not once a second


def test_a_password_guards_the_metrics(private: PrivateDevice) -> None:
    code, headers, _ = get(private.port, "/metrics")
    assert code == 401 and headers["www-authenticate"].startswith('Basic realm="edge-pose"')
    assert get(private.port, "/metrics", auth="edge-pose:wrong")[0] == 401
    _, samples = scrape(private.port, auth=f"edge-pose:{PASSWORD}")
    assert labelled(samples, "edge_pose_build_info")


# --------------------------------------------------------------------------- a real Prometheus


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    """A Prometheus server in the background and its query API."""

    def __init__(self, tmp: Path, jobs: list[dict[str, Any]]) -> None:
        binary = need_tool("prometheus", "prometheus")
        config = tmp / "prometheus.yml"
        # JSON is YAML: no quoting of paths to get wrong.
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": jobs,
        }, indent=2))  # fmt: skip
        promtool = need_tool("promtool", "prometheus")
        checked = subprocess.run([promtool, "check", "config", str(config)],
                                 capture_output=True, text=True, timeout=30)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
        self.port = free_port()
        self.log = tmp / "prometheus.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector of ``promql`` (empty while Prometheus is not up yet)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus ended: {self.log.read_text()}")
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": promql}))  # fmt: skip
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:  # 400: a query Prometheus does not accept
            answer = json.load(error)
        except OSError:  # not listening yet
            return []
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def values(self, promql: str) -> list[float]:
        return [float(row["value"][1]) for row in self.query(promql)]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, device: Device, private: PrivateDevice
) -> Iterator[Prometheus]:
    """Scrapes every second: the open device, the private one with the password, and the
    private one without it."""
    tmp = tmp_path_factory.mktemp("prometheus")

    def job(name: str, port: int, **more: Any) -> dict[str, Any]:
        return {"job_name": name, "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}], **more}  # fmt: skip

    auth = {"username": "edge-pose", "password_file": str(private.secret)}
    server = Prometheus(tmp, [
        job("edge-pose", device.port),
        job("edge-pose-private", private.port, basic_auth=auth),
        job("edge-pose-anonymous", private.port),
    ])  # fmt: skip
    try:
        yield server
    finally:
        server.stop()


def test_prometheus_scrapes_the_device(prometheus: Prometheus) -> None:
    until(lambda: prometheus.values('up{job="edge-pose"}') == [1], 40, "the target up", 0.5)
    until(lambda: prometheus.query('edge_pose_frames_total{job="edge-pose"}'), 20,
          "frames stored", 0.5)  # fmt: skip
    (frames,) = prometheus.values('edge_pose_frames_total{job="edge-pose",result="person"}')
    assert frames > 0
    (count,) = prometheus.values('edge_pose_inference_seconds_count{job="edge-pose"}')
    assert count > 0
    # Buckets aggregate over time: the median of the last 10 s, from rates of the buckets
    # (two scrapes in the window at the least).
    median = (
        'histogram_quantile(0.5, rate(edge_pose_inference_seconds_bucket{job="edge-pose"}[10s]))'
    )
    (p50,) = until(lambda: [v for v in prometheus.values(median) if math.isfinite(v)], 20,
                   "a finite median", 0.5)  # fmt: skip
    assert 0.0005 < p50 < 1, p50
    # rate() divides by the whole window: only a window the series fills gives the real rate.
    person = 'edge_pose_frames_total{job="edge-pose",result="person"}'
    until(lambda: [n for n in prometheus.values(f"count_over_time({person}[5s])") if n >= 5],
          20, "5 s of scrapes", 0.5)  # fmt: skip
    (fps,) = prometheus.values(f"rate({person}[5s])")
    assert 2 < fps < 10, fps  # the video plays at 5 frames a second
    (build,) = prometheus.query('edge_pose_build_info{job="edge-pose"}')
    assert build["metric"]["model"] == "movenet_lightning_int8"
    assert build["metric"]["instance"].startswith("127.0.0.1:")


def test_prometheus_scrapes_a_private_device_with_the_password(prometheus: Prometheus) -> None:
    def ups() -> dict[str, float] | None:
        found = {row["metric"]["job"]: float(row["value"][1])
                 for row in prometheus.query('up{job=~"edge-pose-.*"}')}  # fmt: skip
        return found if len(found) == 2 else None

    assert until(ups, 40, "both private jobs scraped", 0.5) == {
        "edge-pose-private": 1, "edge-pose-anonymous": 0,
    }  # fmt: skip
    until(lambda: prometheus.values('edge_pose_inference_seconds_count{job="edge-pose-private"}'),
          10, "the private device's histogram", 0.5)  # fmt: skip
    assert not prometheus.query('edge_pose_build_info{job="edge-pose-anonymous"}')


def blocks(markdown: str, language: str) -> list[str]:
    """The fenced code blocks of ``language`` in a markdown text."""
    found: list[str] = []
    current: list[str] | None = None
    for line in markdown.splitlines():
        if current is None and line == f"```{language}":
            current = []
        elif current is not None and line == "```":
            found.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    return found


def test_the_examples_of_docs_metrics_md_hold(prometheus: Prometheus, tmp_path: Path) -> None:
    """docs/metrics.md: its scrape config and alert rules pass promtool, each of its queries is
    accepted by the running Prometheus, and it names every metric the device exposes."""
    promtool = need_tool("promtool", "prometheus")
    text = (REPO / "docs" / "metrics.md").read_text()
    (scrape_config, rules) = blocks(text, "yaml")
    for name, body, what in (
        ("scrape.yml", scrape_config, "config"),
        ("rules.yml", rules, "rules"),
    ):
        path = tmp_path / name
        path.write_text(body)
        check = subprocess.run([promtool, "check", what, str(path)],
                               capture_output=True, text=True, timeout=30)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
    (queries,) = blocks(text, "promql")
    lines = [line for line in queries.splitlines() if line and not line.startswith("#")]
    assert len(lines) >= 8
    for line in lines:
        prometheus.query(line)  # asserts "success" (promtool has parsed the rules' expressions)
    documented = set(re.findall(r"`((?:edge_pose|process|python)_[a-z_]+)`", text))
    until(lambda: prometheus.query('edge_pose_frames_total{job="edge-pose"}'), 40, "a scrape")
    exposed = {row["metric"]["__name__"] for row in prometheus.query('{job="edge-pose"}')}
    exposed = {re.sub(r"_(bucket|sum|count)$", "", n) for n in exposed} - {"up"}
    exposed = {n for n in exposed if n.startswith(("edge_pose_", "process_", "python_"))}
    assert exposed <= documented, exposed - documented
    assert {row.name for row in EXPECTED} | OTHER_NAMES | set(HISTOGRAMS) <= documented


# --------------------------------------------------------------------------- hostile documents


def as_number(value: object) -> float | None:
    """A finite int or float (not a bool) as float, else None: what may become a sample."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        found = float(value)
    except OverflowError:
        return None
    return found if math.isfinite(found) else None


def at(doc: Any, path: tuple[str, ...]) -> object:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


NUMBERS = (
    0, 1, 7, -1, -3.5, 0.93, 12.25, 1796391807.98, 2**53 + 1, 2**63, 10**30, -(10**30), 10**308,
    10**400, -(10**400), 1.7e308, -0.0, 1e-300, math.inf, -math.inf, math.nan,
)  # fmt: skip
TEXTS = (
    "", "12", "0x50005", "nan", "true", "squat", 'a "quoted" \\ back\nslash', "ä ✓ 🏋",
    "throttled=0x5", "-0x1", "0xzz", " 0x4 ",
)  # fmt: skip


def garbage(rng: random.Random, depth: int = 0) -> object:
    """Any JSON-ish value (NaN and infinities included), nested now and then."""
    pick = rng.random()
    if pick < 0.45:
        return rng.choice(NUMBERS) if rng.random() < 0.6 else rng.uniform(-1e6, 1e6)
    if pick < 0.6:
        return rng.choice((None, True, False))
    if pick < 0.8:
        return rng.choice(TEXTS)
    if depth > 2:
        return None
    if pick < 0.9:
        return [garbage(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(("x", "count", "0", "")): garbage(rng, depth + 1)
            for _ in range(rng.randrange(3))}  # fmt: skip


SECTIONS = {
    "camera": ("restarts",), "fps": ("capture", "processed"),
    "pose": ("person", "confidence", "since", "label"),
    "mqtt": ("enabled", "connected", "sent", "dropped", "rate_limited", "events_dropped",
             "reconnects", "unacked", "last_publish"),
    "system": ("cpu_temp_c", "throttled"), "memory": ("peak_rss_mb", "rss_mb"),
    "http": ("viewers", "followers"), "frames": ("processed", "with_person", "skipped"),
    "reps": ("count", "exercise"), "model": ("name",), "backend": ("kind", "runtime"),
}  # fmt: skip
TOP = (
    "version",
    "device",
    "started",
    "paused",
    "last_frame",
    "stall_s",
    "events",
    "state",
    "fall",
    "inactive",
)
ZONE_NAMES = ("hall", "bed", "", 'a "quoted" \\ back\nslash', "ä ✓", 3, None)


def hostile(rng: random.Random) -> dict[str, object]:
    """A status document whose every field may be missing, of another type, or absurd."""
    doc: dict[str, object] = {key: garbage(rng) for key in TOP if rng.random() < 0.8}
    for name, keys in SECTIONS.items():
        pick = rng.random()
        if pick < 0.1:
            continue
        if pick < 0.25:
            doc[name] = garbage(rng)  # None, a number, a list, text or another object
            continue
        section = {key: garbage(rng) for key in keys if rng.random() < 0.85}
        if name == "mqtt" and rng.random() < 0.6:
            section["enabled"] = rng.choice((True, False, "true", 1, None))
        if name == "frames" and rng.random() < 0.4:  # a consistent pair now and then
            section["processed"], section["with_person"] = 40, rng.choice((0, 17, 40, 41, -1))
        if name == "system" and rng.random() < 0.5:
            section["throttled"] = rng.choice(("0x50005", "0x0", 0, 0x80008, "throttled=0x5"))
        if rng.random() < 0.2:
            section["extra"] = garbage(rng)
        doc[name] = section
    if rng.random() < 0.5:
        doc["zones"] = garbage(rng) if rng.random() < 0.3 else [
            {"name": rng.choice(ZONE_NAMES), "occupied": rng.choice((True, False, 1, None))}
            if rng.random() < 0.8 else garbage(rng)
            for _ in range(rng.randrange(4))
        ]  # fmt: skip
    if rng.random() < 0.2:
        doc["unknown"] = garbage(rng)
    return doc


def check_rendered(doc: dict[str, object], text: str) -> set[tuple[str, str, bool]]:
    """What ``doc`` must become: each number where the document has one, nothing elsewhere.
    Returns which EXPECTED samples were there and which were not."""
    types, samples = parse(text)
    mqtt = at(doc, ("mqtt", "enabled")) is True
    names = {name for name, _ in samples}
    seen: set[tuple[str, str, bool]] = set()
    for row in EXPECTED:
        raw = at(doc, row.path)
        if row.kind == "flag":
            want = float(raw) if isinstance(raw, bool) else None
        else:
            want = as_number(raw)
            if row.kind == "counter" and want is not None and want < 0:
                want = None  # a counter never goes below 0
        if want is not None:
            want *= row.scale
        if not mqtt and row.name.startswith("edge_pose_mqtt_"):
            want = None
        got = one(samples, row.name, **row.labels)
        seen.add((row.name, str(row.labels), got is not None))
        assert got == want or (got is not None and want is not None and math.isclose(got, want)), (
            row, raw, got
        )  # fmt: skip
    if not mqtt:
        assert not [n for n in names if n.startswith("edge_pose_mqtt_")]

    known = {row.name for row in EXPECTED} | OTHER_NAMES | {FALLS}
    histogram_samples = {f"{h}_{part}" for h in HISTOGRAMS for part in ("bucket", "count", "sum")}
    ours = {n for n in names if n.startswith("edge_pose_")} - histogram_samples
    assert ours <= known, ours - known
    for (name, _), value in samples.items():
        if name.startswith("edge_pose_"):
            assert not math.isnan(value), name

    (build,) = labelled(samples, "edge_pose_build_info")
    version = at(doc, ("version",))
    assert build["version"] == (version if isinstance(version, str) and version else __version__)
    for label, path in (
        ("device", ("device",)),
        ("model", ("model", "name")),
        ("backend", ("backend", "kind")),
        ("runtime", ("backend", "runtime")),
    ):
        value = at(doc, path)
        assert build[label] == (value if isinstance(value, str) else ""), (label, value)

    processed, person = at(doc, ("frames", "processed")), at(doc, ("frames", "with_person"))
    p, q = as_number(processed), as_number(person)
    if p is not None and q is not None and 0 <= q <= p:
        assert one(samples, "edge_pose_frames_total", result="person") == q
        assert one(samples, "edge_pose_frames_total", result="nobody") == p - q
    else:
        assert one(samples, "edge_pose_frames_total", result="person") is None
        assert one(samples, "edge_pose_frames_total", result="nobody") is None
    skipped = as_number(at(doc, ("frames", "skipped")))
    want_skipped = skipped if skipped is not None and skipped >= 0 else None
    assert one(samples, "edge_pose_frames_total", result="skipped") == want_skipped

    label = at(doc, ("pose", "label"))
    assert labelled(samples, "edge_pose_pose_info") == (
        [{"label": label}] if isinstance(label, str) else []
    )
    count = as_number(at(doc, ("reps", "count")))
    exercise = at(doc, ("reps", "exercise"))
    reps = {"exercise": exercise if isinstance(exercise, str) else ""}
    assert one(samples, "edge_pose_reps", **reps) == count
    assert len(labelled(samples, "edge_pose_reps")) == (count is not None)

    zones: dict[str, float] = {}
    listed = doc.get("zones")
    for zone in listed if isinstance(listed, list) else []:
        name, occupied = at(zone, ("name",)), at(zone, ("occupied",))
        if isinstance(name, str) and name and isinstance(occupied, bool):
            zones.setdefault(name, float(occupied))  # a name twice: the first
    assert {r["zone"]: one(samples, "edge_pose_zone_occupied", **r)
            for r in labelled(samples, "edge_pose_zone_occupied")} == zones  # fmt: skip

    throttled = at(doc, ("system", "throttled"))
    flags = {r["flag"]: one(samples, "edge_pose_throttled", **r)
             for r in labelled(samples, "edge_pose_throttled")}  # fmt: skip
    known_bits = {"0x50005": 0x50005, "0x0": 0, 0: 0, 0x80008: 0x80008}
    if isinstance(throttled, bool) or throttled is None or throttled == "throttled=0x5":
        assert flags == {}
    elif isinstance(throttled, str | int) and throttled in known_bits:
        bits = known_bits[throttled]
        expected = [0, 1, 2, 3, 16, 17, 18, 19]
        assert flags == {
            name: float(bits >> bit & 1) for name, bit in zip(THROTTLE_FLAGS, expected, strict=True)
        }
    if flags:
        assert set(flags) == set(THROTTLE_FLAGS) and set(flags.values()) <= {0, 1}
    for histogram in HISTOGRAMS:
        assert types[histogram] == "histogram"
    assert one(samples, "process_resident_memory_bytes") is not None
    assert labelled(samples, "python_info")
    return seen


def test_hostile_documents_render_as_what_they_say() -> None:
    metrics = Metrics()
    rng = random.Random(20260604)
    seen: set[tuple[str, str, bool]] = set()
    for _ in range(1000):
        doc = hostile(rng)
        try:
            text = metrics.render(doc).decode()
            seen |= check_rendered(doc, text)
        except Exception as exc:
            raise AssertionError(f"document {doc!r}") from exc
    # Not vacuous: every sample was both written and left out by some document.
    rows = {(row.name, str(row.labels)) for row in EXPECTED}
    assert {(name, labels) for name, labels, there in seen if there} == rows
    assert {(name, labels) for name, labels, there in seen if not there} == rows


def test_no_document_yet_still_renders() -> None:
    """Before the first status document: the histograms, build_info and the process."""
    _, samples = parse(Metrics().render(None).decode())
    names = {name for name, _ in samples}
    assert one(samples, "edge_pose_inference_seconds_count") == 0
    assert labelled(samples, "edge_pose_build_info") == [
        {"version": __version__, "device": "", "model": "", "backend": "", "runtime": ""}
    ]
    assert {n for n in names if n.startswith("edge_pose_")} == {
        "edge_pose_build_info",
        FALLS,
        *(f"{h}_{part}" for h in HISTOGRAMS for part in ("bucket", "count", "sum")),
    }


def test_mqtt_families_only_when_mqtt_is_enabled() -> None:
    metrics = Metrics()
    mqtt = {"connected": False, "sent": 5, "dropped": 0, "rate_limited": 2, "reconnects": 3,
            "events_dropped": 0, "unacked": 1, "last_publish": None}  # fmt: skip
    _, off = parse(metrics.render({"mqtt": {"enabled": False, **mqtt}}).decode())
    assert not [name for name, _ in off if name.startswith("edge_pose_mqtt_")]
    _, on = parse(metrics.render({"mqtt": {"enabled": True, **mqtt}}).decode())
    assert one(on, "edge_pose_mqtt_connected") == 0  # disconnected: 0, not absent
    assert one(on, "edge_pose_mqtt_messages_total", result="sent") == 5
    assert one(on, "edge_pose_mqtt_messages_total", result="rate_limited") == 2
    assert one(on, "edge_pose_mqtt_reconnects_total") == 3
    assert one(on, "edge_pose_mqtt_unacked_messages") == 1
    assert one(on, "edge_pose_mqtt_last_publish_timestamp_seconds") is None  # null: no sample


def test_hostile_documents_pass_promtool() -> None:
    promtool = need_tool("promtool", "prometheus")
    metrics, rng = Metrics(), random.Random(7)
    for _ in range(8):
        doc = hostile(rng)
        body = metrics.render(doc)
        check = subprocess.run(
            [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30
        )
        assert check.returncode == 0, (doc, check.stdout, check.stderr)


def test_a_label_value_that_is_not_utf8_does_not_break_the_scrape() -> None:
    """Text read with surrogateescape (a file name of other bytes than UTF-8) holds lone
    surrogates; such a label value must not turn the whole scrape into an error."""
    text = Metrics().render({"version": "0.1", "model": {"name": "m\udcff.tflite"}}).decode()
    assert labelled(parse(text)[1], "edge_pose_build_info")
