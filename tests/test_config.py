"""Config loading: defaults, the shipped file, and the exact wording of every kind of error.

The messages are the user interface of a headless appliance (journal lines), so the tests pin
key path, offending value and what is allowed, not merely that loading failed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_unprivileged

from edge_pose.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    MqttConfig,
    load_config,
    loading,
    read_password,
    to_toml_dict,
)
from edge_pose.errors import EX_CONFIG, ConfigError

SHIPPED = Path(__file__).resolve().parents[1] / "config" / "edge-pose.toml"
SECRET = "s3cr3t-Pa55w0rd"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fixed host name and no /etc/edge-pose/config.toml: tests must not depend on the host."""
    monkeypatch.setattr(socket, "gethostname", lambda: "pi-lab.example.org")
    monkeypatch.setattr(loading, "DEFAULT_CONFIG_PATH", tmp_path / "absent" / "config.toml")
    for name in ("CREDENTIALS_DIRECTORY", "RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path | None, overrides: dict[str, object] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    assert info.value.exit_code == EX_CONFIG
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# --------------------------------------------------------------------------- defaults


def test_defaults() -> None:
    cfg = load_config()
    assert cfg == Config()
    assert Path("/etc/edge-pose/config.toml") == DEFAULT_CONFIG_PATH
    assert cfg.device.id == "pi-lab"  # host name up to the first dot
    assert (cfg.camera.source, cfg.camera.width, cfg.camera.height, cfg.camera.fps) == (
        "picamera2",
        640,
        480,
        30,
    )
    assert cfg.camera.realtime is True and cfg.camera.loop is False
    assert (cfg.model.name, cfg.model.backend, cfg.model.device, cfg.model.threads) == (
        "movenet_lightning_int8",
        "auto",
        "",
        4,
    )
    assert cfg.model.min_pose_score == 0.25 and cfg.model.crop is True and cfg.model.dir == ""
    m = cfg.mqtt
    assert (m.enabled, m.host, m.port, m.topic_prefix, m.keepalive) == (
        True,
        "localhost",
        1883,
        "edge-pose",
        60,
    )
    assert (m.username, m.password_file, m.tls, m.ca_file, m.certfile, m.keyfile) == (
        "",
        "",
        False,
        "",
        "",
        "",
    )
    assert m.keypoints_max_rate == 30.0
    assert m.client_id == "edge-pose-pi-lab"
    assert cfg.status.dir == ""


def test_default_path_is_used_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[camera]\nfps = 15\n")
    monkeypatch.setattr(loading, "DEFAULT_CONFIG_PATH", path)
    assert load_config().camera.fps == 15


def _key_tree(table: dict[str, object]) -> dict[str, object]:
    """The keys of a table, nested tables as their own key trees (values left out)."""
    return {k: _key_tree(v) if isinstance(v, dict) else None for k, v in table.items()}


def test_shipped_file_equals_defaults() -> None:
    assert load_config(SHIPPED) == Config()
    # every key is present in the shipped file, so it documents all of them; the zones (none by
    # default) only as a commented-out example
    import tomllib

    shipped = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    defaults = to_toml_dict(Config())
    assert defaults.pop("zones") == ()
    assert _key_tree(shipped) == _key_tree(defaults)


def test_shipped_zone_example_is_valid(tmp_path: Path) -> None:
    """The commented-out [[zones]] blocks at the end of the shipped file, uncommented, load,
    and set every key of a zone."""
    text = SHIPPED.read_text(encoding="utf-8")
    example = text[text.index("# [[zones]]") :]
    lines = [line.removeprefix("#").removeprefix(" ") for line in example.splitlines()]
    cfg = load_config(write(tmp_path, "\n".join(lines) + "\n"))
    assert [(z.name, z.lying_ok, z.inactive_after_s) for z in cfg.zones] == [
        ("bed", True, 0.0),
        ("door", False, None),
    ]
    keys = {k for line in lines if " = " in line for k in [line.partition(" = ")[0]]}
    assert keys == {"name", "polygon", "lying_ok", "inactive_after_s"}


def test_config_is_frozen_and_typed(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[mqtt]\nkeypoints_max_rate = 5\n"))
    assert cfg.mqtt.keypoints_max_rate == 5.0 and isinstance(cfg.mqtt.keypoints_max_rate, float)
    with pytest.raises(Exception, match="frozen"):
        cfg.camera.fps = 10  # type: ignore[misc]


def test_to_toml_dict_round_trips(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[mqtt]\nusername = "u"\npassword_file = "/run/pw"\n'))
    data = to_toml_dict(cfg)
    assert data["mqtt"]["password_file"] == "/run/pw"
    assert data["device"]["id"] == "pi-lab"
    tables = {s: keys for s, keys in data.items() if s != "zones"}  # no zones: none set
    tables |= {f"events.{t}": tables["events"].pop(t) for t in ("fall", "inactivity")}
    lines = [
        f"[{s}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items())
        for s, keys in tables.items()
    ]
    assert load_config(write(tmp_path, "".join(lines), "again.toml")) == cfg


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else repr(value)


# --------------------------------------------------------------------------- errors


def test_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[camera]\nfsp = 30\n")
    assert problems(path) == [
        f"{path}: camera.fsp: unknown key (did you mean fps?) "
        "(known keys in [camera]: source, width, height, fps, realtime, loop)"
    ]


def test_unknown_section_and_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'fps = 3\n[cam]\nsource = "x"\n')
    assert problems(path) == [
        f"{path}: fps: unknown key at the top level: keys belong in a section "
        "(did you mean to put it under [camera]?) "
        "(known sections: device, camera, model, smoothing, classifier, tracking, mqtt, status, "
        "http, events)",
        f"{path}: [cam]: unknown section (did you mean camera?) "
        "(known sections: device, camera, model, smoothing, classifier, tracking, mqtt, status, "
        "http, events)",
    ]


def test_section_must_be_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, "camera = 3\n")
    assert problems(path) == [
        f"{path}: camera = 3: must be a table ([camera] section), not an integer"
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("fps = true", "camera.fps = True: must be an integer from 1 to 240, not a boolean"),
        (
            'fps = "30"',
            "camera.fps = '30': must be an integer from 1 to 240, not a string (remove the quotes)",
        ),
        ("fps = 29.97", "camera.fps = 29.97: must be an integer from 1 to 240, not a number"),
        ("realtime = 1", "camera.realtime = 1: must be true or false, not an integer"),
        (
            'loop = "yes"',
            "camera.loop = 'yes': must be true or false, not a string (remove the quotes)",
        ),
        ("source = 0", "camera.source = 0: must be a string, not an integer (put it in quotes)"),
        ("source = [1, 2]", "camera.source = [1, 2]: must be a string, not an array"),
    ],
)
def test_wrong_type(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, f"[camera]\n{line}\n")
    assert problems(path) == [f"{path}: {message}"]


