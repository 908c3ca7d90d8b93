"""deploy/cloud-init/ and deploy/image/: what can be checked without a Pi or an image build.

- user-data, network-config and meta-data parse as YAML, with the keys first boot relies on:
  the `#cloud-config` header, host name, an SSH-key user, the MQTT password as the systemd
  credential /etc/credstore/edge-pose.mqtt-password (mode 0600, root), the package install
  from the boot partition, the service enabled; Wi-Fi in network-config (netplan v2);
- every `edge-pose config set` key names a real key of edge_pose.config's models, no password
  goes through `config set`, and the exact `config set` line applies to the shipped default
  config (validated as the device would, exit 0); so does the commented "web view on the LAN"
  block, uncommented, after the password helper it runs (the package's, made by the real helper
  here);
- the image hooks remove the password the package's postinst made (no image-wide password);
- the rpi-image-gen layer: its `# METABEGIN`/`# METAEND` header, YAML body, hook script; the
  config naming the layer; the pi-gen stage: prerun.sh, EXPORT_IMAGE, packages, run script;
- every file the layer/stage references exists in the repo or is what `make deb` produces;
- shell scripts pass `bash -n` and shellcheck (skipped with the apt command when shellcheck is
  missing, a failure under CI=true).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import IN_CI, need_tool

import edge_pose
from edge_pose.config import SECTIONS

try:
    import yaml  # PyYAML: the `test` extra
except ImportError:  # pragma: no cover - depends on the environment
    if IN_CI:
        raise
    pytest.skip("PyYAML is not installed: pip install pyyaml", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
CLOUD_INIT = REPO / "deploy" / "cloud-init"
USER_DATA = CLOUD_INIT / "user-data"
NETWORK_CONFIG = CLOUD_INIT / "network-config"
META_DATA = CLOUD_INIT / "meta-data"
IMAGE = REPO / "deploy" / "image"
IG = IMAGE / "rpi-image-gen"
LAYER = IG / "layer" / "edge-pose.yaml"
IG_CONFIG = IG / "config" / "edge-pose.yaml"
IG_HOOK = IG / "edge-pose-customize.sh"
PIGEN = IMAGE / "pi-gen" / "stage-edge-pose"
PIGEN_RUN = PIGEN / "00-edge-pose" / "01-run.sh"
DOC = REPO / "docs" / "flashing.md"
DEFAULT_CONFIG = REPO / "config" / "edge-pose.toml"
CRED_FILE = "/etc/credstore/edge-pose.mqtt-password"
UNIT = REPO / "deploy" / "edge-pose.service"
DEB_NAME = f"edge-pose_{edge_pose.__version__}_all.deb"
SHELL_SCRIPTS = [IG_HOOK, PIGEN / "prerun.sh", PIGEN_RUN]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def command_words(entry: str | list[str]) -> list[str]:
    """A runcmd entry as words: a list is exec'd as is, a string goes through sh."""
    return [str(word) for word in entry] if isinstance(entry, list) else shlex.split(entry)


def runcmd(data: dict[str, Any]) -> list[list[str]]:
    return [command_words(entry) for entry in data["runcmd"]]


def config_set_args(data: dict[str, Any] | None = None) -> list[str]:
    """The KEY=VALUE arguments of user-data's `edge-pose config set` (exactly one such line)."""
    data = load_yaml(USER_DATA) if data is None else data
    lines = [w for w in runcmd(data) if w[:3] == ["edge-pose", "config", "set"]]
    assert len(lines) == 1, lines
    return [word for word in lines[0][3:] if not word.startswith("--")]


# --------------------------------------------------------------------------- cloud-init


