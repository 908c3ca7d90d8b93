"""The Debian package (deploy/build-deb.sh, deploy/debian/; docs/packaging.md).

- the package builds into a temporary folder and writes nothing into the checkout;
- its name, control fields and conffiles;
- its contents listing: every file at its path with its mode, owned by root;
- the files in it are the project's (unit with the venv's ExecStart, udev rules, config);
- the sysusers.d entry makes the user and groups (systemd-sysusers --root on a copy);
- shellcheck on the maintainer scripts as packaged;
- lintian: exit status 0, no error, and every warning explained in docs/packaging.md;
- the wheel inside installs (pip --no-deps into a folder) and is this version of edge_pose;
- the offline build (--offline): arm64 control fields, a wheelhouse only of wheels for CPython
  3.11 on aarch64 that pip resolves edge-pose from without an index, the model as the manifest
  has it, lintian; built for amd64, its wheelhouse installs into a fresh venv with no index and
  that venv's edge-pose matches the pycoral reference keypoints of squat.bmp;
- bad build options give one clear error each.

Missing tools (dpkg-deb, lintian, shellcheck, systemd-sysusers) skip with the apt command to
install them, and fail under CI=true.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import need_tool, reference_xy

import edge_pose

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "deploy" / "build-deb.sh"
DEBIAN = REPO / "deploy" / "debian"
DOC = REPO / "docs" / "packaging.md"
VERSION = edge_pose.__version__
WHEEL = f"usr/share/edge-pose/edge_pose-{VERSION}-py3-none-any.whl"
MAINTAINER_SCRIPTS = ("postinst", "prerm", "postrm")

# path in the package -> mode (files 0644 unless stated; directories are checked separately).
EXPECTED_FILES = {
    WHEEL: "-rw-r--r--",
    "usr/lib/systemd/system/edge-pose.service": "-rw-r--r--",
    "usr/lib/udev/rules.d/60-edge-pose-coral.rules": "-rw-r--r--",
    "usr/lib/sysusers.d/edge-pose.conf": "-rw-r--r--",
    "usr/lib/tmpfiles.d/edge-pose.conf": "-rw-r--r--",
    "usr/lib/edge-pose/make-http-password": "-rwxr-xr-x",
    "etc/edge-pose/config.toml": "-rw-r--r--",
    "usr/share/man/man1/edge-pose.1.gz": "-rw-r--r--",
    "usr/share/doc/edge-pose/copyright": "-rw-r--r--",
    "usr/share/doc/edge-pose/changelog.gz": "-rw-r--r--",
    "usr/share/doc/edge-pose/service.md": "-rw-r--r--",
}
EXPECTED_LINKS = {"usr/bin/edge-pose": "/opt/edge-pose/venv/bin/edge-pose"}


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


def checkout_state() -> dict[str, float | None]:
    """What a build inside the checkout would leave: build/, dist/, egg-info (mtimes)."""
    names = ["build", "dist", "edge_pose.egg-info", "edge-pose.egg-info"]
    return {n: (REPO / n).stat().st_mtime if (REPO / n).exists() else None for n in names}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str, str]:
    """(the .deb, build stdout, stderr), built into a temporary folder."""
    need_tool("dpkg-deb", "dpkg")
    out = tmp_path_factory.mktemp("deb")
    before = checkout_state()
    env = {**os.environ, "PYTHON": sys.executable}
    result = run("bash", str(BUILD), "--out", str(out), env=env, cwd=str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert checkout_state() == before, "the build wrote into the checkout"
    return Path(result.stdout.strip().splitlines()[-1]), result.stdout, result.stderr


def build_offline(out: Path, models: Path, *args: str) -> Path:
    """An offline package into ``out``, its model taken from the folder ``models``."""
    need_tool("dpkg-deb", "dpkg")
    before = checkout_state()
    env = {**os.environ, "PYTHON": sys.executable, "EDGE_POSE_MODEL_MIRROR": str(models)}
    result = subprocess.run(
        ["bash", str(BUILD), "--offline", *args, "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=env, cwd=str(out),
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert checkout_state() == before, "the build wrote into the checkout"
    return Path(result.stdout.strip().splitlines()[-1])


def extract(deb: Path, dest: Path) -> Path:
    result = run(need_tool("dpkg-deb", "dpkg"), "--extract", str(deb), str(dest))
    assert result.returncode == 0, result.stderr
    return dest


@pytest.fixture(scope="module")
def offline_deb(tmp_path_factory, lightning_path) -> Path:
    """The default offline build: arm64, CPython 3.11 (Raspberry Pi OS Bookworm)."""
    return build_offline(tmp_path_factory.mktemp("offline"), lightning_path.parent)


@pytest.fixture(scope="module")
def offline_tree(offline_deb, tmp_path_factory) -> Path:
    return extract(offline_deb, tmp_path_factory.mktemp("offline-tree"))


@pytest.fixture(scope="module")
def deb(built) -> Path:
    return built[0]


@pytest.fixture(scope="module")
def control_dir(deb, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("control")
    result = run(need_tool("dpkg-deb", "dpkg"), "--control", str(deb), str(d))
    assert result.returncode == 0, result.stderr
    return d


@pytest.fixture(scope="module")
def tree(deb, tmp_path_factory) -> Path:
    return extract(deb, tmp_path_factory.mktemp("tree"))


def test_file_name_and_place(deb):
    assert deb.name == f"edge-pose_{VERSION}_all.deb"
    assert deb.is_file() and deb.parent != REPO / "dist"


def test_control_fields(deb):
    out = run(need_tool("dpkg-deb", "dpkg"), "--info", str(deb)).stdout
    fields = dict(re.findall(r"^ ([A-Z][\w-]*): (.*)$", out, re.M))
    assert fields["Package"] == "edge-pose"
    assert fields["Version"] == VERSION
    assert fields["Architecture"] == "all"
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert "python3 (>= 3.11)" in depends and "python3-venv" in depends
    assert [r.strip() for r in fields["Recommends"].split(",")] == [
        "python3-picamera2",
        "python3-systemd",
    ]
    assert fields["Suggests"] == "mosquitto"
    assert int(fields["Installed-Size"]) > 0
    assert "@" in fields["Maintainer"]
    for script in (*MAINTAINER_SCRIPTS, "conffiles", "md5sums"):
        assert re.search(rf"^\s+\d+ bytes,\s+\d+ lines\s+(\*\s+)?{script}\b", out, re.M), script


def test_conffiles_and_maintainer_scripts(control_dir):
    assert (control_dir / "conffiles").read_text().split() == ["/etc/edge-pose/config.toml"]
    for name in MAINTAINER_SCRIPTS:
        script = control_dir / name
        assert oct(script.stat().st_mode & 0o777) == "0o755", name
        assert script.read_text() == (DEBIAN / name).read_text(), name


def test_contents_listing(deb):
    out = run(need_tool("dpkg-deb", "dpkg"), "--contents", str(deb)).stdout
    entries = {}
    for line in out.splitlines():
        mode, owner, _size, _date, _time, path, *rest = line.split(maxsplit=6)
        path = path.removeprefix("./").rstrip("/")
        target = rest[0].removeprefix("-> ") if rest else None
        entries[path] = (mode, owner, target)
        assert owner == "root/root", line  # --root-owner-group
        if mode.startswith("d"):
            assert mode == "drwxr-xr-x", line
    for path, mode in EXPECTED_FILES.items():
        assert path in entries, f"{path} is not in the package"
        assert entries[path][0] == mode, (path, entries[path])
    for path, target in EXPECTED_LINKS.items():
        assert entries[path][0].startswith("l") and entries[path][2] == target
    # Nothing under /usr/local or /opt (the venv is made by postinst), no stray files.
    assert not [p for p in entries if p.startswith(("usr/local", "opt"))]
    assert not [p for p in entries if "__pycache__" in p or p.endswith((".pyc", ".orig"))]


def test_files_are_the_projects(tree):
    unit = (tree / "usr/lib/systemd/system/edge-pose.service").read_text()
    assert re.search(
        r"^ExecStart=/opt/edge-pose/venv/bin/edge-pose run --config /etc/edge-pose/config.toml$",
        unit,
        re.M,
    )
    assert "Documentation=file:///usr/share/doc/edge-pose/service.md" in unit
    source = (REPO / "deploy/edge-pose.service").read_text()
    strip_doc = re.compile(r"^Documentation=.*\n", re.M)
    assert strip_doc.sub("", unit) == strip_doc.sub("", source)
    for packaged, original in [
        ("etc/edge-pose/config.toml", "config/edge-pose.toml"),
        ("usr/lib/udev/rules.d/60-edge-pose-coral.rules", "deploy/udev/60-edge-pose-coral.rules"),
        ("usr/lib/sysusers.d/edge-pose.conf", "deploy/debian/edge-pose.sysusers"),
        ("usr/lib/tmpfiles.d/edge-pose.conf", "deploy/debian/edge-pose.tmpfiles"),
        ("usr/share/doc/edge-pose/copyright", "deploy/debian/copyright"),
        ("usr/lib/edge-pose/make-http-password", "deploy/lib/make-http-password"),
    ]:
        assert (tree / packaged).read_bytes() == (REPO / original).read_bytes(), packaged


def test_sysusers_and_tmpfiles_entries():
    users = (DEBIAN / "edge-pose.sysusers").read_text()
    assert re.search(r"^u edge-pose - .* /var/lib/edge-pose /usr/sbin/nologin$", users, re.M)
    for group in ("video", "plugdev", "apex"):
        assert re.search(rf"^m edge-pose {group}$", users, re.M), group
    tmpfiles = (DEBIAN / "edge-pose.tmpfiles").read_text()
    for d in ("/var/lib/edge-pose", "/var/lib/edge-pose/models"):
        assert re.search(rf"^d {re.escape(d)} +0750 edge-pose edge-pose -$", tmpfiles, re.M), d


def test_sysusers_makes_user_and_groups(tmp_path):
    """The entry applied by the real systemd-sysusers to a copy of this system's user database."""
    tool = need_tool("systemd-sysusers", "systemd")
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        if Path("/etc", name).exists() and os.access(Path("/etc", name), os.R_OK):
            shutil.copy(Path("/etc", name), tmp_path / "etc" / name)
    if not (tmp_path / "etc/shadow").exists():
        pytest.skip("/etc/shadow is not readable (run as root)")
    result = run(tool, f"--root={tmp_path}", str(DEBIAN / "edge-pose.sysusers"))
    assert result.returncode == 0, result.stderr
    passwd = (tmp_path / "etc/passwd").read_text()
    user = r"^edge-pose:x:\d+:\d+:[^:]*:/var/lib/edge-pose:/usr/sbin/nologin$"
    assert re.search(user, passwd, re.M)
    groups = {
        line.split(":")[0]: line.split(":")[3].split(",")
        for line in (tmp_path / "etc/group").read_text().splitlines()
    }
    for group in ("video", "plugdev", "apex"):
        assert "edge-pose" in groups[group], group
    assert "edge-pose" in groups