def test_float_field_accepts_int_but_not_bool_nan_or_string(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "[model]\nmin_pose_score = 1\n")).model.min_pose_score == 1
    path = write(
        tmp_path,
        '[model]\nmin_pose_score = true\n[mqtt]\nkeypoints_max_rate = nan\nport = "1883"\n',
    )
    assert problems(path) == [
        f"{path}: model.min_pose_score = True: must be a number from 0 to 1, not a boolean",
        f"{path}: mqtt.port = '1883': must be an integer from 1 to 65535, not a string "
        "(remove the quotes)",
        f"{path}: mqtt.keypoints_max_rate = nan: must be a number >= 0, not nan or inf",
    ]


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("camera", "fps = -3", "camera.fps = -3: must be >= 1 (allowed: 1 to 240)"),
        ("camera", "width = 8192", "camera.width = 8192: must be <= 4096 (allowed: 16 to 4096)"),
        ("model", "threads = 0", "model.threads = 0: must be >= 1 (allowed: 1 to 64)"),
        (
            "model",
            "min_pose_score = 1.5",
            "model.min_pose_score = 1.5: must be <= 1 (allowed: 0 to 1)",
        ),
        ("mqtt", "port = 70000", "mqtt.port = 70000: must be <= 65535 (allowed: 1 to 65535)"),
        ("mqtt", "keepalive = 1", "mqtt.keepalive = 1: must be >= 5 (allowed: 5 to 3600)"),
        ("mqtt", "keypoints_max_rate = -1", "mqtt.keypoints_max_rate = -1: must be >= 0"),
        ("model", 'backend = "gpu"', "model.backend = 'gpu': must be one of: auto, cpu, edgetpu"),
        (
            "model",
            'device = "usb0"',
            "model.device = 'usb0': must be '' (first Edge TPU found), usb, usb:N, pci or pci:N",
        ),
        (
            "model",
            'name = "movenet_giant"',
            "model.name = 'movenet_giant': must be a catalog model "
            "(movenet_lightning_int8, movenet_lightning_int8_edgetpu, movenet_multipose_lightning, "
            "movenet_thunder_int8, movenet_thunder_int8_edgetpu) or a path to a .tflite file",
        ),
        (
            "mqtt",
            'host = ""',
            "mqtt.host = '': must be a host name or IP address (not empty, no spaces)",
        ),
        (
            "mqtt",
            'host = "mqtts://broker.lan"',
            "mqtt.host = 'mqtts://broker.lan': must be a host name or IP address, not a URL: "
            "drop the scheme (TLS is mqtt.tls, the port mqtt.port)",
        ),
        (
            "mqtt",
            'host = "[::1]:1883"',
            "mqtt.host = '[::1]:1883': must be a host name or IP address: write an IPv6 address "
            "without brackets (the port goes in mqtt.port)",
        ),
        (
            "mqtt",
            'host = "broker.lan:1884"',
            "mqtt.host = 'broker.lan:1884': must be a host name or IP address: put the port in "
            "mqtt.port = 1884",
        ),
    ],
)
def test_out_of_range_and_bad_choice(tmp_path: Path, section: str, line: str, message: str) -> None:
    path = write(tmp_path, f"[{section}]\n{line}\n")
    assert problems(path) == [f"{path}: {message}"]


