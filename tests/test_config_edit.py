"""`edge-pose config set/show` (edge_pose.config_edit) on real files, run as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from edge_pose.config import load_config
from edge_pose.config_edit import EditError, convert_value, edit_text, parse_assignment

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = REPO / "config" / "edge-pose.toml"
WRAPPER = "import sys; from edge_pose.cli import main; sys.exit(main(['config', *sys.argv[1:]]))"


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WRAPPER, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_bytes(DEFAULTS.read_bytes())
    return path


def changed_lines(before: str, after: str) -> dict[int, tuple[str, str]]:
    """Line number -> (old, new) for files with the same number of lines."""
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new)
    return {i: (a, b) for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b}


# --------------------------------------------------------------------------- set: valid


def test_set_several_types_edits_only_those_lines(conf: Path) -> None:
    before = conf.read_text()
    result = run(
        "set",
        "--config",
        conf,
        "mqtt.port=1884",
        "mqtt.host=broker.lan",
        "camera.realtime=false",
        "smoothing.beta=40",
        "model.min_pose_score=0.3",
        "device.id=kitchen-pi",
    )
    assert result.returncode == 0, result.stderr
    assert "mqtt.port" in result.stdout
    after = conf.read_text()
    diff = changed_lines(before, after)
    assert sorted(new for _, new in diff.values()) == sorted(
        [
            "port = 1884",
            'host = "broker.lan"',
            "realtime = false",
            "beta = 40.0",
            "min_pose_score = 0.3",
            'id = "kitchen-pi"',
        ]
    )
    cfg = load_config(conf)
    assert cfg.mqtt.port == 1884 and cfg.mqtt.host == "broker.lan"
    assert cfg.camera.realtime is False and cfg.smoothing.beta == 40.0
    assert cfg.model.min_pose_score == 0.3 and cfg.device.id == "kitchen-pi"


def test_unquoted_number_for_a_string_key_is_a_string(conf: Path) -> None:
    assert run("set", "--config", conf, "mqtt.protocol=5", "device.id=123").returncode == 0
    cfg = load_config(conf)
    assert cfg.mqtt.protocol == "5" and cfg.device.id == "123"


def test_value_conversion() -> None:
    assert convert_value("mqtt.port", "1884") == 1884
    assert convert_value("mqtt.host", "broker.lan") == "broker.lan"
    assert convert_value("mqtt.host", '"10.0.0.1"') == "10.0.0.1"
    assert convert_value("camera.realtime", "false") is False
    assert convert_value("smoothing.beta", "40") == 40.0
    assert isinstance(convert_value("smoothing.beta", "40"), float)
    assert convert_value("device.id", "1.10") == "1.10"
    assert convert_value("mqtt.port", '"1884"') == "1884"  # quoted: left for validation
    assert convert_value("camera.source", "file:/tmp/a b.mp4") == "file:/tmp/a b.mp4"


def test_trailing_comment_and_hash_in_string_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[mqtt]\nhost = "a#b"   # the broker\nport = 1883\n')
    assert run("set", "--config", path, "mqtt.host=c.lan").returncode == 0
    assert path.read_text() == '[mqtt]\nhost = "c.lan"   # the broker\nport = 1883\n'


def test_missing_key_and_section_added(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    text = "# mine\n[camera]\n# frames\nfps = 10  # slow\n\n# broker next\n[mqtt]\nport = 1883\n"
    path.write_text(text)
    result = run("set", "--config", path, "camera.width=320", "status.min_fps=5", "mqtt.tls=true")
    assert result.returncode == 0, result.stderr
    assert path.read_text() == (
        "# mine\n[camera]\n# frames\nfps = 10  # slow\nwidth = 320\n\n# broker next\n"
        "[mqtt]\nport = 1883\ntls = true\n\n[status]\nmin_fps = 5.0\n"
    )
    assert load_config(path).camera.width == 320


def test_missing_file_created_from_documented_defaults(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "config.toml"
    path.parent.mkdir()
    result = run("set", "--config", path, "mqtt.host=broker.lan")
    assert result.returncode == 0, result.stderr
    assert "created" in result.stdout
    diff = changed_lines(DEFAULTS.read_text(), path.read_text())
    assert [new for _, new in diff.values()] == ['host = "broker.lan"']


def test_atomic_write_keeps_mode_and_leaves_no_temp_file(conf: Path) -> None:
    conf.chmod(0o640)
    assert run("set", "--config", conf, "camera.fps=15").returncode == 0
    assert oct(conf.stat().st_mode & 0o777) == oct(0o640)
    assert sorted(p.name for p in conf.parent.iterdir()) == [conf.name]
    assert load_config(conf).camera.fps == 15


def test_symlink_is_followed(tmp_path: Path, conf: Path) -> None:
    link = tmp_path / "link.toml"
    link.symlink_to(conf)
    assert run("set", "--config", link, "camera.fps=12").returncode == 0
    assert link.is_symlink() and load_config(conf).camera.fps == 12


# --------------------------------------------------------------------------- set: refused


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("mqtt.port=99999", "mqtt.port = 99999"),
        ("mqtt.port=broker", "mqtt.port = 'broker'"),
        ("camera.fps=0", "camera.fps = 0"),
        ("camera.realtime=yes", "camera.realtime = 'yes'"),
        ("model.threads=2.5", "model.threads = 2.5"),
        ("model.backend=gpu", "must be one of: auto, cpu, edgetpu"),
        ("mqtt.hots=x", "mqtt.hots: unknown key (did you mean host?)"),
        ("cam.fps=1", "unknown section [cam]"),
        ("fps=1", "not a config key"),
        ("mqtt.password=hunter2", "secrets never go in the config"),
        ("mqtt.certfile=/c.pem", "certfile and keyfile go together"),
    ],
)
def test_invalid_value_exit_78_file_unchanged(conf: Path, assignment: str, expected: str) -> None:
    conf.chmod(0o600)
    before = conf.read_bytes()
    stamp = conf.stat().st_mtime_ns
    result = run("set", "--config", conf, "mqtt.host=ok.lan", assignment)
    assert result.returncode == 78, result.stderr
    assert expected in result.stderr
    assert "nothing written" in result.stderr
    assert "hunter2" not in result.stderr
    assert conf.read_bytes() == before and conf.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in conf.parent.iterdir()) == [conf.name]


@pytest.mark.parametrize(
    ("assignments", "expected"),
    [
        (["mqtt.tls=true", "mqtt.ca_file=/no/ca.pem"], "mqtt.ca_file = '/no/ca.pem': no such file"),
        (["mqtt.username=u", "mqtt.password_file=/no/pw"],
         "mqtt.password_file = '/no/pw': no such file"),
    ],
)
def test_missing_mqtt_file_exit_78_file_unchanged(
    conf: Path, assignments: list[str], expected: str
) -> None:
    """A mistyped path would stop the service at its next start: refused before writing."""
    before = conf.read_bytes()
    result = run("set", "--config", conf, *assignments)
    assert result.returncode == 78 and expected in result.stderr
    assert "nothing written" in result.stderr and conf.read_bytes() == before


def test_credential_name_as_password_file_is_written(conf: Path) -> None:
    """The cloud-init user-data's line: a systemd credential name only the service resolves."""
    result = run("set", "--config", conf, "mqtt.username=pi", "mqtt.password_file=mqtt-password")
    assert result.returncode == 0, result.stderr
    assert load_config(conf).mqtt.password_file == "mqtt-password"


