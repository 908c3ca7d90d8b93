"""deploy/: the systemd unit, the Coral udev rules and the installer (docs/service.md).

- shellcheck on every deploy/*.sh;
- `systemd-analyze verify` prints nothing for the unit as the installer lays it down (its
  ExecStart pointed at the staged venv's real `edge-pose`, the one path that differs);
- `systemd-analyze security --offline=true` rates the exposure <= 2.0, and docs/service.md
  records the score;
- the directives the service relies on, each justified by a comment;
- the udev rules;
- `install.sh --root DIR` stages the real thing, from a copy of this checkout: a venv with the
  package and its dependencies (pip, from the index or the mirror/cache pip is configured with,
  as on the device), the model from EDGE_POSE_MODEL_MIRROR (checked), the config, unit and rules,
  the web view's password file (random, 0640); a second run changes nothing (the password
  neither); an edited config survives it; an invalid config is refused; --uninstall keeps config,
  password and models, --purge removes them;
- `install.sh --web-lan`: the `config set` line it runs serves the page to the LAN with that
  password and applies to the shipped config; the password helper keeps an existing file.

Missing tools (shellcheck, systemd-analyze) skip with the apt command to install them, and fail
under CI=true.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import IN_CI, SHARED, need_tool, require

import edge_pose

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "edge-pose.service"
INSTALL = DEPLOY / "install.sh"
MAKE_PASSWORD = DEPLOY / "lib" / "make-http-password"
UDEV_RULES = DEPLOY / "udev" / "60-edge-pose-coral.rules"
DOC = REPO / "docs" / "service.md"
MAX_EXPOSURE = 2.0
MODEL_FILE = "movenet_single_pose_lightning_ptq.tflite"
INSTALL_TIMEOUT_S = 900  # pip on a slow CI runner; about 15 s here


def systemd_analyze() -> str:
    tool = need_tool("systemd-analyze", "systemd")
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout
    version = int(re.match(r"systemd (\d+)", out).group(1))
    if version < 250:  # `security --offline=` appeared in systemd 250
        message = f"systemd-analyze {version} is too old (>= 250 needed for --offline)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return tool


def systemd_version() -> int:
    out = subprocess.run(
        [systemd_analyze(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return int(re.match(r"systemd (\d+)", out).group(1))


# --------------------------------------------------------------------------- the unit


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> keys -> every value (in order); comments and blank lines dropped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {line}"
        assert not line.endswith("\\"), "no line continuations, please: keep each line greppable"
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


def one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key)
    assert values, f"{key}= missing"
    return values[-1]


def words(section: dict[str, list[str]], key: str) -> set[str]:
    return {w for v in section.get(key, []) for w in v.split()}


def seconds(value: str) -> float:
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total


def test_unit_has_the_directives_the_service_relies_on(unit):
    service, main = unit["Service"], unit["Unit"]
    assert one(service, "Type") == "notify"
    assert one(service, "NotifyAccess") == "main"
    assert one(service, "ExecStart").split() == [
        "/opt/edge-pose/venv/bin/edge-pose",
        "run",
        "--config",
        "/etc/edge-pose/config.toml",
    ]
    assert one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert 10 <= seconds(one(service, "WatchdogSec")) <= 120
    assert seconds(one(service, "TimeoutStartSec")) >= 60  # model load on a Pi Zero 2 W
    assert one(service, "Restart") == "on-failure"
    assert seconds(one(service, "RestartSec")) > 0
    assert seconds(one(main, "StartLimitIntervalSec")) > 0
    assert int(one(main, "StartLimitBurst")) > 0
    assert "78" in words(service, "RestartPreventExitStatus")
    assert one(service, "User") == one(service, "Group") == "edge-pose"
    assert {"video", "plugdev", "apex"} <= words(service, "SupplementaryGroups")
    for key in ("RuntimeDirectory", "StateDirectory", "ConfigurationDirectory"):
        assert one(service, key) == "edge-pose"
    credential_ids = [v.split(":", 1)[0] for v in service.get("LoadCredential", [])]
    assert "mqtt-password" in credential_ids
    assert one(service, "ProtectSystem") == "strict"
    assert one(service, "ProtectHome") == "yes"
    assert one(service, "NoNewPrivileges") == "yes"
    assert one(service, "CapabilityBoundingSet") == ""
    # PrivateDevices= would hide /dev/video*, /dev/media*, /dev/dma_heap, /dev/bus/usb, /dev/apex_*.
    assert service.get("PrivateDevices", ["no"])[-1] in ("no", "false", "0")
    assert one(service, "DevicePolicy") == "closed"
    allowed = {v.split()[0] for v in service.get("DeviceAllow", [])}
    assert {
        "char-video4linux",
        "char-media",
        "char-dma_heap",
        "char-usb_device",
        "char-apex",
    } <= allowed
    assert all(v.split()[1] == "rw" for v in service["DeviceAllow"])
    assert {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"} == words(
        service, "RestrictAddressFamilies"
    )
    assert "@system-service" in words(service, "SystemCallFilter")
    assert one(unit["Install"], "WantedBy") == "multi-user.target"


def test_unit_may_bind_only_the_web_port(unit):
    """The service listens on the web view's port and nowhere else: exactly one allow entry,
    tcp:8080 (the config's default http.port), written before the deny-all it punches through
    (the order does not matter to systemd, an allow entry always wins; it does to a reader)."""
    from edge_pose.config import HttpConfig

    service = unit["Service"]
    assert service["SocketBindAllow"] == [f"tcp:{HttpConfig().port}"] == ["tcp:8080"]
    assert service["SocketBindDeny"] == ["any"]
    text = UNIT.read_text()
    assert text.index("SocketBindAllow=") < text.index("SocketBindDeny=")
    assert "never listens" not in text


def test_unit_mqtt_password_credential_is_optional(unit):
    """An absolute LoadCredential= source makes the start fail while the file is missing; a bare
    name is looked up in the credential store, and a missing one is skipped (docs/service.md)."""
    for value in unit["Service"]["LoadCredential"]:
        ident, _, source = value.partition(":")
        if ident == "mqtt-password":
            assert source and not source.startswith("/"), value


def test_every_service_directive_is_justified_by_a_comment():
    """Each directive of [Service] sits in a paragraph with a comment above it."""
    section = ""
    commented = False
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line:
            commented = False
        elif line.startswith("["):
            section, commented = line, False
        elif line.startswith("#"):
            commented = True
        elif section == "[Service]":
            assert commented, f"no comment justifies: {line}"
    text = UNIT.read_text()
    for why_not in ("PrivateDevices=", "MemoryDenyWriteExecute=", "PrivateUsers=", "ProcSubset="):
        assert f"{why_not} is NOT" in text or f"- {why_not}" in text, why_not


def test_security_exposure_is_at_most_2_0():
    tool = systemd_analyze()
    result = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert match, out
    score = float(match.group(1))
    assert score <= MAX_EXPOSURE, out
    documented = re.search(r"Exposure score: \*\*([0-9.]+)\*\* \(systemd (\d+)", DOC.read_text())
    assert documented, "docs/service.md must record the exposure score"
    assert float(documented.group(1)) <= MAX_EXPOSURE
    if int(documented.group(2)) == systemd_version():
        assert float(documented.group(1)) == score, "update the score in docs/service.md"


# --------------------------------------------------------------------------- udev rules

RULE_TOKEN = re.compile(
    r'^(?P<key>[A-Z]+(?:\{[A-Za-z_]+\})?)(?P<op>==|!=|\+=|:=|=)"(?P<val>[^"]*)"$'
)


def parse_rules(text: str) -> list[dict[str, tuple[str, str]]]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        rule = {}
        for token in re.split(r",\s*", line):
            m = RULE_TOKEN.match(token)
            assert m, f"bad udev token {token!r} in: {line}"
            rule[m["key"]] = (m["op"], m["val"])
        rules.append(rule)
    return rules


def test_udev_rules_give_the_coral_to_the_service_groups():
    rules = parse_rules(UDEV_RULES.read_text())
    for rule in rules:
        for key, (op, _) in rule.items():
            expected = "=" if key in ("GROUP", "MODE") else "=="
            assert op == expected, f"{key}{op} in {rule}"

    def find(**match: str) -> dict[str, tuple[str, str]]:
        for rule in rules:
            if all(rule.get(k, ("", None))[1] == v for k, v in match.items()):
                return rule
        raise AssertionError(f"no rule matches {match}")

    for vendor, product in (("1a6e", "089a"), ("18d1", "9302")):
        rule = find(**{"ATTR{idVendor}": vendor, "ATTR{idProduct}": product})
        assert rule["SUBSYSTEM"][1] == "usb"
        assert rule["GROUP"][1] == "plugdev" and rule["MODE"][1] == "0660"
    rule = find(SUBSYSTEM="apex")
    assert rule["GROUP"][1] == "apex" and rule["MODE"][1] == "0660"

    udevadm = shutil.which("udevadm")
    if (
        udevadm
        and subprocess.run([udevadm, "verify", "--help"], capture_output=True).returncode == 0
    ):
        result = subprocess.run(
            [udevadm, "verify", str(UDEV_RULES)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- shell scripts


@pytest.mark.parametrize(
    "script", [*sorted(DEPLOY.glob("*.sh")), MAKE_PASSWORD], ids=lambda p: p.name
)
def test_shellcheck(script):
    tool = need_tool("shellcheck", "shellcheck")
    result = subprocess.run([tool, "-x", str(script)], capture_output=True, text=True, cwd=DEPLOY)
    assert result.returncode == 0 and not result.stdout, result.stdout + result.stderr


def test_shell_scripts_exist_and_are_strict():
    scripts = sorted(DEPLOY.glob("*.sh"))
    assert INSTALL in scripts
    for script in scripts:
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), script
        assert "set -euo pipefail" in text, script
        assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"


# --------------------------------------------------------------------------- installer


def installer(*args: str, env: dict[str, str] | None = None, script: Path = INSTALL, **kw):
    return subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        env=env if env is not None else os.environ.copy(),
        **kw,
    )


def test_installer_help():
    result = installer("--help")
    assert result.returncode == 0
    for option in (
        "--root",
        "--uninstall",
        "--purge",
        "--wheel",
        "--source",
        "--with-mosquitto",
        "--web-lan",
    ):
        assert option in result.stdout


def test_installer_rejects_unknown_options():
    result = installer("--frobnicate")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "install.sh: error: unknown option: --frobnicate (see install.sh --help)"
    )


def test_installer_needs_root_for_the_real_system():
    command = ["bash", str(INSTALL)]
    if os.geteuid() == 0:  # drop to nobody; the script stops before touching anything
        setpriv = need_tool("setpriv", "util-linux")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("install.sh: error: must run as root: sudo ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_installer_rejects_an_unsupported_release(tmp_path):
    fake = tmp_path / "os-release"
    fake.write_text('ID=debian\nVERSION_CODENAME=bullseye\nPRETTY_NAME="Debian GNU/Linux 11"\n')
    env = {**os.environ, "EDGE_POSE_OS_RELEASE": str(fake)}
    result = installer("--dry-run", env=env)  # --dry-run: nothing would change even if it went on
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "install.sh: error: unsupported OS release: Debian GNU/Linux 11 (need Raspberry Pi OS "
        "or Debian bookworm or trixie; --force to try anyway)"
    )


def test_dry_run_changes_nothing(tmp_path):
    root = tmp_path / "root"
    result = installer("--dry-run", "--root", str(root))
    assert result.returncode == 0, result.stderr
    assert not root.exists()
    assert "would run: systemctl enable --quiet edge-pose.service" in result.stdout
    assert "would run: useradd" in result.stdout


def test_the_model_is_fetched_as_the_service_user_not_root():
    """The model folder belongs to the service user: root fetching there could be made to write
    through a link that user planted, so the installer fetches as that user (as postinst)."""
    result = installer("--dry-run", "--force", "--model", "movenet_lightning_int8")
    assert result.returncode == 0, result.stderr
    fetches = [line for line in result.stdout.splitlines() if "models " in line]
    assert fetches == [
        "edge-pose: would run: runuser -u edge-pose -- /opt/edge-pose/venv/bin/edge-pose models "
        "fetch movenet_lightning_int8 --dir /var/lib/edge-pose/models"
    ]
    assert "chown -R" not in result.stdout  # nothing for root to hand over afterwards


@pytest.mark.parametrize("linked", ["/var/lib/edge-pose", "/var/lib/edge-pose/models"])
@pytest.mark.parametrize("target", ["folder", "file", "dangling"])
def test_a_linked_state_folder_is_refused_before_root_touches_it(tmp_path, linked, target):
    root, outside = tmp_path / "root", tmp_path / "outside"
    if target == "folder":
        outside.mkdir(mode=0o755)
    elif target == "file":
        outside.write_text("root-only\n")
        outside.chmod(0o600)
    link = root / linked.lstrip("/")
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    before = outside.lstat() if outside.exists() else None
    result = installer("--root", str(root), "--no-model")
    assert result.returncode == 1
    assert result.stderr == (
        f"install.sh: error: {linked} is a symbolic link, not a folder: remove it, then run "
        "install.sh again\n"
    )
    after = outside.lstat() if outside.exists() else None
    assert (after and (after.st_mode, after.st_uid)) == (before and (before.st_mode, before.st_uid))
    assert not (root / "opt").exists()  # stopped before anything was laid down


def base_python() -> str:
    """The interpreter the installer builds its venv from: the system Python, as on the Pi."""
    for candidate in ("/usr/bin/python3", getattr(sys, "_base_executable", sys.executable)):
        ok = subprocess.run(
            [candidate, "-c", "import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))"],
            capture_output=True,
        )
        if ok.returncode == 0:
            return candidate
    pytest.fail("no Python >= 3.11 with venv/ensurepip to build the staged venv from")


def model_mirror() -> str:
    if mirror := os.environ.get("EDGE_POSE_MODEL_MIRROR"):
        return mirror
    for folder in (REPO / "models", SHARED / "models"):
        if (folder / MODEL_FILE).is_file():
            return str(folder)
    return str(require(SHARED / "models" / MODEL_FILE).parent)


def copy_checkout(dest: Path) -> Path:
    """A frozen copy of this checkout, so files edited meanwhile cannot make two runs differ."""
    shutil.copytree(
        REPO,
        dest,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "*.tflite"
        ),
        symlinks=True,
    )
    return dest


@dataclass
class Staged:
    root: Path
    checkout: Path
    env: dict[str, str]
    first: subprocess.CompletedProcess | None = None

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return installer(
            "--root",
            str(self.root),
            *args,
            env=self.env,
            script=self.checkout / "deploy/install.sh",
        )

    def path(self, target: str) -> Path:
        return self.root / target.lstrip("/")


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Staged:
    base = tmp_path_factory.mktemp("deploy")
    checkout = copy_checkout(base / "checkout")
    env = {**os.environ, "EDGE_POSE_MODEL_MIRROR": model_mirror(), "PYTHON": base_python()}
    env.pop("EDGE_POSE_MODEL_DIR", None)
    stage = Staged(base / "root", checkout, env)
    stage.first = stage.run()
    assert stage.first.returncode == 0, stage.first.stdout + stage.first.stderr
    return stage


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_staging_lays_down_the_files(staged):
    s = staged
    assert s.path("/etc/systemd/system/edge-pose.service").read_bytes() == UNIT.read_bytes()
    assert (
        s.path("/etc/udev/rules.d/60-edge-pose-coral.rules").read_bytes() == UDEV_RULES.read_bytes()
    )
    config = s.path("/etc/edge-pose/config.toml")
    assert config.read_bytes() == (REPO / "config" / "edge-pose.toml").read_bytes()
    assert stat.S_IMODE(config.stat().st_mode) == 0o644
    venv = s.path("/opt/edge-pose/venv")
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    assert os.access(venv / "bin" / "edge-pose", os.X_OK)
    assert os.readlink(s.path("/usr/local/bin/edge-pose")) == "/opt/edge-pose/venv/bin/edge-pose"
    models = s.path("/var/lib/edge-pose/models")
    assert (models / MODEL_FILE).is_file()
    assert stat.S_IMODE(models.stat().st_mode) == 0o750
    assert s.path("/opt/edge-pose/doc/service.md").read_bytes() == DOC.read_bytes()
    password = s.path("/etc/edge-pose/http-password")
    assert stat.S_IMODE(password.stat().st_mode) == 0o640
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}\n", password.read_text())
    assert password.read_text() not in s.first.stdout + s.first.stderr  # never printed
    # The running system is left alone: these are only printed.
    out = s.first.stdout
    for printed in (
        "would run: apt-get install",
        "would run: useradd --system --gid edge-pose --groups video,plugdev,apex",
        "would run: udevadm control --reload",
        "would run: systemctl daemon-reload",
        "would run: systemctl enable --quiet edge-pose.service",
        "would run: systemctl start edge-pose.service",
        "would run: chgrp edge-pose /etc/edge-pose/http-password",
        "made /etc/edge-pose/http-password",
    ):
        assert printed in out
    assert "config set" not in out  # LAN access only with --web-lan


def test_staged_venv_works_and_the_model_checks_out(staged):
    bin_ = staged.path("/opt/edge-pose/venv/bin/edge-pose")
    version = subprocess.run([bin_, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == f"edge-pose {edge_pose.__version__}"
    models = staged.path("/var/lib/edge-pose/models")
    check = subprocess.run(
        [bin_, "models", "verify", "movenet_lightning_int8", "--dir", str(models)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0 and check.stdout.startswith("ok "), check.stdout + check.stderr


def test_unit_verify_prints_nothing(staged, tmp_path):
    """The installed unit, with ExecStart pointing at the staged (real) executable."""
    tool = systemd_analyze()
    installed = staged.path("/etc/systemd/system/edge-pose.service").read_text()
    assert installed == UNIT.read_text()
    copy = tmp_path / "edge-pose.service"
    copy.write_text(installed.replace("/opt/edge-pose/venv/", f"{staged.root}/opt/edge-pose/venv/"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSTEMD_")}
    result = subprocess.run(
        [tool, "verify", str(copy)], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0
    assert result.stdout + result.stderr == ""


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything the installer laid down: metadata and content outside the venv; inside it the
    package's sources and the set of installed distributions (pip rewrites their files)."""
    state: dict[str, tuple] = {}
    venv = root / "opt" / "edge-pose" / "venv"
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_relative_to(venv):
            if path.suffix == ".py" and "edge_pose" in path.parts:
                state[rel] = ("py", sha256(path))
            elif path.name.endswith(".dist-info"):
                state[rel] = ("dist",)
            continue
        st = path.lstat()
        if path.is_symlink():
            state[rel] = ("link", os.readlink(path))
        elif path.is_file():
            state[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, sha256(path))
        else:
            state[rel] = ("dir", stat.S_IMODE(st.st_mode))
    return state


def test_second_run_changes_nothing_and_keeps_an_edited_config(staged):
    """Files, modes and mtimes, the web view's password with them."""
    config = staged.path("/etc/edge-pose/config.toml")
    edited = config.read_text().replace("threads = 4", "threads = 2", 1)
    assert edited != config.read_text()
    config.write_text(edited)
    before = snapshot(staged.root)
    again = staged.run()
    assert again.returncode == 0, again.stdout + again.stderr
    assert snapshot(staged.root) == before
    assert config.read_text() == edited
    assert "kept the existing /etc/edge-pose/config.toml" in again.stdout
    assert "kept the existing /etc/edge-pose/http-password" in again.stdout
    assert "installed /etc/" not in again.stdout  # no file was rewritten


def test_an_invalid_config_is_refused(staged):
    config = staged.path("/etc/edge-pose/config.toml")
    good = config.read_text()
    try:
        config.write_text(good + "\n[bogus]\nanswer = 42\n")
        result = staged.run()
    finally:
        config.write_text(good)
    assert result.returncode == 1
    assert "[bogus]" in result.stderr  # edge-pose validate names the problem
    assert result.stderr.rstrip().endswith(
        "install.sh: error: /etc/edge-pose/config.toml is invalid (see above): fix it, then run "
        "install.sh again"
    )


def test_web_lan_turns_on_lan_access_with_the_password(staged, tmp_path):
    """--web-lan staged (--dry-run: nothing changes) prints the `config set` it runs on a
    device (the password file is named by its path there); that line, with the file where the
    test has it, applies to the shipped config: valid, the page served to the LAN with a
    password."""
    result = staged.run("--web-lan", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    line = (
        "would run: /opt/edge-pose/venv/bin/edge-pose config set --config "
        "/etc/edge-pose/config.toml http.bind=0.0.0.0 "
        "http.password_file=/etc/edge-pose/http-password"
    )
    assert line in result.stdout
    config = tmp_path / "config.toml"
    config.write_bytes((REPO / "config" / "edge-pose.toml").read_bytes())
    password = staged.path("/etc/edge-pose/http-password")
    args = line.split(" config set ", 1)[1].split()[2:]
    args = [a.replace("/etc/edge-pose/http-password", str(password)) for a in args]
    edge_pose_cli = [sys.executable, "-m", "edge_pose.cli"]
    done = subprocess.run(
        [*edge_pose_cli, "config", "set", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    from edge_pose.config import load_config

    http = load_config(config).http
    assert (http.bind, http.password_file, http.loopback) == ("0.0.0.0", str(password), False)
    assert password.read_text().strip() not in done.stdout + done.stderr


def test_uninstall_keeps_config_and_models_and_purge_removes_them(staged):
    s = staged
    result = s.run("--uninstall")
    assert result.returncode == 0, result.stdout + result.stderr
    for gone in (
        "/etc/systemd/system/edge-pose.service",
        "/etc/udev/rules.d/60-edge-pose-coral.rules",
        "/opt/edge-pose",
        "/usr/local/bin/edge-pose",
    ):
        assert not os.path.lexists(s.path(gone)), gone
    assert s.path("/etc/edge-pose/config.toml").is_file()
    assert s.path("/etc/edge-pose/http-password").is_file()
    assert (s.path("/var/lib/edge-pose/models") / MODEL_FILE).is_file()
    assert "would run: systemctl disable --now edge-pose.service" in result.stdout
    assert s.run("--uninstall").returncode == 0  # again: nothing left to do, still fine

    purge = s.run("--uninstall", "--purge")
    assert purge.returncode == 0, purge.stdout + purge.stderr
    assert not s.path("/etc/edge-pose").exists()
    assert not s.path("/var/lib/edge-pose").exists()
    assert "would run: userdel edge-pose" in purge.stdout


def test_the_password_helper_keeps_an_existing_file(tmp_path):
    """make-http-password: a new file 0640 (group left alone here: EDGE_POSE_PASSWORD_GROUP=''),
    24 characters of secrets.token_urlsafe; an existing file (chosen by hand) is kept as it is;
    the password is never printed."""
    env = {**os.environ, "EDGE_POSE_PASSWORD_GROUP": ""}
    made = subprocess.run(
        [str(MAKE_PASSWORD), str(tmp_path / "pw")], capture_output=True, text=True, env=env
    )
    assert made.returncode == 0, made.stderr
    first = (tmp_path / "pw").read_text()
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}\n", first)
    assert stat.S_IMODE((tmp_path / "pw").stat().st_mode) == 0o640
    assert first.strip() not in made.stdout + made.stderr
    assert made.stdout == (
        f"edge-pose: made {tmp_path}/pw (the web view's password, user edge-pose; read it with: "
        f"sudo cat {tmp_path}/pw)\n"
    )
    subprocess.run([str(MAKE_PASSWORD), str(tmp_path / "other")], env=env, check=True)
    assert (tmp_path / "other").read_text() != first  # random
    (tmp_path / "pw").write_text("chosen by hand\n")
    kept = subprocess.run(
        [str(MAKE_PASSWORD), str(tmp_path / "pw")], capture_output=True, text=True, env=env
    )
    assert kept.returncode == 0 and kept.stdout == f"edge-pose: kept {tmp_path}/pw\n"
    assert (tmp_path / "pw").read_text() == "chosen by hand\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "pw"]  # no temporary left
    no_group = subprocess.run(
        [str(MAKE_PASSWORD), str(tmp_path / "new")],
        capture_output=True,
        text=True,
        env={**os.environ, "EDGE_POSE_PASSWORD_GROUP": "no-such-group-here"},
    )
    assert no_group.returncode == 1 and "no group no-such-group-here" in no_group.stderr
    assert not (tmp_path / "new").exists()


def test_no_package_index_gives_the_offline_hint(tmp_path):
    empty = tmp_path / "wheels"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(empty),
        PYTHON=base_python(),
    )
    result = installer("--root", str(tmp_path / "root"), "--no-model", env=env)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("install.sh: error: pip could not download edge-pose's dependencies")
    assert "PIP_NO_INDEX=1 PIP_FIND_LINKS=" in last