def test_user_data_is_cloud_config_with_first_boot_keys():
    text = USER_DATA.read_text()
    assert text.startswith("#cloud-config\n"), "cloud-init ignores user-data without this header"
    data = load_yaml(USER_DATA)
    assert isinstance(data, dict)
    assert data["hostname"]
    users = data["users"]
    assert any(u.get("ssh_authorized_keys") for u in users if isinstance(u, dict))
    assert all(u.get("name") != "edge-pose" for u in users if isinstance(u, dict)), (
        "the service user comes from the package; a login must not take its name"
    )
    assert data["ssh_pwauth"] is False
    assert data["package_update"] is True  # apt lists for the .deb's dependencies
    assert "Trixie" in text and "Bookworm" in text and "firstrun.sh" in text


def test_mqtt_password_is_a_root_only_systemd_credential():
    entries = [e for e in load_yaml(USER_DATA)["write_files"] if e["path"] == CRED_FILE]
    assert len(entries) == 1
    entry = entries[0]
    assert str(entry["permissions"]) == "0600"  # a string: YAML would read 0600 as octal 384
    assert entry["owner"] == "root:root"
    assert entry["content"].strip()
    assert not entry.get("defer"), "the credential must exist before the service first starts"
    # The unit loads exactly this file from the credential store.
    assert "LoadCredential=mqtt-password:edge-pose.mqtt-password" in UNIT.read_text()
    cmds = runcmd(load_yaml(USER_DATA))
    assert ["chmod", "0700", "/etc/credstore"] in cmds
    args = dict(arg.split("=", 1) for arg in config_set_args())
    assert args["mqtt.password_file"] == "mqtt-password"  # the credential's name
    assert args["mqtt.username"]


def test_config_set_keys_exist_in_the_models():
    args = config_set_args()
    assert args
    seen = set()
    for arg in args:
        key, sep, value = arg.partition("=")
        assert sep and value, arg
        section, _, name = key.partition(".")
        assert section in SECTIONS, f"{key}: no section {section!r} in edge_pose.config"
        assert name in SECTIONS[section].model_fields, f"{key}: not a key of [{section}]"
        assert "password" not in name or name == "password_file", "no secrets through config set"
        seen.add(key)
    required = {"device.id", "mqtt.host", "mqtt.port", "mqtt.tls", "mqtt.username"}
    assert required <= seen, required - seen