def test_the_password_helper_is_posix_sh(tree):
    """The postinst and cloud-init run it with /bin/sh (dash on Debian)."""
    tool = need_tool("shellcheck", "shellcheck")
    script = tree / "usr/lib/edge-pose/make-http-password"
    assert script.read_text().startswith("#!/bin/sh\n")
    result = run(tool, "--shell=sh", str(script))
    assert result.returncode == 0 and not result.stdout, result.stdout + result.stderr
    postinst = (DEBIAN / "postinst").read_text()
    assert "MAKE_HTTP_PASSWORD=/usr/lib/edge-pose/make-http-password" in postinst


@pytest.mark.parametrize("name", MAINTAINER_SCRIPTS)
def test_shellcheck_maintainer_scripts(control_dir, name):
    tool = need_tool("shellcheck", "shellcheck")
    script = control_dir / name
    assert script.read_text().startswith("#!/bin/sh\n")
    assert re.search(r"^set -e$", script.read_text(), re.M)
    result = run(tool, "--shell=sh", str(script))
    assert result.returncode == 0 and not result.stdout, result.stdout + result.stderr


def test_lintian(deb):
    tool = need_tool("lintian", "lintian")
    result = run(tool, "--display-info", "--allow-root", str(deb))
    lines = result.stdout.splitlines()
    errors = [line for line in lines if line.startswith("E:")]
    assert not errors, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
    # Every warning is explained in docs/packaging.md (by its tag).
    doc = DOC.read_text()
    for line in lines:
        if line.startswith("W:"):
            tag = line.split()[2]
            assert tag in doc, f"lintian warning not explained in docs/packaging.md: {line}"


