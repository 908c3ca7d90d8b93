"""`edge-pose config set/show` (edge_pose.config_edit) on real files, run as real processes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
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


def flat(table: dict[str, object], prefix: str = "") -> dict[str, object]:
    """Nested tables as ``section.table.key`` -> value (the zones, an array, left out)."""
    out: dict[str, object] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        elif key != "zones":
            out[f"{prefix}{key}"] = value
    return out


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
    pairs = [f"{key}={json.dumps(value)}" for key, value in flat(first["config"]).items()]
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


# --------------------------------------------------------------------------- nested tables


def test_set_in_nested_tables_edits_the_key_of_that_table(conf: Path) -> None:
    """`enabled` is in [events.fall] and in [events.inactivity]: the path says which."""
    before = conf.read_text()
    result = run(
        "set",
        "--config",
        conf,
        "events.fall.confirm_s=5",
        "events.zone_dwell_s=1",
        "events.inactivity.enabled=false",
    )
    assert result.returncode == 0, result.stderr
    diff = changed_lines(before, conf.read_text())
    assert sorted(new for _, new in diff.values()) == [
        "confirm_s = 5.0",
        "enabled = false",
        "zone_dwell_s = 1.0",
    ]
    events = load_config(conf).events
    assert events.fall.confirm_s == 5.0 and events.zone_dwell_s == 1.0
    assert events.inactivity.enabled is False and events.fall.enabled is True


def test_set_in_nested_tables_absent_key_and_absent_table(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[events]\nzone_dwell_s = 0.5\n\n[ events . fall ]  # falls\nwindow_s = 1.5\n\n"
        "[mqtt]\nport = 1883\n"
    )
    result = run("set", "--config", path, "events.fall.confirm_s=5", "events.inactivity.after_s=60")
    assert result.returncode == 0, result.stderr
    assert path.read_text() == (
        "[events]\nzone_dwell_s = 0.5\n\n[ events . fall ]  # falls\nwindow_s = 1.5\n"
        "confirm_s = 5.0\n\n[mqtt]\nport = 1883\n\n[events.inactivity]\nafter_s = 60.0\n"
    )
    # no [events] at all: the section goes before its table, whatever the order asked
    path.write_text("[camera]\nfps = 10\n")
    result = run("set", "--config", path, "events.fall.confirm_s=5", "events.zone_dwell_s=1")
    assert result.returncode == 0, result.stderr
    assert path.read_text() == (
        "[camera]\nfps = 10\n\n[events]\nzone_dwell_s = 1.0\n\n[events.fall]\nconfirm_s = 5.0\n"
    )
    cfg = load_config(path)
    assert cfg.events.fall.confirm_s == 5.0 and cfg.camera.fps == 10


@pytest.mark.parametrize(
    "text",
    [
        "[events]\nfall.confirm_s = 3\n",
        "[events]\nfall = {confirm_s = 3}\n",
        "events.fall.confirm_s = 3\n",
        '[events."fall"]\nconfirm_s = 3\n',
    ],
)
def test_nested_forms_that_cannot_be_edited_safely_are_refused(text: str) -> None:
    with pytest.raises(EditError, match="by hand"):
        edit_text(text, {"events.fall.confirm_s": 5.0})


ZONED = """# zones first, between and last
[[zones]]
name = "bed"  # by the window
polygon = [
  [0.1, 0.55],
  [0.5, 0.55],
  [0.5, 0.95],
]
lying_ok = true

[camera]
fps = 10

[[zones]]
name = "door"
polygon = [[0.8, 0.2], [0.95, 0.2], [0.95, 0.9], [0.8, 0.9]]
[events.fall]
confirm_s = 3.0