def test_unquoted_word_gets_no_remove_the_quotes_hint(conf: Path) -> None:
    result = run("set", "--config", conf, "camera.fps=abc")
    assert result.returncode == 78
    assert "remove the quotes" not in result.stderr
    result = run("set", "--config", conf, 'camera.fps="30"')
    assert "remove the quotes" in result.stderr


def test_bad_syntax_is_usage_error(conf: Path) -> None:
    before = conf.read_bytes()
    assert run("set", "--config", conf, "mqtt.host").returncode == 2
    assert run("set", "--config", conf).returncode == 2
    nowhere = conf.parent / "no" / "such" / "config.toml"
    result = run("set", "--config", nowhere, "camera.fps=30")
    assert result.returncode == 78
    assert f"the folder {nowhere.parent} does not exist" in result.stderr
    assert not (conf.parent / "no").exists()
    twice = run("set", "--config", conf, "camera.fps=30", "camera.fps=31")
    assert twice.returncode == 2 and "camera.fps is given twice" in twice.stderr
    assert conf.read_bytes() == before


@pytest.mark.parametrize(
    ("text", "assignment"),
    [
        ('[camera]\n"fps" = 10\n', "camera.fps=12"),
        ("camera.fps = 10\n", "camera.fps=12"),
        ("camera = {fps = 10}\n", "camera.width=320"),
        ('[camera]\nsource = """\nx.mp4"""\n', "camera.fps=12"),
    ],
)
def test_forms_that_cannot_be_edited_safely_are_refused(
    tmp_path: Path, text: str, assignment: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    before = path.read_bytes()
    result = run("set", "--config", path, assignment)
    assert result.returncode == 78
    assert "edit" in result.stderr and "by hand" in result.stderr
    assert path.read_bytes() == before


def test_invalid_existing_file_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[camera]\nfps = 1000\n")
    result = run("set", "--config", path, "mqtt.port=1884")
    assert result.returncode == 78 and "camera.fps = 1000" in result.stderr
    assert path.read_text() == "[camera]\nfps = 1000\n"


def test_edit_text_crlf_and_no_final_newline() -> None:
    assert edit_text("[camera]\r\nfps = 10\r\n", {"camera.fps": 12}) == "[camera]\r\nfps = 12\r\n"
    assert edit_text("[camera]\nfps = 10", {"camera.width": 64}) == (
        "[camera]\nfps = 10\nwidth = 64\n"
    )
    with pytest.raises(EditError):
        edit_text("[camera]\nloop = [\n1]\n", {"camera.fps": 1})


# --------------------------------------------------------------------------- show


def test_show_toml_marks_changes_and_reads_back(tmp_path: Path, conf: Path) -> None:
    assert run("set", "--config", conf, "mqtt.port=1884", "device.id=pi").returncode == 0
    result = run("show", "--config", conf)
    assert result.returncode == 0, result.stderr
    assert str(conf) in result.stdout
    assert "port = 1884  # changed (default 1883)" in result.stdout
    assert 'host = "localhost"\n' in result.stdout  # unchanged keys are not marked
    shown = tmp_path / "shown.toml"
    shown.write_text(result.stdout)
    assert load_config(shown) == load_config(conf)


def test_show_json_round_trip(tmp_path: Path, conf: Path) -> None:
    assert run("set", "--config", conf, "mqtt.host=b.lan", "smoothing.beta=12.5").returncode == 0
    first = json.loads(run("show", "--config", conf, "--json").stdout)
    assert first["path"] == str(conf)
    assert first["changed"] == ["mqtt.host", "smoothing.beta"]
    pairs = [
        f"{section}.{key}={json.dumps(value)}"
        for section, table in first["config"].items()
        for key, value in table.items()
    ]
    copy = tmp_path / "copy.toml"
    assert run("set", "--config", copy, *pairs).returncode == 0
    second = json.loads(run("show", "--config", copy, "--json").stdout)
    assert second["config"] == first["config"]
    assert tomllib.loads(copy.read_text())["mqtt"]["host"] == "b.lan"


def test_show_defaults_and_invalid_file(tmp_path: Path) -> None:
    result = run("show", "--defaults", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["config"]["mqtt"]["port"] == 1883
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nport = 0\n")
    result = run("show", "--config", bad)
    assert result.returncode == 78 and "mqtt.port = 0" in result.stderr


# --------------------------------------------------------------------------- reload


def test_reload_sends_sighup_to_daemon_from_status_json(tmp_path: Path, conf: Path) -> None:
    status_dir = tmp_path / "run"
    status_dir.mkdir()
    flag = tmp_path / "hup"
    fake = tmp_path / "edge-pose"  # reload signals only an `edge-pose run` (its command line)
    fake.write_text(
        "import signal, sys, time, pathlib\n"
        f"p = pathlib.Path({str(flag)!r})\n"
        "signal.signal(signal.SIGHUP, lambda *a: p.write_text('hup'))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    daemon = subprocess.Popen([sys.executable, str(fake), "run"], stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout is not None and daemon.stdout.readline() == "ready\n"
        doc = {"v": 1, "pid": daemon.pid, "state": "running", "uptime_s": 0, "time": time.time()}
        (status_dir / "status.json").write_text(json.dumps(doc))
        result = run("set", "--config", conf, f"status.dir={status_dir}", "--reload")
        assert result.returncode == 0, result.stderr
        assert f"sent SIGHUP to edge-pose (pid {daemon.pid}" in result.stdout
        deadline = time.monotonic() + 10
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.read_text() == "hup"
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=10)
    (status_dir / "status.json").unlink()
    result = run("set", "--config", conf, "camera.fps=20", "--reload")
    assert result.returncode == 0
    assert "not running" in result.stdout


def test_write_failure_reports_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    result = run("set", "--config", blocker / "config.toml", "camera.fps=20")
    assert result.returncode == 1 and "cannot write" in result.stderr
    assert blocker.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]


def test_owner_kept_when_root(conf: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a file away")
    os.chown(conf, 4321, 4322)
    assert run("set", "--config", conf, "camera.fps=20").returncode == 0
    st = conf.stat()
    assert (st.st_uid, st.st_gid) == (4321, 4322)
    assert load_config(conf).camera.fps == 20


# --------------------------------------------------------------------------- what run refuses


def test_set_warns_about_what_run_would_refuse_but_writes(
    conf: Path, tmp_path: Path, model_dir: Path
) -> None:
    """A camera file that is not here, a relative camera path, a model not installed: `run`
    refuses each, so `config set` says so (as `run` does), yet writes: the config may be
    prepared for another machine."""
    empty = tmp_path / "no-models"
    empty.mkdir()
    cases = {
        f"camera.source={tmp_path / 'gone.mp4'}": "camera source not found: ",
        "camera.source=clip.mp4": "a relative path",
        f"camera.source=file:{tmp_path}/*.jpg": "the pattern matches no files",
        f"model.dir={empty}": f"model 'movenet_lightning_int8' is not installed in {empty}: run",
        f"model.name={tmp_path / 'no.tflite'}": "model file ",
    }
    for assignment, message in cases.items():
        conf.write_bytes(DEFAULTS.read_bytes())
        run("set", "--config", conf, f"model.dir={model_dir}")
        result = run("set", "--config", conf, assignment)
        assert result.returncode == 0, result.stderr
        key = assignment.partition("=")[0]
        warning = f"edge-pose: warning: {key if key != 'model.dir' else 'model.name'} = "
        assert result.stderr.startswith(warning) and message in result.stderr, result.stderr
        assert len(result.stderr.splitlines()) == 1
        assert assignment.partition("=")[2] in conf.read_text()
    conf.write_bytes(DEFAULTS.read_bytes())
    ok = run("set", "--config", conf, f"model.dir={model_dir}", f"camera.source={conf}")
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr


def test_an_argument_without_equals_is_echoed_short() -> None:
    """A 5000-character argument without '=' is named in one readable line, not echoed whole."""
    for argument in ("x" * 5000, "=" + "{a " * 1000):  # no '=', or no key before it
        with pytest.raises(ValueError, match="expected KEY=VALUE") as caught:
            parse_assignment(argument)
        message = str(caught.value)
        assert len(message) < 140 and message.startswith(repr(argument[:5])[:-1])
    assert parse_assignment(" mqtt.host = broker.lan ") == ("mqtt.host", "broker.lan")