def test_ipv6_hosts_are_not_mistaken_for_host_and_port(tmp_path: Path) -> None:
    for host in ("::1", "fe80::1", "2001:db8::1883"):
        assert load_config(write(tmp_path, f'[mqtt]\nhost = "{host}"\n')).mqtt.host == host


@pytest.mark.parametrize(
    "source",
    [
        "picamera2",
        "picamera2:1",
        "file:clip.mp4",
        "file:/data/frames/*.jpg",
        "v4l2:/dev/video0",
        "v4l2:/dev/v4l/by-id/usb-cam-video-index0",
        "clip.mp4",
        "/data/frames",
        "frames/",
    ],
)
def test_good_sources(tmp_path: Path, source: str) -> None:
    assert load_config(write(tmp_path, f'[camera]\nsource = "{source}"\n')).camera.source == source


@pytest.mark.parametrize(
    "source",
    [
        "",
        "picamera",
        "picamera2:x",
        "picamera3",
        "v4l2:video0",
        "file:",
        "rtsp://cam/stream",
        "usb:0",
    ],
)
def test_bad_sources(tmp_path: Path, source: str) -> None:
    path = write(tmp_path, f'[camera]\nsource = "{source}"\n')
    assert problems(path) == [
        f"{path}: camera.source = {source!r}: must be picamera2, picamera2:N, file:PATH, "
        "v4l2:/dev/videoN or a path to a video/image file"
    ]


@pytest.mark.parametrize(
    "prefix", ["", "/edge-pose", "edge-pose/", "a//b", "home/+/x", "a/#", "$SYS/x"]
)
def test_bad_topic_prefix(tmp_path: Path, prefix: str) -> None:
    path = write(tmp_path, f'[mqtt]\ntopic_prefix = "{prefix}"\n')
    assert problems(path) == [
        f"{path}: mqtt.topic_prefix = {prefix!r}: must be one or more MQTT topic levels separated "
        "by '/', without '+', '#', a leading '$', a leading or trailing '/' or empty levels"
    ]