def test_wheel_inside_installs(tree, tmp_path):
    wheel = tree / WHEEL
    target = tmp_path / "site"
    result = run(
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        "--disable-pip-version-check",
        "--target",
        str(target),
        str(wheel),
    )
    assert result.returncode == 0, result.stderr
    check = run(
        sys.executable,
        "-I",
        "-c",
        f"import sys; sys.path.insert(0, {str(target)!r}); import edge_pose, edge_pose.cli; "
        "print(edge_pose.__file__, edge_pose.__version__)",
    )
    assert check.returncode == 0, check.stderr
    path, version = check.stdout.split()
    assert path.startswith(str(target)) and version == VERSION
    assert (target / "bin" / "edge-pose").exists()
    assert (target / "share/edge-pose/config/edge-pose.toml").exists()
    assert (target / "share/edge-pose/models/manifest.toml").exists()


def test_changelog_matches_version():
    first = (DEBIAN / "changelog").read_text().splitlines()[0]
    assert first.startswith(f"edge-pose ({VERSION}) "), (
        f"deploy/debian/changelog needs an entry for {VERSION}"
    )


# --------------------------------------------------------------------------- offline build
WHEELHOUSE = "usr/lib/edge-pose/wheels"
BOOKWORM_NUMPY = "1.24.2"
AARCH64_PLATFORMS = [f"manylinux_2_{minor}_aarch64" for minor in range(36, 16, -1)]


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_tags(name: str) -> tuple[str, str, set[str], set[str], set[str]]:
    """(distribution, version, python tags, abi tags, platform tags) of a wheel file name."""
    dist, version, *_build, python, abi, platform = name.removesuffix(".whl").split("-")
    return dist, version, set(python.split(".")), set(abi.split(".")), set(platform.split("."))