[[ zones ]]  # the sofa
name = "sofa"
polygon = [[0.1, 0.1], [0.3, 0.1], [0.3, 0.3]]
inactive_after_s = 0
"""


def test_set_around_zone_blocks_keeps_them(tmp_path: Path) -> None:
    """Keys of tables after [[zones]] blocks edit as usual; the blocks stay byte for byte."""
    path = tmp_path / "c.toml"
    path.write_text(ZONED)
    result = run(
        "set",
        "--config",
        path,
        "camera.fps=12",
        "events.fall.confirm_s=5",
        "events.fall.window_s=2",
        "mqtt.port=1884",
    )
    assert result.returncode == 0, result.stderr
    after = path.read_text()
    assert after == (
        ZONED.replace("fps = 10", "fps = 12").replace(
            "confirm_s = 3.0\n", "confirm_s = 5.0\nwindow_s = 2.0\n"
        )
        + "\n[mqtt]\nport = 1884\n"
    )
    assert tomllib.loads(after)["zones"] == tomllib.loads(ZONED)["zones"]
    cfg = load_config(path)
    assert [z.name for z in cfg.zones] == ["bed", "door", "sofa"]
    assert (cfg.camera.fps, cfg.events.fall.confirm_s, cfg.mqtt.port) == (12, 5.0, 1884)


@pytest.mark.parametrize("key", ["zones.name", "zones[0].name", "zones.0.lying_ok", "zones"])
def test_set_refuses_zone_keys_pointing_to_config_zone(tmp_path: Path, key: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ZONED)
    result = run("set", "--config", path, f"{key}=x")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "config zone" in result.stderr
    assert path.read_text() == ZONED


def test_show_with_nested_tables_and_zones_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ZONED)
    result = run("show", "--config", path)
    assert result.returncode == 0, result.stderr
    assert "[events.fall]\n" in result.stdout and "[[zones]]  # changed" in result.stdout
    assert "fps = 10  # changed (default 30)" in result.stdout
    shown = tmp_path / "shown.toml"
    shown.write_text(result.stdout)
    assert load_config(shown) == load_config(path)
    doc = json.loads(run("show", "--config", path, "--json").stdout)
    assert doc["changed"] == ["camera.fps", "zones"]
    assert [z["name"] for z in doc["config"]["zones"]] == ["bed", "door", "sofa"]
    assert doc["config"]["events"]["fall"]["confirm_s"] == 3.0


# --------------------------------------------------------------------------- config zone

ENTRY_POINT = Path(sys.executable).with_name("edge-pose")
BED = "0.1,0.55 0.5,0.55 0.5,0.95 0.1,0.95"
DOOR = "0.8,0.2 0.95,0.2 0.95,0.9 0.8,0.9"


def zone(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`edge-pose config zone ARGS` through the installed entry point."""
    return subprocess.run(
        [str(ENTRY_POINT), "config", "zone", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_zone_add_list_remove_end_to_end(conf: Path) -> None:
    before = conf.read_bytes()
    added = zone("add", "--config", conf, "bed", "--polygon", BED, "--lying-ok",
                 "--inactive-after", "0", "--reload")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert f"updated {conf}: added zone 'bed'" in added.stdout and "not running" in added.stdout
    added = zone("add", "--config", conf, "front door", "--polygon", DOOR.replace(" ", "; "))
    assert added.returncode == 0, added.stderr
    text = conf.read_bytes()
    assert text.startswith(before)  # appended, nothing else touched
    assert text[len(before) :].decode() == (
        '\n[[zones]]\nname = "bed"\npolygon = [[0.1, 0.55], [0.5, 0.55], [0.5, 0.95], '
        "[0.1, 0.95]]\nlying_ok = true\ninactive_after_s = 0.0\n"
        '\n[[zones]]\nname = "front door"\npolygon = [[0.8, 0.2], [0.95, 0.2], [0.95, 0.9], '
        "[0.8, 0.9]]\nlying_ok = false\n"
    )
    zones = load_config(conf).zones
    assert [(z.name, z.lying_ok, z.inactive_after_s) for z in zones] == [
        ("bed", True, 0.0),
        ("front door", False, None),
    ]
    assert zones[0].polygon == ((0.1, 0.55), (0.5, 0.55), (0.5, 0.95), (0.1, 0.95))
    listed = zone("list", "--config", conf)
    assert listed.returncode == 0 and listed.stderr == ""
    assert listed.stdout.splitlines() == [
        f'bed: 4 corners "{BED}", lying ok, never inactive',
        f'front door: 4 corners "{DOOR}", lying is a fall, inactive after 600 s '
        "(events.inactivity.after_s)",
    ]
    # a second set still edits the file around the zones
    assert run("set", "--config", conf, "events.fall.confirm_s=4").returncode == 0
    assert run("set", "--config", conf, "events.fall.confirm_s=3").returncode == 0
    removed = zone("remove", "--config", conf, "BED")  # names are case-insensitive
    assert removed.returncode == 0, removed.stderr
    assert "removed zone 'bed'" in removed.stdout
    assert [z.name for z in load_config(conf).zones] == ["front door"]
    assert zone("remove", "--config", conf, "front door").returncode == 0
    assert conf.read_bytes() == before  # add then remove: the file as it was
    listed = zone("list", "--config", conf)
    assert listed.returncode == 0 and listed.stdout.startswith(f"no zones in {conf}")


def test_zone_remove_deletes_exactly_its_block(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ZONED)
    result = zone("remove", "--config", path, "door")
    assert result.returncode == 0, result.stderr
    assert path.read_text() == ZONED.replace(
        '[[zones]]\nname = "door"\npolygon = [[0.8, 0.2], [0.95, 0.2], [0.95, 0.9], [0.8, 0.9]]\n',
        "",
    )
    assert zone("remove", "--config", path, "bed").returncode == 0
    assert path.read_text().startswith("# zones first, between and last\n\n[camera]\nfps = 10\n")
    assert [z.name for z in load_config(path).zones] == ["sofa"]
    assert zone("remove", "--config", path, "sofa").returncode == 0
    assert path.read_text().endswith("[events.fall]\nconfirm_s = 3.0\n")  # no blank line left
    # a block on the first line, one in the middle without blank lines around it
    block = '[[zones]]\nname = "{}"\npolygon = [[0.1, 0.2], [0.9, 0.2], [0.9, 0.9]]\n'
    path.write_text(f"{block.format('a')}\n[camera]\nfps = 10\n{block.format('b')}[mqtt]\n")
    assert zone("remove", "--config", path, "a").returncode == 0
    assert zone("remove", "--config", path, "b").returncode == 0
    assert path.read_text() == "[camera]\nfps = 10\n[mqtt]\n"


def test_zone_add_to_a_missing_file_creates_it_from_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    result = zone("add", "--config", path, "bed", "--polygon", BED)
    assert result.returncode == 0, result.stderr
    assert f"created {path}: added zone 'bed'" in result.stdout
    assert path.read_text().startswith(DEFAULTS.read_text())
    assert [z.name for z in load_config(path).zones] == ["bed"]
    nowhere = tmp_path / "no" / "config.toml"
    result = zone("add", "--config", nowhere, "bed", "--polygon", BED)
    assert result.returncode == 78 and len(result.stderr.splitlines()) == 1
    assert f"the folder {nowhere.parent} does not exist" in result.stderr
    result = zone("remove", "--config", nowhere, "bed")
    assert result.returncode == 78 and "does not exist" in result.stderr
    assert not nowhere.parent.exists()


def test_zone_commands_refuse_inline_zones(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    text = 'zones = [{name = "a", polygon = [[0.1, 0.2], [0.9, 0.2], [0.9, 0.9]]}]\n'
    path.write_text(text)
    for args in (["add", "b", "--polygon", BED], ["remove", "a"]):
        result = zone(*args[:1], "--config", path, *args[1:])
        assert result.returncode == 78 and "by hand" in result.stderr, result.stderr
        assert len(result.stderr.splitlines()) == 1
    assert path.read_text() == text


# Classes of bad input to `config zone add|remove`: each is refused in one line (exit 2: not
# parsable; 78: not a zone), and the file stays as it was, byte for byte.
BAD_POLYGONS = (
    "0.1,0.2 0.3",  # a lone number
    "a,b c,d e,f",
    "0.1,0.2 nan,0.5 0.3,0.3",
    "inf,0 0,1 1,1",
    "0.1,0.2 1e400,0.5 0.3,0.3",
    "0.1,-1e400 0.5,0.5 0.3,0.3",
    "0.1,0.2,0.3 0.4,0.5 0.6,0.7",
    "0.1;0.2 0.3;0.4 0.5;0.6",
    "",
    "   ",
    ",,, ,,, ,,,",
    "0x1,0 0,1 1,1",
    "1_0,0 0,1 1,1",
    "\uff10.1,0.2 0.3,0.2 0.3,0.4",  # a full-width digit
    "0.1,0.2\x1b[2J 0.3,0.2 0.3,0.4",
    "0.1,0.2\x00 0.3,0.2 0.3,0.4",
    "0.1,0.2\n0.3,0.2\x850.3,0.4",  # only spaces, tabs and ';' separate corners
    "0.1,0.2 0.9,0.9 0.9,0.2 0.1,0.9",  # crosses itself
    "0.1,0.2 1.5,0.5 0.3,0.3",  # outside the picture
    "-0.1,0.2 0.5,0.5 0.3,0.3",
    "0.1,0.1 0.2,0.2 0.3,0.3",  # no area
    "0.1,0.1 0.2,0.1 0.1,0.1 0.2,0.1",
    " ".join(["0.5,0.5"] * 65),
    "1" * 5000,
    "0.1,0.2 " * 131072,  # 1 MB
)
BAD_NAMES = (
    "",
    "a:b",
    "bed\x1b[31m",
    "bed\nroom",
    "\x00",
    "bed\x7f",
    "bed\x85",
    "a" * 33,
    "a" * 1_000_000,
    " bed",
    "-bed",
    "bed\u202e",
    "\U0001f600",
    "BED",  # the zone already there
)
BAD_SECONDS = ("-1", "nan", "inf", "1e400", "abc", "", "0x10", "1_000", "--", "\x1b")
# Characters no zone name may hold, and characters no corner may hold.
NAME_HOSTILE = "!@#$%^&*()[]{}<>?/|\\'\"`~=:.,;\x00\x01\t\n\x1b\x7f\x85\u202e\uff10\U0001f600"
CORNER_HOSTILE = (
    "!@#$%^&*()[]{}<>?/|\\'\"`~=:xyzXYZ\x00\x01\n\x1c\x1b\x7f\x85\u202e\uff10\U0001f600"
)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """`edge-pose ARGV` in process (a 1 MB argument cannot go through exec): (exit code,
    stdout, stderr)."""
    from edge_pose import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def _mutated(rng: random.Random, text: str, alphabet: str) -> str:
    """``text`` with one to three characters of ``alphabet`` inserted."""
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(alphabet) + text[at:]
    return text


@pytest.mark.parametrize("seed", range(3))
def test_fuzzed_zone_arguments_are_one_line_and_leave_the_file(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "config.toml"
    path.write_text(DEFAULTS.read_text() + f'\n[[zones]]\nname = "bed"\npolygon = {BED_TOML}\n')
    before = path.read_bytes()
    for n in range(60):
        kind = rng.choice(["polygon", "polygon", "name", "name", "seconds", "remove"])
        name, polygon, extra = f"zone {n}", DOOR, []
        if kind == "polygon":
            polygon = rng.choice([*BAD_POLYGONS, _mutated(rng, DOOR, CORNER_HOSTILE)])
        elif kind == "name":
            name = rng.choice([*BAD_NAMES, _mutated(rng, "living room", NAME_HOSTILE)])
        elif kind == "seconds":
            extra = ["--inactive-after", rng.choice(BAD_SECONDS)]
        if rng.random() < 0.3:
            extra.append("--lying-ok")
        if kind == "remove":
            argv = ["remove", "--config", str(path), rng.choice([*BAD_NAMES[:-1], "door"])]
        else:
            argv = ["add", "--config", str(path), name, "--polygon", polygon, *extra]
        code, out, err = run_cli(["config", "zone", *argv])
        what = f"seed {seed} #{n}: {argv!r}"[:300]
        assert code in (2, 78), f"{what}: exit {code}\n{out}{err}"[:2000]
        assert out == "" and len(err.splitlines()) == 1, f"{what}: {err[:2000]}"
        assert len(err) < 1000 and "Traceback" not in err, what
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", err), f"{what}: {err!r}"
        if code == 78 and kind == "polygon" and "zones[" in err:
            assert f"zone {name!r}" in err, err  # the zone is named
        assert path.read_bytes() == before, what
        assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], what


BED_TOML = "[[0.1, 0.55], [0.5, 0.55], [0.5, 0.95], [0.1, 0.95]]"


def test_a_bad_polygon_through_the_entry_point(conf: Path) -> None:
    before = conf.read_bytes()
    result = zone("add", "--config", conf, "bed", "--polygon", "0.1,0.2 0.9,0.9 0.9,0.2 0.1,0.9")
    assert result.returncode == 78
    assert result.stderr == (
        "edge-pose: error: zones[0].polygon = [[0.1, 0.2], [0.9, 0.9], [0.9, 0.2], [0.1, 0.9]]: "
        "zone 'bed' crosses itself (edge 1-2 crosses edge 3-4): list the corners in order around "
        f"the zone (from the command line); nothing written to {conf}\n"
    )
    result = zone("add", "--config", conf, "bed", "--polygon", "0.1,0.2 0.3")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "corner" in result.stderr and "--polygon" in result.stderr
    assert conf.read_bytes() == before