def test_nested_topic_prefix_is_fine(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[mqtt]\ntopic_prefix = "home/gym"\n'))
    assert cfg.mqtt.topic_prefix == "home/gym"


@pytest.mark.parametrize("device_id", ["pi.lab", "pi lab", "pi/lab", "x" * 65, "pi#1"])
def test_bad_device_id(tmp_path: Path, device_id: str) -> None:
    path = write(tmp_path, f'[device]\nid = "{device_id}"\n')
    shown = repr(device_id) if len(repr(device_id)) <= 60 else repr(device_id)[:57] + "..."
    assert problems(path) == [
        f"{path}: device.id = {shown}: must be 1-64 letters, digits, '_' or '-' "
        "(it is an MQTT topic level)"
    ]


def test_device_id_from_host_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "raspberrypi")
    cfg = load_config()
    assert (cfg.device.id, cfg.mqtt.client_id) == ("raspberrypi", "edge-pose-raspberrypi")
    cfg = load_config(write(tmp_path, '[device]\nid = "gym_1"\n[mqtt]\nclient_id = "me"\n'))
    assert (cfg.device.id, cfg.mqtt.client_id) == ("gym_1", "me")
    monkeypatch.setattr(socket, "gethostname", lambda: "my pi")
    assert problems(None) == [
        "device.id = '': the host name 'my pi' is not a usable device id: set device.id to "
        "1-64 letters, digits, '_' or '-' (it is an MQTT topic level)"
    ]