def test_offline_control_fields(offline_deb):
    assert offline_deb.name == f"edge-pose_{VERSION}_arm64.deb"
    out = run(need_tool("dpkg-deb", "dpkg"), "--info", str(offline_deb)).stdout
    fields = dict(re.findall(r"^ ([A-Z][\w-]*): (.*)$", out, re.M))
    assert fields["Architecture"] == "arm64"
    depends = [d.strip() for d in fields["Depends"].split(",")]
    # The wheels are for CPython 3.11 only: apt must refuse a system with another Python.
    assert depends[:2] == ["python3 (>= 3.11)", "python3 (<< 3.12)"]
    assert "python3-venv" in depends
    assert "offline build for CPython 3.11 on arm64" in out
    assert f"(numpy {BOOKWORM_NUMPY})" in out


def test_offline_wheelhouse_is_for_the_target(offline_tree):
    wheels = sorted(p.name for p in (offline_tree / WHEELHOUSE).glob("*.whl"))
    dists = {}
    for name in wheels:
        dist, version, python, abi, platform = wheel_tags(name)
        dists[dist.lower()] = version
        assert python & {"cp311", "py3", "cp37", "cp310", "cp39", "cp38"}, name
        assert abi <= {"cp311", "abi3", "none"}, name
        assert platform == {"any"} or all(p.endswith("_aarch64") for p in platform), name
        mode = oct((offline_tree / WHEELHOUSE / name).stat().st_mode & 0o777)
        assert mode == "0o644", name
    for needed in ("ai_edge_litert", "numpy", "opencv_python_headless", "paho_mqtt", "pydantic",
                   "pydantic_core", "tqdm"):
        assert needed in dists, f"{needed} is not in the wheelhouse: {wheels}"
    # python3-numpy of Bookworm, which picamera2's compiled companions are built against.
    assert dists["numpy"] == BOOKWORM_NUMPY
    assert "edge_pose" not in dists  # shipped once, in /usr/share/edge-pose


def test_offline_wheelhouse_resolves_without_an_index(offline_tree, tmp_path):
    """pip's own resolver, as the postinst calls it on the Pi: no index, only these wheels."""
    platforms = [arg for p in [*AARCH64_PLATFORMS, "manylinux2014_aarch64", "any"]
                 for arg in ("--platform", p)]
    report = tmp_path / "report.json"
    result = run(
        sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-index",
        "--disable-pip-version-check", "--find-links", str(offline_tree / WHEELHOUSE),
        "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
        "--abi", "cp311", "--abi", "abi3", "--abi", "none", *platforms,
        "--target", str(tmp_path / "target"), "--report", str(report),
        str(offline_tree / WHEEL),
    )
    assert result.returncode == 0, result.stderr
    installed = {normalized(i["metadata"]["name"]): i["metadata"]["version"]
                 for i in json.loads(report.read_text())["install"]}
    assert installed.pop("edge-pose") == VERSION and installed["numpy"] == BOOKWORM_NUMPY
    # pip takes every wheel of the wheelhouse, and nothing else: no download, no leftovers.
    in_house = {normalized(wheel_tags(p.name)[0]): wheel_tags(p.name)[1]
                for p in (offline_tree / WHEELHOUSE).glob("*.whl")}
    assert installed == in_house