def test_config_set_line_applies_to_the_shipped_config(tmp_path):
    """The exact arguments, run against a copy of the default config: valid, written, kept."""
    conf = tmp_path / "config.toml"
    conf.write_bytes(DEFAULT_CONFIG.read_bytes())
    wrapper = "import sys; from edge_pose.cli import main; sys.exit(main(['config', *sys.argv[1:]]))"  # noqa: E501
    args = config_set_args()
    result = subprocess.run(
        [sys.executable, "-c", wrapper, "set", "--config", str(conf), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = conf.read_text()
    assert "tls = true" in text and "port = 8883" in text


HTTP_PASSWORD = "/etc/edge-pose/http-password"
MAKE_PASSWORD = "/usr/lib/edge-pose/make-http-password"
WEB_LAN = "web view on the LAN"


def user_data_with_web_lan() -> dict[str, Any]:
    """user-data with its "web view on the LAN" block uncommented, as its comments say to."""
    lines = USER_DATA.read_text().splitlines()
    out, marked = [], 0
    for i, line in enumerate(lines):
        before = "\n".join(lines[max(0, i - 4) : i])
        if (
            WEB_LAN in before
            and re.fullmatch(r"\s*# - .*", line)
            and (MAKE_PASSWORD in line or "http." in line)
        ):
            line = line.replace("# - ", "- ", 1)
            marked += 1
        out.append(line)
    assert marked == 3, f"expected 3 commented lines of the {WEB_LAN!r} block, found {marked}"
    return yaml.safe_load("\n".join(out))


def test_web_lan_block_makes_the_password_then_opens_the_page(tmp_path):
    """Uncommented, the block runs the package's password helper before `config set`, and the
    line then applies to the shipped config with the file the helper made: a LAN bind with that
    password, valid; commented (as shipped) it changes nothing."""
    assert not any(a.startswith("http.") for a in config_set_args())
    data = user_data_with_web_lan()
    cmds = runcmd(data)
    helper = cmds.index([MAKE_PASSWORD])
    config = next(i for i, w in enumerate(cmds) if w[:3] == ["edge-pose", "config", "set"])
    install = next(i for i, w in enumerate(cmds) if "apt-get install" in " ".join(w))
    assert install < helper < config, "the package brings the helper; config set needs the file"
    args = config_set_args(data)
    assert "http.bind=0.0.0.0" in args and f"http.password_file={HTTP_PASSWORD}" in args
    # The helper the package installs there is deploy/lib/make-http-password.
    assert f'"$SCRIPT_DIR/lib/make-http-password" {MAKE_PASSWORD} 0755' in (
        REPO / "deploy" / "build-deb.sh"
    ).read_text()
    password = tmp_path / "http-password"
    made = subprocess.run(
        [str(REPO / "deploy" / "lib" / "make-http-password"), str(password)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "EDGE_POSE_PASSWORD_GROUP": ""},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert password.read_text().strip() not in made.stdout  # cloud-init logs what runcmd prints
    conf = tmp_path / "config.toml"
    conf.write_bytes(DEFAULT_CONFIG.read_bytes())
    wrapper = "import sys; from edge_pose.cli import main; sys.exit(main(['config', *sys.argv[1:]]))"  # noqa: E501
    args = [a.replace(HTTP_PASSWORD, str(password)) for a in args]
    result = subprocess.run(
        [sys.executable, "-c", wrapper, "set", "--config", str(conf), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    from edge_pose.config import load_config

    http = load_config(conf).http
    assert (http.bind, http.password_file) == ("0.0.0.0", str(password))


def test_images_carry_no_web_password():
    """The package's postinst makes a password; an image would give it to every card. Both
    builds remove it after installing the package (each card makes its own at first boot)."""
    for script, root in ((IG_HOOK, "$root"), (PIGEN_RUN, "${ROOTFS_DIR}")):
        text = script.read_text()
        remove = f'rm -f "{root}{HTTP_PASSWORD}"'
        assert remove in text, script
        assert text.index("apt-get install") < text.index(remove), script


def test_user_data_installs_the_package_and_enables_the_service():
    cmds = runcmd(load_yaml(USER_DATA))
    flat = [" ".join(words) for words in cmds]
    install = [i for i, line in enumerate(flat) if "apt-get install" in line]
    config = [i for i, words in enumerate(cmds) if words[:3] == ["edge-pose", "config", "set"]]
    assert install and config and install[0] < config[0], "install first: config set needs it"
    assert "/boot/firmware/edge-pose_*.deb" in flat[install[0]]
    assert "dpkg-query" in flat[install[0]], "skipped when the image already has the package"
    assert ["systemctl", "enable", "edge-pose.service"] in cmds
    restart = cmds.index(["systemctl", "restart", "edge-pose.service"])
    assert restart > config[0]


def test_network_config_has_wifi():
    data = load_yaml(NETWORK_CONFIG)
    network = data["network"]
    assert network["version"] == 2
    wlan = network["wifis"]["wlan0"]
    assert wlan["dhcp4"] is True
    assert re.fullmatch(r"[A-Z]{2}", wlan["regulatory-domain"])
    ((ssid, ap),) = wlan["access-points"].items()
    assert ssid and ap["password"]


def test_meta_data_has_an_instance_id():
    assert load_yaml(META_DATA)["instance-id"]


# --------------------------------------------------------------------------- rpi-image-gen


def layer_meta() -> dict[str, str]:
    text = LAYER.read_text()
    match = re.search(r"^# METABEGIN\n(.*?)^# METAEND\n", text, re.M | re.S)
    assert match, "rpi-image-gen needs the # METABEGIN ... # METAEND header"
    fields: dict[str, str] = {}
    last = ""
    for line in match.group(1).splitlines():
        body = line[1:]
        if body.startswith("  ") and last:  # continuation line
            fields[last] += " " + body.strip()
        elif m := re.fullmatch(r" (X-Env-[\w-]+):\s*(.*)", body):
            last = m.group(1)
            fields[last] = m.group(2)
        else:
            assert body.strip() == "", f"not a metadata line: {line!r}"
            last = ""
    return fields


def test_layer_header_and_body():
    meta = layer_meta()
    assert meta["X-Env-Layer-Name"] == "edge-pose"
    assert meta["X-Env-Layer-Category"] and meta["X-Env-Layer-Desc"]
    assert meta["X-Env-Layer-Version"] == edge_pose.__version__
    prefix = meta["X-Env-VarPrefix"]
    for var in ("deb", "mosquitto", "seed"):
        assert f"X-Env-Var-{var}-Desc" in meta
        assert f"IGconf_{prefix}_{var}" in IG_HOOK.read_text()
    body = load_yaml(LAYER)["mmdebstrap"]
    assert {"python3-venv", "python3-picamera2", "cloud-init"} <= set(body["packages"])
    hooks = " ".join(body["customize-hooks"])
    assert IG_HOOK.name in hooks
    config = load_yaml(IG_CONFIG)
    assert config["layer"]["app"] == "edge-pose"
    assert config[prefix]["mosquitto"] in ("y", "n")


def test_files_the_layer_and_stage_reference_exist():
    # The layer's hook (relative to the -S folder) and what the hook copies.
    for words in (shlex.split(h) for h in load_yaml(LAYER)["mmdebstrap"]["customize-hooks"]):
        scripts = [w for w in words if w.endswith(".sh")]
        assert scripts and all((IG / s).is_file() for s in scripts), words
    hook = IG_HOOK.read_text()
    assert "examples=$here/../../cloud-init" in hook
    assert (IG_HOOK.parent / "../../cloud-init").resolve() == CLOUD_INIT
    # pi-gen: the sub-stage's files/ (links to deploy/cloud-init/) and its package list.
    run = PIGEN_RUN.read_text()
    for name in re.search(r"for name in ([\w -]+); do", run).group(1).split():
        assert (PIGEN_RUN.parent / "files" / name).resolve() == (CLOUD_INIT / name).resolve()
        assert (CLOUD_INIT / name).is_file()
    assert (PIGEN / "prerun.sh").is_file() and (PIGEN / "EXPORT_IMAGE").is_file()
    assert "cloud-init" in (PIGEN / "00-edge-pose" / "00-packages").read_text().split()
    # The package both install is the one `make deb` builds: dist/edge-pose_<version>_all.deb,
    # or the offline build for the Pi, dist/edge-pose_<version>_arm64.deb.
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^deb:.*\n\t.*build-deb\.sh --out dist", makefile, re.M)
    assert (REPO / "deploy" / "build-deb.sh").is_file()
    for text in (hook, run):
        assert "edge-pose_*_all.deb | edge-pose_*_arm64.deb)" in text
    assert f"dist/{DEB_NAME}" in IG_CONFIG.read_text()
    doc = DOC.read_text()
    for path in (USER_DATA, NETWORK_CONFIG, META_DATA, LAYER, IG_CONFIG, PIGEN):
        assert str(path.relative_to(REPO)) in doc, path


# --------------------------------------------------------------------------- shell


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(IMAGE)))
def test_shell_syntax(script):
    assert script.stat().st_mode & 0o111, f"{script} must be executable"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(IMAGE)))
def test_shellcheck(script):
    tool = need_tool("shellcheck", "shellcheck")
    result = subprocess.run(
        [tool, "-x", str(script)], capture_output=True, text=True, cwd=script.parent
    )
    assert result.returncode == 0 and not result.stdout, result.stdout + result.stderr


def test_export_image_is_valid_shell():
    # pi-gen sources EXPORT_IMAGE; check it as shell too.
    path = PIGEN / "EXPORT_IMAGE"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