def test_tls_files(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\ntls = true\ncertfile = "/etc/c.pem"\n')
    assert problems(path) == [
        f"{path}: mqtt.keyfile = '': certfile and keyfile go together: set both "
        "(client certificate) or neither"
    ]
    path = write(tmp_path, '[mqtt]\nca_file = "/etc/ca.pem"\n')
    assert problems(path) == [
        f"{path}: mqtt.ca_file = '/etc/ca.pem': is only used with TLS: set mqtt.tls = true "
        "(or clear it)"
    ]
    cfg = load_config(
        write(tmp_path, '[mqtt]\ntls = true\nca_file = "/ca"\ncertfile = "/c"\nkeyfile = "/k"\n')
    )
    assert (cfg.mqtt.ca_file, cfg.mqtt.certfile, cfg.mqtt.keyfile) == ("/ca", "/c", "/k")


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[camera]\nsource = "picamera2"\nfps 30\n')
    assert problems(path) == [
        f"{path}: line 3, column 5: TOML syntax error: Expected '=' after a key in a key/value pair"
    ]
    path = write(tmp_path, '[camera]\nsource = "picamera2\n')
    assert problems(path) == [
        f"{path}: line 2, column 20: TOML syntax error: Illegal character '\\n'"
    ]
    path = write(tmp_path, "[camera")
    assert problems(path) == [
        f"{path}: end of file: TOML syntax error: Expected ']' at the end of a table declaration"
    ]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert problems(path) == [
        f"config file not found: {path} (create it from config/edge-pose.toml or pass --config)"
    ]


def test_directory_and_bad_encoding(tmp_path: Path) -> None:
    assert problems(tmp_path) == [f"{tmp_path}: is a directory, expected a TOML config file"]
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[device]\nid = "caf\xe9"\n')
    assert problems(path) == [f"{path}: not UTF-8 text (bad byte at offset 18)"]


def test_files_that_are_not_a_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing a config path can name hangs or eats memory: a FIFO nobody writes to gives up,
    /dev/zero never ends; an editor's byte-order mark gets its own hint. /dev/null is empty."""
    import threading

    import edge_pose.config.loading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    monkeypatch.setattr(edge_pose.config.loading, "PIPE_WAIT_S", 0.3)
    assert problems(fifo) == [f"{fifo}: a pipe nothing was written to in 0.3 s (no writer?)"]
    # ...while one that is written to is read like a file (`--config <(...)`, /dev/stdin).
    writer = threading.Thread(target=lambda: fifo.write_text("[camera]\nfps = 5\n"))
    writer.start()
    assert load_config(fifo).camera.fps == 5
    writer.join()
    assert problems(Path("/dev/zero")) == [
        "/dev/zero: too large for a config file (at most 1 MiB)"
    ]
    big = write(tmp_path, "#" * ((1 << 20) + 1))
    assert problems(big) == [f"{big}: too large for a config file (at most 1 MiB)"]
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf[camera]\nfps = 5\n")
    assert problems(bom) == [
        f"{bom}: starts with a byte-order mark (BOM): save it as UTF-8 without BOM"
    ]
    assert load_config(Path("/dev/null")) == load_config(write(tmp_path, ""))


def test_password_file_only_the_service_may_read_is_no_problem(world_dir: Path) -> None:
    """root:edge-pose 0640 is how the password is kept: `validate` run by another user sees
    the file is there and leaves reading it to the service."""
    secret = world_dir / "mqtt-password"
    secret.write_text("secret\n")
    secret.chmod(0o600)
    path = write(world_dir, f'[mqtt]\nusername = "u"\npassword_file = "{secret}"\n')
    path.chmod(0o644)
    result = run_unprivileged("validate", "--config", str(path))
    assert result.returncode == 0, result.stderr


def test_models_commands_survive_a_broken_system_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The package's postinst fetches with --dir while /etc/edge-pose/config.toml may be one an
    upgrade's stricter checks refuse: `models` does not need it then."""
    import edge_pose.config.loading
    from edge_pose.cli import main

    broken = write(tmp_path, '[mqtt]\nhost = "broker:1883"\n')
    monkeypatch.setattr(edge_pose.config.loading, "DEFAULT_CONFIG_PATH", broken)
    assert main(["models", "list", "--dir", str(tmp_path), "--json"]) == 0
    assert main(["models", "list", "--json"]) == 0  # no --config: the defaults stand in
    capsys.readouterr()
    assert main(["models", "list", "--config", str(broken)]) == EX_CONFIG  # asked for: reported
    assert "put the port in mqtt.port" in capsys.readouterr().err


def test_unreadable_file(world_dir: Path) -> None:
    path = write(world_dir, "[camera]\n")
    path.chmod(0)
    result = run_unprivileged("validate", "--config", str(path))
    assert result.returncode == EX_CONFIG
    assert result.stderr == (
        f"edge-pose: error: {path}: permission denied reading the config file "
        "(fix its permissions or run as a user that may read it)\n"
    )


def test_several_errors_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[camera]\nfps = 0\nwidht = 640\n[model]\nthreads = true\n"
        '[mqtt]\nport = "x"\n[smooth]\n',
    )
    assert problems(path) == [
        f"{path}: camera.fps = 0: must be >= 1 (allowed: 1 to 240)",
        f"{path}: camera.widht: unknown key (did you mean width?) "
        "(known keys in [camera]: source, width, height, fps, realtime, loop)",
        f"{path}: model.threads = True: must be an integer from 1 to 64, not a boolean",
        f"{path}: mqtt.port = 'x': must be an integer from 1 to 65535, not a string "
        "(remove the quotes)",
        f"{path}: [smooth]: unknown section (did you mean smoothing?) (known sections: device, "
        "camera, model, smoothing, classifier, tracking, mqtt, status, http, events)",
    ]


def test_long_values_are_truncated(tmp_path: Path) -> None:
    path = write(tmp_path, f'[model]\nbackend = "{"x" * 200}"\n')
    (line,) = problems(path)
    assert line == f"{path}: model.backend = '{'x' * 56}...: must be one of: auto, cpu, edgetpu"


# --------------------------------------------------------------------------- overrides


def test_overrides_applied_on_top_of_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[camera]\nsource = "v4l2:/dev/video0"\nfps = 15\n[mqtt]\nport = 1\n')
    cfg = load_config(
        path,
        {
            "camera.source": "file:x.mp4",
            "mqtt.port": 1884,
            "mqtt.enabled": False,
            "device.id": "bench",
        },
    )
    assert (cfg.camera.source, cfg.camera.fps) == ("file:x.mp4", 15)
    assert (cfg.mqtt.port, cfg.mqtt.enabled, cfg.device.id) == (1884, False, "bench")
    assert cfg.mqtt.client_id == "edge-pose-bench"