def test_offline_model_is_the_manifests(offline_tree):
    manifest = tomllib.loads((REPO / "models" / "manifest.toml").read_text())
    entry = next(m for m in manifest["model"] if m["name"] == "movenet_lightning_int8")
    models = list((offline_tree / "usr/share/edge-pose/models").iterdir())
    assert [m.name for m in models] == [entry["file"]]
    assert hashlib.sha256(models[0].read_bytes()).hexdigest() == entry["sha256"]
    assert oct(models[0].stat().st_mode & 0o777) == "0o644"


def test_offline_lintian(offline_deb):
    result = run(need_tool("lintian", "lintian"), "--allow-root", str(offline_deb))
    assert result.returncode == 0 and not [
        line for line in result.stdout.splitlines() if line.startswith(("E:", "W:"))
    ], result.stdout + result.stderr


def test_offline_amd64_wheelhouse_runs_edge_pose(tmp_path, data_dir, lightning_path):
    """The wheelhouse of an amd64 build installs into a fresh venv with no index, and that venv,
    with numpy 1.24.2 and the OpenCV pip chose for it, matches the pycoral reference keypoints
    (not the host's to the last digit: another OpenCV's warp rounds differently)."""
    deb = build_offline(tmp_path, lightning_path.parent, "--arch", "amd64")
    tree = extract(deb, tmp_path / "tree")
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", str(venv)).returncode == 0
    python = str(venv / "bin" / "python")
    result = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
         "--find-links", str(tree / WHEELHOUSE), str(tree / WHEEL)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr
    versions = run(python, "-c", "import numpy, cv2; print(numpy.__version__, cv2.__version__)")
    assert versions.stdout.split()[0] == BOOKWORM_NUMPY, versions.stdout + versions.stderr
    # The reference check, as pycoral ran it: the whole image squeezed, one pass.
    model = next((tree / "usr/share/edge-pose/models").glob("*.tflite"))
    bundled = run(str(venv / "bin" / "edge-pose"), "estimate", str(data_dir / "coral/squat.bmp"),
                  "--json", "--fit", "stretch", "--no-refine", "--model", str(model),
                  cwd=tmp_path)
    assert bundled.returncode == 0, bundled.stderr
    result = json.loads(bundled.stdout)
    xy = np.array([(k["x"], k["y"]) for k in result["keypoints"]]) / (
        result["width"], result["height"]
    )
    errors = np.abs(xy - reference_xy(data_dir)).max(axis=1)  # per keypoint, the worse axis
    assert errors.max() <= 0.05 and errors.mean() <= 0.025, errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--offline", "--arch", "armhf"], "--arch armhf: PyPI has no 32-bit ARM wheels"),
        (["--offline", "--arch", "riscv64"], "--arch riscv64: use arm64"),
        (["--offline", "--python", "3.9"], "--python 3.9: use 3.11 (Raspberry Pi OS Bookworm)"),
        (["--offline", "--numpy", "latest"], "--numpy latest: not a version like 1.24.2"),
        (["--offline", "--numpy", "1.24"], "--numpy 1.24: not a version like 1.24.2"),
        (["--model", "movenet_thunder_int8"], "--arch, --python, --numpy and --model go with"),
        (["--python", "3.13"], "--arch, --python, --numpy and --model go with --offline"),
        (["--arch"], "--arch needs a value"),
    ],
)
def test_bad_build_options(args, message, tmp_path):
    result = run("bash", str(BUILD), *args, "--out", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == f"build-deb.sh: error: {message}" or (
        result.stderr.startswith(f"build-deb.sh: error: {message}")
        and len(result.stderr.strip().splitlines()) == 1
    ), result.stderr
    assert not list(tmp_path.iterdir())
