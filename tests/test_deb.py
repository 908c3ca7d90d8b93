"""The Debian package (deploy/build-deb.sh, deploy/debian/; docs/packaging.md).

- the package builds into a temporary folder and writes nothing into the checkout;
- its name, control fields and conffiles;
- its contents listing: every file at its path with its mode, owned by root;
- the files in it are the project's (unit with the venv's ExecStart, udev rules, config);
- the sysusers.d entry makes the user and groups (systemd-sysusers --root on a copy);
- shellcheck on the maintainer scripts as packaged;
- lintian: exit status 0, no error, and every warning explained in docs/packaging.md;
- the wheel inside installs (pip --no-deps into a folder) and is this version of edge_pose.

Missing tools (dpkg-deb, lintian, shellcheck, systemd-sysusers) skip with the apt command to
install them, and fail under CI=true.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IN_CI

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
    "etc/edge-pose/config.toml": "-rw-r--r--",
    "usr/share/man/man1/edge-pose.1.gz": "-rw-r--r--",
    "usr/share/doc/edge-pose/copyright": "-rw-r--r--",
    "usr/share/doc/edge-pose/changelog.gz": "-rw-r--r--",
    "usr/share/doc/edge-pose/service.md": "-rw-r--r--",
}
EXPECTED_LINKS = {"usr/bin/edge-pose": "/opt/edge-pose/venv/bin/edge-pose"}


def need_tool(name: str, package: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path:
        return path
    message = f"{name} is not installed: sudo apt-get install {package}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


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
    d = tmp_path_factory.mktemp("tree")
    result = run(need_tool("dpkg-deb", "dpkg"), "--extract", str(deb), str(d))
    assert result.returncode == 0, result.stderr
    return d


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