def test_invalid_overrides_are_reported_as_command_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[camera]\nfps = 0\n")
    assert problems(
        path,
        {
            "mqtt.port": 0,
            "model.threads": "4",
            "camera.sourc": "x",
            "filter.alpha": 1,
            "verbose": True,
        },
    ) == [
        "filter.alpha: unknown section [filter] (known sections: device, camera, model, "
        "smoothing, classifier, tracking, mqtt, status, http, events) (from the command line)",
        "verbose: not a config key (expected section.key, e.g. camera.fps) (from the command line)",
        f"{path}: camera.fps = 0: must be >= 1 (allowed: 1 to 240)",
        "camera.sourc: unknown key (did you mean source?) (known keys in [camera]: source, "
        "width, height, fps, realtime, loop) (from the command line)",
        "model.threads = '4': must be an integer from 1 to 64, not a string (remove the quotes) "
        "(from the command line)",
        "mqtt.port = 0: must be >= 1 (allowed: 1 to 65535) (from the command line)",
    ]


def test_overrides_without_file() -> None:
    assert load_config(None, {"camera.loop": True}).camera.loop is True
    assert problems(None, {"mqtt.topic_prefix": "a/#"}) == [
        "mqtt.topic_prefix = 'a/#': must be one or more MQTT topic levels separated by '/', "
        "without '+', '#', a leading '$', a leading or trailing '/' or empty levels "
        "(from the command line)"
    ]


# --------------------------------------------------------------------------- secrets


def test_password_file_and_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert read_password(MqttConfig()) is None
    plain = write(tmp_path, SECRET + "\n", "pw")
    cfg = load_config(write(tmp_path, f'[mqtt]\nusername = "u"\npassword_file = "{plain}"\n'))
    assert read_password(cfg.mqtt) == SECRET
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("from-systemd\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    relative = MqttConfig(username="u", password_file="mqtt-password")
    assert read_password(relative) == "from-systemd"
    # a relative name not among the credentials is still read relative to the working directory
    assert read_password(MqttConfig(username="u", password_file="pw")) == SECRET


def test_password_never_shown(tmp_path: Path) -> None:
    pw = write(tmp_path, SECRET + "\n", "pw")
    cfg = load_config(write(tmp_path, f'[mqtt]\nusername = "u"\npassword_file = "{pw}"\n'))
    assert SECRET not in repr(cfg) and SECRET not in str(cfg)
    assert SECRET not in str(to_toml_dict(cfg))
    # a password put straight into the config is refused without echoing it
    path = write(tmp_path, f'[mqtt]\npassword = "{SECRET}"\n', "bad.toml")
    (line,) = problems(path)
    assert SECRET not in line
    assert line == (
        f"{path}: mqtt.password: unknown key: the config never holds secrets; put the "
        "password in a file and set mqtt.password_file (or use a systemd credential)"
    )


def test_password_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError) as info:
        read_password(MqttConfig(username="u", password_file=str(missing)))
    assert info.value.problems == [
        f"mqtt.password_file = {str(missing)!r}: password file {missing} not found"
    ]
    empty = write(tmp_path, "\n", "empty")
    with pytest.raises(ConfigError, match=f"password file {empty} is empty"):
        read_password(MqttConfig(username="u", password_file=str(empty)))
    binary = tmp_path / "binary"
    binary.write_bytes(SECRET.encode() + b"\xff\n")
    with pytest.raises(ConfigError) as info:
        read_password(MqttConfig(username="u", password_file=str(binary)))
    assert SECRET not in str(info.value) and "not UTF-8 text" in str(info.value)


def test_password_file_needs_username(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\npassword_file = "/etc/edge-pose/pw"\n')
    assert problems(path) == [
        f"{path}: mqtt.password_file = '/etc/edge-pose/pw': a password "
        "needs a user name: set mqtt.username"
    ]


def test_validate_warns_about_what_run_would_refuse(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid values `run` still refuses on this machine are warnings with run's own words
    (exit 0: the device may differ), listed in --json too; a config run accepts has none."""
    from edge_pose.cli import main

    empty = tmp_path / "no-models"
    empty.mkdir()
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    cases = {
        f'[camera]\nsource = "{tmp_path}/gone.mp4"': "camera source not found: ",
        '[camera]\nsource = "clip.mp4"': "a relative path",
        f'[camera]\nsource = "{video}"\n[model]\ndir = "{empty}"': "is not installed in ",
    }
    for text, message in cases.items():
        path = write(tmp_path, text)
        assert main(["validate", "--config", str(path)]) == 0
        err = capsys.readouterr().err
        assert err.startswith("edge-pose: warning: ") and message in err, err
        assert len(err.splitlines()) == 1
        assert main(["validate", "--json", "--config", str(path)]) == 0
        out = capsys.readouterr().out
        assert message in json.loads(out)["warnings"][0]
    good = write(tmp_path, f'[camera]\nsource = "{video}"\n[model]\ndir = "{model_dir}"')
    assert main(["validate", "--config", str(good)]) == 0
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- model names


def test_unknown_model_name_is_refused_alike_by_validate_run_and_config_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The catalog check runs once the values are valid, with the words, the location (file or
    command line) and the exit code of any other invalid value."""
    from edge_pose.cli import main

    catalog = (
        "must be a catalog model (movenet_lightning_int8, movenet_lightning_int8_edgetpu, "
        "movenet_multipose_lightning, movenet_thunder_int8, movenet_thunder_int8_edgetpu) or a "
        "path to a .tflite file"
    )
    in_file = write(tmp_path, '[model]\nname = "nosuch"\n[mqtt]\nenabled = false\n')
    from_file = f"edge-pose: error: {in_file}: model.name = 'nosuch': {catalog}\n"
    good = write(tmp_path, "[mqtt]\nenabled = false\n", "good.toml")
    from_cli = f"edge-pose: error: model.name = 'nosuch': {catalog} (from the command line)\n"
    for argv, expected in (
        (["validate", "--config", str(in_file)], from_file),
        (["run", "--config", str(in_file)], from_file),
        (["validate", "--config", str(good), "--model", "nosuch"], from_cli),
        (["run", "--config", str(good), "--model", "nosuch"], from_cli),
    ):
        assert main(argv) == EX_CONFIG
        assert capsys.readouterr().err == expected, argv
    before = good.read_text()
    assert main(["config", "set", "--config", str(good), "model.name=nosuch"]) == EX_CONFIG
    assert capsys.readouterr().err == from_cli + f"edge-pose: nothing written to {good}\n"
    assert good.read_text() == before


def test_the_config_package_does_not_load_inference_or_opencv() -> None:
    """Everything imports the config (status, watch, the installer's checks): it stays light,
    and only the file-check phase looks at the model catalog, when asked."""
    code = (
        "import sys, edge_pose.config\n"
        "heavy = ('edge_pose.inference', 'cv2', 'numpy')\n"
        "print([m for m in sys.modules if m.startswith(heavy)])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout == "[]\n"


def test_an_unknown_model_name_is_listed_among_the_other_mistakes(tmp_path: Path) -> None:
    """The model name is checked against the catalog after the values, yet a config with other
    mistakes too lists it in its place (section and field order), from a file or from flags."""
    path = write(
        tmp_path,
        '[camera]\nfps = "x"\n[model]\nname = "nope"\nthreads = 0\n[mqtt]\nport = 0\n',
    )
    keys = [line.removeprefix(f"{path}: ").split(" = ")[0] for line in problems(path)]
    assert keys == ["camera.fps", "model.name", "model.threads", "mqtt.port"]
    from_flags = problems(None, {"model.name": "nope", "model.threads": 99})
    assert [line.split(" = ")[0] for line in from_flags] == ["model.name", "model.threads"]
    assert all(line.endswith("(from the command line)") for line in from_flags)
    # a name pydantic already refused is not reported twice
    assert len(problems(None, {"model.name": "bad\x01name"})) == 1
